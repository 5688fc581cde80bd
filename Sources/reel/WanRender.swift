import Diffusion
import Foundation
import Media
import Wan

/// `reel render --model DIR` for a Wan 2.1 model: the text encoder, the transformer's guided
/// steps and the VAE run in this process (the farm's latent shards are not there yet for latent
/// models), then the frames are encoded as H.264.
struct WanRender {
    let model: WanModel
    let job: JobOptions
    let output: String
    let threads: Int?

    /// Wan's published frame rate.
    static let defaultFPS = 16

    func run() throws {
        for (flag, given) in [("--window", job.window != nil), ("--overlap", job.overlap != nil), ("--input", job.input != nil),
                              ("--strength", job.strength != nil), ("--layout-strength", job.layoutStrength != nil),
                              ("--sync-interval", job.syncInterval != nil)] where given {
            throw UserError("\(flag) is not available for Wan models yet (they render in one window, in-process); leave it out")
        }
        if let sampler = job.sampler, sampler != "unipc" {
            throw UserError("--sampler \(sampler): Wan models use their scheduler's UniPC; leave --sampler out or give unipc")
        }
        guard !JobFile.looksLikeOne(job.prompt) else {
            throw UserError("job files are not available for Wan models yet; give the prompt and options on the command line")
        }
        let size = try job.size.map(JobOptions.parseSize) ?? (WanRequest.defaultSize.width, WanRequest.defaultSize.height)
        let request = WanRequest(
            prompt: job.prompt, negativePrompt: job.negativePrompt, width: size.0, height: size.1,
            frames: job.frames ?? WanRequest.defaultFrames, steps: job.steps ?? WanRequest.defaultSteps,
            guidance: job.guidance ?? WanRequest.defaultGuidance, shift: job.shift.map(Double.init), seed: job.seed ?? JobOptions.defaultSeed)
        let pipeline = WanPipeline(model: model)
        try pipeline.validate(request)
        let fps = job.fps ?? Self.defaultFPS
        let scale = job.scale ?? 1
        let options = EncodeOptions(fps: fps, scale: scale)
        try options.validate(width: request.width, height: request.height, frames: request.frames)
        if let threads { ComputeThreads.set(try Render.positive(threads, "--threads")) }

        FileHandle.standardError.write(Data("reel: rendering \(request.frames) frames of \(request.width)x\(request.height) with \(model.name), \(request.steps) UniPC steps, guidance \(request.guidance), seed \(request.seed), on \(ComputeThreads.count) thread(s)\n".utf8))
        let clock = ContinuousClock()
        let start = clock.now
        let steps = ProgressDisplay(label: "render")
        let decoding = ProgressDisplay(label: "decode", unit: "latent frame")
        var stage = WanPipeline.Progress.Stage.text
        let video = try pipeline.generate(request) { progress in
            let seconds = (clock.now - start).seconds
            if progress.stage != stage, progress.stage != .text {
                stage = progress.stage
            }
            switch progress.stage {
            case .text:
                if progress.done == progress.total {
                    FileHandle.standardError.write(Data(String(format: "reel: prompts encoded in %.1f s\n", seconds).utf8))
                }
            case .denoise: steps.update(done: progress.done, total: progress.total, seconds: seconds)
            case .decode: decoding.update(done: progress.done, total: progress.total, seconds: seconds)
            }
        }
        let rgb = RGBVideo(planar: video.data, frames: video.frames, height: video.height, width: video.width)
        try VideoEncoder.writeMP4(rgb, options: options, to: output)
        print("wrote \(output): \(video.frames) frames, \(video.width * scale)x\(video.height * scale), \(fps) fps, "
              + String(format: "%.2f s; rendered in %.1f s", Double(video.frames) / Double(fps), (clock.now - start).seconds))
    }
}
