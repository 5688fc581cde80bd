import Foundation

/// What can be wrong with a Wan model directory, each naming the file (and field or tensor) and
/// what to do.
public enum WanModelError: Error, CustomStringConvertible, Equatable {
    case missingFile(path: String, hint: String)
    case unreadable(path: String, reason: String)
    /// A config field whose value selects code Reel does not have (or is out of range).
    case unsupported(path: String, field: String, value: String, supported: String)
    case weights(String)

    public var description: String {
        switch self {
        case .missingFile(let path, let hint): "\(path): missing; \(hint)"
        case .unreadable(let path, let reason): "\(path): \(reason)"
        case .unsupported(let path, let field, let value, let supported):
            "\(path): field \(field) is \(value); Reel supports \(supported)"
        case .weights(let message): message
        }
    }
}

/// Reads one of the model's JSON config files.
enum ConfigFile {
    static func read<T: Decodable>(_ type: T.Type, at path: String) throws -> T {
        guard FileManager.default.fileExists(atPath: path) else {
            throw WanModelError.missingFile(path: path, hint: "a Wan 2.1 Diffusers folder has model_index.json, tokenizer/, text_encoder/, transformer/, vae/ and scheduler/")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WanModelError.unreadable(path: path, reason: "cannot read the file")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw WanModelError.unreadable(path: path, reason: "missing field \(key.stringValue)")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let field = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            throw WanModelError.unreadable(path: path, reason: "field \(field): \(context.debugDescription)")
        } catch {
            throw WanModelError.unreadable(path: path, reason: "not valid JSON (\(error))")
        }
    }

    static func require(_ condition: Bool, _ path: String, _ field: String, _ value: @autoclosure () -> String,
                        supported: String) throws {
        if !condition { throw WanModelError.unsupported(path: path, field: field, value: value(), supported: supported) }
    }
}

/// transformer/config.json of WanTransformer3DModel.
public struct WanTransformerConfig: Decodable, Sendable {
    public var patchSize: [Int]
    public var numAttentionHeads: Int
    public var attentionHeadDim: Int
    public var inChannels: Int
    public var outChannels: Int
    public var textDim: Int
    public var freqDim: Int
    public var ffnDim: Int
    public var numLayers: Int
    public var crossAttnNorm: Bool
    public var qkNorm: String?
    public var eps: Double
    public var imageDim: Int?
    public var addedKvProjDim: Int?
    public var ropeMaxSeqLen: Int
    public var posEmbedSeqLen: Int?

    public var width: Int { numAttentionHeads * attentionHeadDim }

    /// FLOPs of the matrix products of one forward over `batch` videos of `tokens` patches
    /// each, reading `textTokens` rows of text: the blocks' projections, self- and
    /// cross-attention and feed-forward, and the text projection (norms, modulation and the
    /// patch embedding are left out, as overhead).
    public func flops(batch: Int, tokens: Int, textTokens: Int) -> Double {
        let (n, l, d) = (Double(tokens), Double(textTokens), Double(width))
        let perBlock = 4 * n * d * d + 2 * n * n * d      // self-attention: q, k, v, o; QK and PV
            + 2 * n * d * d + 2 * l * d * d + 2 * n * l * d  // cross-attention: q, o; k, v of the text; QK and PV
            + 2 * n * d * Double(ffnDim)                    // feed-forward
        let text = l * (Double(textDim) * d + d * d)
        return 2 * Double(batch) * (Double(numLayers) * perBlock + text)
    }

    func validate(_ path: String) throws {
        try ConfigFile.require(patchSize.count == 3 && patchSize.allSatisfy { (1...16).contains($0) }, path, "patch_size", "\(patchSize)", supported: "three sizes of 1-16")
        for (field, value, range) in [("num_attention_heads", numAttentionHeads, 1...1024), ("attention_head_dim", attentionHeadDim, 6...4096),
                                      ("in_channels", inChannels, 1...4096), ("out_channels", outChannels, 1...4096),
                                      ("text_dim", textDim, 1...65536), ("freq_dim", freqDim, 2...65536),
                                      ("ffn_dim", ffnDim, 1...1 << 20), ("num_layers", numLayers, 1...1024),
                                      ("rope_max_seq_len", ropeMaxSeqLen, 1...1 << 20)] {
            try ConfigFile.require(range.contains(value), path, field, "\(value)", supported: "\(range.lowerBound)...\(range.upperBound)")
        }
        try ConfigFile.require(attentionHeadDim % 2 == 0 && freqDim % 2 == 0, path, "attention_head_dim", "\(attentionHeadDim)", supported: "even head and frequency sizes")
        try ConfigFile.require(qkNorm == "rms_norm_across_heads", path, "qk_norm", qkNorm ?? "null", supported: "\"rms_norm_across_heads\"")
        try ConfigFile.require(imageDim == nil && addedKvProjDim == nil && posEmbedSeqLen == nil, path, "image_dim",
                               "\(imageDim.map(String.init) ?? "null")", supported: "text-to-video models only (image_dim and added_kv_proj_dim null)")
        try ConfigFile.require(eps > 0 && eps < 1, path, "eps", "\(eps)", supported: "a value in (0, 1)")
    }
}

/// text_encoder/config.json of UMT5EncoderModel.
public struct UMT5Config: Decodable, Sendable {
    public var vocabSize: Int
    public var dModel: Int
    public var dKv: Int
    public var dFf: Int
    public var numLayers: Int
    public var numHeads: Int
    public var relativeAttentionNumBuckets: Int
    public var relativeAttentionMaxDistance: Int
    public var feedForwardProj: String
    public var denseActFn: String?
    public var layerNormEpsilon: Double
    public var modelType: String?

    public var inner: Int { numHeads * dKv }

    func validate(_ path: String) throws {
        try ConfigFile.require(modelType == nil || modelType == "umt5", path, "model_type", modelType ?? "null", supported: "\"umt5\"")
        try ConfigFile.require(feedForwardProj == "gated-gelu", path, "feed_forward_proj", feedForwardProj, supported: "\"gated-gelu\"")
        try ConfigFile.require(denseActFn == nil || denseActFn == "gelu_new" || denseActFn == "gelu_pytorch_tanh", path, "dense_act_fn",
                               denseActFn ?? "null", supported: "\"gelu_new\" (the tanh GELU)")
        for (field, value, range) in [("vocab_size", vocabSize, 4...1 << 24), ("d_model", dModel, 1...65536), ("d_kv", dKv, 1...4096),
                                      ("d_ff", dFf, 1...1 << 20), ("num_layers", numLayers, 1...1024), ("num_heads", numHeads, 1...1024),
                                      ("relative_attention_num_buckets", relativeAttentionNumBuckets, 4...4096),
                                      ("relative_attention_max_distance", relativeAttentionMaxDistance, 2...1 << 20)] {
            try ConfigFile.require(range.contains(value), path, field, "\(value)", supported: "\(range.lowerBound)...\(range.upperBound)")
        }
    }
}

/// vae/config.json of AutoencoderKLWan.
public struct WanVAEConfig: Decodable, Sendable {
    public var baseDim: Int
    public var decoderBaseDim: Int?
    public var zDim: Int
    public var dimMult: [Int]
    public var numResBlocks: Int
    public var attnScales: [Double]
    public var temperalDownsample: [Bool]
    public var latentsMean: [Float]
    public var latentsStd: [Float]
    public var isResidual: Bool?
    public var inChannels: Int?
    public var outChannels: Int?
    public var patchSize: Int?
    public var scaleFactorTemporal: Int?
    public var scaleFactorSpatial: Int?

    /// Frames and pixels per latent frame and pixel.
    public var temporalFactor: Int { 1 << temperalDownsample.filter { $0 }.count }
    public var spatialFactor: Int { 1 << (dimMult.count - 1) }

    /// How many latent frames back a decoded frame can see, plus one: each causal convolution
    /// of the decoder (temporal kernel 3) reaches two frames back at its own rate, and a rate
    /// doubles at each temporal upsampling, so the reach is the sum of 2/rate over the longest
    /// chain (conv_in, the mid block, each level's residual blocks and time conv, conv_out).
    /// The one frame more covers the piece's own first frame, which the decoder takes as a
    /// video's first (not doubled). A decode that starts this far before a piece gives the
    /// piece's frames exactly as a decode of the whole video does.
    public var decoderReach: Int {
        var reach = 0               // in 1/256 latent frames: two frames at rate r are 512/r (r ≤ 128)
        var rate = 1
        func conv() { reach += 512 / rate }
        conv()                                           // conv_in
        for _ in 0..<4 { conv() }                        // the mid block's two residual blocks
        let temporalUp = Array(temperalDownsample.reversed())
        for level in dimMult.indices {
            for _ in 0..<(2 * (numResBlocks + 1)) { conv() }
            if level < dimMult.count - 1, temporalUp[level] { conv(); rate *= 2 }  // the time conv runs before the doubling
        }
        conv()                                           // conv_out
        return (reach + 255) / 256 + 1
    }

    func validate(_ path: String) throws {
        try ConfigFile.require(isResidual != true, path, "is_residual", "true", supported: "the Wan 2.1 VAE (is_residual false)")
        try ConfigFile.require(patchSize == nil, path, "patch_size", "\(patchSize ?? 0)", supported: "null (the Wan 2.1 VAE)")
        try ConfigFile.require(attnScales.isEmpty, path, "attn_scales", "\(attnScales)", supported: "[] (the Wan 2.1 VAE)")
        try ConfigFile.require((inChannels ?? 3) == 3 && (outChannels ?? 3) == 3, path, "in_channels", "\(inChannels ?? 3)", supported: "3 (RGB)")
        try ConfigFile.require((1...8).contains(dimMult.count) && dimMult.allSatisfy { (1...64).contains($0) }, path, "dim_mult", "\(dimMult)", supported: "1-8 multipliers of 1-64")
        try ConfigFile.require(temperalDownsample.count == dimMult.count - 1, path, "temperal_downsample", "\(temperalDownsample)",
                               supported: "one flag per level but the last (\(dimMult.count - 1))")
        try ConfigFile.require((1...4096).contains(baseDim) && (1...4096).contains(decoderBaseDim ?? baseDim), path, "base_dim", "\(baseDim)", supported: "1...4096")
        try ConfigFile.require((1...1024).contains(zDim), path, "z_dim", "\(zDim)", supported: "1...1024")
        try ConfigFile.require((0...16).contains(numResBlocks), path, "num_res_blocks", "\(numResBlocks)", supported: "0...16")
        try ConfigFile.require(latentsMean.count == zDim && latentsStd.count == zDim && latentsStd.allSatisfy { $0 > 0 && $0.isFinite },
                               path, "latents_std", "\(latentsStd.count) values", supported: "z_dim (\(zDim)) positive values, and as many latents_mean")
        if let scaleFactorTemporal {
            try ConfigFile.require(scaleFactorTemporal == temporalFactor, path, "scale_factor_temporal", "\(scaleFactorTemporal)", supported: "\(temporalFactor), what temperal_downsample gives")
        }
        if let scaleFactorSpatial {
            try ConfigFile.require(scaleFactorSpatial == spatialFactor, path, "scale_factor_spatial", "\(scaleFactorSpatial)", supported: "\(spatialFactor), what dim_mult gives")
        }
    }
}

/// scheduler/scheduler_config.json: the published default is flow-matching UniPC.
public struct WanSchedulerConfig: Decodable, Sendable {
    public var className: String?
    public var numTrainTimesteps: Int
    public var flowShift: Double?
    public var solverOrder: Int?
    public var solverType: String?
    public var predictionType: String?
    public var predictX0: Bool?
    public var lowerOrderFinal: Bool?
    public var useFlowSigmas: Bool?
    public var finalSigmasType: String?
    public var disableCorrector: [Int]?
    public var thresholding: Bool?
    public var useDynamicShifting: Bool?
    public var shiftTerminal: Double?
    public var useKarrasSigmas: Bool?
    public var useExponentialSigmas: Bool?
    public var useBetaSigmas: Bool?

    enum CodingKeys: String, CodingKey {
        case className = "_className"   // snake-case conversion keeps the leading underscore
        case numTrainTimesteps, flowShift, solverOrder, solverType, predictionType, predictX0, lowerOrderFinal
        case useFlowSigmas, finalSigmasType, disableCorrector, thresholding, useDynamicShifting, shiftTerminal
        case useKarrasSigmas, useExponentialSigmas, useBetaSigmas
    }

    func validate(_ path: String) throws {
        let known = ["UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler"]
        try ConfigFile.require(className == nil || known.contains(className!), path, "_class_name", className ?? "", supported: known.joined(separator: " or "))
        if className == "FlowMatchEulerDiscreteScheduler" { return }
        try ConfigFile.require(predictionType == "flow_prediction", path, "prediction_type", predictionType ?? "null", supported: "\"flow_prediction\"")
        try ConfigFile.require(useFlowSigmas == true, path, "use_flow_sigmas", "\(useFlowSigmas ?? false)", supported: "true")
        try ConfigFile.require(predictX0 ?? true, path, "predict_x0", "false", supported: "true")
        try ConfigFile.require(["bh1", "bh2"].contains(solverType ?? "bh2"), path, "solver_type", solverType ?? "", supported: "\"bh1\" or \"bh2\"")
        try ConfigFile.require((1...3).contains(solverOrder ?? 2), path, "solver_order", "\(solverOrder ?? 2)", supported: "1, 2 or 3")
        try ConfigFile.require((finalSigmasType ?? "zero") == "zero", path, "final_sigmas_type", finalSigmasType ?? "", supported: "\"zero\"")
        try ConfigFile.require(thresholding != true && useDynamicShifting != true && shiftTerminal == nil
                               && useKarrasSigmas != true && useExponentialSigmas != true && useBetaSigmas != true,
                               path, "thresholding", "set", supported: "plain flow sigmas (no thresholding, dynamic shifting, terminal shift or Karras/exponential/beta sigmas)")
        try ConfigFile.require((1...1_000_000).contains(numTrainTimesteps), path, "num_train_timesteps", "\(numTrainTimesteps)", supported: "1...1000000")
        try ConfigFile.require((flowShift ?? 1) > 0, path, "flow_shift", "\(flowShift ?? 1)", supported: "a positive number")
    }
}

/// model_index.json: which class each part is.
struct WanModelIndex: Decodable {
    var className: String?
    var transformer2: [String?]?
    var boundaryRatio: Double?

    enum CodingKeys: String, CodingKey {
        case className = "_className"
        case transformer2 = "transformer2"
        case boundaryRatio
    }
}
