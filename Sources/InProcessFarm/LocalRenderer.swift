import Coordinator
import Diffusion
import Planning
import Worker

/// Runs a job's shards one after another in this process, with the same plan, fusion and
/// shard runner a farm uses.
public struct LocalRenderer {
    public let runner: ShardRunner

    public init(model: Model) { runner = ShardRunner(model: model) }

    /// Renders `spec` to a [frames, channels, height, width] latent. `progress` gets steps done
    /// and steps in all, summed over regions.
    public func render(_ spec: JobSpec, progress: (Int, Int) -> Void = { _, _ in }) throws -> Tensor {
        let config = runner.model.config
        try spec.validate(for: ModelShape(config), samplers: Sampler.allCases.map(\.rawValue))
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

    /// Runs one assignment of `job` on this process's shard runner, put into the words a worker
    /// is sent and read back as a worker reads them, so it is the farm's shard exactly.
    public func run(_ assignment: ShardAssignment, of job: JobRun, onStep: (Int) -> Void = { _ in }) throws -> ShardResult {
        let (header, payloads) = job.message(for: assignment, job: "local")
        let (latent, state) = try runner.run(try ShardWork(assignment: header, payloads: payloads), onStep: onStep)
        return ShardResult(region: assignment.region, steps: assignment.steps, attempt: assignment.attempt,
                           latent: latent.scalars, state: state.previousPrediction?.scalars)
    }
}
