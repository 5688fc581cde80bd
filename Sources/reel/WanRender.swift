import Diffusion
import Foundation
import Media
import Planning
import Provenance
import Wan

/// `reel render --model DIR --sampler unipc` for a Wan 2.1 model: the reference's
/// pipeline, with the scheduler's UniPC, in this process: the text encoder, the transformer's
/// guided steps and the VAE, then the frames are encoded as H.264. Other renders of Wan take
/// the farm's path, as every render of reel-shapes does.
struct WanRender {
    let model: WanModel
    let job: JobOptions
    let output: String
    let threads: Int?
    /// The model's folder, as the manifest names it.
    let directory: String
    let weights: WeightPrecision
    /// Nothing on standard output (`reel verify --json` renders through it).
    var quiet = false

    /// The input video scaled to the canvas and resampled to `fps`, as frames in [-1, 1].
    static func readInput(_ path: String, width: Int, height: Int, fps: Int) throws -> Clip {
        guard FileManager.default.isReadableFile(atPath: path) else { throw UserError("--input \(path): no such file, or not readable") }
        do {
            let decoded = try VideoDecoder.read(path, width: width, height: height)
            let video = decoded.video.resampled(from: decoded.fps, to: fps)
            return Clip(frames: video.frameCount, channels: 3, height: height, width: width, data: video.planar())
        } catch {
            throw UserError("--input \(path): \(error)")
        }
    }

    /// Whether a render takes the reference's pipeline in this process rather than the farm's
    /// path: for the scheduler's UniPC (the farm's samplers are Reel's own).
    static func runsThePipeline(_ job: JobOptions) -> Bool { job.sampler == "unipc" }

    /// The manifest's record of this render: the request as the pipeline runs it, every field
    /// resolved, so that `reel verify --rerender` can run it again.
    private func manifestSubject(_ request: WanRequest, fps: Int, scale: Int) throws -> ManifestSubject {
        var spec = JobSpec(prompt: request.prompt, model: directory, frames: request.frames, width: request.width, height: request.height,
                           fps: fps, steps: request.steps, sampler: request.sampler?.rawValue ?? "unipc", guidance: request.guidance,
                           shift: Float(request.shift ?? model.schedulerConfig.flowShift ?? 1), seed: request.seed,
                           window: request.frames, overlap: 0, syncInterval: request.steps, strength: request.input == nil ? 1 : request.strength)
        spec.negativePrompt = request.negativePrompt
        spec.weights = weights.rawValue
        let input = try job.input.map { path in
            guard let bytes = FileManager.default.contents(atPath: path) else { throw UserError("--input \(path): no such file, or not readable") }
            return InputRecord(of: bytes)
        }
        return ManifestSubject(job: JobRecord(pipeline: "reference", spec: spec, outputScale: scale, watermark: job.watermark, privatePrompt: job.privatePrompt),
                               model: ModelRecord(name: directory, family: WanFamily.name, weights: try WeightDigests.shared.weights(in: directory)),
                               input: input, blasKernels: [BLAS.coreName])
    }

    func run() throws {
        for (flag, given) in [("--window", job.window != nil), ("--overlap", job.overlap != nil),
                              ("--layout-strength", job.layoutStrength != nil), ("--sync-interval", job.syncInterval != nil)] where given {
            throw UserError("\(flag) is not available with --sampler unipc (the reference pipeline renders one window, in one process); use the default sampler or leave it out")
        }
        var sampler: Sampler?
        if let name = job.sampler, name != "unipc" {
            guard let known = Sampler(rawValue: name) else {
                throw UserError("--sampler \(name): use unipc (the model's scheduler, the default), \(Sampler.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            sampler = known
        }
        if job.strength != nil && job.input == nil { throw UserError("--strength applies to --input; give the video to re-render") }
        guard !JobFile.looksLikeOne(job.prompt) else {
            throw UserError("job files are not available with --sampler unipc; give the prompt and options on the command line")
        }
        let size = try job.size.map(JobOptions.parseSize) ?? (WanRequest.defaultSize.width, WanRequest.defaultSize.height)
        let fps = job.fps ?? WanRequest.defaultFPS
        var request = WanRequest(
            prompt: job.prompt, negativePrompt: job.negativePrompt, width: size.0, height: size.1,
            frames: job.frames ?? WanRequest.defaultFrames, steps: job.steps ?? WanRequest.defaultSteps,
            guidance: job.guidance ?? WanRequest.defaultGuidance, shift: job.shift.map(Double.init), seed: job.seed ?? JobDefaults.seed,
            sampler: sampler, strength: job.strength ?? JobDefaults.strength)
        let pipeline = WanPipeline(model: model, releasesTextEncoder: true)
        try pipeline.validate(request)      // the size is checked before any video is scaled to it
        if let path = job.input {
            let input = try Self.readInput(path, width: size.0, height: size.1, fps: fps)
            // A re-render takes as many frames as the input has (1 + 4k of them), unless told.
            let t = model.vaeConfig.temporalFactor
            if job.frames == nil { request.frames = max(1, (input.frames - 1) / t * t + 1) }
            request.input = input
            try pipeline.validate(request)
        }
        let scale = job.scale ?? 1
        if job.privatePrompt && job.noManifest { throw UserError("--private-prompt applies to the manifest, which --no-manifest leaves out; drop one of them") }
        let watermark = try job.watermark.map { text in
            do { return try Watermark(text) } catch { throw UserError("--\(error)") }
        }
        let options = EncodeOptions(fps: fps, scale: scale, watermark: watermark)
        do {
            try options.validate(width: request.width, height: request.height, frames: request.frames)
        } catch let error as MediaError where error.description.hasPrefix("watermark") {
            throw UserError("--\(error)")
        }
        let subject = try job.noManifest ? nil : manifestSubject(request, fps: fps, scale: scale)
        if let threads { ComputeThreads.set(try Render.positive(threads, "--threads")) }

        FileHandle.standardError.write(Data("reel: rendering \(request.frames) frames of \(request.width)x\(request.height) with \(model.name)\(job.input.map { " from \($0) at strength \(request.strength)" } ?? ""), \(request.steps) \(sampler?.rawValue ?? "UniPC") steps, guidance \(request.guidance), seed \(request.seed), on \(ComputeThreads.count) thread(s)\n".utf8))
        let clock = ContinuousClock()
        let start = clock.now
        let steps = ProgressDisplay(label: "render")
        let decoding = ProgressDisplay(label: "decode", unit: "latent frame")
        // Each stage's rate is timed from the stage's own start.
        var stage = WanPipeline.Progress.Stage.text
        var stageStart = start
        let video = try pipeline.generate(request) { progress in
            if progress.stage != stage {
                stage = progress.stage
                stageStart = clock.now
            }
            let seconds = (clock.now - stageStart).seconds
            guard progress.done > 0 else { return }     // a stage's start
            switch progress.stage {
            case .text:
                if progress.done == progress.total {
                    FileHandle.standardError.write(Data(String(format: "reel: prompts encoded in %.1f s\n", (clock.now - start).seconds).utf8))
                }
            case .denoise: steps.update(done: progress.done, total: progress.total, seconds: seconds)
            case .decode: decoding.update(done: progress.done, total: progress.total, seconds: seconds)
            }
        }
        let rgb = RGBVideo(planar: video.data, frames: video.frames, height: video.height, width: video.width)
        try SignedVideo.writeMP4(rgb, options: options, to: output, subject: subject, key: try SigningKey.loadOrCreate(SigningKey.localPath), date: Date())
        guard !quiet else { return }
        if subject != nil { print("signed its manifest with \(SigningKey.localPath) (`reel verify \(output)` checks it)") }
        print("wrote \(output): \(video.frames) frames, \(video.width * scale)x\(video.height * scale), \(fps) fps, "
              + String(format: "%.2f s; rendered in %.1f s", Double(video.frames) / Double(fps), (clock.now - start).seconds))
    }
}
