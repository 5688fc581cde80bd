import ArgumentParser
import Diffusion
import Foundation
import Media
import Planning
import Coordinator

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a video from a prompt on this machine and write it as H.264 MP4.",
        discussion: """
            Options left out take the model's defaults (its canvas, window, fps, steps, sampler
            and guidance); `reel model info` lists them. The file appears only when complete.
            """)

    @Argument(help: "What the video shows, in words the model knows.")
    var prompt: String

    @Option(help: "Number of frames (default: the model's window).")
    var frames: Int?

    @Option(help: "Canvas as WIDTHxHEIGHT in model pixels, multiples of the model's patch (default: the model's canvas). Larger canvases are cut into overlapping tiles.")
    var size: String?

    @Option(help: "Frames per second of the file (default: the model's).")
    var fps: Int?

    @Option(help: "Denoising steps (default: the model's).")
    var steps: Int?

    @Option(help: "Sampler: \(Sampler.allCases.map(\.rawValue).joined(separator: ", ")) (default: the model's).")
    var sampler: String?

    @Option(help: "Classifier-free guidance scale; 1 follows the prompt without guidance (default: the model's).")
    var guidance: Float?

    @Option(help: "Noise seed; the same seed and options render the same video.")
    var seed: UInt64 = 0

    @Option(help: "Timestep shift; above 1 spends more steps at high noise (default: the model's).")
    var shift: Float?

    @Option(help: "Frames per temporal chunk, at most the model's window (default: the window). Longer videos are cut into overlapping chunks denoised together.")
    var window: Int?

    @Option(help: "Frames shared by neighbouring chunks (default: a quarter of the window).")
    var overlap: Int?

    @Option(help: "Steps between fusions of neighbouring chunks and tiles.")
    var syncInterval: Int = 1

    @Option(help: "Model name or package directory.")
    var model: String = ModelPackage.defaultModel

    @Option(help: "Enlarge each frame N times in the file (libswscale, bicubic).")
    var scale: Int = 4

    @Option(name: [.short, .customLong("output")], help: "Output MP4 path.")
    var output: String = "out.mp4"

    @Option(help: "Also write a contact sheet (a PNG grid of the frames) here.")
    var contactSheet: String?

    @Option(help: "Also write every frame as PNG into this directory.")
    var framesDir: String?

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    func run() throws {
        if let threads { ComputeThreads.set(try RenderRequest.positive(threads, "--threads")) }
        let request = try RenderRequest(self)
        let video = try request.render()
        try request.write(video)
    }
}

/// A render, checked: every option validated and the model loaded before any work starts.
struct RenderRequest {
    let model: Model
    let spec: JobSpec
    let encode: EncodeOptions
    let command: Render

    init(_ command: Render) throws {
        self.command = command
        try Self.checkOutput(command.output, extension: "mp4", flag: "--output")
        if let sheet = command.contactSheet { try Self.checkOutput(sheet, extension: "png", flag: "--contact-sheet") }
        model = try Model(named: command.model)
        let config = model.config
        let (width, height) = try command.size.map(Self.parseSize) ?? (config.canvasWidth, config.canvasHeight)
        let window = command.window ?? config.windowFrames
        spec = JobSpec(prompt: command.prompt, model: model.name, frames: command.frames ?? config.windowFrames,
                       width: width, height: height, fps: command.fps ?? config.fps,
                       steps: command.steps ?? config.defaults.steps, sampler: command.sampler ?? config.defaults.sampler,
                       guidance: command.guidance ?? config.defaults.guidance, shift: command.shift ?? config.defaults.shift,
                       seed: command.seed, window: window, overlap: command.overlap ?? min(window - 1, ModelShape(config).defaultOverlap),
                       syncInterval: command.syncInterval)
        do {
            try spec.validate(for: ModelShape(config))
        } catch let error as SpecError {
            throw UserError(error.problems.map { "\(Self.flag(for: $0.field)) \($0.problem)" }.joined(separator: "; "))
        }
        encode = EncodeOptions(fps: spec.fps, scale: command.scale)
        try encode.validate(width: width, height: height, frames: spec.frames)
        _ = try model.textEncoder.encode(command.prompt)  // unknown words fail now, not after loading everything
    }

    /// The command-line flag that sets a spec field.
    static func flag(for field: String) -> String {
        switch field {
        case "width", "height": return "--size \(field)"
        case "sync_interval": return "--sync-interval"
        default: return "--\(field)"
        }
    }

    func render() throws -> RGBVideo {
        let s = spec
        let plan = RenderPlan(spec: s, model: ModelShape(model.config))
        FileHandle.standardError.write(Data("reel: rendering \(s.frames) frames of \(s.width)x\(s.height) with \(model.name), \(s.steps) \(s.sampler) steps, guidance \(s.guidance), seed \(s.seed); \(plan.chunks.count) chunk(s) x \(plan.tileRows.count * plan.tileColumns.count) tile(s)\n".utf8))
        let display = ProgressDisplay(label: "render")
        let clock = ContinuousClock(), start = clock.now
        let frames = try LocalRenderer(model: model).render(s) { done, total in
            display.update(done: done, total: total, seconds: (clock.now - start).seconds)
        }
        return RGBVideo(planar: frames.scalars, frames: s.frames, height: s.height, width: s.width)
    }

    func write(_ video: RGBVideo) throws {
        try VideoEncoder.writeMP4(video, options: encode, to: command.output)
        let seconds = Double(video.frameCount) / Double(encode.fps)
        print("wrote \(command.output): \(video.frameCount) frames, \(video.width * encode.scale)x\(video.height * encode.scale), \(encode.fps) fps, \(String(format: "%.2f", seconds)) s")
        if let sheet = command.contactSheet {
            try StillImages.writeContactSheet(video, to: sheet)
            print("wrote \(sheet)")
        }
        if let directory = command.framesDir {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let paths = try StillImages.writeFrames(video, pattern: "\(directory)/frame-%d.png")
            print("wrote \(paths.count) frames to \(directory)")
        }
    }

    /// An output must have the right extension and sit in a directory we can write; checked
    /// before rendering so a bad path costs nothing.
    static func checkOutput(_ path: String, extension expected: String, flag: String) throws {
        let url = URL(fileURLWithPath: path)
        guard url.pathExtension.lowercased() == expected else {
            throw UserError("\(flag) \(path) must end in .\(expected)")
        }
        let directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw UserError("cannot write \(path): directory \(directory) does not exist")
        }
        guard access(directory, W_OK) == 0 else {
            throw UserError("cannot write \(path): directory \(directory) is not writable")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw UserError("cannot write \(path): it is a directory")
        }
    }

    static func parseSize(_ text: String) throws -> (Int, Int) {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]), width > 0, height > 0 else {
            throw UserError("--size \(text) is not WIDTHxHEIGHT with positive whole numbers (for example 64x64)")
        }
        return (width, height)
    }

    static func positive(_ value: Int, _ flag: String) throws -> Int {
        guard value > 0 else { throw UserError("\(flag) \(value) must be at least 1") }
        return value
    }

}
