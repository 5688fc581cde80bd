/// What Reel asks of a video model, whatever family it belongs to: the prompt as a condition,
/// the velocity of a window of latents, latents to frames and back, the window it denoises and
/// the defaults a render takes. reel-shapes (pixel space: its latent is the video itself) and Wan
/// (umT5, a DiT, a causal 3D VAE) are two implementations, each in its own folder over the same
/// tensor kernels.
///
/// Opening one reads its configs only; weights are read when a part is first used, so a
/// coordinator may open a latent model to plan its jobs without holding it.
public protocol VideoModel: AnyObject, Sendable {
    /// The model's name (its folder's).
    var name: String { get }
    /// The folder it was read from.
    var directory: String { get }
    /// The family's name, as `ModelFamily.name`.
    var family: String { get }
    /// How its weights are held, as it was opened.
    var weights: WeightPrecision { get }
    /// The precisions it can be opened with (`ModelFamily.open`); `.stored` always.
    var precisions: [WeightPrecision] { get }
    var defaults: VideoDefaults { get }
    /// The latent a video of `frames` frames of `width`×`height` pixels becomes.
    func latentShape(frames: Int, width: Int, height: Int) -> LatentVideoShape
    /// The prompt as the velocity reads it; `tick` is called often (a worker heartbeats from it).
    func condition(on prompt: String, tick: () -> Void) throws -> Tensor
    /// The velocity of latents [B, C, F, H, W] at flow times in 0...1 (one per video), each
    /// video with its own condition.
    func velocity(_ latents: Tensor, times: [Float], conditions: [Tensor]) throws -> Tensor
    /// Latents [1, C, F, H, W] to frames [F, 3, H, W] in [-1, 1]; `tick` is called often.
    func decode(_ latents: Tensor, tick: () -> Void) throws -> Tensor
    /// Frames [F, 3, H, W] in [-1, 1] to latents [1, C, F, H, W]; `tick` is called often.
    func encode(_ frames: Tensor, tick: () -> Void) throws -> Tensor

    /// A linear map of latent channels to RGB in [-1, 1] for cheap previews: for each of red,
    /// green and blue, a weight per channel, then a bias (3 × (channels + 1) values); nil for a
    /// pixel model, whose latent is RGB.
    func previewProjection() throws -> [Float]?
    /// Bytes of `part`'s weights as stored: what holding it costs at least; 0 for a pixel model.
    func weightBytes(_ part: ModelPart) -> Int
    /// Reads the weights of `parts` now, so that a broken model fails when a worker starts,
    /// not mid-shard (a pixel model is read whole when opened).
    func prepare(_ parts: [ModelPart]) throws
    /// How a farm splits the model's work into parts; nil for a pixel-space model, whose
    /// workers encode their own prompts and whose latent is the video.
    var latentParts: LatentParts? { get }
    /// The flow times a sampler steps through for `steps` steps at `shift`: the model's own
    /// schedule, the same on every machine.
    func schedule(steps: Int, shift: Float) -> FlowSchedule
    /// The condition guidance pushes away from when a job gives no negative prompt.
    func unconditionalCondition() throws -> Tensor
    /// Why a window of frame-major latents of `shape` [F, C, H, W], with prompt embeddings of
    /// `conditionShape` [tokens, width] (a latent model's, sent with the shard), cannot be
    /// denoised by this model; nil when it can. A worker asks before computing, so a malformed
    /// assignment fails its shard instead of trapping in the kernels.
    func windowProblem(_ shape: [Int], conditionShape: [Int]?) -> String?
    /// The velocity field a shard integrates over a window of frame-major latents
    /// [F, C, H, W]: v_uncond + g·(v_cond − v_uncond), both halves as one batch of two.
    /// `place` is where the window lies in the whole video; `afterBlock` is called often (a
    /// worker heartbeats from it).
    func guidedVelocity(conditional: Tensor, unconditional: Tensor, guidance: Float, place: WindowPlace,
                        afterBlock: @escaping () -> Void) throws -> VelocityField
}

extension VideoModel {
    public func condition(on prompt: String) throws -> Tensor { try condition(on: prompt, tick: {}) }
    public func decode(_ latents: Tensor) throws -> Tensor { try decode(latents, tick: {}) }
    public func encode(_ frames: Tensor) throws -> Tensor { try encode(frames, tick: {}) }
}

/// A latent model's parts as a farm runs them: text encoding (once per prompt), denoising over
/// chunks of latent frames, and decoding over pieces of the final latent. What the coordinator
/// plans with; workers hold some or all of the parts.
public struct LatentParts: Sendable, Equatable {
    /// Latent channels, and video frames and pixels per latent frame and pixel (a latent
    /// video's first frame is one video frame, each later one `temporalFactor`).
    public var channels: Int, temporalFactor: Int, spatialFactor: Int
    /// The side of a patch in latent pixels: sizes are multiples of it.
    public var patch: Int
    /// Latent frames denoised at once (Wan 2.1: 21, its 81 frames).
    public var windowFrames: Int
    /// A prompt's embedding: tokens × width.
    public var embeddingTokens: Int, embeddingWidth: Int
    /// Latent frames a decode piece decodes first and discards: the decoder's causal reach, so
    /// that a piece's frames are those of one decode of the whole video, bit for bit.
    public var decodeContext: Int

    public init(channels: Int, temporalFactor: Int, spatialFactor: Int, patch: Int, windowFrames: Int,
                embeddingTokens: Int, embeddingWidth: Int, decodeContext: Int) {
        self.channels = channels; self.temporalFactor = temporalFactor; self.spatialFactor = spatialFactor
        self.patch = patch; self.windowFrames = windowFrames
        self.embeddingTokens = embeddingTokens; self.embeddingWidth = embeddingWidth; self.decodeContext = decodeContext
    }

    /// Latent frames for `frames` video frames (1 + temporalFactor·k of them).
    public func latentFrames(_ frames: Int) -> Int { (frames - 1) / temporalFactor + 1 }

    /// The video frames latent frames `range` decode to.
    public func videoFrames(_ range: Range<Int>) -> Range<Int> {
        func start(_ f: Int) -> Int { f == 0 ? 0 : 1 + (f - 1) * temporalFactor }
        return start(range.lowerBound)..<start(range.upperBound)
    }
}

/// The parts of a latent model, as a worker announces those it holds (`--parts`).
public enum ModelPart: String, Sendable, CaseIterable, Codable {
    /// The parts a machine of `memory` bytes holds by default: as many as fit in 85 % of it, the
    /// denoiser first (most of a job's shards), then the VAE, then the text encoder, counting
    /// each model's weights as stored.
    public static func fitting(_ models: [any VideoModel], memory: UInt64) -> [ModelPart] {
        let budget = Double(memory) * 0.85
        var held: [ModelPart] = []
        for part in [ModelPart.dit, .vae, .text] {
            let fits = models.allSatisfy { model in
                Double((held + [part]).reduce(0) { $0 + model.weightBytes($1) }) <= budget
            }
            if fits { held.append(part) }
        }
        return ModelPart.allCases.filter(held.contains)
    }

    /// The text encoder: prompts to embeddings.
    case text
    /// The denoiser (Wan's DiT).
    case dit
    /// The VAE: latents to frames (and frames to latents).
    case vae
}

/// A render's defaults, as a model states them.
public struct VideoDefaults: Sendable, Equatable {
    public var width: Int, height: Int, frames: Int, fps: Int
    public var steps: Int
    public var guidance: Float
    public var shift: Float
    /// Frames the model denoises at once; longer videos are cut into windows. For a latent
    /// model, latent frames, as are `overlap`'s.
    public var window: Int
    /// Frames neighbouring windows share.
    public var overlap: Int
    /// The farm's sampler (`Sampler`'s raw value).
    public var sampler: String
    /// What guidance steers away from when a job names nothing; nil for a model that reads no
    /// negative prompt.
    public var negativePrompt: String?
    /// How much of the denoising a long job's chunks redo over a layout pass; 1: none.
    public var layoutStrength: Float
    /// Times each frame is enlarged in the file; nil: the farm's default (`JobDefaults`), for
    /// small canvases. A model drawing at full size says 1.
    public var outputScale: Int?

    public init(width: Int, height: Int, frames: Int, fps: Int, steps: Int, guidance: Float, shift: Float, window: Int,
                overlap: Int, sampler: String, negativePrompt: String? = nil, layoutStrength: Float = 1, outputScale: Int? = nil) {
        self.width = width; self.height = height; self.frames = frames; self.fps = fps
        self.steps = steps; self.guidance = guidance; self.shift = shift; self.window = window
        self.overlap = overlap; self.sampler = sampler; self.negativePrompt = negativePrompt; self.layoutStrength = layoutStrength
        self.outputScale = outputScale
    }

    /// A reel-shapes package's, from its config.
    public init(config: ModelConfig) {
        self.init(width: config.canvasWidth, height: config.canvasHeight, frames: config.windowFrames, fps: config.fps,
                  steps: config.defaults.steps, guidance: config.defaults.guidance, shift: config.defaults.shift,
                  window: config.windowFrames, overlap: min(config.windowFrames - 1, config.defaultOverlap),
                  sampler: config.defaults.sampler, layoutStrength: config.defaults.layoutStrength ?? 1)
    }
}

public struct LatentVideoShape: Sendable, Equatable {
    public var channels: Int, frames: Int, height: Int, width: Int
    public init(channels: Int, frames: Int, height: Int, width: Int) {
        self.channels = channels; self.frames = frames; self.height = height; self.width = width
    }
}

/// A family of models: how to recognise its files and open them. The registry of families is
/// one list (`ModelFamilies`, in its own module); adding a family adds its folder and a line there.
public protocol ModelFamily {
    static var name: String { get }
    /// Whether `directory` holds a model of this family.
    static func recognises(_ directory: String) -> Bool
    /// Opens the model with its weights held at `weights`; one of its `precisions`, else an
    /// error naming them.
    static func open(_ directory: String, weights: WeightPrecision) throws -> any VideoModel
}

/// reel-shapes and the packages trained like it: pixel space, so the latent is the video.
public enum ReelShapesFamily: ModelFamily {
    public static let name = "reel-shapes"

    public static func recognises(_ directory: String) -> Bool {
        (try? ModelPackage.readConfig(in: directory)) != nil
    }

    public static func open(_ directory: String, weights: WeightPrecision) throws -> any VideoModel {
        guard weights == .stored else {
            throw ModelPackageError.unreadable(path: directory, reason: "a reel-shapes package runs its weights as stored; --weights \(weights.rawValue) is for Wan models")
        }
        return try Model(directory: directory)
    }
}

extension Model: VideoModel {
    public var family: String { ReelShapesFamily.name }

    public var weights: WeightPrecision { .stored }

    public var precisions: [WeightPrecision] { [.stored] }

    public var defaults: VideoDefaults { VideoDefaults(config: config) }

    public var latentParts: LatentParts? { nil }

    public func prepare(_ parts: [ModelPart]) throws {}

    /// Its own channels and whole patches; it encodes its prompts itself.
    public func windowProblem(_ shape: [Int], conditionShape: [Int]?) -> String? {
        guard conditionShape == nil else { return "prompt embeddings sent to a model that encodes its own prompts" }
        guard shape.count == 4, shape.allSatisfy({ $0 > 0 }), shape[1] == config.channels,
              shape[2] % config.patch == 0, shape[3] % config.patch == 0 else {
            return "a window of \(shape) for a model of \(config.channels) channels and \(config.patch)-pixel patches"
        }
        return nil
    }

    public func weightBytes(_ part: ModelPart) -> Int { 0 }

    public func previewProjection() throws -> [Float]? { nil }

    public func schedule(steps: Int, shift: Float) -> FlowSchedule { FlowSchedule(steps: steps, shift: shift) }

    /// The empty prompt as the model was trained to read it: one token 0.
    public func unconditionalCondition() throws -> Tensor { textEncoder.encode(tokens: [0]).values }

    public func guidedVelocity(conditional: Tensor, unconditional: Tensor, guidance: Float, place: WindowPlace,
                               afterBlock: @escaping () -> Void) throws -> VelocityField {
        VideoGenerator(model: self).guidedVelocity(conditional: TextEmbedding(values: conditional),
                                                   unconditional: TextEmbedding(values: unconditional),
                                                   guidance: guidance, place: place, afterBlock: afterBlock)
    }

    public func latentShape(frames: Int, width: Int, height: Int) -> LatentVideoShape {
        LatentVideoShape(channels: config.channels, frames: frames, height: height, width: width)
    }

    /// Encoding a prompt takes milliseconds: nothing to tick for.
    public func condition(on prompt: String, tick: () -> Void) throws -> Tensor { try textEncoder.encode(prompt).values }

    /// The denoiser works on [B, F, C, H, W]; the protocol's latents are channel-major.
    public func velocity(_ latents: Tensor, times: [Float], conditions: [Tensor]) throws -> Tensor {
        let frameMajor = latents.swappingAxes1And2()
        let v = denoiser.velocity(frameMajor, t: times, contexts: conditions.map { TextEmbedding(values: $0) })
        return v.swappingAxes1And2()
    }

    public func decode(_ latents: Tensor, tick: () -> Void) throws -> Tensor {
        let v = latents.swappingAxes1And2()
        return v.reshaped(Array(v.shape.dropFirst()))
    }

    public func encode(_ frames: Tensor, tick: () -> Void) throws -> Tensor { frames.reshaped([1] + frames.shape).swappingAxes1And2() }
}
