import Foundation
import Media
import TestSupport
import Testing

/// Test hosts in network namespaces made (and removed) by the test itself: a coordinator in
/// one, workers in two others, each joined to the coordinator by a veth pair with addresses
/// of its own. Needs root and iproute2.
final class NamespaceNetwork {
    static var available: Bool {
        getuid() == 0 && (FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip"))
    }

    let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
    var coordinator: String { "reel-c-\(suffix)" }
    func worker(_ index: Int) -> String { "reel-w\(index)-\(suffix)" }
    /// The coordinator's address as worker `index` sees it.
    func coordinatorAddress(for index: Int) -> String { "10.231.\(index).1" }
    func workerAddress(_ index: Int) -> String { "10.231.\(index).2" }
    let workers: Int

    init(workers: Int) throws {
        self.workers = workers
        try ip(["netns", "add", coordinator])
        try ip(["-n", coordinator, "link", "set", "lo", "up"])
        for index in 1...workers {
            let (near, far) = ("vc\(index)-\(suffix)", "vw\(index)-\(suffix)")
            try ip(["netns", "add", worker(index)])
            try ip(["-n", worker(index), "link", "set", "lo", "up"])
            try ip(["link", "add", near, "type", "veth", "peer", "name", far])
            try ip(["link", "set", near, "netns", coordinator])
            try ip(["link", "set", far, "netns", worker(index)])
            try ip(["-n", coordinator, "addr", "add", "\(coordinatorAddress(for: index))/24", "dev", near])
            try ip(["-n", worker(index), "addr", "add", "\(workerAddress(index))/24", "dev", far])
            try ip(["-n", coordinator, "link", "set", near, "up"])
            try ip(["-n", worker(index), "link", "set", far, "up"])
        }
    }

    deinit {
        // Deleting a namespace deletes the veth ends inside it.
        for name in [coordinator] + (1...workers).map(worker) { _ = try? ip(["netns", "del", name]) }
    }

    func exec(_ namespace: String) -> [String] { ["ip", "netns", "exec", namespace] }

    @discardableResult
    func ip(_ arguments: [String]) throws -> String {
        let (status, output) = try DeployTests.runTool("/usr/bin/env", ["ip"] + arguments)
        guard status == 0 else { throw TestFailure("ip \(arguments.joined(separator: " ")): \(output)") }
        return output
    }
}

@Suite(.serialized) struct NamespaceTests {
    @Test(.enabled(if: NamespaceNetwork.available, "needs root and iproute2"))
    func workersInOtherNamespacesRenderOverRealTCP() throws {
        let network = try NamespaceNetwork(workers: 2)
        let farm = try ProcessFarm(wrapper: network.exec(network.coordinator), bind: "tcp://0.0.0.0:5555")
        defer { farm.stop() }
        for index in 1...2 {
            try farm.startWorker("ns-w\(index)", connect: "tcp://\(network.coordinatorAddress(for: index)):5555",
                                 wrapper: network.exec(network.worker(index)))
        }
        try farm.waitForWorkers(2)
        let connections = try network.ip(["netns", "exec", network.coordinator, "ss", "-tn"])
        #expect(connections.contains(network.workerAddress(1)) && connections.contains(network.workerAddress(2)),
                "workers connected from their own namespaces: \(connections)")

        let job = ["a green square moving down", "--frames", "24", "--steps", "2", "--seed", "8", "--scale", "1"]
        let result = try farm.client(["submit"] + job + ["--wait", "-o", "ns.mp4"])
        #expect(result.status == 0, "\(result.stderr)")
        let local = try ReelCommand.run(["render"] + job + ["-o", "local.mp4"], in: farm.directory)
        #expect(local.status == 0)
        let overNetwork = try ReelCommand.video("\(farm.directory)/ns.mp4")
        let inProcess = try ReelCommand.video("\(farm.directory)/local.mp4")
        #expect(overNetwork == inProcess, "same bytes over veth TCP as in-process")
    }
}
