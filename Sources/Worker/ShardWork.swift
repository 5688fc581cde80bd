import Diffusion
import Foundation
import Media
import Planning
import Wire

/// One denoising shard's work: a region's latent through a range of sampler steps.
public struct ShardWork: Sendable {
    public var prompt: String
    public var sampler: Sampler
    /// The job's schedule, as steps and shift: the model makes its times (`VideoModel.schedule`).
    public var scheduleSteps: Int
    public var shift: Float
    public var guidance: Float
    /// Where the region lies in the whole video (read by a model with `frame_phase`,
    /// `video_progress` or `frame_stride`).
    public var place: WindowPlace
    public var steps: Range<Int>
    /// The region's fused latent at `steps.lowerBound`, [frames, channels, rows, columns].
    public var latent: Tensor
    public var state: Sampler.State
    /// A latent model's prompt embeddings, sent with the shard; nil for a pixel model, whose
    /// worker encodes the prompt itself.
    public var conditions: (conditional: Tensor, unconditional: Tensor)?

    public init(prompt: String, sampler: Sampler, scheduleSteps: Int, shift: Float, guidance: Float, place: WindowPlace,
                steps: Range<Int>, latent: Tensor, state: Sampler.State, conditions: (conditional: Tensor, unconditional: Tensor)? = nil) {
        self.prompt = prompt; self.sampler = sampler; self.scheduleSteps = scheduleSteps; self.shift = shift
        self.guidance = guidance; self.place = place; self.steps = steps; self.latent = latent; self.state = state
        self.conditions = conditions
    }
}

/// What a shard asks of a worker, by kind.
public enum ShardTask: Sendable {
    case denoise(ShardWork)
    /// Encode a prompt with the text encoder.
    case encode(prompt: String)
    /// Decode latent frames [F, C, H, W] with the VAE, dropping the first `skipFrames` frames.
    case decode(latent: Tensor, skipFrames: Int)
    /// Encode an input video's frames with the VAE.
    case encodeFrames(RGBVideo)

    /// The model part it runs on.
    public var part: ModelPart {
        switch self {
        case .denoise: return .dit
        case .encode: return .text
        case .decode, .encodeFrames: return .vae
        }
    }
}

extension ShardTask {
    /// A shard as a coordinator sends it (`JobRun.message(for:job:)` writes it), checked
    /// before anything is computed from it: the one place a worker's work is made.
    public init(assignment: Reel_V1_ShardAssignment, payloads: [Data]) throws {
        let spec = assignment.spec
        switch assignment.kind {
        case .text:
            guard spec.prompt.count <= JobLimits.maxPromptCharacters else {
                throw WireError(.invalidAssignment, "a prompt of \(spec.prompt.count) characters; at most \(JobLimits.maxPromptCharacters)")
            }
            self = .encode(prompt: spec.prompt)
        case .decode:
            // The frames skipped are checked against those decoded, once decoded.
            self = .decode(latent: try Self.tensor(assignment.shape, payloads[0], "latent"), skipFrames: Int(assignment.decodeSkipFrames))
        case .encode:
            let shape = assignment.shape
            guard shape.channels == 3, let count = shape.count, count > 0, payloads[0].count == count else {
                throw WireError(.invalidAssignment, "input frames of \(payloads[0].count) bytes for a shape of \(shape.count.map(String.init) ?? "too many")")
            }
            self = .encodeFrames(RGBVideo(width: Int(shape.columns), height: Int(shape.rows), pixels: [UInt8](payloads[0])))
        case .denoise, .UNRECOGNIZED:
            guard assignment.kind == .denoise else { throw WireError(.invalidAssignment, "an unknown kind of shard (\(assignment.kind.rawValue))") }
            self = .denoise(try ShardWork(assignment: assignment, payloads: payloads))
        }
    }

    /// A payload of `shape`, checked for size before it is read.
    static func tensor(_ shape: Reel_V1_LatentShape, _ payload: Data, _ what: String) throws -> Tensor {
        let dimensions = [Int(shape.frames), Int(shape.channels), Int(shape.rows), Int(shape.columns)]
        guard let count = shape.count, count > 0, count <= Int(WireLimits.maxMessageBytes / 4) else {
            throw WireError(.invalidAssignment, "a \(what) of shape \(dimensions.map(String.init).joined(separator: "x")) is empty or larger than any message")
        }
        return Tensor(shape: dimensions, scalars: try LatentCodec.decode(payload, count: count))
    }
}

extension ShardWork {
    /// A denoising shard as a coordinator sends it.
    init(assignment: Reel_V1_ShardAssignment, payloads: [Data]) throws {
        let spec = assignment.spec
        guard let sampler = Sampler(rawValue: spec.sampler) else { throw WireError(.invalidAssignment, "unknown sampler \(spec.sampler)") }
        guard (1...UInt32(JobLimits.maxSteps)).contains(spec.steps), spec.shift > 0, spec.shift <= JobLimits.maxShift,
              (0...JobLimits.maxGuidance).contains(spec.guidance) else {
            throw WireError(.invalidAssignment, "a schedule of \(spec.steps) steps, shift \(spec.shift) and guidance \(spec.guidance) is out of range")
        }
        guard assignment.stepBegin <= assignment.stepEnd, assignment.stepEnd <= spec.steps else {
            throw WireError(.invalidAssignment, "steps \(assignment.stepBegin)..<\(assignment.stepEnd) do not lie within the job's \(spec.steps)")
        }
        let latent = try ShardTask.tensor(assignment.shape, payloads[0], "latent")
        let state = assignment.carriesState ? try ShardTask.tensor(assignment.shape, payloads[1], "sampler state") : nil
        var condition: (Tensor, Tensor)?
        if assignment.hasConditionShape {
            // Embeddings are [tokens, width]: the shape's rows and columns, one frame of one channel.
            let shape = assignment.conditionShape
            guard shape.frames == 1, shape.channels == 1 else {
                throw WireError(.invalidAssignment, "prompt embeddings of \(shape.frames) frames and \(shape.channels) channels; they have one of each")
            }
            let tokens = [Int(shape.rows), Int(shape.columns)]
            condition = (try ShardTask.tensor(shape, payloads[2], "prompt embedding").reshaped(tokens),
                         try ShardTask.tensor(shape, payloads[3], "negative prompt embedding").reshaped(tokens))
        }
        self.init(prompt: spec.prompt, sampler: sampler, scheduleSteps: Int(spec.steps), shift: spec.shift,
                  guidance: spec.guidance,
                  place: WindowPlace(firstFrame: Int(assignment.placeFirstFrame), videoFrames: Int(assignment.placeVideoFrames),
                                     keyframes: assignment.placeKeyframes),
                  steps: Int(assignment.stepBegin)..<Int(assignment.stepEnd),
                  latent: latent, state: Sampler.State(previousPrediction: state), conditions: condition)
    }
}
