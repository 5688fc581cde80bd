import Diffusion
import Planning
import Worker

extension ModelShape {
    public init(_ config: ModelConfig) {
        self.init(canvasWidth: config.canvasWidth, canvasHeight: config.canvasHeight,
                  windowFrames: config.windowFrames, patch: config.patch, fps: config.fps, keyframeLayouts: config.frameStride)
    }
}

extension JobSpec {
    /// The sampler, schedule and guidance the spec names, as the diffusion core takes them.
    public func samplerSettings() throws -> (sampler: Sampler, schedule: FlowSchedule) {
        guard let sampler = Sampler(rawValue: sampler) else {
            throw SpecError(problems: [SpecProblem(field: "sampler", problem: "\(self.sampler) is unknown")])
        }
        return (sampler, FlowSchedule(steps: steps, shift: shift))
    }

    /// The seed's noise over one box of the video: the step-0 latent of a region.
    public func initialNoise(_ box: Box, channels: Int) -> [Float] {
        NoiseField(seed: seed).tensor(step: 0, frames: box.frames, channels: channels,
                                      height: box.rows.count, width: box.columns.count,
                                      originY: box.rows.lowerBound, originX: box.columns.lowerBound).scalars
    }

    /// A box's latent at `firstStep`: the seed's noise for a text-only job; for an input video
    /// (planar [frames, channels, height, width] over the whole canvas), SDEdit's
    /// (1 − t)·input + t·noise at that step's time t. At strength 1 this is the noise exactly,
    /// at strength 0 the input exactly.
    public func startingLatent(_ box: Box, channels: Int, input: [Float]?) -> [Float] {
        let noise = initialNoise(box, channels: channels)
        // At strength 1 the input is ignored, and a layout pass may draw boxes it does not cover.
        guard let input, strength < 1 else { return noise }
        let whole = Box(frames: 0..<frames, rows: 0..<height, columns: 0..<width)
        let frames = Fusion.crop(input, from: whole, to: box, channels: channels)
        return noised(frames, noise: noise)
    }

    /// Clean frames noised to the flow time t of `step` (by default `firstStep`, SDEdit's):
    /// (1 − t)·frames + t·noise.
    public func noised(_ frames: [Float], noise: [Float], at step: Int? = nil) -> [Float] {
        let t = FlowSchedule(steps: steps, shift: shift).times[step ?? firstStep]
        return zip(frames, noise).map { (1 - t) * $0 + t * $1 }
    }
}

/// Runs a job's shards one after another in this process, with the same plan, fusion and
/// shard runner a farm uses.
public struct LocalRenderer {
    public let runner: ShardRunner

    public init(model: Model) { runner = ShardRunner(model: model) }

    /// Renders `spec` to a [frames, channels, height, width] latent. `progress` gets steps done
    /// and steps in all, summed over regions.
    public func render(_ spec: JobSpec, progress: (Int, Int) -> Void = { _, _ in }) throws -> Tensor {
        let config = runner.model.config
        try spec.validate(for: ModelShape(config))
        _ = try runner.embedding(for: spec.prompt)
        let job = JobRun(spec: spec, model: ModelShape(config), channels: config.channels) {
            spec.initialNoise($0, channels: config.channels)
        }
        while !job.isComplete {
            for assignment in job.takeReadyShards() {
                let result = try run(assignment, of: job) {
                    progress(job.stepsDone + $0 + 1 - assignment.steps.lowerBound, job.stepsTotal)
                }
                _ = job.accept(result)
            }
        }
        return Tensor(shape: [spec.frames, config.channels, spec.height, spec.width], scalars: job.finalLatent())
    }

    /// Runs one assignment of `job` on this process's shard runner.
    public func run(_ assignment: ShardAssignment, of job: JobRun, onStep: (Int) -> Void = { _ in }) throws -> ShardResult {
        let (sampler, schedule) = try job.spec.samplerSettings()
        let region = job.plan.regions[assignment.region], box = region.box
        let shape = [box.frames.count, job.plan.channels, box.rows.count, box.columns.count]
        let place = job.spec.place(of: region)
        let work = ShardWork(prompt: job.spec.prompt(for: region), sampler: sampler, schedule: schedule, guidance: job.spec.guidance,
                             place: WindowPlace(firstFrame: place.firstFrame, videoFrames: place.videoFrames, keyframes: place.keyframes),
                             steps: assignment.steps, latent: Tensor(shape: shape, scalars: assignment.latent),
                             state: Sampler.State(previousPrediction: assignment.state.map { Tensor(shape: shape, scalars: $0) }))
        let (latent, state) = try runner.run(work, onStep: onStep)
        return ShardResult(region: assignment.region, steps: assignment.steps, attempt: assignment.attempt,
                           latent: latent.scalars, state: state.previousPrediction?.scalars)
    }
}
