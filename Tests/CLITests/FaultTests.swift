import Foundation
import Media
import TestSupport
import Testing
import Wire

/// The fault suite (`make faults`; also part of `make test`): real processes on loopback and in
/// network namespaces, each fault injected for real, each test printing its figure.
@Suite(.serialized) struct FaultTests {
    static let job = ["a yellow diamond moving right", "--frames", "40", "--steps", "16", "--seed", "21", "--scale", "1"]

    /// The clean run's MP4, rendered in-process.
    static func cleanRender(_ job: [String], in directory: String, name: String = "clean.mp4") throws -> VideoDigest {
        let clean = try ReelCommand.run(["render"] + job + ["-o", name], in: directory)
        #expect(clean.status == 0, "\(clean.stderr)")
        return try ReelCommand.video("\(directory)/\(name)")
    }

    static func fetch(_ id: String, from farm: ProcessFarm, name: String) throws -> VideoDigest {
        let watched = try farm.client(["watch", id])
        #expect(watched.status == 0, "\(watched.stderr)")
        #expect(try farm.client(["fetch", id, "-o", name]).status == 0)
        return try ReelCommand.video("\(farm.directory)/\(name)")
    }

    /// Whether the coordinator sees worker `name` holding a shard of job `id`.
    static func isBusy(_ farm: ProcessFarm, worker name: String, job id: String) throws -> Bool {
        try farm.client(["workers"]).stdout.split(separator: "\n").contains(where: { $0.hasPrefix(name) && $0.contains(id) })
    }

    /// Waits until worker `name` holds a shard of job `id`.
    static func waitUntilBusy(_ farm: ProcessFarm, worker name: String, job id: String) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if try isBusy(farm, worker: name, job: id) { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw TestFailure("worker \(name) never took a shard of \(id)")
    }

    /// SIGSTOPs `worker` while it holds a shard of job `id`. A shard can end between seeing the
    /// worker busy and stopping it; then the worker is let go and caught again. Returns when
    /// the stop that held was sent.
    static func freezeWhileBusy(_ farm: ProcessFarm, worker: Process, name: String, job id: String) throws -> Date {
        for _ in 0..<20 {
            try waitUntilBusy(farm, worker: name, job: id)
            kill(worker.processIdentifier, SIGSTOP)
            let stopped = Date()
            Thread.sleep(forTimeInterval: 0.3)  // a result sent just before the stop lands meanwhile
            // On a loaded machine the look can take longer than the worker timeout; a worker
            // the coordinator already reaped for its silence was stopped holding its shard.
            if try isBusy(farm, worker: name, job: id) || farm.log(farm.coordinatorLog).contains("worker \(name) removed") {
                return stopped
            }
            kill(worker.processIdentifier, SIGCONT)
        }
        throw TestFailure("worker \(name) was never stopped holding a shard of \(id)")
    }

    /// Waits for job `id`, then expects its MP4 to equal the clean render of `job` and every
    /// shard's result to have been accepted exactly once; returns the shard counts.
    @discardableResult
    static func expectCleanOutputCountedOnce(_ id: String, on farm: ProcessFarm, job: [String] = job,
                                             clean: VideoDigest? = nil, name: String = "farm.mp4") throws -> (accepted: Int, total: Int)? {
        let video = try fetch(id, from: farm, name: name)
        #expect(video == (try clean ?? cleanRender(job, in: farm.directory)), "\(id): the same bytes as a clean run")
        let status = try farm.status(id)
        let counts = (accepted: Int(status.resultsAccepted), total: Int(status.shardsTotal))
        #expect(counts.total > 0 && counts.accepted == counts.total, "\(id): each shard counted once: \(counts)")
        return counts
    }

    @Test func aStoppedWorkersLateResultIsDropped() throws {
        let farm = try ProcessFarm(coordinatorArguments: ["--worker-timeout", "2"])
        let frozen = try farm.startWorker("frozen")
        try farm.startWorker("steady")
        try farm.waitForWorkers(2)
        let id = try farm.client(["submit"] + Self.job).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let stopped = try Self.freezeWhileBusy(farm, worker: frozen, name: "frozen", job: id)
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "requeued region", timeout: 30)
        let requeued = Date().timeIntervalSince(stopped)
        kill(frozen.processIdentifier, SIGCONT)
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "dropped a late result", timeout: 30)
        try Self.expectCleanOutputCountedOnce(id, on: farm)
        print("SIGSTOP past liveness: requeued after \(String(format: "%.1f", requeued)) s (worker timeout 2 s); late result dropped; output identical")
    }

    @Test func sigtermDrainsAWorkerAfterItsShardAndACoordinatorAfterItsCheckpoints() throws {
        let farm = try ProcessFarm()
        let leaving = try farm.startWorker("leaving")
        try farm.startWorker("staying")
        try farm.waitForWorkers(2)
        let id = try farm.client(["submit"] + Self.job).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.waitUntilBusy(farm, worker: "leaving", job: id)
        kill(leaving.processIdentifier, SIGTERM)
        leaving.waitUntilExit()
        #expect(leaving.terminationStatus == 0)
        // The worker has exited; the coordinator logs its goodbye when it reads it.
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "worker leaving removed: left: worker stopping")
        #expect(!farm.log(farm.coordinatorLog).contains("requeued region"), "the leaving worker finished its shard: nothing requeued")

        try farm.restartCoordinator(afterKill: false)  // SIGTERM: it writes its checkpoints, then exits
        let resumed = try farm.waitForLog(farm.coordinatorLog, containing: "job \(id) resumes at")
        #expect(!resumed.contains("resumes at 0/"), "\(resumed)")
        #expect(try Self.fetch(id, from: farm, name: "farm.mp4") == (try Self.cleanRender(Self.job, in: farm.directory)))
        print("SIGTERM: the worker finished its shard and left with nothing requeued; the coordinator flushed its checkpoints and\(resumed.split(separator: "]").last ?? "") after its restart")
    }

    @Test(.enabled(if: NamespaceNetwork.available, "needs root and iproute2"))
    func aWorkerCutOffByItsNetworkComesBackWithoutCountingAShardTwice() throws {
        let network = try NamespaceNetwork(workers: 2)
        let farm = try ProcessFarm(coordinatorArguments: ["--worker-timeout", "2"], wrapper: network.exec(network.coordinator),
                                   bind: "tcp://0.0.0.0:5555")
        defer { farm.stop() }
        for index in 1...2 {
            try farm.startWorker("ns-w\(index)", connect: "tcp://\(network.coordinatorAddress(for: index)):5555",
                                 wrapper: network.exec(network.worker(index)))
        }
        try farm.waitForWorkers(2)
        let id = try farm.client(["submit"] + Self.job).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.waitUntilBusy(farm, worker: "ns-w1", job: id)
        let link = "vw1-\(network.suffix)"
        try network.ip(["-n", network.worker(1), "link", "set", link, "down"])
        let cut = Date()
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "worker ns-w1 removed", timeout: 30)
        let noticed = Date().timeIntervalSince(cut)
        try network.ip(["-n", network.worker(1), "link", "set", link, "up"])
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "worker ns-w1 joined", timeout: 60)
        let counts = try Self.expectCleanOutputCountedOnce(id, on: farm)
        print("link down on a worker's namespace: removed after \(String(format: "%.1f", noticed)) s, rejoined after link up; \(counts?.accepted ?? 0) results for \(counts?.total ?? 0) shards; output identical")
    }

    @Test func aFloodOfSubmissionsIsRefusedPastTheLimitWhileAcceptedJobsFinish() throws {
        let limit = 8
        let farm = try ProcessFarm(coordinatorArguments: ["--max-jobs-per-client", "\(limit)"])
        try farm.startWorker("w1")
        try farm.waitForWorkers(1)
        let rssBefore = try Self.residentKB(farm.coordinator!.processIdentifier)
        let client = try FarmClient(context: try ZMQContext(), endpoint: farm.endpoint)
        var spec = Reel_V1_JobSpec()
        spec.prompt = "a small blue circle moving up"
        spec.model = "reel-tiny"
        spec.frames = 8
        spec.steps = 2
        var accepted: [String] = [], refusals: [String] = []
        for _ in 0..<1000 {
            do {
                accepted.append(try client.submit(spec))
            } catch {
                refusals.append("\(error)")
            }
        }
        let rssAfter = try Self.residentKB(farm.coordinator!.processIdentifier)
        #expect(accepted.count >= limit && accepted.count < 1000 && refusals.count == 1000 - accepted.count)
        #expect(refusals.allSatisfy { $0.contains("unfinished jobs") && $0.contains("wait for some to finish") }, "\(refusals.first ?? "")")
        for id in accepted {
            let status = try client.wait(for: id, interval: 0.1)
            #expect(status.state == .done, "\(id): \(status.error)")
        }
        #expect(rssAfter - rssBefore < 256 * 1024, "coordinator memory grew \(rssAfter - rssBefore) kB")
        print("flood of 1,000 submissions: \(accepted.count) accepted and rendered, \(refusals.count) refused (\"\(refusals.first ?? "")\"); coordinator RSS \(rssBefore / 1024) → \(rssAfter / 1024) MB")
    }

    @Test func aSoakWithWorkersKilledAtRandomRendersEveryJobExactlyOnce() throws {
        // 5 jobs of 64 frames, each a layout window of 12 steps and 7 chunks of 6: 270 shards.
        let job = ["a red square moving left", "--frames", "64", "--steps", "12", "--layout-strength", "0.5",
                   "--seed", "3", "--scale", "1"]
        let farm = try ProcessFarm(coordinatorArguments: ["--worker-timeout", "2"])
        var next = 1
        for _ in 0..<3 { try farm.startWorker("soak-\(next)"); next += 1 }
        try farm.waitForWorkers(3)
        let ids = try (0..<5).map { _ in try farm.client(["submit"] + job).stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        let deadline = Date().addingTimeInterval(400)
        while Date() < deadline {
            let states = try farm.client(["status"]).stdout
            if !states.contains("running") { break }
            Thread.sleep(forTimeInterval: Double.random(in: 2...4, using: &generator))
            let alive = farm.workers.filter(\.isRunning)
            if let victim = alive.randomElement(using: &generator) {
                kill(victim.processIdentifier, SIGKILL)
                kills += 1
                try farm.startWorker("soak-\(next)")
                next += 1
            }
        }
        let clean = try Self.cleanRender(job, in: farm.directory)
        var shards = 0
        for (index, id) in ids.enumerated() {
            let counts = try Self.expectCleanOutputCountedOnce(id, on: farm, job: job, clean: clean, name: "soak-\(index).mp4")
            shards += counts?.total ?? 0
        }
        #expect(shards >= 270 && kills >= 3)
        // The figure only; whether each job matched its clean run is the expectations' to say.
        print("soak: \(shards) shards in \(ids.count) jobs with \(kills) workers killed at random")
    }

    static func residentKB(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}
