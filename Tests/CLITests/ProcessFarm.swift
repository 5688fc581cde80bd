import Foundation
import TestSupport
import Testing
import Wire

/// A coordinator and workers as real `reel` processes, for tests. Everything it starts is
/// stopped when it goes away; logs are kept in its directory.
final class ProcessFarm {
    let directory: String
    private(set) var endpoint = ""
    private(set) var coordinator: Process?
    private(set) var workers: [Process] = []
    /// Long-running client commands (`reel watch`, `reel submit --wait`) started by the test.
    private(set) var clients: [Process] = []
    /// Prefix for every command, e.g. ["ip", "netns", "exec", "ns"]; empty runs directly.
    let coordinatorWrapper: [String]
    let coordinatorArguments: [String]
    /// CURVE (keys made and enrolled by the test) instead of --insecure.
    let secure: Bool
    /// The coordinator's log of its current life: coordinator.log, then coordinator-2.log, …
    private(set) var coordinatorLog = "coordinator.log"
    private var lives = 1

    /// For the coordinator's first life: the crash hook's variable and path suffix
    /// (REEL_CRASH_BEFORE_RENAME=.checkpoint, say): it kills itself (SIGKILL) there.
    private var crash: String?

    init(coordinatorArguments: [String] = [], wrapper: [String] = [], bind: String = "tcp://127.0.0.1:*", secure: Bool = false,
         crash: String? = nil) throws {
        directory = try ReelCommand.scratchDirectory()
        coordinatorWrapper = wrapper
        self.coordinatorArguments = coordinatorArguments
        self.secure = secure
        self.crash = crash
        try startCoordinator(bind: bind)
        self.crash = nil
    }

    /// Waits until the coordinator process has ended by itself.
    func waitForCoordinatorToDie(timeout: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while coordinator?.isRunning == true {
            guard Date() < deadline else { throw TestFailure("the coordinator is still running after \(timeout) s") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// `kill -9` of the coordinator, then a new one on the same data directory and endpoint;
    /// `whileDown` runs between the two.
    func restartCoordinator(afterKill: Bool = true, whileDown: () throws -> Void = {}) throws {
        if let coordinator {
            kill(coordinator.processIdentifier, afterKill ? SIGKILL : SIGTERM)
            coordinator.waitUntilExit()
        }
        try whileDown()
        lives += 1
        coordinatorLog = "coordinator-\(lives).log"
        try startCoordinator(bind: endpoint)
    }

    private func startCoordinator(bind: String) throws {
        let hook = crash.map { [$0] } ?? []
        coordinator = try launch(hook + coordinatorWrapper, ["coordinator", "--bind", bind, "--data-dir", "\(directory)/data"]
                                    + (secure ? [] : ["--insecure"]) + coordinatorArguments,
                                 log: coordinatorLog)
        let line = try waitForLog(coordinatorLog, containing: "coordinator listening on ")
        // "coordinator listening on tcp://127.0.0.1:43567, data in ..."
        endpoint = String(line.split(separator: " ").first { $0.hasPrefix("tcp://") } ?? "")
        if endpoint.hasSuffix(",") { endpoint.removeLast() }
        endpoint = endpoint.replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")  // bound to every address
    }

    deinit { stop() }

    @discardableResult
    func startWorker(_ id: String, connect: String? = nil, wrapper: [String] = [], extra: [String] = [],
                     environment: [String: String] = [:]) throws -> Process {
        let security = extra.contains("--key") ? extra : ["--insecure"] + extra
        let worker = try launch(wrapper, ["worker", "--connect", connect ?? endpoint, "--threads", "1", "--id", id] + security, log: "\(id).log",
                                extraEnvironment: environment)
        workers.append(worker)
        return worker
    }

    /// Waits until the coordinator lists `count` workers.
    func waitForWorkers(_ count: Int, timeout: Double = 20, credentials: [String] = []) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let listed = try client(["workers"] + credentials, insecure: credentials.isEmpty).stdout.split(separator: "\n").count - 1
            if listed >= count { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw TestFailure("fewer than \(count) workers joined within \(timeout) s")
    }

    /// Starts a client command against this farm's coordinator and returns at once; its
    /// output goes to `log`.
    @discardableResult
    func startClient(_ arguments: [String], log: String) throws -> Process {
        let client = try launch(coordinatorWrapper, arguments + ["--coordinator", endpoint] + (secure ? [] : ["--insecure"]), log: log)
        clients.append(client)
        return client
    }

    /// Runs a client command against this farm's coordinator.
    func client(_ arguments: [String], endpoint override: String? = nil, insecure: Bool = true) throws -> ReelCommand.Result {
        let args = arguments + ["--coordinator", override ?? endpoint] + (insecure ? ["--insecure"] : [])
        return try ReelCommand.run(args, in: directory, wrapper: coordinatorWrapper)
    }

    /// A job's status as `reel status --json` prints it.
    func status(_ id: String) throws -> Reel_V1_JobStatus {
        let result = try client(["status", id, "--json"])
        guard result.status == 0, let line = result.stdout.split(separator: "\n").first else {
            throw TestFailure("reel status \(id) --json: \(result.stderr)")
        }
        return try Reel_V1_JobStatus(jsonString: String(line))
    }

    func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)) ?? ""
    }

    func waitForLog(_ name: String, containing text: String, timeout: Double = 20) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = log(name).split(separator: "\n").last(where: { $0.contains(text) }) { return String(line) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("\(name) did not say '\(text)' within \(timeout) s:\n\(log(name))")
    }

    func stop() {
        let processes = clients + workers + [coordinator].compactMap { $0 }
        for process in processes where process.isRunning {
            process.terminate()
        }
        for process in processes {
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        clients = []
        workers = []
        coordinator = nil
    }

    private func launch(_ wrapper: [String], _ arguments: [String], log: String, extraEnvironment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrapper.isEmpty ? ReelCommand.binary : "/usr/bin/env")
        process.arguments = wrapper.isEmpty ? arguments : wrapper + [ReelCommand.binary] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment.merge(ReelCommand.testEnvironment) { _, new in new }
        environment.merge(extraEnvironment) { _, new in new }
        process.environment = environment
        _ = FileManager.default.createFile(atPath: "\(directory)/\(log)", contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/\(log)"))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }
}

extension Substring {
    /// The cells of a row of `reel status` or `reel workers`: columns are two or more spaces
    /// apart, and no cell the tests read holds two spaces in a row.
    var tableCells: [String] {
        split(separator: "  ", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
