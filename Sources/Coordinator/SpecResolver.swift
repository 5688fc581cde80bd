import Diffusion
import Families
import Media
import Planning
import Wire

/// A job as resolved: every field set and checked.
public struct ResolvedJob: Sendable, Equatable {
    public var spec: JobSpec
    /// How its file is written; not part of the latent.
    public var output: OutputOptions
    public var outputScale: Int { output.scale }
}

/// How a job's MP4 is written, beside its frames: the enlargement, the signed manifest
/// (docs/provenance.md) and a visible mark.
public struct OutputOptions: Sendable, Equatable {
    /// Times each frame is enlarged in the file.
    public var scale: Int
    public var manifest = true
    /// The manifest holds a salted hash of the prompts, not their text.
    public var privatePrompt = false
    public var watermark: String?
    /// SHA-256 of the input video's bytes as the coordinator received them.
    public var inputSha256: String?

    public init(scale: Int, manifest: Bool = true, privatePrompt: Bool = false, watermark: String? = nil, inputSha256: String? = nil) {
        self.scale = scale; self.manifest = manifest; self.privatePrompt = privatePrompt; self.watermark = watermark; self.inputSha256 = inputSha256
    }

    /// A request's options; the scale is resolved by the caller.
    init(_ request: Reel_V1_JobSpec, scale: Int) {
        self.init(scale: scale, manifest: !request.noManifest, privatePrompt: request.privatePrompt,
                  watermark: request.watermark.isEmpty ? nil : request.watermark,
                  inputSha256: request.inputSha256.isEmpty ? nil : request.inputSha256)
    }

    /// What is wrong with them for a `width` x `height` job, each naming its field.
    func problems(width: Int, height: Int) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        if privatePrompt && !manifest {
            problems.append(SpecProblem(field: "private_prompt", problem: "applies to the manifest, which no_manifest leaves out; drop one of them"))
        }
        if let watermark, let problem = Watermark.problem(with: watermark)
            ?? (try? Watermark(watermark))?.problem(width: width * scale, height: height * scale) {
            problems.append(SpecProblem(field: "watermark", problem: problem))
        }
        if let inputSha256, inputSha256.count != 64 || !inputSha256.allSatisfy(\.isHexDigit) {
            problems.append(SpecProblem(field: "input_sha256", problem: "is not 64 hexadecimal digits"))
        }
        return problems
    }
}

/// What the coordinator reads of a model to plan and check its jobs, never its weights.
public enum PlannedModel: Sendable {
    /// A pixel-space package: its config, and its vocabulary to read prompts with.
    case pixel(ModelConfig, Vocabulary)
    /// A latent model, opened with its configs only: its defaults, its schedule, and how its
    /// work splits into parts (`latentParts`, set).
    case latent(any VideoModel)

    /// Reads the model in `directory`: a reel-shapes package's config and vocabulary, or a
    /// latent family's configs.
    public init(directory: String) throws {
        if ReelShapesFamily.recognises(directory) {
            let config = try ModelPackage.readConfig(in: directory)
            self = .pixel(config, try ModelPackage.readVocabulary(named: config.vocabulary, in: directory))
            return
        }
        let model = try ModelFamilies.open(directory)
        guard model.latentParts != nil else {
            throw ModelPackageError.unreadable(path: directory, reason: "a \(model.family) model the coordinator cannot plan")
        }
        self = .latent(model)
    }

    /// The family's name, as a manifest records it.
    public var family: String {
        switch self {
        case .pixel: return ReelShapesFamily.name
        case .latent(let model): return model.family
        }
    }

    public var defaults: VideoDefaults {
        switch self {
        case .pixel(let config, _): return VideoDefaults(config: config)
        case .latent(let model): return model.defaults
        }
    }

    /// The model as a spec is checked against: windows in the frames its plan is cut in (a latent
    /// model's latent frames), sizes in pixels.
    public var shape: ModelShape {
        switch self {
        case .pixel(let config, _): return ModelShape(config)
        case .latent(let model):
            let (defaults, parts) = (model.defaults, model.latentParts!)
            return ModelShape(canvasWidth: defaults.width, canvasHeight: defaults.height, windowFrames: parts.windowFrames,
                              patch: parts.patch * parts.spatialFactor, fps: defaults.fps)
        }
    }

    /// A latent model's stages for `spec`, its decode pieces each at most `maxPieceBytes` of
    /// frames; nil for a pixel model.
    public func stages(for spec: JobSpec, maxPieceBytes: Int = LatentStages.defaultMaxPieceBytes) -> LatentStages? {
        guard case .latent(let model) = self else { return nil }
        return LatentStages(spec: spec, model: model, maxPieceBytes: maxPieceBytes)
    }

    /// The most frames a job can take of `available`: all of them for a pixel model, 1 + k·4
    /// for a latent one.
    func frames(fitting available: Int) -> Int {
        guard case .latent(let model) = self, available >= 1 else { return available }
        let t = model.latentParts!.temporalFactor
        return (available - 1) / t * t + 1
    }

    /// The weight precisions its jobs may ask for.
    public var precisions: [WeightPrecision] {
        switch self {
        case .pixel: return [.stored]
        case .latent(let model): return model.precisions
        }
    }

    /// Channels of the frames a job's input video is read as.
    public var inputChannels: Int {
        if case .pixel(let config, _) = self { return config.channels }
        return 3
    }
}

/// The one place a request becomes a spec that can be planned: fields it leaves unset take
/// their defaults (`JobDefaults`, then the model's), then every field is checked against the
/// model and `JobLimits`, and every prompt against a pixel model's vocabulary.
/// `reel render`, `reel eval` and `reel bench farm` resolve here before they submit, so a bad
/// job fails before any work, and the coordinator resolves every submission here again, since
/// whatever arrives over the network is checked where it is used.
public struct SpecResolver: Sendable {
    public let model: PlannedModel

    public init(model: PlannedModel) { self.model = model }

    public init(config: ModelConfig, vocabulary: Vocabulary) { self.init(model: .pixel(config, vocabulary)) }

    public init(model: Model) { self.init(config: model.config, vocabulary: model.vocabulary) }

    /// `inputFrames`, for a request with an input video: how many frames that video has at the
    /// resolved spec's canvas and fps, reading no more than `maxFrames` of them. It is called
    /// once the canvas and fps are known and checked, so an input is decoded only for a job that
    /// could run; a job that leaves its length unset takes the input's.
    public func resolve(_ request: Reel_V1_JobSpec,
                        inputFrames: ((_ spec: JobSpec, _ maxFrames: Int) throws -> Int)? = nil) throws -> ResolvedJob {
        var spec = JobSpec(resolving: request, with: model.defaults)
        let shape = model.shape
        let samplers = Sampler.allCases.map(\.rawValue)
        let outputScale = request.outputScale == 0 ? model.defaults.outputScale ?? JobDefaults.outputScale : Int(request.outputScale)
        let lengthFromInput = request.withInput && request.frames == 0 && request.shots.isEmpty
        if lengthFromInput { spec.frames = 1 }  // checked again once the input's length is known
        var problems = Self.problems { try spec.validate(for: shape, samplers: samplers) }
        let output = OutputOptions(request, scale: outputScale)
        if !(1...JobLimits.maxOutputScale).contains(outputScale) {
            problems.append(SpecProblem(field: "output_scale", problem: "\(outputScale) is out of range; use 1 to \(JobLimits.maxOutputScale)"))
        } else if problems.isEmpty {
            problems += output.problems(width: spec.width, height: spec.height)
        }
        let offered = model.precisions.map(\.rawValue)
        if !offered.contains(spec.weights) {
            problems.append(SpecProblem(field: "weights", problem: WeightPrecision(rawValue: spec.weights) == nil
                ? "\(spec.weights.prefix(40).debugDescription) is not a precision; use \(WeightPrecision.names)"
                : "\(spec.weights) is not offered by this model, which runs \(offered.joined(separator: " or ")); leave it out"))
        }
        problems += familyProblems(spec, request)
        if !problems.isEmpty { throw SpecError(problems: problems) }
        if request.withInput {
            guard let inputFrames else {
                throw SpecError(problems: [SpecProblem(field: "with_input", problem: "is set but no input video was given")])
            }
            let available = try inputFrames(spec, lengthFromInput ? JobLimits.maxFrames : spec.frames)
            if lengthFromInput { spec.frames = model.frames(fitting: available) }
            guard spec.frames <= available else {
                throw SpecError(problems: [SpecProblem(field: "frames", problem: "\(spec.frames) is more than the input video has at \(spec.fps) fps (\(available))")])
            }
            try spec.validate(for: shape, samplers: samplers)
        }
        if case .pixel(let config, let vocabulary) = model {
            try spec.checkPrompts(with: vocabulary, maxTokens: config.text.maxTokens)
        }
        return ResolvedJob(spec: spec, output: output)
    }

    /// What one family cannot take: a negative prompt for a pixel model; for a latent model,
    /// lengths other than 1 + k·temporalFactor frames, and what its farm path does not do yet.
    private func familyProblems(_ spec: JobSpec, _ request: Reel_V1_JobSpec) -> [SpecProblem] {
        switch model {
        case .pixel:
            return request.hasNegativePrompt ? [SpecProblem(field: "negative_prompt", problem: "is not read by this model; leave it out")] : []
        case .latent(let model):
            var problems: [SpecProblem] = []
            let t = model.latentParts!.temporalFactor
            if spec.frames >= 1, (spec.frames - 1) % t != 0 {
                problems.append(SpecProblem(field: "frames", problem: "\(spec.frames): this model takes 1 + \(t)k frames (for example \(1 + 4 * t), \(1 + 8 * t) or \(1 + 20 * t))"))
            }
            if let negative = spec.negativePrompt, negative.count > JobLimits.maxPromptCharacters {
                problems.append(SpecProblem(field: "negative_prompt", problem: "is \(negative.count) characters; at most \(JobLimits.maxPromptCharacters)"))
            }
            if !spec.shots.isEmpty {
                problems.append(SpecProblem(field: "shots", problem: "storyboards are not available for latent models yet; give one prompt"))
            }
            if spec.layoutStrength != 1 {
                problems.append(SpecProblem(field: "layout_strength", problem: "latent models render no layout pass; leave it unset"))
            }
            return problems
        }
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
