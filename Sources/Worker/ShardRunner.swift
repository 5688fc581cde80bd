import Diffusion

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
