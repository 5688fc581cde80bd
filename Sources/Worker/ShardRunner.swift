import Diffusion

/// One shard's work: denoise a region's latent through a range of sampler steps.
public struct ShardWork: Sendable {
    public var prompt: String
    public var sampler: Sampler
    public var schedule: FlowSchedule
    public var guidance: Float
    /// Where the region lies in the whole video (read by a model with `frame_phase`,
    /// `video_progress` or `frame_stride`).
    public var place: WindowPlace
    public var steps: Range<Int>
    /// The region's fused latent at `steps.lowerBound`, [frames, channels, rows, columns].
    public var latent: Tensor
    public var state: Sampler.State

    public init(prompt: String, sampler: Sampler, schedule: FlowSchedule, guidance: Float, place: WindowPlace,
                steps: Range<Int>, latent: Tensor, state: Sampler.State) {
        self.prompt = prompt; self.sampler = sampler; self.schedule = schedule; self.guidance = guidance
        self.place = place; self.steps = steps; self.latent = latent; self.state = state
    }
}

/// Runs shards with one model, caching prompt embeddings: every shard of a job shares its prompt.
public final class ShardRunner {
    public let model: Model
    private var embeddings: [String: TextEmbedding] = [:]
    private lazy var unconditional = model.textEncoder.encode(tokens: [0])

    public init(model: Model) { self.model = model }

    public func embedding(for prompt: String) throws -> TextEmbedding {
        if let cached = embeddings[prompt] { return cached }
        let embedding = try model.textEncoder.encode(prompt)
        embeddings[prompt] = embedding
        return embedding
    }

    /// Runs the shard; `onStep` is called after each step with its index, `tick` after every
    /// transformer block (both on this thread).
    public func run(_ work: ShardWork, onStep: (Int) -> Void = { _ in }, tick: @escaping () -> Void = {}) throws -> (latent: Tensor, state: Sampler.State) {
        let velocity = VideoGenerator(model: model).guidedVelocity(
            conditional: try embedding(for: work.prompt), unconditional: unconditional, guidance: work.guidance,
            place: work.place, afterBlock: tick)
        var state = work.state
        let latent = work.sampler.run(velocity, work.latent, work.schedule, steps: work.steps, state: &state, onStep: onStep)
        return (latent, state)
    }
}
