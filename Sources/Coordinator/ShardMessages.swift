import Foundation
import Planning
import Wire

extension JobRun {
    /// An assignment as a worker is sent it: its header (what kind of shard, where it lies,
    /// its steps and attempt, and the little of the job a worker needs) and its four payloads
    /// (the latent, the sampler state, and a latent job's two prompt embeddings; each empty
    /// when the shard has none). The one place a shard is put into words: the coordinator's
    /// dispatch, and `LocalRenderer` running shards in one process, both use it.
    public func message(for assignment: ShardAssignment, job id: String) -> (header: Reel_V1_ShardAssignment, payloads: [Data]) {
        var message = Reel_V1_ShardAssignment()
        message.jobID = id
        message.region = UInt32(assignment.region)
        message.stepBegin = UInt32(assignment.steps.lowerBound)
        message.stepEnd = UInt32(assignment.steps.upperBound)
        message.attempt = assignment.attempt
        message.spec = Reel_V1_ShardSpec.with {
            $0.model = spec.model
            $0.prompt = spec.prompt
            $0.sampler = spec.sampler
            $0.steps = UInt32(spec.steps)
            $0.shift = spec.shift
            $0.guidance = spec.guidance
            $0.weights = spec.weights
        }
        let latent = LatentCodec.encode(assignment.latent)
        switch unit(assignment.region)! {
        case .prompt(let prompt):
            message.kind = .text
            message.spec.prompt = stages!.prompts[prompt]
            message.resultShape = Reel_V1_LatentShape(frames: 1, channels: 1, rows: stages!.parts.embeddingTokens,
                                                      columns: stages!.parts.embeddingWidth)
            return (message, [Data(), Data(), Data(), Data()])
        case .input:
            message.kind = .encode
            message.shape = Reel_V1_LatentShape(frames: stages!.frames, channels: 3, rows: stages!.height, columns: stages!.width)
            message.resultShape = Reel_V1_LatentShape(frames: plan.frames, channels: plan.channels, rows: plan.height, columns: plan.width)
            return (message, [Data(inputFrames ?? []), Data(), Data(), Data()])
        case .piece(let index):
            let piece = stages!.pieces[index]
            message.kind = .decode
            message.shape = Reel_V1_LatentShape(frames: piece.decoded.count, channels: plan.channels, rows: plan.height, columns: plan.width)
            message.decodeSkipFrames = UInt32(piece.skipFrames)
            message.resultShape = Reel_V1_LatentShape(frames: piece.frames.count, channels: 3, rows: stages!.height, columns: stages!.width)
            return (message, [latent, Data(), Data(), Data()])
        case .region(let index):
            let region = plan.regions[index], box = region.box
            message.kind = .denoise
            message.spec.prompt = spec.prompt(for: region)  // a storyboard's shot
            message.shape = Reel_V1_LatentShape(frames: box.frames.count, channels: plan.channels, rows: box.rows.count, columns: box.columns.count)
            message.resultShape = message.shape
            message.carriesState = assignment.state != nil
            let place = spec.place(of: region)
            message.placeFirstFrame = Int32(place.firstFrame)
            message.placeVideoFrames = UInt32(place.videoFrames)
            message.placeKeyframes = place.keyframes
            var conditions = [Data(), Data()]
            if let stages {
                message.conditionShape = Reel_V1_LatentShape(frames: 1, channels: 1, rows: stages.parts.embeddingTokens,
                                                             columns: stages.parts.embeddingWidth)
                conditions = [embedding(0)!, embedding(stages.negative)!].map(LatentCodec.encode)
            }
            return (message, [latent, assignment.state.map(LatentCodec.encode) ?? Data()] + conditions)
        }
    }
}
