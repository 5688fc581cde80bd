import Diffusion
import Foundation

/// Small model packages written to temporary directories for tests.
public enum TestModels {
    public static let vocabulary = ["<start>", "a", "red", "blue", "circle", "square", "moving", "left", "right", "on", "black", "background"]

    public static func smallConfig() -> ModelConfig {
        ModelConfig(canvasHeight: 16, canvasWidth: 16, windowFrames: 4, fps: 8, patch: 4,
                    width: 32, depth: 2, heads: 2, mlpRatio: 2,
                    text: .init(width: 16, depth: 1, heads: 2, mlpRatio: 2, maxTokens: 8))
    }

    /// Writes config.json, vocab.txt and seeded weights into a fresh temporary directory
    /// (removed when the test process exits).
    public static func makePackage(config: ModelConfig = smallConfig(), seed: UInt64 = 11) throws -> (directory: String, model: Model) {
        let directory = try ScratchFiles.directory(prefix: "reel-test-model")
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try encoder.encode(config).write(to: URL(fileURLWithPath: "\(directory)/config.json"))
        try vocabulary.joined(separator: "\n").write(toFile: "\(directory)/vocab.txt", atomically: true, encoding: .utf8)
        try ModelPackage.writeWeights(in: directory, from: SeededWeights(seed: seed))
        return (directory, try Model(directory: directory))
    }

    /// A fresh temporary path ending in `name`, removed when the test process exits.
    public static func temporaryPath(_ name: String) -> String { ScratchFiles.path(name) }
}
