import Diffusion
import Planning
import Wire

/// A job as resolved: every field set and checked.
public struct ResolvedJob: Sendable, Equatable {
    public var spec: JobSpec
    /// Times each frame is enlarged in the file; not part of the latent.
    public var outputScale: Int
}

/// The one place a request becomes a spec that can be planned: fields it leaves unset take
/// their defaults (`JobDefaults`, then the model's config), then every field is checked
/// against the model and `JobLimits`, and every prompt against the model's vocabulary.
/// `reel render`, `reel eval` and `reel bench farm` resolve here before they submit, so a bad
/// job fails before any work, and the coordinator resolves every submission here again, since
/// whatever arrives over the network is checked where it is used.
public struct SpecResolver: Sendable {
    public let config: ModelConfig
    public let vocabulary: Vocabulary

    public init(config: ModelConfig, vocabulary: Vocabulary) {
        self.config = config
        self.vocabulary = vocabulary
    }

    public init(model: Model) { self.init(config: model.config, vocabulary: model.vocabulary) }

    /// `inputFrames`, for a request with an input video: how many frames that video has at the
    /// resolved spec's canvas and fps, reading no more than `maxFrames` of them. It is called
    /// once the canvas and fps are known and checked, so an input is decoded only for a job that
    /// could run; a job that leaves its length unset takes the input's.
    public func resolve(_ request: Reel_V1_JobSpec,
                        inputFrames: ((_ spec: JobSpec, _ maxFrames: Int) throws -> Int)? = nil) throws -> ResolvedJob {
        var spec = JobSpec(resolving: request, with: config)
        let shape = ModelShape(config)
        let samplers = Sampler.allCases.map(\.rawValue)
        let outputScale = request.outputScale == 0 ? JobDefaults.outputScale : Int(request.outputScale)
        let lengthFromInput = request.withInput && request.frames == 0 && request.shots.isEmpty
        if lengthFromInput { spec.frames = 1 }  // checked again once the input's length is known
        var problems = Self.problems { try spec.validate(for: shape, samplers: samplers) }
        if !(1...JobLimits.maxOutputScale).contains(outputScale) {
            problems.append(SpecProblem(field: "output_scale", problem: "\(outputScale) is out of range; use 1 to \(JobLimits.maxOutputScale)"))
        }
        if !problems.isEmpty { throw SpecError(problems: problems) }
        if request.withInput {
            guard let inputFrames else {
                throw SpecError(problems: [SpecProblem(field: "with_input", problem: "is set but no input video was given")])
            }
            let available = try inputFrames(spec, lengthFromInput ? JobLimits.maxFrames : spec.frames)
            if lengthFromInput { spec.frames = available }
            guard spec.frames <= available else {
                throw SpecError(problems: [SpecProblem(field: "frames", problem: "\(spec.frames) is more than the input video has at \(spec.fps) fps (\(available))")])
            }
            try spec.validate(for: shape, samplers: samplers)
        }
        try spec.checkPrompts(with: vocabulary, maxTokens: config.text.maxTokens)
        return ResolvedJob(spec: spec, outputScale: outputScale)
    }

    private static func problems(_ body: () throws -> Void) -> [SpecProblem] {
        do { try body(); return [] } catch let error as SpecError { return error.problems } catch { return [SpecProblem(field: "spec", problem: "\(error)")] }
    }
}

extension ModelShape {
    /// What planning needs of a model's config.
    public init(_ config: ModelConfig) {
        self.init(canvasWidth: config.canvasWidth, canvasHeight: config.canvasHeight,
                  windowFrames: config.windowFrames, patch: config.patch, fps: config.fps, keyframeLayouts: config.frameStride)
    }
}

extension JobSpec {
    /// Reads every prompt the job's chunks are denoised with as the model will, so that a job
    /// no worker could start is refused when it is asked for rather than failing on every
    /// worker. A storyboard's own `prompt` only labels it (its shots' prompts joined) and is
    /// not read.
    func checkPrompts(with vocabulary: Vocabulary, maxTokens: Int) throws {
        let prompts = shots.isEmpty ? [("prompt", prompt)] : shots.enumerated().map { ("shots[\($0.offset)].prompt", $0.element.prompt) }
        for (field, prompt) in prompts {
            do {
                _ = try vocabulary.tokenize(prompt, maxTokens: maxTokens)
            } catch let error as VocabularyError {
                throw SpecError(problems: [SpecProblem(field: field + ":", problem: error.reason)])
            }
        }
    }
}
