import Diffusion
import Planning

/// A job's starting latents: the seed's noise, and an input video noised to its first step.
extension JobSpec {
    /// The seed's noise over one box of the video: the step-0 latent of a region.
    public func initialNoise(_ box: Box, channels: Int) -> [Float] {
        NoiseField(seed: seed).tensor(step: 0, frames: box.frames, channels: channels,
                                      height: box.rows.count, width: box.columns.count,
                                      originY: box.rows.lowerBound, originX: box.columns.lowerBound).scalars
    }

    /// A box's latent at `firstStep`: the seed's noise for a text-only job; for an input video
    /// (planar [frames, channels, height, width] over the whole canvas), SDEdit's
    /// (1 − t)·input + t·noise at that step's time t. At strength 1 this is the noise exactly,
    /// at strength 0 the input exactly.
    public func startingLatent(_ box: Box, channels: Int, input: [Float]?) -> [Float] {
        let noise = initialNoise(box, channels: channels)
        // At strength 1 the input is ignored, and a layout pass may draw boxes it does not cover.
        guard let input, strength < 1 else { return noise }
        let whole = Box(frames: 0..<frames, rows: 0..<height, columns: 0..<width)
        let frames = Fusion.crop(input, from: whole, to: box, channels: channels)
        return noised(frames, noise: noise)
    }

    /// Clean frames noised to the flow time t of `step` (by default `firstStep`, SDEdit's):
    /// (1 − t)·frames + t·noise.
    public func noised(_ frames: [Float], noise: [Float], at step: Int? = nil) -> [Float] {
        let t = FlowSchedule(steps: steps, shift: shift).times[step ?? firstStep]
        return zip(frames, noise).map { (1 - t) * $0 + t * $1 }
    }
}
