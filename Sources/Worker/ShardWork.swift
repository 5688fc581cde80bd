import Diffusion
import Foundation
import Planning
import Wire

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

extension ShardWork {
    /// A shard as a coordinator sends it (`JobRun.message(for:job:)` writes it), checked
    /// before anything is computed from it: the one place a worker's work is made.
    public init(assignment: Reel_V1_ShardAssignment, payloads: [Data]) throws {
        let spec = assignment.spec
        guard let sampler = Sampler(rawValue: spec.sampler) else { throw WireError(.invalidAssignment, "unknown sampler \(spec.sampler)") }
        guard (1...UInt32(JobLimits.maxSteps)).contains(spec.steps), spec.shift > 0, spec.shift <= JobLimits.maxShift,
              (0...JobLimits.maxGuidance).contains(spec.guidance) else {
            throw WireError(.invalidAssignment, "a schedule of \(spec.steps) steps, shift \(spec.shift) and guidance \(spec.guidance) is out of range")
        }
        guard assignment.stepBegin <= assignment.stepEnd, assignment.stepEnd <= spec.steps else {
            throw WireError(.invalidAssignment, "steps \(assignment.stepBegin)..<\(assignment.stepEnd) do not lie within the job's \(spec.steps)")
        }
        let shape = [Int(assignment.shape.frames), Int(assignment.shape.channels), Int(assignment.shape.rows), Int(assignment.shape.columns)]
        guard let count = assignment.shape.count, count <= Int(WireLimits.maxMessageBytes / 4) else {
            throw WireError(.invalidAssignment, "an assignment of shape \(shape.map(String.init).joined(separator: "x")) is larger than any message")
        }
        let latent = Tensor(shape: shape, scalars: try LatentCodec.decode(payloads[0], count: count))
        let state = assignment.carriesState ? Tensor(shape: shape, scalars: try LatentCodec.decode(payloads[1], count: count)) : nil
        self.init(prompt: spec.prompt, sampler: sampler, schedule: FlowSchedule(steps: Int(spec.steps), shift: spec.shift),
                  guidance: spec.guidance,
                  place: WindowPlace(firstFrame: Int(assignment.placeFirstFrame), videoFrames: Int(assignment.placeVideoFrames),
                                     keyframes: assignment.placeKeyframes),
                  steps: Int(assignment.stepBegin)..<Int(assignment.stepEnd),
                  latent: latent, state: Sampler.State(previousPrediction: state))
    }
}
