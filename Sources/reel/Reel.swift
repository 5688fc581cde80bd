import ArgumentParser
import Foundation

@main
struct Reel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reel",
        abstract: "Render generated video with a diffusion model, on one machine or a farm of many.",
        discussion: """
            Quick start:
              reel render "a red circle moving right on a black background" -o circle.mp4

            Models are directories with config.json, model.safetensors and a vocabulary;
            they are found by name under ./models, $REEL_MODELS, or beside the reel binary.
            """,
        subcommands: [Render.self, Bench.self, ModelCommand.self]
    )
}

/// A failure the user can fix: printed as one line on stderr, exit status 1.
struct UserError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension ParsableCommand {
    /// Runs `body`, turning any error into one line on stderr and a non-zero exit, so no error
    /// reaches the user as a stack of framework text.
    func reportingErrors(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("reel: error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
