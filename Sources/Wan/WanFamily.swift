import Diffusion
import Foundation

/// Wan 2.1 text-to-video in the Diffusers layout.
public enum WanFamily: ModelFamily {
    public static let name = "wan"

    public static func recognises(_ directory: String) -> Bool { WanModel.recognises(directory) }

    public static func open(_ directory: String) throws -> any VideoModel { try WanModel(directory: directory) }
}

extension WanModel: VideoModel {
    public var family: String { WanFamily.name }

    public var defaults: VideoDefaults {
        VideoDefaults(width: WanRequest.defaultSize.width, height: WanRequest.defaultSize.height, frames: WanRequest.defaultFrames,
                      fps: WanRequest.defaultFPS, steps: WanRequest.defaultSteps, guidance: WanRequest.defaultGuidance,
                      shift: Float(schedulerConfig.flowShift ?? 1), window: WanRequest.defaultFrames)
    }

    public func condition(on prompt: String) throws -> Tensor { try encode(prompt: prompt) }

    /// Flow time t in 0...1 is the transformer's timestep t·num_train_timesteps.
    public func velocity(_ latents: Tensor, times: [Float], conditions: [Tensor]) throws -> Tensor {
        let scale = Float(schedulerConfig.numTrainTimesteps)
        return try transformer().velocity(latents, timesteps: times.map { $0 * scale }, context: Tensor.stacked(conditions))
    }

    /// Pipeline-normalised latents to clamped frames.
    public func decode(_ latents: Tensor) throws -> Tensor {
        let video = try WanPipeline(model: self).decode(latents)
        return Tensor(shape: [video.frames, 3, video.height, video.width], scalars: video.data)
    }

    public func encode(_ frames: Tensor) throws -> Tensor {
        let vae = try vae()
        let clip = Clip(frames: frames.shape[0], channels: frames.shape[1], height: frames.shape[2], width: frames.shape[3], data: frames.scalars)
        return vae.normalize(vae.encodeMean(clip)).channelMajor
    }
}
