import ArgumentParser
import Foundation
import Wire
import Worker

@main
struct Reel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reel",
        abstract: "Render generated video with a diffusion model, on one machine or a farm of many.",
        discussion: """
            On one machine:
              reel render "a red circle moving right on a black background" -o circle.mp4

            On a farm (CURVE-encrypted; `reel keys --help` shows how to make and enroll \
            keys):
              reel coordinator --bind tcp://*:5555 --data-dir /var/lib/reel
              reel worker --connect tcp://COORDINATOR:5555 --key w1.key \\
                  --coordinator-key coordinator.pub
              reel submit "a blue square moving up" --frames 64 --wait -o square.mp4 \\
                  --coordinator tcp://COORDINATOR:5555 --key alice.key \\
                  --coordinator-key coordinator.pub

            Models are directories with config.json, model.safetensors and a vocabulary; \
            they are found by name under ./models, $REEL_MODELS, or beside the reel \
            binary.
            """,
        version: ReelVersion.line,
        subcommands: [Render.self, CoordinatorCommand.self, WorkerCommand.self, Submit.self, Status.self, Watch.self,
                      Cancel.self, Pause.self, Resume.self, Retry.self, Workers.self, Fetch.self, Verify.self, FarmInit.self, Login.self, KeysCommand.self, Eval.self, Bench.self, ModelCommand.self]
    )
}

/// A failure the user can fix, described in one line.
struct UserError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Reel {
    /// This binary, to start more of it (worker processes, a benchmark's parts).
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Exit status of a worker the coordinator refused (sysexits' EX_CONFIG): starting it again
    /// as it is cannot help, so the systemd unit names it in `RestartPreventExitStatus=`.
    static let refusedStatus: Int32 = 78

    /// Parses and runs the command. Help and version go to stdout as usual; every failure,
    /// a mistyped flag or a render that cannot proceed, is one line on stderr and exit status 1
    /// (a refused worker: `refusedStatus`).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var daemon = command as? AsyncParsableCommand {
                try await daemon.run()
            } else {
                try command.run()
            }
            WorkDirectory.waitIfInterrupted()
        } catch {
            WorkDirectory.waitIfInterrupted()
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            let text = message(for: error).split(whereSeparator: \.isNewline).joined(separator: "; ")
            FileHandle.standardError.write(Data("reel: error: \(text.isEmpty ? "\(error)" : text)\n".utf8))
            if error is WorkerRefused { Foundation.exit(refusedStatus) }
            Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }
}
