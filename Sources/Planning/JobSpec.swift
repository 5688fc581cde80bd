/// What a user asks the farm to render. Every field is explicit once defaults are applied, so
/// a spec alone decides the output bits.
public struct JobSpec: Codable, Sendable, Equatable {
    public var prompt: String
    public var model: String
    public var frames: Int
    public var width: Int
    public var height: Int
    public var fps: Int
    public var steps: Int
    public var sampler: String
    public var guidance: Float
    public var shift: Float
    public var seed: UInt64
    /// Frames per temporal chunk and frames shared by neighbouring chunks.
    public var window: Int
    public var overlap: Int
    /// Steps a shard runs before its chunk is fused with its neighbours.
    public var syncInterval: Int
    public var priority: Int
    /// For a job that re-renders an input video (SDEdit): how much of the denoising to redo,
    /// from 0 (return the input) to 1 (ignore it: a text-only render). 1 without an input.
    public var strength: Float
    /// A storyboard: consecutive shots whose frames add up to `frames`; empty means `prompt`
    /// throughout.
    public var shots: [Shot] = []
    /// For a text-only job longer than one chunk: how much of the denoising its chunks redo
    /// over a layout pass (`LayoutPass`), from above 0 to 1; 1 renders no layout pass. The
    /// model's defaults set it (`layout_strength`).
    public var layoutStrength: Float = 1
    /// What guidance steers away from, for a model that reads a negative prompt (Wan); nil for
    /// one that does not.
    public var negativePrompt: String?
    /// How the model holds its linear layers' weights: the name of a precision the model
    /// offers (Diffusion's `WeightPrecision`: "stored" or "int8"). Part of the output's bits.
    public var weights: String = "stored"

    public init(prompt: String, model: String, frames: Int, width: Int, height: Int, fps: Int, steps: Int,
                sampler: String, guidance: Float, shift: Float, seed: UInt64, window: Int, overlap: Int,
                syncInterval: Int = JobDefaults.syncInterval, priority: Int = JobDefaults.priority, strength: Float = 1) {
        self.prompt = prompt; self.model = model; self.frames = frames; self.width = width; self.height = height
        self.fps = fps; self.steps = steps; self.sampler = sampler; self.guidance = guidance; self.shift = shift
        self.seed = seed; self.window = window; self.overlap = overlap; self.syncInterval = syncInterval
        self.priority = priority; self.strength = strength
    }

    /// The prompt a temporal chunk is denoised with: that of the shot its middle frame falls
    /// in. Chunks of neighbouring shots share frames, and fusion blends them there: the
    /// transition between shots.
    public func prompt(forChunk frames: Range<Int>) -> String {
        shot(forChunk: frames)?.shot.prompt ?? prompt
    }

    /// Where a chunk's window lies in the video it draws, for a model told its window's place:
    /// in a storyboard that video is the chunk's shot, whose objects start their paths, and their
    /// growth, at the shot's first frame; otherwise the whole video. A chunk that opens a shot may
    /// start in the shot before (its early frames blend with that shot's), so `firstFrame` is
    /// then negative.
    public func place(ofChunk frames: Range<Int>) -> (firstFrame: Int, videoFrames: Int) {
        guard let (shot, start) = shot(forChunk: frames) else { return (frames.lowerBound, self.frames) }
        return (frames.lowerBound - start, shot.frames)
    }

    /// The shot whose frames hold a chunk's middle frame, and that shot's first frame; nil for a
    /// job of one prompt.
    func shot(forChunk frames: Range<Int>) -> (shot: Shot, start: Int)? {
        guard !shots.isEmpty else { return nil }
        let ranges = shotRanges, index = ranges.index(holding: (frames.lowerBound + frames.upperBound - 1) / 2)
        return (shots[index], ranges[index].lowerBound)
    }

    /// The step a job's video starts from: 0 for text-only jobs; later for an input video, or a
    /// layout pass, whose noised frames stand in for the steps skipped.
    public var firstStep: Int { layoutSteps > 0 ? layoutSteps : Self.skipped(steps, redoing: strength) }

    /// Steps of the video that a layout pass stands in for; 0 when the job has none: a job of
    /// one chunk, one that re-renders an input video, or a model without `layout_strength`.
    public var layoutSteps: Int {
        guard layoutStrength < 1, strength == 1, frames > window else { return 0 }
        return Self.skipped(steps, redoing: layoutStrength)
    }

    private static func skipped(_ steps: Int, redoing share: Float) -> Int {
        steps - Int((Double(share) * Double(steps)).rounded())
    }

    /// The frames of each shot: the whole video for a job of one prompt.
    public var shotRanges: [Range<Int>] {
        guard !shots.isEmpty else { return [0..<frames] }
        var start = 0
        return shots.map { shot in
            defer { start += shot.frames }
            return start..<(start + shot.frames)
        }
    }

    /// The prompt a region is denoised with: a chunk's shot's, or for a layout window its shot's.
    public func prompt(for region: Region) -> String {
        guard let shot = region.layoutShot else { return prompt(forChunk: region.box.frames) }
        return shots.isEmpty ? prompt : shots[shot].prompt
    }

    /// Where a region's window lies in the video it draws; a layout window is its shot's
    /// keyframes, from its first frame to its last (to a model without `frame_stride`, the
    /// same place as a video one window long: the whole video).
    public func place(of region: Region) -> (firstFrame: Int, videoFrames: Int, keyframes: Bool) {
        guard let shot = region.layoutShot else {
            let chunk = place(ofChunk: region.box.frames)
            return (chunk.firstFrame, chunk.videoFrames, false)
        }
        return (0, shotRanges[shot].count, true)
    }
}

extension [Range<Int>] {
    /// The index of the range (of consecutive ones, such as a storyboard's shots) that holds
    /// `frame`; the last for a frame past them all.
    func index(holding frame: Int) -> Int {
        firstIndex { $0.contains(frame) } ?? count - 1
    }
}

/// One shot of a storyboard.
public struct Shot: Codable, Sendable, Equatable {
    public var prompt: String
    public var frames: Int

    public init(prompt: String, frames: Int) {
        self.prompt = prompt
        self.frames = frames
    }
}

/// What Planning needs to know of a model: its native canvas, window and patch.
public struct ModelShape: Sendable, Equatable {
    public var canvasWidth: Int
    public var canvasHeight: Int
    public var windowFrames: Int
    public var patch: Int
    public var fps: Int
    /// Whether the model draws a layout window as its shot's keyframes, real frames of the video
    /// (a model with `frame_stride`), so that the chunks can keep them.
    public var keyframeLayouts: Bool

    public init(canvasWidth: Int, canvasHeight: Int, windowFrames: Int, patch: Int, fps: Int, keyframeLayouts: Bool = false) {
        self.canvasWidth = canvasWidth; self.canvasHeight = canvasHeight
        self.windowFrames = windowFrames; self.patch = patch; self.fps = fps; self.keyframeLayouts = keyframeLayouts
    }
}

/// Bounds on what one job may ask for.
public enum JobLimits {
    public static let maxFrames = 10_000
    public static let maxSide = 2048
    public static let maxSteps = 1000
    public static let maxGuidance: Float = 30
    public static let maxShift: Float = 20
    public static let maxFPS = 240
    public static let maxPromptCharacters = 2000
    /// frames × width × height: bounds the latent a coordinator holds for one job (1.5 GiB).
    public static let maxSamples = 1 << 27
    public static let maxModelNameCharacters = 64
    public static let maxShots = 256
    /// Job priorities: higher runs first.
    public static let priorities = -1000...1000
    /// How many times a frame may be enlarged in the file (libswscale, bicubic).
    public static let maxOutputScale = 16

    /// A model package's name as a farm accepts it: letters, digits, '.', '_' and '-', not
    /// starting with '.', so a name can never reach outside the model directories.
    public static func isPackageName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= maxModelNameCharacters && !name.hasPrefix(".")
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) }
    }
}

/// One field of a spec that is out of bounds, with what would be accepted.
public struct SpecProblem: Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let problem: String
    public init(field: String, problem: String) { self.field = field; self.problem = problem }
    public var description: String { "\(field) \(problem)" }
}

/// Every bad field of a spec, reported together so a user can fix them in one go.
public struct SpecError: Error, Sendable, Equatable, CustomStringConvertible {
    public let problems: [SpecProblem]
    public init(problems: [SpecProblem]) { self.problems = problems }
    public var description: String { problems.map(\.description).joined(separator: "; ") }
}

extension JobSpec {
    /// Checks every field against the model and `JobLimits`, the sampler against those the
    /// diffusion core has; throws `SpecError` naming each bad one.
    public func validate(for model: ModelShape, samplers: [String]) throws {
        var problems: [SpecProblem] = []
        func check(_ ok: Bool, _ field: String, _ problem: @autoclosure () -> String) {
            if !ok { problems.append(SpecProblem(field: field, problem: problem())) }
        }
        check(prompt.count <= JobLimits.maxPromptCharacters, "prompt", "is \(prompt.count) characters; at most \(JobLimits.maxPromptCharacters)")
        if !shots.isEmpty {
            check(shots.count <= JobLimits.maxShots, "shots", "has \(shots.count) shots; at most \(JobLimits.maxShots)")
            for (index, shot) in shots.enumerated() {
                check(shot.frames >= 1, "shots[\(index)].frames", "\(shot.frames) is out of range; a shot has at least 1 frame")
                check(shot.prompt.count <= JobLimits.maxPromptCharacters, "shots[\(index)].prompt",
                      "is \(shot.prompt.count) characters; at most \(JobLimits.maxPromptCharacters)")
            }
            // Each shot's frames come from the network: summed with a check, so a hostile
            // submission is a bad field, never a trap.
            let total = shots.reduce(0 as Int?) { sum, shot in
                sum.flatMap { let (next, overflow) = $0.addingReportingOverflow(max(shot.frames, 0)); return overflow ? nil : next }
            }
            check(total == frames, "shots", "add up to \(total.map(String.init) ?? "more than \(Int.max)") frames but the job has \(frames); make them equal")
        }
        check(!self.model.isEmpty, "model", "is empty; name a model package")
        check((1...JobLimits.maxFrames).contains(frames), "frames", "\(frames) is out of range; use 1 to \(JobLimits.maxFrames)")
        for (field, value) in [("width", width), ("height", height)] {
            if !(model.patch...JobLimits.maxSide).contains(value) {
                check(false, field, "\(value) is out of range; use \(model.patch) to \(JobLimits.maxSide)")
            } else {
                check(value % model.patch == 0, field, "\(value) is not a multiple of the model's patch (\(model.patch))")
            }
        }
        // Multiplied only once each factor is in range (else it is named above), where the
        // product cannot overflow: numbers off the wire must never trap.
        if (1...JobLimits.maxFrames).contains(frames), (1...JobLimits.maxSide).contains(width), (1...JobLimits.maxSide).contains(height) {
            let samples = frames * width * height
            check(samples <= JobLimits.maxSamples, "frames",
                  "\(frames) at \(width)x\(height) is \(samples) pixels; at most \(JobLimits.maxSamples) per job (fewer frames or a smaller size)")
        }
        check((1...JobLimits.maxFPS).contains(fps), "fps", "\(fps) is out of range; use 1 to \(JobLimits.maxFPS)")
        check((1...JobLimits.maxSteps).contains(steps), "steps", "\(steps) is out of range; use 1 to \(JobLimits.maxSteps)")
        check(samplers.contains(sampler), "sampler", "\(sampler) is unknown; use one of \(samplers.joined(separator: ", "))")
        check(guidance.isFinite && (0...JobLimits.maxGuidance).contains(guidance), "guidance", "\(guidance) is out of range; use 0 to \(JobLimits.maxGuidance) (1 means no guidance)")
        check(shift.isFinite && shift > 0 && shift <= JobLimits.maxShift, "shift", "\(shift) is out of range; use above 0 to \(JobLimits.maxShift)")
        check((1...model.windowFrames).contains(window), "window", "\(window) is out of range; use 1 to the model's window (\(model.windowFrames))")
        check(overlap >= 0 && overlap < max(window, 1), "overlap", "\(overlap) is out of range; use 0 to window - 1 (\(max(window, 1) - 1))")
        check(strength.isFinite && (0...1).contains(strength), "strength", "\(strength) is out of range; use 0 (keep the input) to 1 (ignore it)")
        check(layoutStrength.isFinite && layoutStrength > 0 && layoutStrength <= 1, "layout_strength",
              "\(layoutStrength) is out of range; use above 0 to 1 (1: no layout pass)")
        check(JobLimits.priorities.contains(priority), "priority", "\(priority) is out of range; use \(JobLimits.priorities.lowerBound) to \(JobLimits.priorities.upperBound)")
        check((1...max(steps, 1)).contains(syncInterval), "sync_interval", "\(syncInterval) is out of range; use 1 to steps (\(steps))")
        if !problems.isEmpty { throw SpecError(problems: problems) }
    }
}

