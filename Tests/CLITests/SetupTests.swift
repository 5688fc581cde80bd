import Foundation
import TestSupport
import Testing

/// A farm set up as `reel init` says, by running the lines it prints, pasted as they are:
/// coordinator, worker and client each in a folder of their own, the client logged in once
/// and then using no connection flag.
@Suite struct SetupTests {
    /// A TCP port nothing listens on now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs `line` with sh in `directory`, `reel` first in PATH; returns the process, its
    /// output going to `log`.
    static func shell(_ line: String, in directory: String, log: String, environment extra: [String: String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", line]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = URL(fileURLWithPath: ReelCommand.binary).deletingLastPathComponent().path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment.merge(ReelCommand.testEnvironment) { _, new in new }
        environment.merge(extra) { _, new in new }
        process.environment = environment
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    @Test func theLinesReelInitPrintsRunAFarm() throws {
        let root = try ReelCommand.scratchDirectory()
        let port = try Self.freePort()
        let initialized = try ReelCommand.run(["init", "--data-dir", "data", "--address", "127.0.0.1:\(port)"], in: root)
        #expect(initialized.status == 0, "\(initialized.stderr)")
        let lines = initialized.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("reel ") }
        #expect(lines.count == 4, "\(initialized.stdout)")
        guard lines.count == 4 else { return }

        for (folder, key) in [("worker-machine", "worker.key"), ("client-machine", "client.key")] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(folder)", withIntermediateDirectories: true)
            for file in [key, "coordinator.pub"] {
                try FileManager.default.copyItem(atPath: "\(root)/reel-keys/\(file)", toPath: "\(root)/\(folder)/\(file)")
            }
        }
        let config = ["REEL_CONFIG": "\(root)/client-machine/config.yaml"]
        // exec: the daemon replaces its shell, so that terminating it reaches the daemon.
        let coordinator = try Self.shell("exec " + lines[0], in: root, log: "\(root)/coordinator.log", environment: [:])
        let worker = try Self.shell("exec " + lines[1] + " --threads 1", in: "\(root)/worker-machine", log: "\(root)/worker.log", environment: [:])
        defer {
            for process in [worker, coordinator] where process.isRunning { process.terminate(); process.waitUntilExit() }
        }
        try waitUntil("the coordinator listens", timeout: 30) {
            (try? String(contentsOfFile: "\(root)/coordinator.log", encoding: .utf8))?.contains("worker worker joined") == true
        }
        let login = try Self.shell(lines[2], in: "\(root)/client-machine", log: "\(root)/login.log", environment: config)
        login.waitUntilExit()
        #expect(login.terminationStatus == 0, "\((try? String(contentsOfFile: "\(root)/login.log", encoding: .utf8)) ?? "")")
        let submit = try Self.shell(lines[3], in: "\(root)/client-machine", log: "\(root)/submit.log", environment: config)
        submit.waitUntilExit()
        #expect(submit.terminationStatus == 0, "\((try? String(contentsOfFile: "\(root)/submit.log", encoding: .utf8)) ?? "")")
        #expect(FileManager.default.fileExists(atPath: "\(root)/client-machine/circle.mp4"))
        // Logged in: no connection flag, no variable.
        let status = try ReelCommand.run(["status"], in: "\(root)/client-machine", environment: config)
        #expect(status.status == 0 && status.stdout.contains("done"), "\(status.stdout)\(status.stderr)")
        // The README shows these very lines, for its example address and data directory.
        let readme = try String(contentsOfFile: ReelCommand.packageRoot + "/README.md", encoding: .utf8)
        for line in lines {
            let shown = line.replacingOccurrences(of: "127.0.0.1:\(port)", with: "COORDINATOR:5555")
                .replacingOccurrences(of: ":\(port) ", with: ":5555 ").replacingOccurrences(of: "--data-dir data", with: "--data-dir /var/lib/reel")
            #expect(readme.contains("    " + shown + "\n"), "README.md lacks the line reel init prints: \(shown)")
        }
        let broken = try ReelCommand.run(["status"], in: root, environment: ["REEL_CONFIG": "\(root)/reel-keys/coordinator.pub"])
        #expect(broken.status == 1 && broken.stderr.contains("coordinator.pub: not a mapping"), "\(broken.stderr)")
    }
}
