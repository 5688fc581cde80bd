import ArgumentParser
import Coordinator
import Diffusion
import Evaluation
import Foundation
import InProcessFarm
import Media
import Planning
import Wire
import Worker

/// Renders the held-out prompts of a model's world and scores each video by its frames.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score how well a model follows its prompts, on prompts it never trained on.",
        discussion: """
            Renders each held-out prompt of the model's world.json with each seed, \
            through an in-process farm, and checks in every video's frames whether the \
            named colour is present, whether its centroid moves the named way (or its \
            area grows or shrinks, or it bounces), and whether the background is the \
            named one. Prints adherence per attribute and per motion, and writes a \
            contact sheet.

            With --frames beyond the model's window, each video is rendered in \
            overlapping chunks fused as a farm fuses them, and scored window by window: \
            every consecutive window-long segment counts once, so a long video follows \
            its prompt only if it does so in every window (an object that stands still \
            for two windows fails them), not merely between its first and last frames. \
            The headline figures are those; each long video is also scored once as a \
            whole, from its first frames to its last, and reported apart.
            """)

    @Option(help: "Model name or package directory; it needs a world.json.")
    var model: String = "reel-shapes"

    @Option(help: "Denoising steps.")
    var steps: Int = 30

    @Option(help: ArgumentHelp(JobOptions.samplerHelp))
    var sampler: String?

    @Option(help: "Guidance scale (default: the model's).")
    var guidance: Float?

    @Option(help: "Frames per video (default: the model's window).")
    var frames: Int?

    @Option(help: "Frames neighbouring chunks of a long video share (default: the model's, else a quarter of its window).")
    var overlap: Int?

    @Option(help: "With --frames beyond the window: how much of the denoising the chunks redo over the layout pass; 1 renders none (default: the model's).")
    var layoutStrength: Float?

    @Option(help: "Seeds per prompt (0, 1, ...).")
    var seeds: Int = 2

    @Option(help: "Evaluate only the first N held-out prompts (default: all).")
    var limit: Int?

    @Option(help: "Contact sheet of the renders (PNG).")
    var contactSheet: String = "eval-sheet.png"

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    struct Report: Encodable {
        var model: String
        var videos, frames: Int
        /// Frames neighbouring chunks share; only a video longer than the window has chunks.
        var overlap: Int
        /// How much of the denoising the chunks redo over the layout pass; 1 when there is none.
        var layoutStrength: Float
        /// Window-long segments scored: one a video unless --frames exceeds the window.
        var segments: Int
        var steps: Int, sampler: String, guidance: Float
        var color, motion, background: Double
        var motionByKind: [String: Double]
        /// With --frames beyond the window: each video scored once more as a whole, its first
        /// frames against its last, as a video of one window is; nil otherwise.
        var wholeVideos: Adherence?
        /// Medians over objects told to move a way: how far they moved, as a share of the
        /// distance asked for (near 0 when they stay put), and how many degrees off the asked
        /// direction (about 90 when the direction is left to chance).
        var medianTravelShare: Double?
        var medianTravelAngle: Double?
        /// Every video (or window-long segment) that missed an attribute, and what was seen.
        var failures: [Failure]
    }

    struct Adherence: Encodable {
        var color, motion, background: Double

        init(_ scores: [Scorer.Score]) {
            let fraction = { (keep: (Scorer.Score) -> Bool) in Double(scores.filter(keep).count) / Double(scores.count) }
            color = fraction(\.color); motion = fraction(\.motion); background = fraction(\.background)
        }
    }

    struct Failure: Encodable {
        var prompt: String
        var seed: Int
        /// The segment's first frame; 0 for a video of one window.
        var firstFrame: Int
        var missed: [String]
        var seen: String

        /// The attributes `score` missed, or nil when it missed none.
        init?(prompt: String, seed: Int, firstFrame: Int, score: Scorer.Score) {
            missed = [("colour", score.color), ("motion", score.motion), ("background", score.background)].filter { !$0.1 }.map(\.0)
            guard !missed.isEmpty else { return nil }
            self.prompt = prompt; self.seed = seed; self.firstFrame = firstFrame; seen = score.seen
        }
    }

    func run() throws {
        LogSetup.start(level: .warning)
        try OutputPath.check(contactSheet, extension: "png", flag: "--contact-sheet")
        let loaded = try Model(named: model)
        let world = try World.load(package: loaded.directory)
        let prompts = Array(world.heldout.prefix(limit ?? world.heldout.count))
        guard !prompts.isEmpty, seeds >= 1 else { throw UserError("nothing to evaluate: no held-out prompts or --seeds below 1") }
        let expectations = try prompts.map(world.expectation)
        let scorer = Scorer(world: world)
        let window = loaded.config.windowFrames
        let length = try frames.map { try Render.positive($0, "--frames") } ?? window
        let steps = try Render.positive(steps, "--steps")
        if let overlap, overlap < 0 || overlap > Int(UInt32.max) { throw UserError("--overlap \(overlap) is out of range; use 0 to the window - 1") }
        guard length <= JobLimits.maxFrames, steps <= JobLimits.maxSteps else {
            throw UserError("--frames at most \(JobLimits.maxFrames) and --steps at most \(JobLimits.maxSteps)")
        }
        // Every render but for its prompt and seed; resolved and checked as a farm would.
        let request = Reel_V1_JobSpec.with {
            $0.prompt = prompts[0]; $0.model = model; $0.steps = UInt32(steps); $0.frames = UInt32(length)
            if let overlap { $0.overlap = UInt32(overlap) }
            if let sampler { $0.sampler = sampler }
            if let guidance { $0.guidance = guidance }
            if let layoutStrength { $0.layoutStrength = layoutStrength }
            $0.outputScale = 1
        }
        let spec = try SpecResolver(model: loaded).resolve(request).spec

        let cores = ProcessInfo.processInfo.activeProcessorCount
        ComputeThreads.set(1)
        let work = WorkDirectory(prefix: "reel-eval")
        defer { work.remove() }
        let directory = work.path
        let farm = try LocalFarm(workerCount: cores, library: ModelLibrary(names: [loaded.name], preloaded: [loaded]), dataDirectory: directory)
        defer { farm.stop() }
        let client = try FarmClient(context: farm.context, endpoint: farm.endpoint, timeoutSeconds: 60)
        let jobs = try prompts.indices.flatMap { p in
            try (0..<seeds).map { seed in
                var job = request
                job.prompt = prompts[p]; job.seed = UInt64(seed)
                return (p, seed, try client.submit(job))
            }
        }
        var scores: [(prompt: Int, seed: Int, firstFrame: Int, score: Scorer.Score)] = []
        var videos: [RGBVideo] = [], wholeVideoScores: [Scorer.Score] = []
        let display = ProgressDisplay(label: "eval", unit: "video")
        let clock = ContinuousClock(), start = clock.now
        for (index, (p, seed, id)) in jobs.enumerated() {
            let status = try client.wait(for: id, interval: 0.1)
            guard status.state == .done else { throw UserError("render of '\(prompts[p])' \(status.state.word): \(status.error)") }
            let path = "\(directory)/\(id).mp4"
            try client.fetch(id).video.write(to: URL(fileURLWithPath: path))
            let video = try VideoDecoder.read(path, width: world.canvas, height: world.canvas).video
            videos.append(video)
            for (firstFrame, segment) in Self.segments(of: video, window: window) {
                scores.append((p, seed, firstFrame, scorer.score(segment, against: expectations[p])))
            }
            if video.frameCount > window {
                wholeVideoScores.append(scorer.score(Scorer.Frames(video, frames: 0..<video.frameCount), against: expectations[p]))
            }
            display.update(done: index + 1, total: jobs.count, seconds: (clock.now - start).seconds)
        }
        try writeSheet(videos)

        let overall = Adherence(scores.map(\.score))
        var byKind: [String: Double] = [:]
        for motion in Set(expectations.map(\.motion)) {
            let subset = scores.filter { expectations[$0.prompt].motion == motion }
            byKind[motion] = Double(subset.filter(\.score.motion).count) / Double(subset.count)
        }
        let report = Report(model: loaded.name, videos: jobs.count, frames: length, overlap: spec.overlap,
                            layoutStrength: spec.layoutSteps > 0 ? spec.layoutStrength : 1, segments: scores.count, steps: steps, sampler: spec.sampler, guidance: spec.guidance,
                            color: overall.color, motion: overall.motion, background: overall.background, motionByKind: byKind,
                            wholeVideos: wholeVideoScores.isEmpty ? nil : Adherence(wholeVideoScores),
                            medianTravelShare: Self.median(scores.compactMap(\.score.travel?.share)),
                            medianTravelAngle: Self.median(scores.compactMap(\.score.travel?.angle)),
                            failures: scores.compactMap { Failure(prompt: prompts[$0.prompt], seed: $0.seed, firstFrame: $0.firstFrame, score: $0.score) })
        print(json ? Bench.json(report) : table(report))
    }

    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted(), middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Consecutive window-long segments of `video` with their first frames, the last one ending
    /// at its end; a video no longer than the window is one segment.
    static func segments(of video: RGBVideo, window: Int) -> [(firstFrame: Int, frames: Scorer.Frames)] {
        let count = video.frameCount
        var starts = Array(stride(from: 0, through: count - window, by: window))
        if starts.isEmpty { starts = [0] } else if starts.last! + window < count { starts.append(count - window) }
        return starts.map { start in
            (start, Scorer.Frames(video, frames: start..<min(count, start + window)))
        }
    }

    func writeSheet(_ videos: [RGBVideo]) throws {
        // One row per video (up to 32), eight frames spread over it.
        let rows = videos.prefix(32).map { video -> RGBVideo in
            let picked = (0..<8).flatMap { Array(video.frame($0 * (video.frameCount - 1) / 7)) }
            return RGBVideo(width: video.width, height: video.height, pixels: picked)
        }
        let strip = rows.reduce(into: [UInt8]()) { $0 += $1.pixels }
        let frames = RGBVideo(width: rows[0].width, height: rows[0].height, pixels: strip)
        try StillImages.writeContactSheet(frames, to: contactSheet, columns: 8, maxFrames: frames.frameCount)
    }

    func table(_ r: Report) -> String {
        let percent = { (value: Double) in String(format: "%5.1f%%", value * 100) }
        let layout = r.layoutStrength < 1 ? ", layout pass at \(r.layoutStrength)" : ""
        let scored = r.segments == r.videos ? "" : ", overlap \(r.overlap)\(layout), scored as \(r.segments) window-long segments"
        let videos = r.videos == 1 ? "1 video" : "\(r.videos) videos"
        var lines = ["eval: \(r.model), \(videos) of \(r.frames) frames (held-out prompts x seeds\(scored)), \(r.steps) \(r.sampler) steps, guidance \(r.guidance)",
                     "colour      \(percent(r.color))", "motion      \(percent(r.motion))", "background  \(percent(r.background))",
                     "motion by kind:"]
        lines += r.motionByKind.keys.sorted().map { "  \($0.padding(toLength: 22, withPad: " ", startingAt: 0)) \(percent(r.motionByKind[$0]!))" }
        if let whole = r.wholeVideos {
            lines.append("whole videos, each scored once from its first frames to its last as a one-window video is:")
            lines += ["  colour      \(percent(whole.color))", "  motion      \(percent(whole.motion))", "  background  \(percent(whole.background))"]
        }
        if let share = r.medianTravelShare, let angle = r.medianTravelAngle {
            lines.append(String(format: "travel      %5.1f%% of the asked distance, %.0f degrees off the asked direction", share * 100, angle)
                         + " (medians over objects told to move a way)")
        }
        if !r.failures.isEmpty { lines.append("missed (\(r.failures.count) of \(r.segments)):") }
        lines += r.failures.map { f in
            let place = r.segments == r.videos ? "" : ", frames \(f.firstFrame)+"
            return "  \(f.missed.joined(separator: ", ")): '\(f.prompt)' seed \(f.seed)\(place): \(f.seen)"
        }
        lines.append("contact sheet: \(contactSheet)")
        return lines.joined(separator: "\n")
    }
}

extension Scorer.Frames {
    /// The frames `frames` of a rendered video, as the scorer reads them.
    init(_ video: RGBVideo, frames: Range<Int>) {
        self.init(width: video.width, height: video.height,
                  pixels: Array(video.pixels[frames.lowerBound * video.frameBytes..<frames.upperBound * video.frameBytes]))
    }
}
