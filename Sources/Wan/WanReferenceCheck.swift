import Diffusion
import Foundation

/// Runs the parts of a Wan model on the inputs of a reference file (written by
/// tools/wan-reference/make_fixtures.py from diffusers, or by anyone, named after diffusers'
/// arguments) and measures how far Reel's outputs are from the reference's.
public struct WanReferenceCheck {
    public struct Result: Sendable, Equatable {
        public let part: String
        public let maxAbsoluteError: Double
        /// The error relative to the reference's largest magnitude.
        public let relativeError: Double
        public let tolerance: Double
        public var passed: Bool { relativeError <= tolerance }

        public var line: String {
            String(format: "%@: max abs error %.3g, relative %.3g (tolerance %.3g) %@", part, maxAbsoluteError, relativeError,
                   tolerance, passed ? "ok" : "FAILED")
        }
    }

    /// The names this check knows, by part.
    static let known: Set<String> = [
        "tokenizer.ids",
        "text_encoder.input_ids", "text_encoder.attention_mask", "text_encoder.output",
        "transformer.hidden_states", "transformer.timestep", "transformer.encoder_hidden_states", "transformer.output",
        "transformer.block_outputs",
        "vae.latents", "vae.decoded", "vae.frames", "vae.encoded_mean",
        "pipeline.latents", "pipeline.video", "pipeline.step_latents",
    ]

    public let model: WanModel
    public let reference: SafeTensorsFile
    public let tolerance: Double

    public init(model: WanModel, reference: SafeTensorsFile, tolerance: Double = 1e-4) {
        self.model = model; self.reference = reference; self.tolerance = tolerance
    }

    /// Names in the file this check does not know (they are skipped).
    public var unknownNames: [String] { reference.names.filter { !Self.known.contains($0) } }

    /// Runs every part the file has inputs and outputs for, reporting each as it finishes.
    public func run(report: (Result) -> Void = { _ in }) throws -> [Result] {
        var results: [Result] = []
        func add(_ result: Result) { results.append(result); report(result) }
        let has = { (name: String) in reference.entries[name] != nil }
        if has("tokenizer.ids") { add(try tokenizer()) }
        if has("text_encoder.input_ids") && has("text_encoder.output") { add(try textEncoder()) }
        if has("transformer.hidden_states") && has("transformer.output") { try transformer().forEach(add) }
        if has("vae.latents") && has("vae.decoded") { add(try vaeDecode()) }
        if has("vae.frames") && has("vae.encoded_mean") { add(try vaeEncode()) }
        if has("pipeline.latents") && (has("pipeline.video") || has("pipeline.step_latents")) {
            try pipeline().forEach(add)
        }
        return results
    }

    /// A reference's input must have the shape the part takes; anything else is one line, not a trap.
    func require(_ name: String, _ tensor: Tensor, _ ok: ([Int]) -> Bool, _ expected: String) throws {
        guard ok(tensor.shape) else {
            throw WanPipelineError(.reference, "\(reference.path): \(name) has shape \(tensor.shape); this model takes \(expected)")
        }
    }

    func compare(_ part: String, _ actual: [Float], _ expected: Tensor) throws -> Result {
        guard actual.count == expected.count else {
            throw WanPipelineError(.reference, "\(part): Reel produced \(actual.count) values where the reference has \(expected.count) (shape \(expected.shape))")
        }
        var maxError = 0.0, maxMagnitude = 0.0
        for (a, e) in zip(actual, expected.scalars) {
            maxError = max(maxError, abs(Double(a) - Double(e)))
            maxMagnitude = max(maxMagnitude, abs(Double(e)))
        }
        if actual.contains(where: { !$0.isFinite }) { maxError = .infinity }
        return Result(part: part, maxAbsoluteError: maxError, relativeError: maxError / max(maxMagnitude, 1e-30), tolerance: tolerance)
    }

    func tokenizer() throws -> Result {
        guard let prompt = reference.metadata["prompt"] else {
            throw WanPipelineError(.reference, "\(reference.path): tokenizer.ids needs the prompt in the metadata key 'prompt'")
        }
        let expected = try reference.integers("tokenizer.ids")
        let ids = try model.tokenizer().ids(prompt)
        if ids.count != expected.count {
            return Result(part: "tokenizer (\(ids.count) ids, reference \(expected.count))", maxAbsoluteError: .infinity,
                          relativeError: .infinity, tolerance: tolerance)
        }
        return try compare("tokenizer", ids.map(Float.init), Tensor(shape: [expected.count], scalars: expected.map(Float.init)))
    }

    public func textEncoder() throws -> Result {
        let ids = try reference.integers("text_encoder.input_ids")
        let expected = try reference.tensor("text_encoder.output")
        guard expected.shape.count == 3, (1...4096).contains(expected.shape[1]), expected.shape[2] == model.textConfig.dModel else { throw WanPipelineError(.reference, "\(reference.path): text_encoder.output has shape \(expected.shape); this model takes [B, L <= 4096, \(model.textConfig.dModel)]") }
        let (batch, length) = (expected.shape[0], expected.shape[1])
        let mask = reference.entries["text_encoder.attention_mask"] != nil ? try reference.integers("text_encoder.attention_mask")
                                                                            : ids.map { $0 == 0 ? 0 : 1 }
        guard ids.count == batch * length, mask.count == ids.count else {
            throw WanPipelineError(.reference, "text_encoder.input_ids and attention_mask must be [\(batch), \(length)] like the output")
        }
        let encoder = try model.textEncoder()
        var actual: [Float] = []
        for b in 0..<batch {
            let row = (0..<length).filter { mask[b * length + $0] != 0 }.map { ids[b * length + $0] }
            actual += encoder.encode(row, padTo: length).scalars
        }
        return try compare("text_encoder", actual, expected)
    }

    /// The velocity, and each block's output when the file has them (where a mismatch starts).
    func transformer() throws -> [Result] {
        let x = try reference.tensor("transformer.hidden_states")
        let t = try reference.tensor("transformer.timestep").scalars
        let context = try reference.tensor("transformer.encoder_hidden_states")
        let expected = try reference.tensor("transformer.output")
        let c = model.transformerConfig
        try require("transformer.hidden_states", x, { s in
            s.count == 5 && s.allSatisfy { $0 > 0 } && s[1] == c.inChannels && s[2] % c.patchSize[0] == 0 && s[3] % c.patchSize[1] == 0
                && s[4] % c.patchSize[2] == 0 && max(s[2] / c.patchSize[0], s[3] / c.patchSize[1], s[4] / c.patchSize[2]) <= c.ropeMaxSeqLen
        }, "[B, \(c.inChannels), F, H, W] in whole patches")
        try require("transformer.encoder_hidden_states", context, { $0.count == 3 && $0[0] == x.shape[0] && $0[1] > 0 && $0[2] == c.textDim },
                    "[\(x.shape[0]), L, \(c.textDim)]")
        guard t.count == 1 || t.count == x.shape[0] else {
            throw WanPipelineError(.reference, "\(reference.path): transformer.timestep has \(t.count) values; give 1 or one per video (\(x.shape[0]))")
        }
        var blocks: [Float] = []
        let velocity = try model.transformer().velocity(x, timesteps: t.count == 1 ? Array(repeating: t[0], count: x.shape[0]) : t,
                                                        context: context, inspect: { _, h in blocks += h.scalars })
        var results: [Result] = []
        if reference.entries["transformer.block_outputs"] != nil {
            let expectedBlocks = try reference.tensor("transformer.block_outputs")
            results.append(try compare("transformer blocks (\(expectedBlocks.shape.first ?? 0))", blocks, expectedBlocks))
        }
        results.append(try compare("transformer", velocity.scalars, expected))
        return results
    }

    func vaeDecode() throws -> Result {
        let latents = try reference.tensor("vae.latents")
        let expected = try reference.tensor("vae.decoded")
        try require("vae.latents", latents, { $0.count == 5 && $0[0] == 1 && $0[1] == model.vaeConfig.zDim && $0.dropFirst(2).allSatisfy { $0 > 0 } },
                    "[1, \(model.vaeConfig.zDim), F, H, W]")
        let decoded = try model.vae().decode(Clip(channelMajor: latents))
        return try compare("vae decode", decoded.channelMajor.scalars, expected)
    }

    func vaeEncode() throws -> Result {
        let frames = try reference.tensor("vae.frames")
        let expected = try reference.tensor("vae.encoded_mean")
        let (t, f) = (model.vaeConfig.temporalFactor, model.vaeConfig.spatialFactor)
        try require("vae.frames", frames, { $0.count == 5 && $0[0] == 1 && $0[1] == 3 && $0[2] >= 1 && ($0[2] - 1) % t == 0 && $0[3] > 0 && $0[3] % f == 0 && $0[4] > 0 && $0[4] % f == 0 },
                    "[1, 3, 1 + \(t)k, H, W] with H and W multiples of \(f)")
        let mean = try model.vae().encodeMean(Clip(channelMajor: frames))
        return try compare("vae encode", mean.channelMajor.scalars, expected)
    }

    func pipeline() throws -> [Result] {
        guard let text = reference.metadata["pipeline"], let data = text.data(using: .utf8),
              let settings = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let prompt = settings["prompt"] as? String,
              let height = settings["height"] as? Int, let width = settings["width"] as? Int,
              let frames = settings["num_frames"] as? Int, let steps = settings["num_inference_steps"] as? Int
        else {
            throw WanPipelineError(.reference, "\(reference.path): pipeline.* needs the metadata key 'pipeline' with prompt, height, width, num_frames and num_inference_steps")
        }
        let guidance = (settings["guidance_scale"] as? Double) ?? 5
        let request = WanRequest(prompt: prompt, negativePrompt: (settings["negative_prompt"] as? String) ?? "",
                                 width: width, height: height, frames: frames, steps: steps, guidance: Float(guidance), seed: 0)
        let pipeline = WanPipeline(model: model)
        let noise = try reference.tensor("pipeline.latents")
        try pipeline.validate(request)
        let shape = model.latentShape(frames: frames, width: width, height: height)
        try require("pipeline.latents", noise, { $0 == [1, shape.channels, shape.frames, shape.height, shape.width] },
                    "[1, \(shape.channels), \(shape.frames), \(shape.height), \(shape.width)] for the pipeline's size and frames")
        var stepLatents: [Float] = []
        let latents = try pipeline.denoise(request, noise: noise, onStep: { _, x in stepLatents += x.scalars })
        var results: [Result] = []
        if reference.entries["pipeline.step_latents"] != nil {
            results.append(try compare("pipeline steps (\(steps))", stepLatents, try reference.tensor("pipeline.step_latents")))
        }
        if reference.entries["pipeline.video"] != nil {
            let video = try pipeline.decode(latents)
            results.append(try compare("pipeline video", video.channelMajor.scalars, try reference.tensor("pipeline.video")))
        }
        return results
    }
}
