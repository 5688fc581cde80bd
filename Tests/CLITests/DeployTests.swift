import Foundation
import Testing
import Yams

/// Every file under deploy/ is exercised: units verified by systemd, YAML parsed, and every
/// `reel` command in them (and in the docs) checked against the CLI's real subcommands and flags.
@Suite struct DeployTests {
    static let deploy = ReelCommand.packageRoot + "/deploy"

    static func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    @Test func systemdUnitsVerifyCleanly() throws {
        let directory = try ReelCommand.scratchDirectory()
        var units: [String] = []
        for name in ["reel-coordinator.service", "reel-worker@.service"] {
            // systemd checks that ExecStart's binary exists: point it at the one just built.
            let unit = try Self.text("\(Self.deploy)/systemd/\(name)").replacingOccurrences(of: "/usr/local/bin/reel", with: ReelCommand.binary)
            let target = "\(directory)/\(name.replacingOccurrences(of: "@.", with: "@w1."))"
            try unit.write(toFile: target, atomically: true, encoding: .utf8)
            if name.contains("@") { try unit.write(toFile: "\(directory)/\(name)", atomically: true, encoding: .utf8) }
            units.append(target)
        }
        let verify = try Self.runTool("/usr/bin/systemd-analyze", ["verify", "--man=no"] + units)
        #expect(verify.status == 0 && verify.output.isEmpty, "systemd-analyze verify: \(verify.output)")
        let commands = try ["reel-coordinator.service", "reel-worker@.service"].flatMap { name in
            try Self.text("\(Self.deploy)/systemd/\(name)").split(separator: "\n").filter { $0.hasPrefix("ExecStart=") }
                .map { Self.reelCommand(String($0.dropFirst("ExecStart=/usr/local/bin/reel".count))) }
        }
        #expect(commands.count == 2)
        try CLIReference.check(commands, in: "deploy/systemd")
    }

    @Test func composeAndKubernetesFilesParseAndUseRealFlags() throws {
        var commands: [[String]] = []
        let compose = try Yams.load(yaml: Self.text("\(Self.deploy)/docker/compose.yaml")) as? [String: Any]
        let services = compose?["services"] as? [String: Any] ?? [:]
        #expect(Set(services.keys) == ["keys", "coordinator", "worker"])
        for (_, service) in services {
            commands += Self.commands(in: service as? [String: Any] ?? [:], commandKey: "command", entrypointKey: "entrypoint")
        }
        var kinds: [String] = []
        for file in ["keys-secret.yaml", "coordinator.yaml", "workers.yaml"] {
            for document in try Yams.load_all(yaml: Self.text("\(Self.deploy)/kubernetes/\(file)")) {
                let object = document as? [String: Any] ?? [:]
                kinds.append(object["kind"] as? String ?? "?")
                let spec = ((object["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any] ?? [:]
                for key in ["initContainers", "containers"] {
                    for container in spec[key] as? [[String: Any]] ?? [] {
                        commands += Self.commands(in: container, commandKey: "args", entrypointKey: "command")
                    }
                }
            }
        }
        #expect(kinds.sorted() == ["Deployment", "Secret", "Service", "StatefulSet"])
        let dockerfile = try Self.text("\(Self.deploy)/docker/Dockerfile")
        #expect(dockerfile.contains("FROM swift:") && dockerfile.contains("AS build") && dockerfile.contains("COPY --from=build"), "multi-stage")
        #expect(commands.count >= 8, "\(commands)")
        try CLIReference.check(commands, in: "deploy/")
    }

    @Test func everyReelCommandInTheDocsUsesRealFlags() throws {
        let root = ReelCommand.packageRoot
        let docs = ["README.md"] + (try FileManager.default.contentsOfDirectory(atPath: "\(root)/docs")).filter { $0.hasSuffix(".md") }.map { "docs/\($0)" }
            + ["deploy/systemd/README.md", "deploy/docker/README.md", "deploy/kubernetes/README.md"]
        var commands: [[String]] = []
        for doc in docs {
            var joined = ""
            for line in try Self.text("\(root)/\(doc)").split(separator: "\n", omittingEmptySubsequences: false) {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                joined += joined.isEmpty ? trimmed : " " + trimmed
                if joined.hasSuffix("\\") { joined.removeLast(); continue }
                for segment in Self.shellSegments(joined) where segment.hasPrefix("reel ") && line.hasPrefix("    ") {
                    commands.append(Self.reelCommand(String(segment.dropFirst(4))))
                }
                joined = ""
            }
        }
        #expect(commands.count >= 20, "found \(commands.count) commands")
        try CLIReference.check(commands, in: "the docs")
    }

    /// The `reel` commands of a compose service or a container: its argument list when `reel`
    /// is the entrypoint, or the `reel …` parts of an `sh -c` script.
    static func commands(in object: [String: Any], commandKey: String, entrypointKey: String) -> [[String]] {
        let entrypoint = object[entrypointKey] as? [String] ?? []
        let arguments = object[commandKey] as? [String] ?? (object[commandKey] as? String).map { [$0] } ?? []
        if entrypoint.first == "/bin/sh" {
            return arguments.flatMap(shellSegments).filter { $0.hasPrefix("reel ") }.map { reelCommand(String($0.dropFirst(4))) }
        }
        return arguments.isEmpty ? [] : [arguments]
    }

    /// A script cut at `&&`, `||`, `;` and parentheses, each part trimmed.
    static func shellSegments(_ script: String) -> [String] {
        script.replacingOccurrences(of: "&&", with: "\n").replacingOccurrences(of: "||", with: "\n")
            .split(whereSeparator: { "\n;()|`".contains($0) }).map { $0.trimmingCharacters(in: .whitespaces) }
    }

    static func reelCommand(_ arguments: String) -> [String] {
        arguments.split(separator: " ").map(String.init)
    }

    static func runTool(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// What `reel … --help` says exists, asked once per subcommand.
enum CLIReference {
    nonisolated(unsafe) static var helps: [String: String] = [:]
    static let lock = NSLock()

    static func help(_ path: [String]) throws -> String {
        let key = path.joined(separator: " ")
        if let known = lock.withLock({ helps[key] }) { return known }
        let result = try ReelCommand.run(path + ["--help"], in: NSTemporaryDirectory())
        lock.withLock { helps[key] = result.stdout }
        return result.stdout
    }

    /// The subcommands a help text lists: its SUBCOMMANDS section, up to the blank line
    /// before "See 'reel help <subcommand>'".
    static func subcommands(_ help: String) -> Set<String> {
        guard let start = help.range(of: "SUBCOMMANDS:\n") else { return [] }
        let section = help[start.upperBound...].components(separatedBy: "\n\n").first ?? ""
        return Set(section.split(separator: "\n").compactMap { line in
            line.hasPrefix("  ") && !line.hasPrefix("   ") ? line.split(separator: " ").first.map(String.init) : nil
        })
    }

    /// Each command's subcommands must exist and each --flag must be one they take.
    static func check(_ commands: [[String]], in place: String) throws {
        for command in commands {
            var path: [String] = []
            var rest = command[...]
            while let next = rest.first, !next.hasPrefix("-"), try subcommands(help(path)).contains(next) {
                path.append(next)
                rest = rest.dropFirst()
            }
            let help = try help(path)
            for flag in rest where flag.hasPrefix("--") {
                let name = String(flag.split(separator: "=").first ?? "")
                #expect(help.contains(name + " ") || help.contains(name + "\n") || help.contains(name + ","),
                        "\(place): `reel \(command.joined(separator: " "))` uses \(name), which `reel \(path.joined(separator: " "))` does not take")
            }
        }
    }
}
