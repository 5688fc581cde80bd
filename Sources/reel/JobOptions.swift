import ArgumentParser
import Diffusion
import Foundation
import Media
import Planning
import Wire

/// What to render: shared by `reel render` and `reel submit`. Options left out take the
/// model's defaults, filled in wherever the model's config.json is (here or on the coordinator).
struct JobOptions: ParsableArguments {
    @Argument(help: "What the video shows, in words the model knows; or a job file (.yaml, .yml, .json) describing the whole render, storyboards included (docs/job-files.md).")
    var prompt: String

    @Option(parsing: .unconditional, help: "Number of frames (default: the model's window). Videos longer than the window are rendered as overlapping chunks.")
    var frames: Int?

    @Option(parsing: .unconditional, help: "Canvas as WIDTHxHEIGHT in model pixels, multiples of the model's patch (default: the model's canvas). Larger canvases are rendered as overlapping tiles.")
    var size: String?

    @Option(parsing: .unconditional, help: "Frames per second of the file (default: the model's).")
    var fps: Int?

    @Option(parsing: .unconditional, help: "Denoising steps (default: the model's).")
    var steps: Int?

    /// Also `reel eval`'s.
    static let samplerHelp = "Sampler: \(Sampler.allCases.map(\.rawValue).joined(separator: ", ")) (default: the model's)."

    @Option(help: ArgumentHelp(samplerHelp))
    var sampler: String?

    @Option(help: "What the video should not show, for models with a negative prompt (Wan; default: the one Wan publishes).")
    var negativePrompt: String?

    @Option(help: ArgumentHelp("How a Wan model's text encoder and transformer hold their weights: stored (as the files store them) or int8 (quantised as they load: half of BF16's memory, so Wan 14B fits 24 GiB, at a small cost in accuracy; docs/engine.md) (default: \(WeightPrecision.default.rawValue)).", valueName: "precision"))
    var weights: String?

    @Option(parsing: .unconditional, help: "Classifier-free guidance scale; 1 follows the prompt without guidance (default: the model's).")
    var guidance: Float?

    @Option(parsing: .unconditional, help: "Noise seed, a whole number from 0; the same seed and options render the same video (default: \(JobDefaults.seed)).",
            transform: JobOptions.seed(from:))
    var seed: UInt64?

    @Option(parsing: .unconditional, help: "Timestep shift; above 1 spends more steps at high noise (default: the model's).")
    var shift: Float?

    @Option(parsing: .unconditional, help: "Frames per temporal chunk, at most the model's window (default: the window).")
    var window: Int?

    @Option(parsing: .unconditional, help: "Frames shared by neighbouring chunks (default: the model's, else a quarter of the window).")
    var overlap: Int?

    @Option(parsing: .unconditional, help: "Steps between fusions of neighbouring chunks and tiles (default: \(JobDefaults.syncInterval)).")
    var syncInterval: Int?

    @Option(help: "Model name or package directory, or a Wan 2.1 Diffusers folder for `reel render` (docs/models.md) (default: \(ModelPackage.defaultModel)).")
    var model: String?

    @Option(parsing: .unconditional, help: "Enlarge each frame N times in the file, libswscale bicubic (default: \(JobDefaults.outputScale)).")
    var scale: Int?

    @Option(help: "Re-render this video (any file FFmpeg reads): it is scaled to the canvas, resampled to the fps, and denoised from its noised frames (SDEdit).")
    var input: String?

    @Option(parsing: .unconditional, help: "With --input: how much to redo, 0 keeping the input and 1 ignoring it (default: \(JobDefaults.strength)).")
    var strength: Float?

    @Option(parsing: .unconditional, help: "For a video longer than one chunk: how much of the denoising its chunks redo over a layout pass, which first renders each shot whole as one window so that the chunks agree where objects go; 1 renders no layout pass (default: the model's).")
    var layoutStrength: Float?

    @Flag(help: "Write the MP4 without its signed manifest (docs/provenance.md).")
    var noManifest = false

    @Flag(help: "Keep the prompt out of the file: the manifest holds a salted hash of it instead, which `reel verify --rerender --prompt TEXT` checks.")
    var privatePrompt = false

    @Option(help: ArgumentHelp("Draw this text into every frame's bottom-right corner, white on a dark outline, at the file's size: letters, digits, spaces and \(Watermark.punctuation.dropFirst()).", valueName: "text"))
    var watermark: String?

    /// `--seed`'s value. Numeric options take the next word whatever it looks like
    /// (`.unconditional`): `--seed -1` is a value to refuse with a reason, not a flag followed by
    /// a missing value.
    static func seed(from text: String) throws -> UInt64 {
        guard let seed = UInt64(text) else {
            throw ValidationError("a seed is a whole number from 0 to \(UInt64.max)")
        }
        return seed
    }

    // Every render option is optional, so that a flag given beside a job file is seen even
    // when its value is the default; options left out stay unset in the request, and take
    // their defaults (Planning's JobDefaults, or the model's) where the spec is resolved.

    /// Largest input file a coordinator accepts by default (its message limit is 64 MiB).
    static let maxInputBytes = 60 << 20

    /// The input video's bytes and its frame count at `fps`, read and checked here so a bad
    /// file fails before anything is sent.
    func loadInput(fps: Int) throws -> (bytes: Data, frames: Int)? {
        guard let input else { return nil }
        let strength = strength ?? JobDefaults.strength
        guard (0...1).contains(strength) else { throw UserError("--strength \(strength) is out of range; use 0 to 1") }
        guard let bytes = FileManager.default.contents(atPath: input) else {
            throw UserError("--input \(input): no such file, or not readable")
        }
        guard bytes.count <= Self.maxInputBytes else {
            throw UserError("--input \(input) is \(bytes.count >> 20) MiB; at most \(Self.maxInputBytes >> 20) MiB (shorten or re-encode it)")
        }
        do {
            let decoded = try VideoDecoder.read(input)
            return (bytes, decoded.video.resampled(from: decoded.fps, to: fps).frameCount)
        } catch {
            throw UserError("--input \(input): \(error)")
        }
    }

    /// The job as sent to a coordinator, from the command line or from a job file (which
    /// then describes the whole render), and the output path the file names, if any.
    func resolvedRequest(priority: Int = 0) throws -> (spec: Reel_V1_JobSpec, output: String?) {
        guard JobFile.looksLikeOne(prompt) else { return (try request(priority: priority), nil) }
        if let flag = renderFlagsGiven.first {
            throw UserError("\(flag) does not apply to a job file, which sets every render option itself; set it in \(prompt) or drop the flag")
        }
        let file = try JobFile(path: prompt)
        var spec = file.spec
        if spec.model.isEmpty { spec.model = ModelPackage.defaultModel }
        if spec.priority == 0 { spec.priority = try Self.priority(priority) }
        return (spec, file.outputPath)
    }

    /// Render flags given on the command line.
    var renderFlagsGiven: [String] {
        let given: [(String, Bool)] = [
            ("--frames", frames != nil), ("--size", size != nil), ("--fps", fps != nil), ("--steps", steps != nil),
            ("--sampler", sampler != nil), ("--guidance", guidance != nil), ("--seed", seed != nil), ("--shift", shift != nil),
            ("--window", window != nil), ("--overlap", overlap != nil), ("--sync-interval", syncInterval != nil),
            ("--model", model != nil), ("--scale", scale != nil), ("--input", input != nil), ("--strength", strength != nil),
            ("--layout-strength", layoutStrength != nil), ("--negative-prompt", negativePrompt != nil),
            ("--weights", weights != nil), ("--no-manifest", noManifest), ("--private-prompt", privatePrompt),
            ("--watermark", watermark != nil),
        ]
        return given.filter(\.1).map(\.0)
    }

    /// The job as sent to a coordinator: unset options stay zero or absent.
    func request(priority: Int = 0) throws -> Reel_V1_JobSpec {
        // An empty prompt would render the model's unconditional video: never what was meant.
        guard !prompt.allSatisfy(\.isWhitespace) else {
            throw UserError("prompt is empty; describe the video in words the model knows, e.g. \"a small red circle moving left on a gray background\", or give a job file")
        }
        if let scale, !(1...JobLimits.maxOutputScale).contains(scale) {
            throw UserError("--scale \(scale) is out of range; use 1 to \(JobLimits.maxOutputScale)")
        }
        return try Reel_V1_JobSpec.with { spec in
            spec.prompt = prompt
            spec.model = model ?? ModelPackage.defaultModel
            spec.frames = try Self.count(frames, "--frames")
            if let size {
                let (width, height) = try Self.parseSize(size)
                spec.width = UInt32(width)
                spec.height = UInt32(height)
            }
            spec.fps = try Self.count(fps, "--fps")
            spec.steps = try Self.count(steps, "--steps")
            spec.sampler = sampler ?? ""
            if let negativePrompt { spec.negativePrompt = negativePrompt }
            if let weights {
                guard WeightPrecision(rawValue: weights) != nil else { throw UserError("--weights \(weights) is not a precision; use \(WeightPrecision.names)") }
                spec.weights = weights
            }
            if let guidance { spec.guidance = guidance }
            if let shift {
                guard shift > 0 else { throw UserError("--shift \(shift) must be above 0") }
                spec.shift = shift
            }
            if let seed { spec.seed = seed }
            spec.window = try Self.count(window, "--window")
            if let overlap {
                guard overlap >= 0 && overlap <= Int(UInt32.max) else { throw UserError("--overlap \(overlap) is out of range; use 0 to the window - 1") }
                spec.overlap = UInt32(overlap)
            }
            spec.syncInterval = try Self.count(syncInterval, "--sync-interval")
            spec.priority = try Self.priority(priority)
            if let scale { spec.outputScale = UInt32(scale) }
            if input != nil {
                spec.withInput = true
                if let strength { spec.strength = strength }
            } else if strength != nil {
                throw UserError("--strength applies only with --input VIDEO; add --input or drop --strength")
            }
            spec.noManifest = noManifest
            spec.privatePrompt = privatePrompt
            if privatePrompt && noManifest { throw UserError("--private-prompt applies to the manifest, which --no-manifest leaves out; drop one of them") }
            if let watermark {
                if let problem = Watermark.problem(with: watermark) { throw UserError("--watermark \(problem)") }
                spec.watermark = watermark
            }
            if let layoutStrength {
                guard layoutStrength > 0 && layoutStrength <= 1 else {
                    throw UserError("--layout-strength \(layoutStrength) is out of range; use above 0 to 1 (1: no layout pass)")
                }
                spec.layoutStrength = layoutStrength
            }
        }
    }

    /// A positive count, or 0 for "not given"; zero and negatives given explicitly are errors.
    static func count(_ value: Int?, _ flag: String) throws -> UInt32 {
        guard let value else { return 0 }
        guard value >= 1 && value <= Int(UInt32.max) else { throw UserError("\(flag) \(value) is out of range; use 1 or more") }
        return UInt32(value)
    }

    /// `--priority`, bounded as the dashboard bounds it.
    static func priority(_ value: Int) throws -> Int32 {
        guard JobLimits.priorities.contains(value) else {
            throw UserError("--priority \(value) is out of range; use \(JobLimits.priorities.lowerBound) to \(JobLimits.priorities.upperBound)")
        }
        return Int32(value)
    }

    static func parseSize(_ text: String) throws -> (Int, Int) {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]), width > 0, height > 0 else {
            throw UserError("--size \(text) is not WIDTHxHEIGHT with positive whole numbers (for example 64x64)")
        }
        guard width <= JobLimits.maxSide, height <= JobLimits.maxSide else {
            throw UserError("--size \(text) is out of range; use 1 to \(JobLimits.maxSide) on each side")
        }
        return (width, height)
    }
}

/// Output paths are checked before any work, so a bad path costs nothing.
enum OutputPath {
    static func check(_ path: String, extension expected: String, flag: String) throws {
        let url = URL(fileURLWithPath: path)
        guard url.pathExtension.lowercased() == expected else { throw UserError("\(flag) \(path) must end in .\(expected)") }
        let directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw UserError("cannot write \(path): directory \(directory) does not exist")
        }
        guard access(directory, W_OK) == 0 else { throw UserError("cannot write \(path): directory \(directory) is not writable") }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw UserError("cannot write \(path): it is a directory")
        }
    }

    /// Writes bytes so the file appears only when complete.
    static func write(_ data: Data, to path: String) throws {
        try AtomicFile.write(data, to: path)
    }
}
