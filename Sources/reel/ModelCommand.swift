import ArgumentParser
import Diffusion
import Families
import Foundation
import Wan

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Inspect models, check them against a reference, or create one with seeded or random weights.",
        subcommands: [Info.self, Check.self, Synth.self, Initialize.self])

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a model's shape, defaults and vocabulary.")

        @Argument(help: "Model name, package directory, or a Wan 2.1 Diffusers folder.")
        var model: String = ModelPackage.defaultModel

        func run() throws {
            if ModelFamilies.family(of: model) == WanFamily.self { return try WanModelInfo(model: WanModel(directory: model)).print() }
            let loaded = try Diffusion.Model(named: model)
            let c = loaded.config
            let file = try SafeTensorsFile(path: "\(loaded.directory)/\(ModelPackage.weightsFile)")
            let parameters = file.entries.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
            print("""
                model \(loaded.name) at \(loaded.directory)
                  canvas \(c.canvasWidth)x\(c.canvasHeight), window \(c.windowFrames) frames at \(c.fps) fps, patch \(c.patch)
                  denoiser width \(c.width), depth \(c.depth), heads \(c.heads); text encoder width \(c.text.width), depth \(c.text.depth), up to \(c.text.maxTokens - 1) words
                  \(parameters) parameters
                  defaults: \(c.defaults.steps) \(c.defaults.sampler) steps, guidance \(c.defaults.guidance), shift \(c.defaults.shift)
                  words: \(loaded.vocabulary.words.dropFirst().joined(separator: " "))
                """)
        }
    }

    struct Initialize: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Write model.safetensors for a package directory from a fixed seed.",
            discussion: "The directory must already hold config.json and the vocabulary. The same seed always writes the same bytes.")

        @Argument(help: "Package directory.")
        var directory: String

        @Option(help: "Seed of the weights.")
        var seed: UInt64 = 0

        func run() throws {
            let model = try ModelPackage.writeWeights(in: directory, from: SeededWeights(seed: seed),
                                                      metadata: ["reel.weights": "seeded", "reel.seed": "\(seed)"])
            print("wrote \(directory)/\(ModelPackage.weightsFile) for \(model.name) from seed \(seed)")
        }
    }
}
