import ArgumentParser
import Coordinator
import Diffusion
import Families
import Foundation
import InProcessFarm
import Media
import Planning
import Provenance
import Wan
import Wire
import Worker

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a video on this machine, through an in-process farm, and write it as H.264 MP4.",
        discussion: """
            `reel render` starts a coordinator and local workers in this process, \
            talking over the same protocol as a farm of machines, so it renders exactly \
            what a farm would. Options left out take the model's defaults; `reel model \
            info` lists them. The file appears only when complete.
            """)

    @OptionGroup var job: JobOptions

    @Option(name: [.short, .customLong("output")], help: "Output MP4 path (default: the job file's output, or out.mp4).")
    var output: String?

    @Option(help: "Also write a contact sheet (a PNG grid of the frames) here.")
    var contactSheet: String?

    @Option(help: "Also write every frame as PNG into this directory.")
    var framesDir: String?

    @Option(help: "Compute threads in all (default: all cores).")
    var threads: Int?

    func run() throws {
        LogSetup.start(level: .warning)
        if let directory = job.model, ModelFamilies.family(of: directory) == WanFamily.self, WanRender.runsThePipeline(job) {
            let output = output ?? "out.mp4"
            try OutputPath.check(output, extension: "mp4", flag: "--output")
            guard contactSheet == nil, framesDir == nil else {
                throw UserError("--contact-sheet and --frames-dir are not available with --sampler unipc for Wan models yet; leave them out")
            }
            let weights = try job.weights.map { name in
                guard let weights = WeightPrecision(rawValue: name) else { throw UserError("--weights \(name) is not a precision; use \(WeightPrecision.names)") }
                return weights
            } ?? .default
            return try WanRender(model: try WanModel(directory: directory, weights: weights), job: job, output: output, threads: threads,
                                 directory: directory, weights: weights).run()
        }
        let (request, fileOutput) = try job.resolvedRequest()
        let output = output ?? fileOutput ?? "out.mp4"
        try OutputPath.check(output, extension: "mp4", flag: "--output")
        if let contactSheet { try OutputPath.check(contactSheet, extension: "png", flag: "--contact-sheet") }
        let directory = try ModelFamilies.locate(request.model)
        let planned = try PlannedModel(directory: directory)
        // Resolved here as the coordinator will resolve it, so a bad job fails before any work.
        var input: (bytes: Data, frames: Int)?
        let resolved = try SpecResolver(model: planned).resolve(request) { spec, _ in
            input = try job.loadInput(fps: spec.fps)
            return input!.frames
        }
        let spec = resolved.spec
        let plan = try Self.renderInProcess(request, input: input?.bytes, spec: spec, planned: planned, directory: directory,
                                            threads: threads, from: job.input, to: output)
        print("wrote \(output): \(spec.frames) frames, \(spec.width * resolved.outputScale)x\(spec.height * resolved.outputScale), \(spec.fps) fps, \(String(format: "%.2f", Double(spec.frames) / Double(spec.fps))) s")
        if resolved.output.manifest { print("signed its manifest with \(SigningKey.localPath) (`reel verify \(output)` checks it)") }
        try writeStills(of: output, width: spec.width, height: spec.height)
        if !spec.shots.isEmpty {
            print("storyboard: " + plan.chunks.enumerated().map { "chunk \($0.offset + 1) (frames \($0.element.lowerBound)-\($0.element.upperBound - 1)): \(spec.prompt(forChunk: $0.element))" }.joined(separator: "; "))
        }
    }

    /// Renders a resolved request through a coordinator and workers in this process, as a farm
    /// would, and writes its MP4 (signed with this user's key) to `output`. Returns its plan.
    static func renderInProcess(_ request: Reel_V1_JobSpec, input: Data?, spec: JobSpec, planned: PlannedModel, directory: String,
                                threads: Int?, from inputPath: String?, to output: String) throws -> RenderPlan {
        let stages = planned.stages(for: spec)
        let plan = stages.map { RenderPlan(spec: $0.latentSpec(spec), model: $0.latentShape(spec), channels: $0.parts.channels) }
            ?? RenderPlan(spec: spec, model: planned.shape)
        let model = try ModelFamilies.open(directory, weights: WeightPrecision(rawValue: spec.weights)!)

        // One worker per core, but no more workers than regions can run at once; each gets an
        // equal share of the cores. A latent model's one worker takes every core: its parts are
        // large, and one region of one window keeps them all busy.
        let cores = try threads.map { try Self.positive($0, "--threads") } ?? ProcessInfo.processInfo.activeProcessorCount
        let workers = stages == nil ? max(1, min(cores, plan.regions.count)) : 1
        ComputeThreads.set(max(1, cores / workers))
        let layout = plan.layout.map { "a layout window for each of \($0.shots.count) shot(s), then " } ?? ""
        let parts = stages.map { "\($0.prompts.count) prompt(s) to encode, " } ?? ""
        let pieces = stages.map { ", \($0.pieces.count) piece(s) to decode" } ?? ""
        let from = inputPath.map { " from \($0) at strength \(spec.strength)" } ?? ""
        FileHandle.standardError.write(Data("reel: rendering \(spec.frames) frames of \(spec.width)x\(spec.height) with \(model.name)\(from), \(spec.steps) \(spec.sampler) steps, guidance \(spec.guidance), seed \(spec.seed); \(parts)\(layout)\(plan.chunks.count) chunk(s) x \(plan.tileRows.count * plan.tileColumns.count) tile(s)\(pieces) on \(workers) local worker(s)\n".utf8))

        let work = WorkDirectory(prefix: "reel-render")
        defer { work.remove() }
        let farm = try LocalFarm(workerCount: workers, library: ModelLibrary(names: [request.model], preloaded: [model]), dataDirectory: work.path,
                                 signingKeyPath: SigningKey.localPath)
        defer { farm.stop() }
        let client = try FarmClient(context: farm.context, endpoint: farm.endpoint)
        let id = try client.submit(request, input: input ?? Data())
        let status = try client.wait(for: id, update: ProgressDisplay(label: "render", tellsWaiting: false).update)
        guard status.state == .done else { throw UserError("render \(status.state.word): \(status.error)") }
        let (_, video) = try client.fetch(id)
        try OutputPath.write(video, to: output)
        return plan
    }

    /// Contact sheet and frame PNGs, from the finished file at the model's canvas size.
    private func writeStills(of path: String, width: Int, height: Int) throws {
        guard contactSheet != nil || framesDir != nil else { return }
        let frames = try VideoDecoder.read(path, width: width, height: height).video
        if let contactSheet {
            try StillImages.writeContactSheet(frames, to: contactSheet)
            print("wrote \(contactSheet)")
        }
        if let framesDir {
            try FileManager.default.createDirectory(atPath: framesDir, withIntermediateDirectories: true)
            let paths = try StillImages.writeFrames(frames, pattern: "\(framesDir)/frame-%d.png")
            print("wrote \(paths.count) frames to \(framesDir)")
        }
    }

    static func positive(_ value: Int, _ flag: String) throws -> Int {
        guard value > 0 else { throw UserError("\(flag) \(value) must be at least 1") }
        return value
    }
}
