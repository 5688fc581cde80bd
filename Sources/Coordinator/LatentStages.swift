import Diffusion
import Planning

/// What a latent model's job does around denoising: its prompts are encoded first (each
/// distinct prompt once, by a worker holding the text encoder), and its final latent is decoded
/// last, in pieces of latent frames (by workers holding the VAE), whose frames the coordinator
/// stitches. Everything follows from the spec and the model's parts, never from the farm.
public struct LatentStages: Sendable, Equatable {
    public let parts: LatentParts
    /// The distinct prompts to encode, in order: the prompt, then the negative prompt when
    /// the job is guided and the two differ.
    public let prompts: [String]
    /// Which of `prompts` is the unconditional (negative) one.
    public let negative: Int
    public let pieces: [DecodePiece]
    /// Latent frames, and the video's frames and size in pixels.
    public let latentFrames: Int
    public let frames: Int, width: Int, height: Int
    /// For a job that re-renders an input video: the flow time of its first step, to which its
    /// encoded frames are noised (the model's schedule, which a pixel job's `FlowSchedule` is
    /// not); nil for a text-only job.
    public let inputTime: Float?

    /// A latent model's job: `model`, opened with its configs, gives its parts, schedule and
    /// negative prompt. `maxPieceBytes` bounds the frames one decode shard returns (8-bit RGB):
    /// they must fit a message. Pieces change no bits (each is one decode of the whole video's
    /// frames), so the bound may be anything.
    public init(spec: JobSpec, model: any VideoModel, maxPieceBytes: Int = Self.defaultMaxPieceBytes) {
        let parts = model.latentParts!
        self.parts = parts
        inputTime = spec.strength < 1 ? model.schedule(steps: spec.steps, shift: spec.shift).times[spec.firstStep] : nil
        let negativePrompt = spec.negativePrompt ?? ""
        var prompts = [spec.prompt]
        if spec.guidance != 1 && negativePrompt != spec.prompt { prompts.append(negativePrompt) }
        self.prompts = prompts
        negative = prompts.count - 1
        let latentFrames = parts.latentFrames(spec.frames)
        self.latentFrames = latentFrames
        (frames, width, height) = (spec.frames, spec.width, spec.height)
        // A window of latent frames a piece, fewer where their frames would not fit.
        let frameBytes = 3 * spec.width * spec.height * parts.temporalFactor
        let length = max(1, min(parts.windowFrames, maxPieceBytes / max(frameBytes, 1)))
        pieces = stride(from: 0, to: latentFrames, by: length).map { start in
            DecodePiece(own: start..<min(start + length, latentFrames), context: parts.decodeContext, parts: parts)
        }
    }

    /// The spec planned over latent frames and pixels: regions, chunks and fusion work on the
    /// latent as they do on a pixel model's frames. Window and overlap are latent frames already.
    public func latentSpec(_ spec: JobSpec) -> JobSpec {
        var latent = spec
        latent.frames = latentFrames
        latent.width = spec.width / parts.spatialFactor
        latent.height = spec.height / parts.spatialFactor
        return latent
    }

    /// The model as planning sees the latent: one tile over the whole canvas (the DiT takes any
    /// size), windows of `windowFrames` latent frames.
    public func latentShape(_ spec: JobSpec) -> ModelShape {
        ModelShape(canvasWidth: spec.width / parts.spatialFactor, canvasHeight: spec.height / parts.spatialFactor,
                   windowFrames: parts.windowFrames, patch: parts.patch, fps: spec.fps)
    }

    /// Values of one prompt's embedding.
    public var embeddingCount: Int { parts.embeddingTokens * parts.embeddingWidth }

    /// Bytes of a piece's frames, 8-bit RGB.
    public func frameCount(of piece: DecodePiece) -> Int { piece.frames.count * 3 * width * height }

    /// Half of a coordinator's default largest message.
    public static let defaultMaxPieceBytes = 32 << 20
}

/// A piece of the final latent to decode: its own latent frames, and the frames before them that
/// the decoder reads first and whose output is dropped (its causal context), so that the
/// piece's frames are bit for bit those of one decode of the whole video. The cost is the
/// context's decoding, at most `decodeContext` latent frames per piece.
public struct DecodePiece: Sendable, Equatable {
    /// The latent frames decoded: the context, then the piece's own.
    public let decoded: Range<Int>
    public let own: Range<Int>
    /// The video frames the piece gives.
    public let frames: Range<Int>
    /// Video frames decoded before the piece's own and dropped.
    public let skipFrames: Int

    init(own: Range<Int>, context: Int, parts: LatentParts) {
        self.own = own
        decoded = max(0, own.lowerBound - context)..<own.upperBound
        frames = parts.videoFrames(own)
        // The decoder takes the first frame it reads as a video's first: one frame, then
        // `temporalFactor` for each later one.
        skipFrames = own.lowerBound == decoded.lowerBound ? 0 : 1 + (own.lowerBound - decoded.lowerBound - 1) * parts.temporalFactor
    }
}
