import ArgumentParser
import Diffusion
import Families
import Foundation
import Wan

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Reel's speed on this machine.",
        subcommands: [EngineBench.self, FarmBench.self, PrecisionBench.self])

    /// A report as one line of JSON with snake_case keys, for scripts.
    static func json(_ report: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(report), as: UTF8.self)
    }
}

/// The denoiser's forward pass against raw sgemm, measured in one run.
struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Denoiser forward pass GFLOP/s beside raw sgemm GFLOP/s on this machine, and their ratio.",
        discussion: """
            Without --model it builds a width-256 model (depth 4, 4 heads, patch 4, \
            64x64 canvas, 16-frame window) from a fixed seed in memory. The forward pass \
            runs a batch of 2 (the conditional and unconditional halves of guidance) \
            over the model's full window. FLOPs count the matrix products only; layer \
            norms, softmax and activations are the overhead the ratio exposes.

            With --model a Wan folder, it times the text encoder on a 512-token prompt, \
            one guided denoising step (two forwards) and the VAE decoder at --size and \
            --frames, each in a process of its own so each part's peak RSS is its own, \
            beside the same run's sgemm; --weights int8 times them with int8 weights \
            (`reel bench precision` measures what that costs in accuracy).
            """)

    @Option(help: "Model name or package directory, or a Wan folder (default: a seeded width-256 model).")
    var model: String?

    @Option(help: "With a Wan folder: the video's WIDTHxHEIGHT.")
    var size: String = "256x256"

    @Option(help: "With a Wan folder: the video's frames.")
    var frames: Int = 17

    @Option(help: "With a Wan model: time one part in this process and print its JSON: text, dit (a guided step), vae, or forward (one unguided DiT forward, the full-size check: --size 832x480 --frames 81).")
    var part: String?

    @Option(help: ArgumentHelp("With a Wan model: how its text encoder and transformer hold their weights, stored or int8 (default: stored).", valueName: "precision"))
    var weights: String = WeightPrecision.default.rawValue

    @Option(help: "Seconds to spend on each row in each round.")
    var seconds: Double = 1

    @Option(help: "Rounds; the rows alternate and each reports its best round, so a burst of load from elsewhere on a shared machine hits both rows alike.")
    var rounds: Int = 3

    @Option(help: "Side of the square sgemm yardstick.")
    var sgemmSize: Int = 1024

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    static let benchConfig = ModelConfig(
        canvasHeight: 64, canvasWidth: 64, windowFrames: 16, fps: 8, patch: 4,
        width: 256, depth: 4, heads: 4, mlpRatio: 4,
        text: .init(width: 128, depth: 2, heads: 4, mlpRatio: 4, maxTokens: 24))

    func run() throws {
        if let threads { ComputeThreads.set(try Render.positive(threads, "--threads")) }
        guard seconds > 0 else { throw UserError("--seconds must be above 0") }
        guard rounds > 0 else { throw UserError("--rounds must be at least 1") }
        if let model, ModelFamilies.family(of: model) == WanFamily.self { return try runWan(model) }
        let loaded = try loadModel()
        let config = loaded.config
        let batch = 2, frames = config.windowFrames, textTokens = 8
        let x = NoiseField(seed: 1).tensor(step: 0, frames: 0..<(batch * frames), channels: config.channels,
                                           height: config.canvasHeight, width: config.canvasWidth)
            .reshaped([batch, frames, config.channels, config.canvasHeight, config.canvasWidth])
        let context = loaded.textEncoder.encode(tokens: (0..<textTokens).map { $0 % loaded.vocabulary.count })
        let flops = loaded.denoiser.flops(batch: batch, frames: frames, height: config.canvasHeight,
                                          width: config.canvasWidth, textTokens: textTokens)

        var sgemm = (gflops: 0.0, millisecondsPerCall: 0.0)
        var forward = sgemm
        for _ in 0..<rounds {
            let s = BLAS.measureSgemm(size: sgemmSize, threads: ComputeThreads.count, minimumSeconds: seconds)
            if s.gflops > sgemm.gflops { sgemm = (s.gflops, s.seconds / Double(s.calls) * 1000) }
            let f = Self.measure(seconds: seconds) {
                _ = loaded.denoiser.velocity(x, t: [0.5, 0.5], contexts: [context, context])
            }
            let gflops = flops * Double(f.calls) / f.seconds / 1e9
            if gflops > forward.gflops { forward = (gflops, f.seconds / Double(f.calls) * 1000) }
        }
        let report = Report(
            cpuKernel: BLAS.coreName, threads: ComputeThreads.count,
            rounds: rounds, sgemmSize: sgemmSize, sgemmGFLOPS: sgemm.gflops, sgemmMillisecondsPerCall: sgemm.millisecondsPerCall,
            model: loaded.name, width: config.width, depth: config.depth, heads: config.heads,
            batch: batch, frames: frames, height: config.canvasHeight, canvasWidth: config.canvasWidth,
            forwardGFLOP: flops / 1e9, forwardMillisecondsPerCall: forward.millisecondsPerCall,
            forwardGFLOPS: forward.gflops, ratio: forward.gflops / sgemm.gflops)
        print(json ? report.json : report.table)
    }

    func runWan(_ directory: String) throws {
        let (width, height) = try JobOptions.parseSize(size)
        guard let precision = WeightPrecision(rawValue: weights) else { throw UserError("--weights \(weights) is not a precision; use \(WeightPrecision.names)") }
        let bench = WanEngineBench(directory: directory, width: width, height: height, frames: frames, weights: precision)
        try bench.validate()
        if let part {
            guard let part = WanEngineBench.Part(rawValue: part) else { throw UserError("--part \(part): use text, dit, vae or forward") }
            return print(String(decoding: try JSONEncoder().encode(try bench.measure(part)), as: UTF8.self))
        }
        var sgemm = 0.0
        for _ in 0..<rounds {
            sgemm = max(sgemm, BLAS.measureSgemm(size: sgemmSize, threads: ComputeThreads.count, minimumSeconds: seconds).gflops)
        }
        let report = try bench.run(threads: ComputeThreads.count, sgemmGFLOPS: sgemm)
        print(json ? Bench.json(report) : WanEngineBench.table(report))
    }

    func loadModel() throws -> Model {
        if let model { return try Model(named: model) }
        var words = [Vocabulary.startToken]
        words += (1..<64).map { "w\($0)" }
        return try Model(name: "seeded-w256", directory: "", config: Self.benchConfig,
                         vocabulary: try Vocabulary(words: words), weights: SeededWeights(seed: 256))
    }

    /// Calls `body` once to warm up, then repeatedly for at least `seconds`.
    static func measure(seconds: Double, _ body: () -> Void) -> (seconds: Double, calls: Int) {
        body()
        let clock = ContinuousClock(), start = clock.now
        var calls = 0, elapsed = 0.0
        repeat {
            body()
            calls += 1
            elapsed = (clock.now - start).seconds
        } while elapsed < seconds
        return (elapsed, calls)
    }

    struct Report: Encodable {
        let cpuKernel: String, threads: Int, rounds: Int
        let sgemmSize: Int, sgemmGFLOPS: Double, sgemmMillisecondsPerCall: Double
        let model: String, width: Int, depth: Int, heads: Int
        let batch: Int, frames: Int, height: Int, canvasWidth: Int
        let forwardGFLOP: Double, forwardMillisecondsPerCall: Double, forwardGFLOPS: Double
        let ratio: Double

        var json: String { Bench.json(self) }

        var table: String {
            let n = sgemmSize
            let rows = [
                ["row", "shape", "ms/call", "GFLOP/s"],
                ["sgemm", "\(n)x\(n)x\(n)", String(format: "%.2f", sgemmMillisecondsPerCall), String(format: "%.1f", sgemmGFLOPS)],
                ["denoiser forward", "\(model) w\(width) d\(depth) h\(heads), \(batch)x\(frames)x\(canvasWidth)x\(height), \(String(format: "%.1f", forwardGFLOP)) GFLOP",
                 String(format: "%.1f", forwardMillisecondsPerCall), String(format: "%.1f", forwardGFLOPS)],
                ["forward / sgemm", "", "", String(format: "%.2f", ratio)],
            ]
            return "engine benchmark: OpenBLAS \(cpuKernel), \(threads) thread(s), best of \(rounds) rounds\n" + TextTable.render(rows, rightAligned: [2, 3])
        }
    }
}
