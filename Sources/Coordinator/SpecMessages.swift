import Diffusion
import Planning
import Wire

/// Between Planning's JobSpec and its wire form: the one place the two are mapped, field by
/// field (SpecResolutionTests checks a round trip keeps every field).
extension JobSpec {
    /// A complete spec from a request: fields left zero (or unset) take `JobDefaults`' or
    /// `config`'s defaults. Unchecked: `SpecResolver` calls this, then checks the result.
    public init(resolving request: Reel_V1_JobSpec, with config: ModelConfig) {
        self.init(resolving: request, with: VideoDefaults(config: config))
    }

    public init(resolving request: Reel_V1_JobSpec, with defaults: VideoDefaults) {
        let window = request.window > 0 ? Int(request.window) : defaults.window
        self.init(prompt: request.prompt, model: request.model,
                  frames: request.frames > 0 ? Int(request.frames) : defaults.frames,
                  width: request.width > 0 ? Int(request.width) : defaults.width,
                  height: request.height > 0 ? Int(request.height) : defaults.height,
                  fps: request.fps > 0 ? Int(request.fps) : defaults.fps,
                  steps: request.steps > 0 ? Int(request.steps) : defaults.steps,
                  sampler: request.sampler.isEmpty ? defaults.sampler : request.sampler,
                  guidance: request.hasGuidance ? request.guidance : defaults.guidance,
                  shift: request.shift > 0 ? request.shift : defaults.shift,
                  seed: request.seed, window: window,
                  overlap: request.hasOverlap ? Int(request.overlap) : min(window - 1, defaults.overlap),
                  syncInterval: request.syncInterval > 0 ? Int(request.syncInterval) : JobDefaults.syncInterval,
                  priority: Int(request.priority),
                  strength: request.withInput ? (request.hasStrength ? request.strength : JobDefaults.strength) : 1)
        shots = request.shots.map { Shot(prompt: $0.prompt, frames: Int($0.frames)) }
        layoutStrength = request.hasLayoutStrength ? request.layoutStrength : defaults.layoutStrength
        negativePrompt = request.hasNegativePrompt ? request.negativePrompt : defaults.negativePrompt
        weights = request.weights.isEmpty ? WeightPrecision.default.rawValue : request.weights
        if request.frames == 0, !shots.isEmpty { frames = shots.reduce(0) { $0 + $1.frames } }
    }

    public func message(output: OutputOptions = OutputOptions(scale: 1)) -> Reel_V1_JobSpec {
        var m = Reel_V1_JobSpec()
        m.prompt = prompt; m.model = model; m.frames = UInt32(frames); m.width = UInt32(width); m.height = UInt32(height)
        m.fps = UInt32(fps); m.steps = UInt32(steps); m.sampler = sampler; m.guidance = guidance; m.shift = shift
        m.seed = seed; m.window = UInt32(window); m.overlap = UInt32(overlap); m.syncInterval = UInt32(syncInterval)
        m.priority = Int32(priority); m.outputScale = UInt32(output.scale); m.strength = strength; m.withInput = strength < 1
        m.layoutStrength = layoutStrength
        if let negativePrompt { m.negativePrompt = negativePrompt }
        m.weights = weights
        m.noManifest = !output.manifest
        m.privatePrompt = output.privatePrompt
        m.watermark = output.watermark ?? ""
        m.inputSha256 = output.inputSha256 ?? ""
        m.shots = shots.map { shot in Reel_V1_Shot.with { $0.prompt = shot.prompt; $0.frames = UInt32(clamping: shot.frames) } }
        return m
    }
}
