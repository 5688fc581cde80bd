import Diffusion
import Foundation
import Media
import Wire

/// Runs shards with one model. A pixel model's prompts are encoded here and cached (every
/// shard of a job shares its prompt); a latent model's arrive with each shard, encoded once by
/// a text shard.
public final class ShardRunner {
    public let model: any VideoModel
    private var embeddings: [String: Tensor] = [:]
    private var unconditional: Tensor?

    public init(model: any VideoModel) { self.model = model }

    public func embedding(for prompt: String) throws -> Tensor {
        if let cached = embeddings[prompt] { return cached }
        let embedding = try model.condition(on: prompt)
        embeddings[prompt] = embedding
        return embedding
    }

    /// Runs a denoising shard; `onStep` is called after each step with its index, `tick` after
    /// every transformer block (both on this thread).
    public func run(_ work: ShardWork, onStep: (Int) -> Void = { _ in }, tick: @escaping () -> Void = {}) throws -> (latent: Tensor, state: Sampler.State) {
        if let problem = model.windowProblem(work.latent.shape, conditionShape: work.conditions?.conditional.shape) {
            throw ShardError("\(model.name) cannot denoise \(problem)")
        }
        let conditions = try work.conditions ?? (try embedding(for: work.prompt), try unconditionalCondition())
        let velocity = try model.guidedVelocity(conditional: conditions.conditional, unconditional: conditions.unconditional,
                                                guidance: work.guidance, place: work.place, afterBlock: tick)
        var state = work.state
        let schedule = model.schedule(steps: work.scheduleSteps, shift: work.shift)
        let latent = work.sampler.run(velocity, work.latent, schedule, steps: work.steps, state: &state, onStep: onStep)
        return (latent, state)
    }

    private func unconditionalCondition() throws -> Tensor {
        if let unconditional { return unconditional }
        let made = try model.unconditionalCondition()
        unconditional = made
        return made
    }

    /// Runs any shard: a region's latent and sampler state, a prompt's embedding, or a piece's
    /// frames with the context's dropped.
    public func run(_ task: ShardTask, onStep: (Int) -> Void = { _ in }, tick: @escaping () -> Void = {}) throws -> ShardOutput {
        switch task {
        case .denoise(let work):
            let (latent, state) = try run(work, onStep: onStep, tick: tick)
            return ShardOutput(values: latent.scalars, state: state)
        case .encode(let prompt):
            return ShardOutput(values: try model.condition(on: prompt, tick: tick).scalars)
        case .decode(let latent, let skip):
            guard let parts = model.latentParts, latent.shape[1] == parts.channels else {
                throw ShardError("\(model.name) cannot decode latents of \(latent.shape)")
            }
            // The coordinator's latent is frame-major [F, C, H, W]; the model's [1, C, F, H, W].
            let frames = try model.decode(latent.reshaped([1] + latent.shape).swappingAxes1And2(), tick: tick)
            let (count, height, width) = (frames.shape[0], frames.shape[2], frames.shape[3])
            guard skip < count else { throw ShardError("a decode that drops \(skip) of the \(count) frames it decodes") }
            let kept = Array(frames.scalars[(skip * 3 * height * width)...])
            // Quantised here as the encoder would: the piece travels at a quarter of its float size.
            return ShardOutput(pixels: RGBVideo(planar: kept, frames: count - skip, height: height, width: width).pixels)
        case .encodeFrames(let video):
            guard let parts = model.latentParts, (video.frameCount - 1) % parts.temporalFactor == 0,
                  video.width % parts.spatialFactor == 0, video.height % parts.spatialFactor == 0 else {
                throw ShardError("\(model.name) cannot encode \(video.frameCount) frames of \(video.width)x\(video.height)")
            }
            let frames = Tensor(shape: [video.frameCount, 3, video.height, video.width], scalars: video.planar())
            // The model's [1, C, F, H, W] latent, frame-major as the coordinator plans it.
            let latent = try model.encode(frames, tick: tick)
            return ShardOutput(values: latent.swappingAxes1And2().scalars)
        }
    }
}

/// What a shard computed, as its result carries it.
public struct ShardOutput: Sendable {
    /// A region's latent, or a prompt's embedding.
    public var values: [Float] = []
    public var state = Sampler.State()
    /// A piece's frames, 8-bit RGB.
    public var pixels: [UInt8] = []

    public init(values: [Float] = [], state: Sampler.State = Sampler.State(), pixels: [UInt8] = []) {
        self.values = values; self.state = state; self.pixels = pixels
    }

    /// Values (or bytes) it holds: what its assignment's result shape counts.
    public var count: Int { pixels.isEmpty ? values.count : pixels.count }

    /// The result's two payloads: the values (or frames), and the sampler state if any.
    public var payloads: [Data] {
        [pixels.isEmpty ? LatentCodec.encode(values) : Data(pixels), state.previousPrediction.map { LatentCodec.encode($0.scalars) } ?? Data()]
    }
}

/// A shard this worker cannot compute as sent.
public struct ShardError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
