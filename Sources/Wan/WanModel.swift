import Diffusion
import Foundation

/// A Wan 2.1 text-to-video model in the Diffusers layout: model_index.json, tokenizer/
/// (spiece.model), text_encoder/, transformer/ and vae/ (config.json and safetensors, whole or
/// sharded) and scheduler/scheduler_config.json. Configs are read and checked when it opens;
/// each part's weights are mapped the first time the part is asked for.
public final class WanModel: @unchecked Sendable {
    public let directory: String
    public let name: String
    /// How the text encoder's and the transformer's linear layers hold their weights. The VAE,
    /// convolutions and 2 % of the parameters, always runs as stored: its output is the pixels.
    public let weights: WeightPrecision
    public let transformerConfig: WanTransformerConfig
    public let textConfig: UMT5Config
    public let vaeConfig: WanVAEConfig
    public let schedulerConfig: WanSchedulerConfig

    private let lock = NSLock()
    private var loadedTokenizer: WanTokenizer?
    private var loadedText: UMT5Encoder?
    private var loadedTransformer: WanTransformer?
    private var loadedVAE: WanVAE?

    /// The default negative prompt when none is given: the English text of the one Wan publishes
    /// with its examples.
    public static let defaultNegativePrompt = "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy background, three legs, many people in the background, walking backwards"

    /// Whether `directory` looks like a Wan model (model_index.json naming a Wan pipeline).
    public static func recognises(_ directory: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: "\(directory)/model_index.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return (json["_class_name"] as? String)?.hasPrefix("Wan") == true
    }

    public init(directory: String, weights: WeightPrecision = .stored) throws {
        self.directory = directory
        self.weights = weights
        name = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        let index = try ConfigFile.read(WanModelIndex.self, at: "\(directory)/model_index.json")
        let indexPath = "\(directory)/model_index.json"
        try ConfigFile.require(index.className == "WanPipeline", indexPath, "_class_name", index.className ?? "null",
                               supported: "\"WanPipeline\" (Wan 2.1 text-to-video)")
        try ConfigFile.require(index.boundaryRatio == nil && (index.transformer2?.compactMap { $0 }.isEmpty ?? true), indexPath,
                               "transformer_2", "set", supported: "one transformer (Wan 2.1; Wan 2.2's two-expert models are not supported)")
        for part in ["tokenizer/spiece.model"] where !FileManager.default.fileExists(atPath: "\(directory)/\(part)") {
            throw WanModelError.missingFile(path: "\(directory)/\(part)", hint: "the tokenizer's SentencePiece model; download the whole model folder")
        }
        let paths = (text: "\(directory)/text_encoder/config.json", transformer: "\(directory)/transformer/config.json",
                     vae: "\(directory)/vae/config.json", scheduler: "\(directory)/scheduler/scheduler_config.json")
        textConfig = try ConfigFile.read(UMT5Config.self, at: paths.text)
        try textConfig.validate(paths.text)
        transformerConfig = try ConfigFile.read(WanTransformerConfig.self, at: paths.transformer)
        try transformerConfig.validate(paths.transformer)
        vaeConfig = try ConfigFile.read(WanVAEConfig.self, at: paths.vae)
        try vaeConfig.validate(paths.vae)
        schedulerConfig = try ConfigFile.read(WanSchedulerConfig.self, at: paths.scheduler)
        try schedulerConfig.validate(paths.scheduler)
        try ConfigFile.require(transformerConfig.inChannels == vaeConfig.zDim && transformerConfig.outChannels == vaeConfig.zDim,
                               paths.transformer, "in_channels", "\(transformerConfig.inChannels)", supported: "the VAE's z_dim (\(vaeConfig.zDim))")
        try ConfigFile.require(transformerConfig.textDim == textConfig.dModel, paths.transformer, "text_dim", "\(transformerConfig.textDim)",
                               supported: "the text encoder's d_model (\(textConfig.dModel))")
    }

    private func cached<T>(_ slot: ReferenceWritableKeyPath<WanModel, T?>, _ load: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        if let value = self[keyPath: slot] { return value }
        let value = try load()
        self[keyPath: slot] = value
        return value
    }

    public func tokenizer() throws -> WanTokenizer {
        try cached(\.loadedTokenizer) { try WanTokenizer(directory: "\(directory)/tokenizer") }
    }

    public func textEncoder() throws -> UMT5Encoder {
        try cached(\.loadedText) {
            try UMT5Encoder(config: textConfig, weights: PartWeights(directory: "\(directory)/text_encoder", baseName: "model", precision: weights),
                            path: "\(directory)/text_encoder/config.json")
        }
    }

    public func transformer() throws -> WanTransformer {
        try cached(\.loadedTransformer) {
            try WanTransformer(config: transformerConfig,
                               weights: PartWeights(directory: "\(directory)/transformer", baseName: "diffusion_pytorch_model", precision: weights),
                               path: "\(directory)/transformer/config.json")
        }
    }

    public func vae() throws -> WanVAE {
        try cached(\.loadedVAE) {
            try WanVAE(config: vaeConfig, weights: PartWeights(directory: "\(directory)/vae", baseName: "diffusion_pytorch_model"),
                       path: "\(directory)/vae/config.json")
        }
    }

    /// Unmaps the text encoder's weights (10.6 GiB in BF16 for umT5-XXL) once the prompts are
    /// encoded; it is mapped again if asked for.
    public func releaseTextEncoder() {
        lock.lock()
        loadedText = nil
        lock.unlock()
    }

    /// Latent frames and size for a video of `frames` frames of `width`×`height`.
    public func latentShape(frames: Int, width: Int, height: Int) -> LatentVideoShape {
        LatentVideoShape(channels: vaeConfig.zDim, frames: (frames - 1) / vaeConfig.temporalFactor + 1,
                         height: height / vaeConfig.spatialFactor, width: width / vaeConfig.spatialFactor)
    }

    /// The prompt's embedding as the pipeline uses it: [maxLength, d_model], zero past the prompt.
    public func encode(prompt: String, afterLayer: () -> Void = {}) throws -> Tensor {
        let tokenizer = try tokenizer()
        return try textEncoder().encode(tokenizer.ids(prompt), padTo: tokenizer.maxLength, afterLayer: afterLayer)
    }
}

/// What a Wan render is asked to do, fully resolved.
public struct WanRequest: Sendable {
    public var prompt: String
    public var negativePrompt: String
    public var width: Int, height: Int, frames: Int
    public var steps: Int
    public var guidance: Float
    public var shift: Double?
    public var seed: UInt64
    /// nil: the scheduler's UniPC; else one of Reel's flow samplers on the same sigmas.
    public var sampler: Sampler?
    /// A video to re-render (frames [F, 3, H, W] in [-1, 1] at the request's size, at least
    /// `frames` of them), and how much of the denoising to redo, 0 to 1.
    public var input: Clip?
    public var strength: Float

    public init(prompt: String, negativePrompt: String? = nil, width: Int, height: Int, frames: Int, steps: Int,
                guidance: Float, shift: Double? = nil, seed: UInt64, sampler: Sampler? = nil,
                input: Clip? = nil, strength: Float = 0.6) {
        self.prompt = prompt; self.negativePrompt = negativePrompt ?? WanModel.defaultNegativePrompt
        self.width = width; self.height = height; self.frames = frames; self.steps = steps
        self.guidance = guidance; self.shift = shift; self.seed = seed; self.sampler = sampler
        self.input = input; self.strength = strength
    }

    /// The published defaults (Wan 2.1 1.3B: 832×480, 81 frames, 50 steps, guidance 5).
    public static let defaultSize = (width: 832, height: 480)
    public static let defaultFrames = 81
    public static let defaultSteps = 50
    public static let defaultGuidance: Float = 5
    /// Wan's published frame rate.
    public static let defaultFPS = 16
    /// Latent frames the family denoises at once: its 81 frames. Longer videos are chunks of
    /// this many, fused where they overlap.
    public static let windowLatentFrames = 21
    /// Latent frames neighbouring chunks share (24 video frames).
    public static let defaultOverlap = 6
}

/// Text to video with a Wan model on this machine: encode both prompts, draw the seed's latent
/// noise, run the scheduler's steps with classifier-free guidance, decode with the VAE.
public struct WanPipeline {
    public let model: WanModel
    /// Whether the text encoder is unmapped once both prompts are encoded (a one-off render
    /// needs it no more; a process that renders again keeps it).
    public var releasesTextEncoder: Bool

    public init(model: WanModel, releasesTextEncoder: Bool = false) {
        self.model = model
        self.releasesTextEncoder = releasesTextEncoder
    }

    /// Checks a request against the model; a problem is one line naming the option.
    public func validate(_ request: WanRequest) throws {
        let s = model.vaeConfig.spatialFactor * model.transformerConfig.patchSize[1]
        let t = model.vaeConfig.temporalFactor
        guard request.width > 0, request.height > 0, request.width % s == 0, request.height % s == 0 else {
            throw WanPipelineError(.request, "--size \(request.width)x\(request.height): both sides must be positive multiples of \(s) for this model (for example 832x480 or 256x256)")
        }
        guard request.frames >= 1, (request.frames - 1) % t == 0 else {
            throw WanPipelineError(.request, "--frames \(request.frames): this model takes 1 + \(t)k frames (for example 17, 33 or 81)")
        }
        guard (1...1000).contains(request.steps) else { throw WanPipelineError(.request, "--steps \(request.steps): use 1 to 1000") }
        if let input = request.input {
            guard input.channels == 3, input.width == request.width, input.height == request.height else {
                throw WanPipelineError(.request, "--input: frames must be RGB at \(request.width)x\(request.height)")
            }
            guard input.frames >= request.frames else {
                throw WanPipelineError(.request, "--frames \(request.frames) is more than --input has (\(input.frames)); give --frames \(max(1, (input.frames - 1) / model.vaeConfig.temporalFactor * model.vaeConfig.temporalFactor + 1)) or less")
            }
            guard (0...1).contains(request.strength) else { throw WanPipelineError(.request, "--strength \(request.strength) is out of range; use 0 to 1") }
        }
        guard request.guidance.isFinite, request.guidance >= 0 else { throw WanPipelineError(.request, "--guidance \(request.guidance): use a number of 0 or more") }
        let latent = model.latentShape(frames: request.frames, width: request.width, height: request.height)
        let patch = model.transformerConfig.patchSize
        guard max(latent.frames / patch[0], latent.height / patch[1], latent.width / patch[2]) <= model.transformerConfig.ropeMaxSeqLen else {
            throw WanPipelineError(.request, "--size/--frames: the model's positions reach \(model.transformerConfig.ropeMaxSeqLen) patches a side")
        }
    }

    /// The seed's initial noise, [1, C, F, H, W].
    public func noise(_ request: WanRequest) -> Tensor {
        let latent = model.latentShape(frames: request.frames, width: request.width, height: request.height)
        let c = model.transformerConfig.inChannels
        let frameMajor = NoiseField(seed: request.seed).tensor(step: 0, frames: 0..<latent.frames, channels: c,
                                                               height: latent.height, width: latent.width)
        return Clip(frames: latent.frames, channels: c, height: latent.height, width: latent.width, data: frameMajor.scalars).channelMajor
    }

    public struct Progress: Sendable {
        public enum Stage: String, Sendable { case text = "text", denoise = "denoise", decode = "decode" }
        public let stage: Stage
        public let done: Int
        public let total: Int
    }

    /// Denoised latents [1, C, F, H, W] (pipeline-normalised) from `noise`; `onStep` sees the
    /// latents after every step.
    public func denoise(_ request: WanRequest, noise: Tensor, progress: (Progress) -> Void = { _ in },
                        onStep: (Int, Tensor) -> Void = { _, _ in }) throws -> Tensor {
        try validate(request)
        progress(Progress(stage: .text, done: 0, total: 2))
        let conditional = try model.encode(prompt: request.prompt)
        let guided = request.guidance != 1
        let unconditional = guided ? try model.encode(prompt: request.negativePrompt) : conditional
        if releasesTextEncoder { model.releaseTextEncoder() }
        progress(Progress(stage: .text, done: 2, total: 2))
        let transformer = try model.transformer()
        let scheduler = FlowUniPC(config: model.schedulerConfig, steps: request.steps, shift: request.shift)
        let context = Tensor.stacked(guided ? [conditional, unconditional] : [conditional])
        func velocity(_ x: Tensor, _ t: Float) -> Tensor { transformer.guidedVelocity(x, timestep: t, context: context, guidance: request.guidance) }

        // A re-render starts part way, from its encoded frames noised to that step's σ, as
        // diffusers' video-to-video pipeline does.
        var first = 0
        var x = noise
        if let input = request.input {
            first = scheduler.steps - min(Int(Double(scheduler.steps) * Double(request.strength)), scheduler.steps)
            let sigma = Float(scheduler.sigmas[first])
            x = try encode(input, frames: request.frames).combined(1 - sigma, noise, sigma)
        }
        let total = scheduler.steps - first
        progress(Progress(stage: .denoise, done: 0, total: total))
        if let sampler = request.sampler {
            // Reel's flow samplers on the scheduler's sigmas; flow time t is timestep 1000·t.
            let scale = Float(model.schedulerConfig.numTrainTimesteps)
            let schedule = FlowSchedule(times: scheduler.sigmas.map(Float.init))
            var state = Sampler.State()
            for i in first..<schedule.steps {
                x = sampler.run({ velocity($0, $1 * scale) }, x, schedule, steps: i..<(i + 1), state: &state)
                onStep(i, x)
                progress(Progress(stage: .denoise, done: i + 1 - first, total: total))
            }
            return x
        }
        var state = FlowUniPC.State()
        for i in first..<scheduler.steps {
            x = scheduler.step(velocity: velocity(x, scheduler.timesteps[i]), index: i, sample: x, state: &state)
            onStep(i, x)
            progress(Progress(stage: .denoise, done: i + 1 - first, total: total))
        }
        return x
    }

    /// The first `frames` frames of `input`, encoded and normalised: [1, C, F, H, W].
    public func encode(_ input: Clip, frames: Int) throws -> Tensor {
        let vae = try model.vae()
        return vae.normalize(vae.encodeMean(input.frames(0..<frames))).channelMajor
    }

    /// Frames in [-1, 1] ([3, F, H, W] as a Clip) from pipeline-normalised latents.
    /// `afterBlock` is called after each of the decoder's blocks (a worker heartbeats from it).
    public func decode(_ latents: Tensor, progress: (Progress) -> Void = { _ in }, afterBlock: () -> Void = {}) throws -> Clip {
        let vae = try model.vae()
        let clip = vae.denormalize(Clip(channelMajor: latents))
        progress(Progress(stage: .decode, done: 0, total: clip.frames))
        var video = vae.decode(clip, afterBlock: afterBlock) { progress(Progress(stage: .decode, done: $0 + 1, total: clip.frames)) }
        for i in 0..<video.data.count { video.data[i] = min(1, max(-1, video.data[i])) }
        return video
    }

    public func generate(_ request: WanRequest, progress: (Progress) -> Void = { _ in }) throws -> Clip {
        try decode(try denoise(request, noise: noise(request), progress: progress), progress: progress)
    }
}

/// What stops a Wan render, a reference check or a synthesis, in words for the user.
public struct WanPipelineError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable {
        /// A render request the model cannot take (size, frames, steps, input, strength).
        case request
        /// A reference file whose tensors or metadata do not fit the model.
        case reference
        /// `reel model synth` could not write its folder.
        case synthesis
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) { (self.code, self.description) = (code, description) }
}

extension WanTransformer {
    /// The guided velocity of latents [1, C, F, H, W] at a transformer timestep: with a context
    /// of two prompts (conditional, then unconditional) both halves run as one batch of two and
    /// combine as v_u + g·(v_c − v_u); with one, the plain velocity. The pipeline and the farm's
    /// shards both step with it.
    func guidedVelocity(_ x: Tensor, timestep: Float, context: Tensor, guidance: Float, afterBlock: () -> Void = {}) -> Tensor {
        guard context.shape[0] == 2 else { return velocity(x, timesteps: [timestep], context: context, afterBlock: afterBlock) }
        let both = velocity(Tensor.stacked([x.slices(0..<1), x.slices(0..<1)]).reshaped([2] + Array(x.shape.dropFirst())),
                            timesteps: [timestep, timestep], context: context, afterBlock: afterBlock)
        let (cond, uncond) = (both.slices(0..<1), both.slices(1..<2))
        return uncond.adding(cond.adding(uncond, scaledBy: -1), scaledBy: guidance)
    }
}
