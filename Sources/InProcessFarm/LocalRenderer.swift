import Coordinator
import Diffusion
import Media
import Planning
import Worker

/// Runs a job's shards one after another in this process, with the same plan, fusion and
/// shard runner a farm uses.
public struct LocalRenderer {
    public let runner: ShardRunner
    /// A pixel model's shape and channels; nil for a latent model.
    private let pixel: (shape: ModelShape, channels: Int)?

    public init(model: Model) {
        runner = ShardRunner(model: model)
        pixel = (ModelShape(model.config), model.config.channels)
    }

    /// A latent model's renderer (`model.latentParts` is set).
    public init(latentModel model: any VideoModel) {
        precondition(model.latentParts != nil, "\(model.name) is not a latent model")
        runner = ShardRunner(model: model)
        pixel = nil
    }

    /// The run of `spec` (resolved) with this renderer's model; a latent model's re-renders
    /// `input` (planar frames in [-1, 1]).
    public func job(for spec: JobSpec, input: [Float]? = nil) throws -> JobRun {
        guard let pixel else {
            let stages = LatentStages(spec: spec, model: runner.model)
            return JobRun(spec: spec, stages: stages, input: input)
        }
        try spec.validate(for: pixel.shape, samplers: Sampler.allCases.map(\.rawValue))
        return JobRun(spec: spec, model: pixel.shape, channels: pixel.channels) { spec.initialNoise($0, channels: pixel.channels) }
    }

    /// Renders `spec` with a pixel model: its [frames, channels, height, width] latent.
    /// `progress` gets steps done and steps in all, summed over regions.
    public func render(_ spec: JobSpec, progress: (Int, Int) -> Void = { _, _ in }) throws -> Tensor {
        let job = try run(spec, progress: progress)
        return Tensor(shape: [spec.frames, pixel!.channels, spec.height, spec.width], scalars: job.finalLatent())
    }

    /// Renders `spec` with a latent model, re-rendering `input` if given: its frames.
    public func renderFrames(_ spec: JobSpec, input: [Float]? = nil) throws -> RGBVideo {
        RGBVideo(width: spec.width, height: spec.height, pixels: try run(spec, input: input, progress: { _, _ in }).finalFrames())
    }

    private func run(_ spec: JobSpec, input: [Float]? = nil, progress: (Int, Int) -> Void) throws -> JobRun {
        let job = try job(for: spec, input: input)
        while !job.isComplete {
            for assignment in job.takeReadyShards() {
                let result = try run(assignment, of: job) {
                    progress(job.stepsDone + $0 + 1 - assignment.steps.lowerBound, job.stepsTotal)
                }
                _ = job.accept(result)
            }
        }
        return job
    }

    /// Runs one assignment of `job` on this process's shard runner, put into the words a worker
    /// is sent and read back as a worker reads them, so it is the farm's shard exactly.
    public func run(_ assignment: ShardAssignment, of job: JobRun, onStep: (Int) -> Void = { _ in }) throws -> ShardResult {
        let (header, payloads) = job.message(for: assignment, job: "local")
        guard header.spec.weights == runner.model.weights.rawValue else {
            throw ShardError("the job asks for \(header.spec.weights) weights; this renderer's model holds \(runner.model.weights.rawValue)")
        }
        let output = try runner.run(try ShardTask(assignment: header, payloads: payloads), onStep: onStep)
        return ShardResult(region: assignment.region, steps: assignment.steps, attempt: assignment.attempt,
                           latent: output.values, state: output.state.previousPrediction?.scalars, pixels: output.pixels)
    }
}
