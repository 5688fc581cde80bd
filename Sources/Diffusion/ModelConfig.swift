import Foundation

/// The shape of a Reel model, read from a model package's `config.json`.
public struct ModelConfig: Codable, Sendable, Equatable {
    /// Format tag; readers refuse packages of another format.
    public var format: String = ModelConfig.currentFormat
    /// Colour channels of the pixel-space video (3: RGB in [-1, 1]).
    public var channels: Int = 3
    /// The canvas the model was trained on, in pixels.
    public var canvasHeight: Int
    public var canvasWidth: Int
    /// Frames the model sees at once: the temporal window that chunks are cut to.
    public var windowFrames: Int
    /// Frames per second the model's motion was trained at.
    public var fps: Int
    /// Side of the square pixel patches that become tokens.
    public var patch: Int
    /// Transformer width, depth, attention heads and MLP expansion of the denoiser.
    public var width: Int
    public var depth: Int
    public var heads: Int
    public var mlpRatio: Int
    /// The text encoder.
    public var text: TextEncoderConfig
    /// File name, inside the package, of the vocabulary (one word a line).
    public var vocabulary: String = "vocab.txt"
    /// Render defaults that suit this model.
    public var defaults: RenderDefaults = RenderDefaults()
    /// What the network outputs: the velocity itself, or the clean video, from which the
    /// velocity follows as v = (x_t − x̂₀) / t. Pixel-space models whose patches have more
    /// values than the transformer is wide must predict the clean video: the noise they would
    /// otherwise have to reproduce does not fit through the width.
    public var prediction: Prediction = .velocity
    /// Whether the mean of the prompt's encoded tokens, projected by `text_pool`, joins the
    /// timestep in every adaLN: a clip-wide condition (which way things move, where they
    /// start) beside the per-token cross-attention, as a class label conditions DiT.
    public var pooledText: Bool = false
    /// Whether the denoiser is told where its window sits in a long video: the phase of the
    /// window's first frame, projected by `phase_embed`, joins the timestep too. In a world
    /// whose paths repeat every `period` frames, every chunk of a long render can then lay its
    /// objects on one shared path instead of each starting them afresh.
    public var framePhase: FramePhase?
    /// Whether the denoiser is also told how far through the video its window lies
    /// (`WindowPlace.progressFeatures`, projected by `progress_embed`): what a motion spread over
    /// the whole video, such as growth, needs of each chunk.
    public var videoProgress: Bool = false
    /// Whether the denoiser is also told how far apart its window's frames lie in the video
    /// (`WindowPlace.strideFeatures`, projected by `stride_embed`): so that a long render's
    /// layout pass can draw one window of keyframes spanning the whole video.
    public var frameStride: Bool = false

    public struct FramePhase: Codable, Sendable, Equatable {
        /// Frames after which the phase repeats.
        public var period: Double
        /// Sine and cosine pairs of the phase, at 1…harmonics times its frequency.
        public var harmonics: Int

        public init(period: Double, harmonics: Int) { self.period = period; self.harmonics = harmonics }

        /// Features of a window whose first frame is `frame` of the whole video: sin(2πk·f/P)
        /// for k = 1…harmonics, then the cosines, computed in double as the trainer does.
        public func features(firstFrame frame: Int) -> [Float] {
            let angles = (1...harmonics).map { 2 * Double.pi * Double($0) * Double(frame).truncatingRemainder(dividingBy: period) / period }
            return angles.map { Float(sin($0)) } + angles.map { Float(cos($0)) }
        }
    }

    public enum Prediction: String, Codable, Sendable {
        case velocity, clean
    }

    /// The smallest t the clean-to-velocity conversion divides by.
    public static let minimumPredictionTime: Float = 0.05

    public static let currentFormat = "reel-dit/1"

    public struct TextEncoderConfig: Codable, Sendable, Equatable {
        public var width: Int
        public var depth: Int
        public var heads: Int
        public var mlpRatio: Int
        /// Longest prompt in tokens, the start token included.
        public var maxTokens: Int

        public init(width: Int, depth: Int, heads: Int, mlpRatio: Int = 4, maxTokens: Int) {
            self.width = width; self.depth = depth; self.heads = heads
            self.mlpRatio = mlpRatio; self.maxTokens = maxTokens
        }
    }

    public struct RenderDefaults: Codable, Sendable, Equatable {
        public var steps: Int = 20
        public var guidance: Float = 4
        public var sampler: String = "euler"
        /// Timestep shift: above 1 spends more steps at high noise.
        public var shift: Float = 1
        /// How much of the denoising the chunks of a video longer than one chunk redo over a
        /// layout pass (each shot first rendered whole as one window); none when left out.
        public var layoutStrength: Float?
        /// Frames neighbouring chunks share when a job does not say; a quarter of the window
        /// when left out.
        public var overlap: Int?

        public init(steps: Int = 20, guidance: Float = 4, sampler: String = "euler", shift: Float = 1,
                    layoutStrength: Float? = nil, overlap: Int? = nil) {
            self.steps = steps; self.guidance = guidance; self.sampler = sampler; self.shift = shift
            self.layoutStrength = layoutStrength; self.overlap = overlap
        }
    }

    public init(canvasHeight: Int, canvasWidth: Int, windowFrames: Int, fps: Int = 8, patch: Int,
                width: Int, depth: Int, heads: Int, mlpRatio: Int = 4, text: TextEncoderConfig,
                channels: Int = 3, defaults: RenderDefaults = RenderDefaults()) {
        self.canvasHeight = canvasHeight; self.canvasWidth = canvasWidth
        self.windowFrames = windowFrames; self.fps = fps; self.patch = patch
        self.width = width; self.depth = depth; self.heads = heads; self.mlpRatio = mlpRatio
        self.text = text; self.channels = channels; self.defaults = defaults
    }

    /// Values per token: one patch of every channel.
    public var patchValues: Int { channels * patch * patch }
    public var headWidth: Int { width / heads }
    /// Frames neighbouring chunks share when a job does not say.
    public var defaultOverlap: Int { defaults.overlap ?? windowFrames / 4 }

    enum CodingKeys: String, CodingKey {
        case format, channels, canvasHeight, canvasWidth, windowFrames, fps, patch, width, depth, heads, mlpRatio, text, vocabulary, defaults
        case prediction, pooledText, framePhase, videoProgress, frameStride
    }

    /// Reads config.json; `channels` (3), `mlp_ratio` (4), `vocabulary` (vocab.txt) and
    /// `defaults`, `prediction` (velocity), `pooled_text` (false), `frame_phase` (none),
    /// `video_progress` (false) and `frame_stride` (false) may be left out.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        channels = try c.decodeIfPresent(Int.self, forKey: .channels) ?? 3
        canvasHeight = try c.decode(Int.self, forKey: .canvasHeight)
        canvasWidth = try c.decode(Int.self, forKey: .canvasWidth)
        windowFrames = try c.decode(Int.self, forKey: .windowFrames)
        fps = try c.decode(Int.self, forKey: .fps)
        patch = try c.decode(Int.self, forKey: .patch)
        width = try c.decode(Int.self, forKey: .width)
        depth = try c.decode(Int.self, forKey: .depth)
        heads = try c.decode(Int.self, forKey: .heads)
        mlpRatio = try c.decodeIfPresent(Int.self, forKey: .mlpRatio) ?? 4
        text = try c.decode(TextEncoderConfig.self, forKey: .text)
        vocabulary = try c.decodeIfPresent(String.self, forKey: .vocabulary) ?? "vocab.txt"
        defaults = try c.decodeIfPresent(RenderDefaults.self, forKey: .defaults) ?? RenderDefaults()
        prediction = try c.decodeIfPresent(Prediction.self, forKey: .prediction) ?? .velocity
        pooledText = try c.decodeIfPresent(Bool.self, forKey: .pooledText) ?? false
        framePhase = try c.decodeIfPresent(FramePhase.self, forKey: .framePhase)
        videoProgress = try c.decodeIfPresent(Bool.self, forKey: .videoProgress) ?? false
        frameStride = try c.decodeIfPresent(Bool.self, forKey: .frameStride) ?? false
    }

    /// Checks the numbers fit together; the error names the field.
    public func validate() throws {
        func require(_ condition: Bool, _ field: String, _ rule: String) throws {
            if !condition { throw ModelPackageError.badConfig(field: field, rule: rule) }
        }
        try require(format == Self.currentFormat, "format", "must be \"\(Self.currentFormat)\", got \"\(format)\"")
        try require(channels > 0, "channels", "must be positive")
        try require(patch > 0, "patch", "must be positive")
        try require(canvasHeight > 0 && canvasHeight % patch == 0, "canvas_height", "must be a positive multiple of patch (\(patch))")
        try require(canvasWidth > 0 && canvasWidth % patch == 0, "canvas_width", "must be a positive multiple of patch (\(patch))")
        try require(windowFrames > 0, "window_frames", "must be positive")
        try require(fps > 0, "fps", "must be positive")
        try require(width > 0 && width % 8 == 0, "width", "must be a positive multiple of 8 (the position embedding splits it 4:2:2)")
        try require(depth > 0, "depth", "must be positive")
        try require(heads > 0 && width % heads == 0, "heads", "must divide width (\(width))")
        try require(mlpRatio > 0, "mlp_ratio", "must be positive")
        try require(text.width > 0 && text.width % 2 == 0, "text.width", "must be a positive even number")
        try require(text.depth >= 0, "text.depth", "must not be negative")
        try require(text.heads > 0 && text.width % text.heads == 0, "text.heads", "must divide text.width (\(text.width))")
        try require(text.maxTokens >= 2, "text.max_tokens", "must be at least 2")
        if let layoutStrength = defaults.layoutStrength {
            try require(layoutStrength > 0 && layoutStrength <= 1, "defaults.layout_strength", "must be above 0 and at most 1")
        }
        if let overlap = defaults.overlap {
            try require(overlap >= 0 && overlap < windowFrames, "defaults.overlap", "must be 0 to window_frames - 1 (\(windowFrames - 1))")
        }
        try require(!frameStride || videoProgress, "frame_stride", "needs \"video_progress\": true (keyframes span a video whose length it tells)")
        if let framePhase {
            try require(framePhase.period > 0, "frame_phase.period", "must be positive")
            try require(framePhase.harmonics > 0, "frame_phase.harmonics", "must be positive")
        }
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }
}

/// A model package that cannot be used, saying which file or field is at fault.
public enum ModelPackageError: Error, CustomStringConvertible, Equatable {
    case notFound(name: String, searched: [String])
    case unreadable(path: String, reason: String)
    case badConfig(field: String, rule: String)

    public var description: String {
        switch self {
        case .notFound(let name, let searched):
            return "model '\(name)' not found (looked in \(searched.joined(separator: ", "))); pass --model with a model package directory, or set REEL_MODELS"
        case .unreadable(let path, let reason):
            return "\(path): \(reason)"
        case .badConfig(let field, let rule):
            return "config.json: \(field) \(rule)"
        }
    }
}
