import CSentencePiece
import Diffusion
import Foundation

/// Writes a randomly initialised Wan 2.1 model in the published Diffusers layout, at full size
/// or tiny, so every path (loading, memory, speed) runs at real size without the download. The
/// weights are random and render noise; the files, names, shapes and configs are the real ones.
/// The tokenizer is a small SentencePiece model trained here (the published one has 256k pieces).
public enum WanSynth {
    public enum Preset: String, CaseIterable, Sendable {
        case t2v1_3B = "wan2.1-t2v-1.3b"
        case t2v14B = "wan2.1-t2v-14b"
        /// The size of the parity fixtures: for tests and quick trials.
        case tiny = "wan2.1-tiny"

        var transformer: [String: Any] {
            switch self {
            case .t2v1_3B: Self.transformer(heads: 12, ffn: 8960, layers: 30, text: 4096, freq: 256, channels: 16)
            case .t2v14B: Self.transformer(heads: 40, ffn: 13824, layers: 40, text: 4096, freq: 256, channels: 16)
            case .tiny:
                Self.transformer(heads: 2, headDim: 12, ffn: 40, layers: 2, text: 32, freq: 16, channels: 4)
            }
        }

        var textEncoder: [String: Any] {
            let tiny = self == .tiny
            return ["architectures": ["UMT5EncoderModel"], "model_type": "umt5", "vocab_size": tiny ? 150 : 256384,
                    "d_model": tiny ? 32 : 4096, "d_kv": tiny ? 8 : 64, "d_ff": tiny ? 48 : 10240,
                    "num_layers": tiny ? 2 : 24, "num_heads": tiny ? 4 : 64, "relative_attention_num_buckets": 32,
                    "relative_attention_max_distance": 128, "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new",
                    "is_gated_act": true, "layer_norm_epsilon": 1e-6, "dropout_rate": 0.0, "is_encoder_decoder": true,
                    "tie_word_embeddings": false, "pad_token_id": 0, "eos_token_id": 1, "dtype": "bfloat16"]
        }

        var vae: [String: Any] {
            let tiny = self == .tiny
            let mean: [Double] = tiny ? [0.1, -0.2, 0.3, -0.4] : [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                                                                  0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
            let std: [Double] = tiny ? [1.5, 0.8, 1.2, 2.0] : [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                                              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]
            return ["_class_name": "AutoencoderKLWan", "base_dim": tiny ? 8 : 96, "z_dim": tiny ? 4 : 16,
                    "dim_mult": tiny ? [1, 2, 2, 2] : [1, 2, 4, 4], "num_res_blocks": tiny ? 1 : 2, "attn_scales": [Double](),
                    "temperal_downsample": [false, true, true], "dropout": 0.0, "latents_mean": mean, "latents_std": std,
                    "is_residual": false, "in_channels": 3, "out_channels": 3, "scale_factor_temporal": 4, "scale_factor_spatial": 8]
        }

        static func transformer(heads: Int, headDim: Int = 128, ffn: Int, layers: Int, text: Int, freq: Int, channels: Int) -> [String: Any] {
            ["_class_name": "WanTransformer3DModel", "patch_size": [1, 2, 2], "num_attention_heads": heads,
             "attention_head_dim": headDim, "in_channels": channels, "out_channels": channels, "text_dim": text,
             "freq_dim": freq, "ffn_dim": ffn, "num_layers": layers, "cross_attn_norm": true,
             "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024]
        }
    }

    static var scheduler: [String: Any] { [
        "_class_name": "UniPCMultistepScheduler", "num_train_timesteps": 1000, "flow_shift": 3.0, "solver_order": 2,
        "solver_type": "bh2", "prediction_type": "flow_prediction", "predict_x0": true, "lower_order_final": true,
        "use_flow_sigmas": true, "final_sigmas_type": "zero", "timestep_spacing": "linspace", "disable_corrector": [Int](),
        "thresholding": false, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "steps_offset": 0,
    ] }

    static var modelIndex: [String: Any] { [
        "_class_name": "WanPipeline", "_diffusers_version": "0.42.1",
        "tokenizer": ["transformers", "T5Tokenizer"], "text_encoder": ["transformers", "UMT5EncoderModel"],
        "transformer": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"],
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
    ] }

    /// Writes `preset` into `directory` (which must not exist yet, or be empty), with the text
    /// encoder and transformer in `dtype` and the VAE in F32. `progress` hears each file.
    public static func write(_ preset: Preset, to directory: String, seed: UInt64 = 0, dtype: StoredTensor.DType = .bf16,
                             progress: (String) -> Void = { _ in }) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory), !((try? fm.contentsOfDirectory(atPath: directory))?.isEmpty ?? true) {
            throw WanPipelineError(.synthesis, "\(directory) exists and is not empty; give a new folder")
        }
        // Written beside its final name and renamed when complete: an interrupted synth leaves no
        // folder that looks like a model.
        let url = URL(fileURLWithPath: directory).standardizedFileURL
        let staging = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(UUID().uuidString.prefix(8))").path
        do {
            try writeParts(preset, to: staging, seed: seed, dtype: dtype, progress: progress)
            if fm.fileExists(atPath: directory) { try fm.removeItem(atPath: directory) }   // the empty folder it replaces
            try fm.moveItem(atPath: staging, toPath: directory)
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
    }

    private static func writeParts(_ preset: Preset, to directory: String, seed: UInt64, dtype: StoredTensor.DType,
                                   progress: (String) -> Void) throws {
        let fm = FileManager.default
        for part in ["tokenizer", "text_encoder", "transformer", "vae", "scheduler"] {
            try fm.createDirectory(atPath: "\(directory)/\(part)", withIntermediateDirectories: true)
        }
        try writeJSON(modelIndex, to: "\(directory)/model_index.json")
        try writeJSON(scheduler, to: "\(directory)/scheduler/scheduler_config.json")
        try writeJSON(preset.textEncoder, to: "\(directory)/text_encoder/config.json")
        try writeJSON(preset.transformer, to: "\(directory)/transformer/config.json")
        try writeJSON(preset.vae, to: "\(directory)/vae/config.json")
        try trainTokenizer(into: "\(directory)/tokenizer", pieces: preset == .tiny ? 150 : 1000)
        progress("tokenizer")

        // Read back through the same decoders the loader uses, so the tensor lists follow the configs.
        let model = try WanModel(directory: directory)
        let shard = 4 << 30
        try SafeTensorsStream.writeParts(textTensors(model.textConfig), dtype: dtype, seed: seed ^ 0x7E47,
                                         directory: "\(directory)/text_encoder", baseName: "model", shardBytes: shard)
        progress("text_encoder")
        try SafeTensorsStream.writeParts(transformerTensors(model.transformerConfig), dtype: dtype, seed: seed ^ 0xD17,
                                         directory: "\(directory)/transformer", baseName: "diffusion_pytorch_model", shardBytes: shard)
        progress("transformer")
        try SafeTensorsStream.writeParts(vaeTensors(model.vaeConfig), dtype: .f32, seed: seed ^ 0x7AE,
                                         directory: "\(directory)/vae", baseName: "diffusion_pytorch_model", shardBytes: shard)
        progress("vae")
    }

    static func writeJSON(_ object: [String: Any], to path: String) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data + Data("\n".utf8), to: path)
    }

    /// A small unigram SentencePiece model with T5's special ids (pad 0, eos 1, unk 2).
    static func trainTokenizer(into directory: String, pieces: Int) throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("reel-spm-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try Data((Array(repeating: corpus, count: 20).joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: "\(work)/corpus.txt"))
        let arguments = "--input=\(work)/corpus.txt --model_prefix=\(work)/spiece --vocab_size=\(pieces) --model_type=unigram "
            + "--pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1 --num_threads=1 --hard_vocab_limit=false "
            + "--character_coverage=1.0 --shuffle_input_sentence=false --minloglevel=2"
        var error = [CChar](repeating: 0, count: 512)
        guard reel_spm_train(arguments, &error, error.count) == 0 else {
            throw WanPipelineError(.synthesis, "training the tokenizer failed: " + String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: "\(work)/spiece.model")), to: "\(directory)/spiece.model")
        try writeJSON(["tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 512, "eos_token": "</s>",
                       "pad_token": "<pad>", "unk_token": "<unk>"], to: "\(directory)/tokenizer_config.json")
    }

    static let corpus = """
        a fox runs across fresh snow under a pale morning sky
        rain falls on a busy street as people hurry past with umbrellas
        a chef slices vegetables quickly on a wooden board in a busy kitchen
        a drone flies over golden wheat fields under a blue summer sky
        a girl in a yellow raincoat jumps into a puddle and laughs
        fireworks burst above a harbour full of sailing boats
        a horse gallops along the shore as the tide comes in
        an astronaut floats slowly past the window of a space station
        steam rises from a cup of coffee on a table by the window
        a city skyline at dusk with lights coming on one by one
        leaves drift down a river through an autumn forest
        a dog chases a ball across a green park on a sunny day
        """

    // MARK: tensor lists (the names and shapes the loaders read)

    typealias Entry = (name: String, shape: [Int], kind: Init)
    enum Init { case weight, bias, norm, table, embedding }

    static func textTensors(_ c: UMT5Config) -> [Entry] {
        var out: [Entry] = [("shared.weight", [c.vocabSize, c.dModel], .embedding)]
        for i in 0..<c.numLayers {
            let p = "encoder.block.\(i).layer"
            out += [("\(p).0.layer_norm.weight", [c.dModel], .norm)]
            for n in ["q", "k", "v"] { out.append(("\(p).0.SelfAttention.\(n).weight", [c.inner, c.dModel], .weight)) }
            out += [("\(p).0.SelfAttention.o.weight", [c.dModel, c.inner], .weight),
                    ("\(p).0.SelfAttention.relative_attention_bias.weight", [c.relativeAttentionNumBuckets, c.numHeads], .table),
                    ("\(p).1.layer_norm.weight", [c.dModel], .norm),
                    ("\(p).1.DenseReluDense.wi_0.weight", [c.dFf, c.dModel], .weight),
                    ("\(p).1.DenseReluDense.wi_1.weight", [c.dFf, c.dModel], .weight),
                    ("\(p).1.DenseReluDense.wo.weight", [c.dModel, c.dFf], .weight)]
        }
        out.append(("encoder.final_layer_norm.weight", [c.dModel], .norm))
        return out
    }

    static func linear(_ name: String, _ inputs: Int, _ outputs: Int) -> [Entry] {
        [("\(name).weight", [outputs, inputs], .weight), ("\(name).bias", [outputs], .bias)]
    }

    static func transformerTensors(_ c: WanTransformerConfig) -> [Entry] {
        let d = c.width
        var out: [Entry] = [("patch_embedding.weight", [d, c.inChannels] + c.patchSize, .weight), ("patch_embedding.bias", [d], .bias)]
        out += linear("condition_embedder.time_embedder.linear_1", c.freqDim, d) + linear("condition_embedder.time_embedder.linear_2", d, d)
            + linear("condition_embedder.time_proj", d, 6 * d)
            + linear("condition_embedder.text_embedder.linear_1", c.textDim, d) + linear("condition_embedder.text_embedder.linear_2", d, d)
        for i in 0..<c.numLayers {
            let p = "blocks.\(i)"
            for attention in ["attn1", "attn2"] {
                for n in ["to_q", "to_k", "to_v", "to_out.0"] { out += linear("\(p).\(attention).\(n)", d, d) }
                out += [("\(p).\(attention).norm_q.weight", [d], .norm), ("\(p).\(attention).norm_k.weight", [d], .norm)]
            }
            if c.crossAttnNorm { out += [("\(p).norm2.weight", [d], .norm), ("\(p).norm2.bias", [d], .bias)] }
            out += linear("\(p).ffn.net.0.proj", d, c.ffnDim) + linear("\(p).ffn.net.2", c.ffnDim, d)
            out.append(("\(p).scale_shift_table", [1, 6, d], .table))
        }
        out += linear("proj_out", d, c.outChannels * c.patchSize.reduce(1, *)) + [("scale_shift_table", [1, 2, d], .table)]
        return out
    }

    static func vaeTensors(_ c: WanVAEConfig) -> [Entry] {
        var out: [Entry] = []
        func conv(_ name: String, _ inputs: Int, _ outputs: Int, _ kernel: [Int]) {
            out += [("\(name).weight", [outputs, inputs] + kernel, .weight), ("\(name).bias", [outputs], .bias)]
        }
        func residual(_ name: String, _ inputs: Int, _ outputs: Int) {
            out += [("\(name).norm1.gamma", [inputs, 1, 1, 1], .norm)]
            conv("\(name).conv1", inputs, outputs, [3, 3, 3])
            out += [("\(name).norm2.gamma", [outputs, 1, 1, 1], .norm)]
            conv("\(name).conv2", outputs, outputs, [3, 3, 3])
            if inputs != outputs { conv("\(name).conv_shortcut", inputs, outputs, [1, 1, 1]) }
        }
        func middle(_ name: String, _ dim: Int) {
            residual("\(name).resnets.0", dim, dim)
            out += [("\(name).attentions.0.norm.gamma", [dim, 1, 1], .norm)]
            conv("\(name).attentions.0.to_qkv", dim, 3 * dim, [1, 1])
            conv("\(name).attentions.0.proj", dim, dim, [1, 1])
            residual("\(name).resnets.1", dim, dim)
        }
        let z = c.zDim, mult = c.dimMult
        conv("quant_conv", 2 * z, 2 * z, [1, 1, 1])
        conv("post_quant_conv", z, z, [1, 1, 1])
        // Encoder
        let enc = ([1] + mult).map { c.baseDim * $0 }
        conv("encoder.conv_in", 3, enc[0], [3, 3, 3])
        var index = 0
        for i in 0..<(enc.count - 1) {
            var inputs = enc[i]
            for _ in 0..<c.numResBlocks { residual("encoder.down_blocks.\(index)", inputs, enc[i + 1]); inputs = enc[i + 1]; index += 1 }
            if i != mult.count - 1 {
                conv("encoder.down_blocks.\(index).resample.1", enc[i + 1], enc[i + 1], [3, 3])
                if c.temperalDownsample[i] { conv("encoder.down_blocks.\(index).time_conv", enc[i + 1], enc[i + 1], [3, 1, 1]) }
                index += 1
            }
        }
        middle("encoder.mid_block", enc.last!)
        out += [("encoder.norm_out.gamma", [enc.last!, 1, 1, 1], .norm)]
        conv("encoder.conv_out", enc.last!, 2 * z, [3, 3, 3])
        // Decoder
        let base = c.decoderBaseDim ?? c.baseDim
        let dec = ([mult.last!] + mult.reversed()).map { base * $0 }
        let temporalUp = Array(c.temperalDownsample.reversed())
        conv("decoder.conv_in", z, dec[0], [3, 3, 3])
        middle("decoder.mid_block", dec[0])
        for i in 0..<(dec.count - 1) {
            var inputs = i > 0 ? dec[i] / 2 : dec[i]
            for j in 0...c.numResBlocks { residual("decoder.up_blocks.\(i).resnets.\(j)", inputs, dec[i + 1]); inputs = dec[i + 1] }
            if i != mult.count - 1 {
                conv("decoder.up_blocks.\(i).upsamplers.0.resample.1", dec[i + 1], dec[i + 1] / 2, [3, 3])
                if temporalUp[i] { conv("decoder.up_blocks.\(i).upsamplers.0.time_conv", dec[i + 1], 2 * dec[i + 1], [3, 1, 1]) }
            }
        }
        out += [("decoder.norm_out.gamma", [dec.last!, 1, 1, 1], .norm)]
        conv("decoder.conv_out", dec.last!, 3, [3, 3, 3])
        return out
    }
}

/// Writes safetensors files tensor by tensor, never holding a whole part in memory: the header
/// first (every size is known), then each tensor's values generated in slices. A part larger than
/// `shardBytes` is split into shards with an index, as the published models are.
enum SafeTensorsStream {
    static func writeParts(_ entries: [WanSynth.Entry], dtype: StoredTensor.DType, seed: UInt64,
                           directory: String, baseName: String, shardBytes: Int) throws {
        var shards: [[WanSynth.Entry]] = [[]]
        var size = 0
        for entry in entries {
            let bytes = entry.shape.reduce(1, *) * dtype.size
            if size > 0 && size + bytes > shardBytes { shards.append([]); size = 0 }
            shards[shards.count - 1].append(entry)
            size += bytes
        }
        if shards.count == 1 {
            try write(shards[0], dtype: dtype, seed: seed, to: "\(directory)/\(baseName).safetensors")
            return
        }
        var map: [String: String] = [:]
        var total = 0
        for (i, shard) in shards.enumerated() {
            let file = String(format: "%@-%05d-of-%05d.safetensors", baseName, i + 1, shards.count)
            try write(shard, dtype: dtype, seed: seed, to: "\(directory)/\(file)")
            for entry in shard { map[entry.name] = file; total += entry.shape.reduce(1, *) * dtype.size }
        }
        try WanSynth.writeJSON(["metadata": ["total_size": total], "weight_map": map],
                               to: "\(directory)/\(baseName).safetensors.index.json")
    }

    static func write(_ entries: [WanSynth.Entry], dtype: StoredTensor.DType, seed: UInt64, to path: String) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt", "reel.weights": "random", "reel.seed": "\(seed)"]]
        var offset = 0
        for entry in entries {
            let bytes = entry.shape.reduce(1, *) * dtype.size
            header[entry.name] = ["dtype": dtype.rawValue, "shape": entry.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var headerBytes = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }

        let temporary = AtomicFile.temporaryPath(for: path)
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw WanPipelineError(.synthesis, "cannot create \(temporary)")
        }
        do {
            var prefix = Data()
            withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { prefix.append(contentsOf: $0) }
            try handle.write(contentsOf: prefix + headerBytes)
            for entry in entries {
                try writeValues(entry, dtype: dtype, seed: seed, to: handle)
            }
            try handle.close()
            try AtomicFile.commit(temporary, to: path)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// Uniform values in ±1/√fan-in for weights (so activations keep their scale), ones for norms,
    /// small values for biases and tables, from a SplitMix64 stream seeded by the tensor's name.
    private static func writeValues(_ entry: WanSynth.Entry, dtype: StoredTensor.DType, seed: UInt64, to handle: FileHandle) throws {
        let count = entry.shape.reduce(1, *)
        let fanIn = max(1, entry.shape.dropFirst().reduce(1, *))
        let (center, spread): (Float, Float) = switch entry.kind {
        case .weight: (0, 1 / Float(fanIn).squareRoot())
        case .bias: (0, 0.02)
        case .norm: (1, 0.05)
        case .table: (0, 1 / Float(entry.shape.last!).squareRoot())
        case .embedding: (0, 1)
        }
        var state = seed ^ FNV1a.hash(entry.name)
        let slice = 1 << 20
        var buffer = Data(count: min(count, slice) * dtype.size)
        var done = 0
        while done < count {
            let n = min(slice, count - done)
            buffer.count = n * dtype.size
            buffer.withUnsafeMutableBytes { raw in
                for i in 0..<n {
                    state &+= 0x9E37_79B9_7F4A_7C15
                    var z = state
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    z ^= z >> 31
                    let unit = Float(z >> 40) / Float(1 << 24) * 2 - 1
                    let value = center + spread * unit
                    switch dtype {
                    case .bf16: raw.storeBytes(of: StoredTensor.bfloat16(value).littleEndian, toByteOffset: i * 2, as: UInt16.self)
                    case .f16: raw.storeBytes(of: Float16(value).bitPattern.littleEndian, toByteOffset: i * 2, as: UInt16.self)
                    default: raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
                    }
                }
            }
            try handle.write(contentsOf: buffer)
            done += n
        }
    }
}
