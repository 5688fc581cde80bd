import ArgumentParser
import Diffusion
import Foundation
import Wan

/// `reel bench precision`: what int8 weights cost in accuracy on a Wan model.
struct PrecisionBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "precision",
        abstract: "Accuracy of int8 weights against the weights as stored, on a Wan model.",
        discussion: """
            Renders the same request twice, with the text encoder's and transformer's weights as \
            stored and then at --weights, one after the other so that only one model is held at a \
            time, and reports: the prompt embedding's relative L2 error; the first step's guided \
            velocity's relative L2 and max errors, both computed from the stored embeddings so \
            that they measure the transformer alone; the PSNR of the two renders' 8-bit frames \
            (each with its own embeddings and every step); and the bytes the linear weights take \
            either way. The renders use the scheduler's UniPC, as `reel render --sampler unipc`.
            """)

    @Option(help: "A Wan 2.1 Diffusers folder.")
    var model: String

    @Option(help: ArgumentHelp("The precision to measure against stored (default: int8).", valueName: "precision"))
    var weights: String = WeightPrecision.int8.rawValue

    @Option(help: "The video's WIDTHxHEIGHT.")
    var size: String = "256x256"

    @Option(help: "The video's frames.")
    var frames: Int = 17

    @Option(help: "Denoising steps of each render.")
    var steps: Int = 4

    @Option(help: "The prompt.")
    var prompt: String = "a red fox running through deep snow under a pale winter sky"

    @Option(help: "Noise seed.")
    var seed: UInt64 = 0

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func run() throws {
        if let threads { ComputeThreads.set(try Render.positive(threads, "--threads")) }
        guard let precision = WeightPrecision(rawValue: weights), precision != .stored else {
            throw UserError("--weights \(weights): give a precision to compare with stored (\(WeightPrecision.allCases.filter { $0 != .stored }.map(\.rawValue).joined(separator: ", ")))")
        }
        guard WanModel.recognises(model) else { throw UserError("--model \(model): not a Wan model folder (model_index.json naming WanPipeline)") }
        let (width, height) = try JobOptions.parseSize(size)
        let request = WanRequest(prompt: prompt, width: width, height: height, frames: frames, steps: steps,
                                 guidance: WanRequest.defaultGuidance, seed: seed)
        let check = WanPrecisionCheck(directory: model, request: request, weights: precision)
        let report = try check.run { FileHandle.standardError.write(Data("reel: bench precision: rendering with \($0) weights\n".utf8)) }
        if json { return print(Bench.json(report)) }
        let mib = { (bytes: Int) in String(format: "%.1f MiB", Double(bytes) / Double(1 << 20)) }
        print("""
            precision benchmark: \(URL(fileURLWithPath: model).lastPathComponent), \(report.weights) against stored, \(width)x\(height)x\(frames), \(steps) steps, seed \(seed)
            text embedding, relative L2 error      \(String(format: "%.3g", report.textRelativeError))
            guided velocity, relative L2 error     \(String(format: "%.3g", report.velocityRelativeError))
            guided velocity, max relative error    \(String(format: "%.3g", report.velocityMaxRelativeError))
            rendered frames, PSNR (8-bit)          \(String(format: "%.2f dB", report.videoPSNR))
            linear weights                         \(mib(report.linearBytesStored)) stored, \(mib(report.linearBytesAtWeights)) \(report.weights)
            """)
    }
}
