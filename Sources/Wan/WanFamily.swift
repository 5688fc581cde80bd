import Diffusion
import Foundation

/// Wan 2.1 text-to-video in the Diffusers layout.
public enum WanFamily: ModelFamily {
    public static let name = "wan"

    public static func recognises(_ directory: String) -> Bool { WanModel.recognises(directory) }

    public static func open(_ directory: String, weights: WeightPrecision) throws -> any VideoModel {
        try WanModel(directory: directory, weights: weights)
    }
}

extension WanModel: VideoModel {
    public var family: String { WanFamily.name }

    public var precisions: [WeightPrecision] { WeightPrecision.allCases }

    public var defaults: VideoDefaults {
        VideoDefaults(width: WanRequest.defaultSize.width, height: WanRequest.defaultSize.height, frames: WanRequest.defaultFrames,
                      fps: WanRequest.defaultFPS, steps: WanRequest.defaultSteps, guidance: WanRequest.defaultGuidance,
                      shift: Float(schedulerConfig.flowShift ?? 1), window: WanRequest.windowLatentFrames,
                      overlap: WanRequest.defaultOverlap, sampler: Sampler.dpmpp2m.rawValue, negativePrompt: WanModel.defaultNegativePrompt,
                      outputScale: 1)
    }

    public func prepare(_ parts: [ModelPart]) throws {
        for part in parts {
            switch part {
            case .text: _ = try tokenizer(); _ = try textEncoder()
            case .dit: _ = try transformer()
            case .vae: _ = try vae()
            }
        }
    }

    /// The VAE linearised about the zero latent: the mean colour of a decoded 2x2 latent frame
    /// of zeros is the bias, and each channel's weight is how that colour moves when the
    /// channel alone is one (in the pipeline's normalised units). Seventeen tiny decodes.
    public func previewProjection() throws -> [Float]? {
        let channels = vaeConfig.zDim
        func meanColour(_ latent: [Float]) throws -> [Float] {
            let frames = try decode(Tensor(shape: [1, channels, 1, 2, 2], scalars: latent))
            let plane = frames.shape[2] * frames.shape[3]
            return (0..<3).map { k in frames.scalars[(k * plane)..<((k + 1) * plane)].reduce(0, +) / Float(plane) }
        }
        let bias = try meanColour([Float](repeating: 0, count: channels * 4))
        var weights = [[Float]](repeating: [], count: 3)
        for c in 0..<channels {
            var latent = [Float](repeating: 0, count: channels * 4)
            for i in 0..<4 { latent[c * 4 + i] = 1 }
            let colour = try meanColour(latent)
            for k in 0..<3 { weights[k].append(colour[k] - bias[k]) }
        }
        return (0..<3).flatMap { weights[$0] + [bias[$0]] }
    }

    public func weightBytes(_ part: ModelPart) -> Int {
        let folder = switch part { case .text: "text_encoder"; case .dit: "transformer"; case .vae: "vae" }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/\(folder)")) ?? []
        return files.filter { $0.hasSuffix(".safetensors") }.reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: "\(directory)/\(folder)/\(file)")[.size] as? Int) ?? 0)
        }
    }

    /// The transformer's channels, whole patches within its positions' reach, and embeddings
    /// as wide as its text projection expects.
    public func windowProblem(_ shape: [Int], conditionShape: [Int]?) -> String? {
        let c = transformerConfig, patch = c.patchSize
        guard shape.count == 4, shape.allSatisfy({ $0 > 0 }), shape[1] == c.inChannels,
              shape[0] % patch[0] == 0, shape[2] % patch[1] == 0, shape[3] % patch[2] == 0,
              max(shape[0] / patch[0], shape[2] / patch[1], shape[3] / patch[2]) <= c.ropeMaxSeqLen else {
            return "a window of \(shape) for a transformer of \(c.inChannels) channels, \(patch) patches and \(c.ropeMaxSeqLen) positions a side"
        }
        guard let conditionShape, conditionShape.count == 2, conditionShape[0] > 0, conditionShape[1] == c.textDim else {
            return "prompt embeddings of \(conditionShape.map { "\($0)" } ?? "none"); this model reads [tokens, \(c.textDim)]"
        }
        return nil
    }

    public var latentParts: LatentParts? {
        LatentParts(channels: vaeConfig.zDim, temporalFactor: vaeConfig.temporalFactor, spatialFactor: vaeConfig.spatialFactor,
                    patch: transformerConfig.patchSize[1], windowFrames: WanRequest.windowLatentFrames,
                    embeddingTokens: WanTokenizer.defaultMaxLength, embeddingWidth: textConfig.dModel,
                    decodeContext: vaeConfig.decoderReach)
    }

    /// The scheduler's sigmas (its shifted linspace from 1 to 1/num_train_timesteps, then 0).
    public func schedule(steps: Int, shift: Float) -> FlowSchedule {
        FlowSchedule(times: FlowUniPC(config: schedulerConfig, steps: steps, shift: Double(shift)).sigmas.map(Float.init))
    }

    public func unconditionalCondition() throws -> Tensor { try encode(prompt: WanModel.defaultNegativePrompt) }

    /// Flow time t is the transformer's timestep t·num_train_timesteps; the farm's frame-major
    /// window [F, C, H, W] is the transformer's [1, C, F, H, W].
    public func guidedVelocity(conditional: Tensor, unconditional: Tensor, guidance: Float, place: WindowPlace,
                               afterBlock: @escaping () -> Void) throws -> VelocityField {
        let transformer = try transformer(), scale = Float(schedulerConfig.numTrainTimesteps)
        let guided = guidance != 1
        let context = Tensor.stacked(guided ? [conditional, unconditional] : [conditional])
        return { x, t in
            transformer.guidedVelocity(x.reshaped([1] + x.shape).swappingAxes1And2(), timestep: t * scale, context: context,
                                       guidance: guidance, afterBlock: afterBlock).swappingAxes1And2().reshaped(x.shape)
        }
    }

    public func condition(on prompt: String, tick: () -> Void) throws -> Tensor { try encode(prompt: prompt, afterLayer: tick) }

    /// Flow time t in 0...1 is the transformer's timestep t·num_train_timesteps.
    public func velocity(_ latents: Tensor, times: [Float], conditions: [Tensor]) throws -> Tensor {
        let scale = Float(schedulerConfig.numTrainTimesteps)
        return try transformer().velocity(latents, timesteps: times.map { $0 * scale }, context: Tensor.stacked(conditions))
    }

    /// Pipeline-normalised latents to clamped frames.
    public func decode(_ latents: Tensor, tick: () -> Void) throws -> Tensor {
        let video = try WanPipeline(model: self).decode(latents, afterBlock: tick)
        return Tensor(shape: [video.frames, 3, video.height, video.width], scalars: video.data)
    }

    public func encode(_ frames: Tensor, tick: () -> Void) throws -> Tensor {
        let vae = try vae()
        let clip = Clip(frames: frames.shape[0], channels: frames.shape[1], height: frames.shape[2], width: frames.shape[3], data: frames.scalars)
        return vae.normalize(vae.encodeMean(clip, afterBlock: tick)).channelMajor
    }
}
