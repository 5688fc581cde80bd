import Foundation
import Planning
import Wire

extension JobRun {
    /// An assignment as a worker is sent it: its header (where the shard lies, its steps and
    /// attempt, and the little of the job a worker needs) and its payloads (the latent, and the
    /// sampler state when it carries one). The one place a shard is put into words: the
    /// coordinator's dispatch, and `LocalRenderer` running shards in one process, both use it.
    public func message(for assignment: ShardAssignment, job id: String) -> (header: Reel_V1_ShardAssignment, payloads: [Data]) {
        let region = plan.regions[assignment.region], box = region.box
        var message = Reel_V1_ShardAssignment()
        message.jobID = id
        message.region = UInt32(assignment.region)
        message.stepBegin = UInt32(assignment.steps.lowerBound)
        message.stepEnd = UInt32(assignment.steps.upperBound)
        message.attempt = assignment.attempt
        message.spec = Reel_V1_ShardSpec.with {
            $0.model = spec.model
            $0.prompt = spec.prompt(for: region)  // a storyboard's shot
            $0.sampler = spec.sampler
            $0.steps = UInt32(spec.steps)
            $0.shift = spec.shift
            $0.guidance = spec.guidance
        }
        message.shape = Reel_V1_LatentShape(frames: box.frames.count, channels: plan.channels, rows: box.rows.count, columns: box.columns.count)
        message.carriesState = assignment.state != nil
        let place = spec.place(of: region)
        message.placeFirstFrame = Int32(place.firstFrame)
        message.placeVideoFrames = UInt32(place.videoFrames)
        message.placeKeyframes = place.keyframes
        return (message, [LatentCodec.encode(assignment.latent), assignment.state.map(LatentCodec.encode) ?? Data()])
    }
}
