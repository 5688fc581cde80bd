/// Everything that decides what a render produces.
public struct RenderSettings: Sendable, Equatable {
    public var prompt: String
    public var frames: Int
    public var height: Int
    public var width: Int
    public var steps: Int
    public var sampler: Sampler
    /// Classifier-free guidance scale; 1 uses the prompt alone (half the work).
    public var guidance: Float
    public var seed: UInt64
    public var shift: Float

    public init(prompt: String, frames: Int, height: Int, width: Int, steps: Int, sampler: Sampler,
                guidance: Float, seed: UInt64, shift: Float = 1) {
        self.prompt = prompt; self.frames = frames; self.height = height; self.width = width
        self.steps = steps; self.sampler = sampler; self.guidance = guidance; self.seed = seed; self.shift = shift
    }
}

/// Progress of a render, reported after every sampler step.
public struct StepProgress: Sendable {
    public let step: Int
    public let steps: Int
    public let seconds: Double
}

/// Turns a prompt into video frames with one model on this machine: encode the prompt, draw the
/// seed's noise, integrate the flow with the chosen sampler under classifier-free guidance.
public struct VideoGenerator {
    public let model: Model

    public init(model: Model) { self.model = model }

    /// Returns [frames, channels, height, width] with values nominally in [-1, 1].
    public func generate(_ settings: RenderSettings, progress: (StepProgress) -> Void = { _ in }) throws -> Tensor {
        let conditional = try model.textEncoder.encode(settings.prompt)
        let unconditional = model.textEncoder.encode(tokens: [0])
        let noise = NoiseField(seed: settings.seed).tensor(
            step: 0, frames: 0..<settings.frames, channels: model.config.channels,
            height: settings.height, width: settings.width)
        let velocity = guidedVelocity(conditional: conditional, unconditional: unconditional, guidance: settings.guidance)
        let schedule = FlowSchedule(steps: settings.steps, shift: settings.shift)
        let clock = ContinuousClock()
        let start = clock.now
        var state = Sampler.State()
        return settings.sampler.run(velocity, noise, schedule, state: &state) { step in
            progress(StepProgress(step: step + 1, steps: schedule.steps, seconds: (clock.now - start).seconds))
        }
    }

    /// v = v_uncond + g·(v_cond − v_uncond); both halves run as one batch of two videos.
    /// `place` (where the window lies in the whole video) and `afterBlock` are passed to
    /// the denoiser (see `Denoiser.velocity`).
    public func guidedVelocity(conditional: TextEmbedding, unconditional: TextEmbedding, guidance: Float,
                               place: WindowPlace = .whole, afterBlock: @escaping () -> Void = {}) -> VelocityField {
        let denoiser = model.denoiser
        return { x, t in
            let video = x.reshaped([1] + x.shape)
            if guidance == 1 {
                return denoiser.velocity(video, t: [t], contexts: [conditional], place: place, afterBlock: afterBlock).reshaped(x.shape)
            }
            let both = denoiser.velocity(Tensor.stacked([x, x]), t: [t, t], contexts: [conditional, unconditional],
                                          place: place, afterBlock: afterBlock)
            let (cond, uncond) = (both.slices(0..<1), both.slices(1..<2))
            return uncond.adding(cond.adding(uncond, scaledBy: -1), scaledBy: guidance).reshaped(x.shape)
        }
    }
}
