import Diffusion
import Foundation
import Wan

/// `reel bench engine --model DIR` for a Wan folder: the text encoder, one guided denoising step
/// and the VAE decoder, each timed in a process of its own so that each part's peak RSS is its
/// own, beside the same run's sgemm.
struct WanEngineBench {
    let directory: String
    let width: Int, height: Int, frames: Int
    /// How the text encoder and transformer hold their weights in each part's process.
    let weights: WeightPrecision

    /// `forward`: one unguided forward of the DiT alone, the check that a full-size video
    /// (832x480x81, 32,760 tokens) runs, with its attention tiled; not in the default run.
    enum Part: String, CaseIterable { case text, dit, vae, forward }

    /// What one part's process reports.
    struct PartReport: Codable {
        var seconds: Double
        /// Tokens encoded, or frames decoded.
        var count: Int
        var gflop: Double
        var peakRSSBytes: Int
        /// Seconds to map (and at int8, quantise) the part's weights, before the timing.
        var loadSeconds: Double = 0
    }

    struct Report: Encodable {
        var model: String, weights: String, cpuKernel: String, threads: Int
        var width: Int, height: Int, frames: Int, tokens: Int
        var sgemmGFLOPS: Double
        var promptTokens: Int, textEncoderSeconds: Double, textEncoderPeakRSSBytes: Int, textEncoderLoadSeconds: Double
        var guidedStepSeconds: Double, guidedStepGFLOP: Double, guidedStepGFLOPS: Double, guidedStepRatio: Double
        var denoiserPeakRSSBytes: Int, denoiserLoadSeconds: Double
        var vaeDecodeSecondsPerFrame: Double, vaePeakRSSBytes: Int
    }

    /// Checks the size and frames as a render would.
    func validate() throws {
        try WanPipeline(model: try WanModel(directory: directory, weights: weights))
            .validate(WanRequest(prompt: "", width: width, height: height, frames: frames, steps: 1, guidance: 5, seed: 0))
    }

    /// Runs `part` in this process and returns its report (the parent reads it as JSON).
    func measure(_ part: Part) throws -> PartReport {
        let model = try WanModel(directory: directory, weights: weights)
        let clock = ContinuousClock()
        switch part {
        case .text:
            // As long a prompt as the tokenizer keeps (512 tokens): the text encoder's worst case.
            let prompt = Array(repeating: "a red fox running through deep snow under a pale winter sky", count: 60).joined(separator: ", ")
            let tokens = try model.tokenizer().ids(prompt).count
            let loading = clock.now
            _ = try model.textEncoder()
            let loadSeconds = (clock.now - loading).seconds
            let start = clock.now
            _ = try model.encode(prompt: prompt)
            return PartReport(seconds: (clock.now - start).seconds, count: tokens, gflop: 0, peakRSSBytes: Self.peakRSS(), loadSeconds: loadSeconds)
        case .dit, .forward:
            // A guided step is both halves as one batch of two; a forward, one video.
            let batch = part == .dit ? 2 : 1
            let loading = clock.now
            let transformer = try model.transformer()
            let loadSeconds = (clock.now - loading).seconds
            let shape = model.latentShape(frames: frames, width: width, height: height)
            let latents = NoiseField(seed: 1).tensor(step: 0, frames: 0..<(batch * shape.frames), channels: shape.channels,
                                                     height: shape.height, width: shape.width)
                .reshaped([batch, shape.frames, shape.channels, shape.height, shape.width]).swappingAxes1And2()
            let textTokens = try model.tokenizer().maxLength
            let context = Tensor(shape: [batch, textTokens, transformer.config.textDim],
                                 scalars: NoiseField(seed: 2).tensor(step: 0, frames: 0..<1, channels: 1, height: batch * textTokens,
                                                                     width: transformer.config.textDim).scalars)
            let start = clock.now
            _ = transformer.velocity(latents, timesteps: [Float](repeating: 500, count: batch), context: context)
            let seconds = (clock.now - start).seconds
            let patch = transformer.config.patchSize
            let tokens = shape.frames / patch[0] * (shape.height / patch[1]) * (shape.width / patch[2])
            return PartReport(seconds: seconds, count: tokens,
                              gflop: transformer.config.flops(batch: batch, tokens: tokens, textTokens: textTokens) / 1e9,
                              peakRSSBytes: Self.peakRSS(), loadSeconds: loadSeconds)
        case .vae:
            let shape = model.latentShape(frames: frames, width: width, height: height)
            let latents = NoiseField(seed: 3).tensor(step: 0, frames: 0..<shape.frames, channels: shape.channels,
                                                     height: shape.height, width: shape.width)
                .reshaped([1, shape.frames, shape.channels, shape.height, shape.width]).swappingAxes1And2()
            _ = try model.vae()
            let start = clock.now
            let video = try model.decode(latents)
            return PartReport(seconds: (clock.now - start).seconds, count: video.shape[0], gflop: 0, peakRSSBytes: Self.peakRSS())
        }
    }

    /// Each part in a process of its own (this binary, `--part`), then the report.
    func run(threads: Int, sgemmGFLOPS: Double) throws -> Report {
        var parts: [Part: PartReport] = [:]
        for part in [Part.text, .dit, .vae] {
            FileHandle.standardError.write(Data("reel: bench engine: timing \(part.rawValue) in a process of its own\n".utf8))
            parts[part] = try child(part, threads: threads)
        }
        let (text, dit, vae) = (parts[.text]!, parts[.dit]!, parts[.vae]!)
        let model = try WanModel(directory: directory)
        let shape = model.latentShape(frames: frames, width: width, height: height)
        let patch = model.transformerConfig.patchSize
        let gflops = dit.gflop / dit.seconds
        return Report(model: URL(fileURLWithPath: directory).lastPathComponent, weights: weights.rawValue, cpuKernel: BLAS.coreName, threads: threads,
                      width: width, height: height, frames: frames,
                      tokens: shape.frames / patch[0] * (shape.height / patch[1]) * (shape.width / patch[2]),
                      sgemmGFLOPS: sgemmGFLOPS,
                      promptTokens: text.count, textEncoderSeconds: text.seconds, textEncoderPeakRSSBytes: text.peakRSSBytes, textEncoderLoadSeconds: text.loadSeconds,
                      guidedStepSeconds: dit.seconds, guidedStepGFLOP: dit.gflop, guidedStepGFLOPS: gflops,
                      guidedStepRatio: gflops / sgemmGFLOPS, denoiserPeakRSSBytes: dit.peakRSSBytes, denoiserLoadSeconds: dit.loadSeconds,
                      vaeDecodeSecondsPerFrame: vae.seconds / Double(max(1, vae.count)), vaePeakRSSBytes: vae.peakRSSBytes)
    }

    private func child(_ part: Part, threads: Int) throws -> PartReport {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Reel.executablePath)
        process.arguments = ["bench", "engine", "--model", directory, "--size", "\(width)x\(height)", "--frames", "\(frames)",
                             "--threads", "\(threads)", "--part", part.rawValue, "--weights", weights.rawValue]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let report = try? JSONDecoder().decode(PartReport.self, from: data) else {
            throw UserError("bench engine: the \(part.rawValue) part failed (exit \(process.terminationStatus)); run `reel bench engine --model \(directory) --part \(part.rawValue)` to see why")
        }
        return report
    }

    /// The process's peak resident set, in bytes.
    static func peakRSS() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    static func table(_ r: Report) -> String {
        let gib = { (bytes: Int) in String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
        let rows = [
            ("sgemm", String(format: "%.1f GFLOP/s", r.sgemmGFLOPS), ""),
            ("text encoder load", String(format: "%.2f s", r.textEncoderLoadSeconds), ""),
            ("text encoder, \(r.promptTokens) tokens", String(format: "%.2f s", r.textEncoderSeconds), gib(r.textEncoderPeakRSSBytes)),
            ("guided step (2 forwards)", String(format: "%.2f s", r.guidedStepSeconds),
             gib(r.denoiserPeakRSSBytes) + String(format: "; %.0f GFLOP, %.1f GFLOP/s, %.2f of sgemm", r.guidedStepGFLOP, r.guidedStepGFLOPS, r.guidedStepRatio)),
            ("DiT load", String(format: "%.2f s", r.denoiserLoadSeconds), ""),
            ("VAE decode", String(format: "%.2f s/frame", r.vaeDecodeSecondsPerFrame), gib(r.vaePeakRSSBytes)),
        ]
        let lines = rows.map { $0.0.padding(toLength: 28, withPad: " ", startingAt: 0) + $0.1.padding(toLength: 18, withPad: " ", startingAt: 0) + $0.2 }
        return "engine benchmark: \(r.model) (\(r.weights) weights) at \(r.width)x\(r.height)x\(r.frames) (\(r.tokens) tokens a video), OpenBLAS \(r.cpuKernel), \(r.threads) thread(s)\n"
            + (["part                        time              peak RSS"] + lines).joined(separator: "\n")
    }
}
