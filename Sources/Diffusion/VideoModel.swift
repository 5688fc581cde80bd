/// What Reel asks of a video model, whatever family it belongs to: the prompt as a condition,
/// the velocity of a window of latents, latents to frames and back, the window it denoises and
/// the defaults a render takes. reel-shapes (pixel space: its latent is the video itself) and Wan
/// (umT5, a DiT, a causal 3D VAE) are two implementations, each in its own folder over the same
/// tensor kernels.
public protocol VideoModel: AnyObject, Sendable {
    /// The model's name (its folder's).
    var name: String { get }
    /// The family's name, as `ModelFamily.name`.
    var family: String { get }
    var defaults: VideoDefaults { get }
    /// The latent a video of `frames` frames of `width`×`height` pixels becomes.
    func latentShape(frames: Int, width: Int, height: Int) -> LatentVideoShape
    /// The prompt as the velocity reads it.
    func condition(on prompt: String) throws -> Tensor
    /// The velocity of latents [B, C, F, H, W] at flow times in 0...1 (one per video), each
    /// video with its own condition.
    func velocity(_ latents: Tensor, times: [Float], conditions: [Tensor]) throws -> Tensor
    /// Latents [1, C, F, H, W] to frames [F, 3, H, W] in [-1, 1].
    func decode(_ latents: Tensor) throws -> Tensor
    /// Frames [F, 3, H, W] in [-1, 1] to latents [1, C, F, H, W].
    func encode(_ frames: Tensor) throws -> Tensor
}

/// A render's defaults, as a model states them.
public struct VideoDefaults: Sendable, Equatable {
    public var width: Int, height: Int, frames: Int, fps: Int
    public var steps: Int
    public var guidance: Float
    public var shift: Float
    /// Frames the model denoises at once; longer videos are cut into windows.
    public var window: Int

    public init(width: Int, height: Int, frames: Int, fps: Int, steps: Int, guidance: Float, shift: Float, window: Int) {
        self.width = width; self.height = height; self.frames = frames; self.fps = fps
        self.steps = steps; self.guidance = guidance; self.shift = shift; self.window = window
    }
}

public struct LatentVideoShape: Sendable, Equatable {
    public var channels: Int, frames: Int, height: Int, width: Int
    public init(channels: Int, frames: Int, height: Int, width: Int) {
        self.channels = channels; self.frames = frames; self.height = height; self.width = width
    }
}

/// A family of models: how to recognise its files and open them. The registry of families is
/// one list (`ModelFamilies` in the `reel` target); adding a family adds its folder and a line there.
public protocol ModelFamily {
    static var name: String { get }
    /// Whether `directory` holds a model of this family.
    static func recognises(_ directory: String) -> Bool
    static func open(_ directory: String) throws -> any VideoModel
}

/// reel-shapes and the packages trained like it: pixel space, so the latent is the video.
public enum ReelShapesFamily: ModelFamily {
    public static let name = "reel-shapes"

    public static func recognises(_ directory: String) -> Bool {
        (try? ModelPackage.readConfig(in: directory)) != nil
    }

    public static func open(_ directory: String) throws -> any VideoModel { try Model(directory: directory) }
}

extension Model: VideoModel {
    public var family: String { ReelShapesFamily.name }

    public var defaults: VideoDefaults {
        VideoDefaults(width: config.canvasWidth, height: config.canvasHeight, frames: config.windowFrames, fps: config.fps,
                      steps: config.defaults.steps, guidance: config.defaults.guidance, shift: config.defaults.shift,
                      window: config.windowFrames)
    }

    public func latentShape(frames: Int, width: Int, height: Int) -> LatentVideoShape {
        LatentVideoShape(channels: config.channels, frames: frames, height: height, width: width)
    }

    public func condition(on prompt: String) throws -> Tensor { try textEncoder.encode(prompt).values }

    /// The denoiser works on [B, F, C, H, W]; the protocol's latents are channel-major.
    public func velocity(_ latents: Tensor, times: [Float], conditions: [Tensor]) throws -> Tensor {
        let frameMajor = latents.swappingAxes1And2()
        let v = denoiser.velocity(frameMajor, t: times, contexts: conditions.map { TextEmbedding(values: $0) })
        return v.swappingAxes1And2()
    }

    public func decode(_ latents: Tensor) throws -> Tensor {
        let v = latents.swappingAxes1And2()
        return v.reshaped(Array(v.shape.dropFirst()))
    }

    public func encode(_ frames: Tensor) throws -> Tensor { frames.reshaped([1] + frames.shape).swappingAxes1And2() }
}
