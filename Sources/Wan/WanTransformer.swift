import Diffusion
import Foundation

/// Wan 2.1's diffusion transformer (WanTransformer3DModel): it predicts the flow velocity of a
/// latent video [C, F, H, W] at a timestep in 0...1000, conditioned on umT5 text embeddings.
///
/// Latent patches (1×2×2 by default) become tokens in (frame, row, column) order; each block runs
/// full self-attention with QK RMSNorm and 3D rotary positions, cross-attention to the text and a
/// GELU MLP, the self-attention and MLP modulated (shift, scale, gate) by the timestep through a
/// per-block table. Every size comes from transformer/config.json.
public final class WanTransformer: @unchecked Sendable {
    public let config: WanTransformerConfig
    let patchEmbed: Linear
    let time1: Linear, time2: Linear, timeProjection: Linear
    let text1: Linear, text2: Linear
    let blocks: [Block]
    let finalTable: [Float]
    let projectOut: Linear
    let rope: RotaryTable
    /// Bytes its linear layers' weights take as held (stored or int8).
    public let linearBytes: Int

    struct Block {
        let table: [Float]                  // 6 × width: shift, scale, gate (attention); shift, scale, gate (MLP)
        let selfAttention: Projections
        let crossAttention: Projections
        let crossNorm: (weight: [Float], bias: [Float])?
        let up: Linear, down: Linear
    }

    struct Projections {
        let q: Linear, k: Linear, v: Linear, out: Linear
        let normQ: [Float], normK: [Float]
    }

    public init(config: WanTransformerConfig, weights: PartWeights, path: String) throws {
        try config.validate(path)
        self.config = config
        let d = config.width, c = config.inChannels
        let patchValues = c * config.patchSize.reduce(1, *)
        let kernel = try weights.stored("patch_embedding.weight", shape: [d, c] + config.patchSize)
        patchEmbed = Linear(weight: .stored(kernel.reshaped([d, patchValues])), bias: try weights.vector("patch_embedding.bias", count: d))
        time1 = try weights.linear("condition_embedder.time_embedder.linear_1", inputs: config.freqDim, outputs: d)
        time2 = try weights.linear("condition_embedder.time_embedder.linear_2", inputs: d, outputs: d)
        timeProjection = try weights.linear("condition_embedder.time_proj", inputs: d, outputs: 6 * d)
        text1 = try weights.linear("condition_embedder.text_embedder.linear_1", inputs: config.textDim, outputs: d)
        text2 = try weights.linear("condition_embedder.text_embedder.linear_2", inputs: d, outputs: d)
        func projections(_ name: String) throws -> Projections {
            Projections(q: try weights.linear("\(name).to_q", inputs: d, outputs: d),
                        k: try weights.linear("\(name).to_k", inputs: d, outputs: d),
                        v: try weights.linear("\(name).to_v", inputs: d, outputs: d),
                        out: try weights.linear("\(name).to_out.0", inputs: d, outputs: d),
                        normQ: try weights.vector("\(name).norm_q.weight", count: d),
                        normK: try weights.vector("\(name).norm_k.weight", count: d))
        }
        blocks = try (0..<config.numLayers).map { i in
            let name = "blocks.\(i)"
            return Block(
                table: try weights.vector("\(name).scale_shift_table", count: 6 * d),
                selfAttention: try projections("\(name).attn1"),
                crossAttention: try projections("\(name).attn2"),
                crossNorm: config.crossAttnNorm ? (try weights.vector("\(name).norm2.weight", count: d),
                                                   try weights.vector("\(name).norm2.bias", count: d)) : nil,
                up: try weights.linear("\(name).ffn.net.0.proj", inputs: d, outputs: config.ffnDim),
                down: try weights.linear("\(name).ffn.net.2", inputs: config.ffnDim, outputs: d))
        }
        finalTable = try weights.vector("scale_shift_table", count: 2 * d)
        projectOut = try weights.linear("proj_out", inputs: d, outputs: config.outChannels * config.patchSize.reduce(1, *))
        rope = RotaryTable(headDim: config.attentionHeadDim, maxPositions: config.ropeMaxSeqLen)
        linearBytes = weights.linearBytes
    }

    /// Velocity for latents `x` [B, C, F, H, W] at `timesteps` (one per video, 0...1000), each
    /// video reading its own rows of `context` [B, L, text_dim]. `afterBlock` runs after each
    /// block (progress, heartbeats); `inspect`, when given, sees each block's output [B·tokens, width].
    public func velocity(_ x: Tensor, timesteps: [Float], context: Tensor, afterBlock: () -> Void = {},
                         inspect: ((Int, Tensor) -> Void)? = nil) -> Tensor {
        precondition(x.shape.count == 5 && x.shape[1] == config.inChannels, "latents must be [B, \(config.inChannels), F, H, W]")
        let (batch, frames, height, width) = (x.shape[0], x.shape[2], x.shape[3], x.shape[4])
        precondition(timesteps.count == batch && context.shape.count == 3 && context.shape[0] == batch && context.shape[2] == config.textDim,
                     "one timestep and one [L, text_dim] context per video")
        let (pt, ph, pw) = (config.patchSize[0], config.patchSize[1], config.patchSize[2])
        precondition(frames % pt == 0 && height % ph == 0 && width % pw == 0, "latent size must be a multiple of the patch size")
        let grid = (frames / pt, height / ph, width / pw)
        precondition(max(grid.0, grid.1, grid.2) <= config.ropeMaxSeqLen, "latent grid past rope_max_seq_len")
        let tokens = grid.0 * grid.1 * grid.2
        let rows = batch * tokens
        let d = config.width
        let textRows = context.shape[1]

        var h = patchEmbed.apply(Self.patchify(x, patch: config.patchSize), rows: rows)

        // Timestep: sinusoids -> MLP (temb), and temb -> the six modulation vectors of each block.
        let temb = time2.apply(Self.silu(time1.apply(Self.sinusoids(timesteps, width: config.freqDim), rows: batch)), rows: batch)
        let modulation = timeProjection.apply(Self.silu(temb), rows: batch)
        // Text: a GELU MLP into the model's width.
        var projectedText = text1.apply(context.reshaped([batch * textRows, config.textDim]), rows: batch * textRows)
        let textValues = projectedText.count
        projectedText.withUnsafeMutablePointer { Kernels.gelu($0, count: textValues) }
        let text = text2.apply(projectedText, rows: batch * textRows)
        let angles = rope.angles(grid: grid)

        var normed = Tensor.uninitialized([rows, d])
        var update = Tensor.uninitialized([rows, d])
        var q = Tensor.uninitialized([rows, d]), k = Tensor.uninitialized([rows, d]), v = Tensor.uninitialized([rows, d])
        var mixed = Tensor.uninitialized([rows, d])
        var hidden = Tensor.uninitialized([rows, config.ffnDim])
        var textK = Tensor.uninitialized([batch * textRows, d]), textV = Tensor.uninitialized([batch * textRows, d])
        var tables = [Float](repeating: 0, count: batch * 6 * d)
        let eps = Float(config.eps)
        let selfLayout = SelfAttention.Layout(sequences: batch, length: tokens, firstRow: { $0 * tokens }, rowStride: 1)

        for (index, block) in blocks.enumerated() {
            // Per video: the block's table plus the timestep's projection.
            modulation.withUnsafePointer { m in
                for b in 0..<batch { for j in 0..<(6 * d) { tables[b * 6 * d + j] = block.table[j] + m[b * 6 * d + j] } }
            }
            h.withUnsafeMutablePointer { hp in
                normed.withUnsafeMutablePointer { np in
                    update.withUnsafeMutablePointer { up in
                        tables.withUnsafeBufferPointer { tb in
                            let t = tb.baseAddress!
                            func modulatedNorm(shift: Int, scale: Int) {
                                Kernels.layerNorm(hp, into: np, rows: rows, width: d, epsilon: eps,
                                                  affine: .modulation(shift: t + shift * d, scale: t + scale * d, stride: 6 * d, rowsPerGroup: tokens))
                            }
                            // Self-attention.
                            modulatedNorm(shift: 0, scale: 1)
                            attention(block.selfAttention, queriesFrom: np, rows: rows, keysFrom: np, keyRows: rows,
                                      rotary: angles, layout: selfLayout, keyLength: tokens, keyFirstRow: { $0 * tokens },
                                      q: &q, k: &k, v: &v, mixed: &mixed, into: up)
                            Kernels.addGated(up, to: hp, rows: rows, width: d, gate: t + 2 * d, gateStride: 6 * d, rowsPerGroup: tokens)
                            // Cross-attention to the text.
                            if let norm = block.crossNorm {
                                norm.weight.withUnsafeBufferPointer { w in
                                    norm.bias.withUnsafeBufferPointer { bias in
                                        Kernels.layerNorm(hp, into: np, rows: rows, width: d, epsilon: eps,
                                                          affine: .weightBias(w.baseAddress!, bias.baseAddress!))
                                    }
                                }
                            } else {
                                np.update(from: hp, count: rows * d)
                            }
                            text.withUnsafePointer { tp in
                                attention(block.crossAttention, queriesFrom: np, rows: rows, keysFrom: tp, keyRows: batch * textRows,
                                          rotary: nil, layout: selfLayout, keyLength: textRows, keyFirstRow: { $0 * textRows },
                                          q: &q, k: &textK, v: &textV, mixed: &mixed, into: up)
                            }
                            Kernels.add(up, to: hp, count: rows * d)
                            // MLP.
                            modulatedNorm(shift: 3, scale: 4)
                            hidden.withUnsafeMutablePointer { fp in
                                block.up.apply(np, rows: rows, into: fp)
                                Kernels.gelu(fp, count: rows * config.ffnDim)
                                block.down.apply(fp, rows: rows, into: up)
                            }
                            Kernels.addGated(up, to: hp, rows: rows, width: d, gate: t + 5 * d, gateStride: 6 * d, rowsPerGroup: tokens)
                        }
                    }
                }
            }
            inspect?(index, h)
            afterBlock()
        }

        // Final modulation by temb itself (not its projection), then back to patches.
        temb.withUnsafePointer { tp in
            for b in 0..<batch {
                for j in 0..<d { tables[b * 2 * d + j] = finalTable[j] + tp[b * d + j] }
                for j in 0..<d { tables[b * 2 * d + d + j] = finalTable[d + j] + tp[b * d + j] }
            }
        }
        h.withUnsafePointer { hp in
            normed.withUnsafeMutablePointer { np in
                tables.withUnsafeBufferPointer { tb in
                    Kernels.layerNorm(hp, into: np, rows: rows, width: d, epsilon: eps,
                                      affine: .modulation(shift: tb.baseAddress!, scale: tb.baseAddress! + d, stride: 2 * d, rowsPerGroup: tokens))
                }
            }
        }
        let patches = projectOut.apply(normed, rows: rows)
        return Self.unpatchify(patches, batch: batch, channels: config.outChannels, grid: grid, patch: config.patchSize)
    }

    /// Projections, QK RMSNorm, optional rotary positions, attention and the output projection.
    private func attention(_ p: Projections, queriesFrom x: UnsafePointer<Float>, rows: Int,
                           keysFrom source: UnsafePointer<Float>, keyRows: Int, rotary: RotaryTable.Angles?,
                           layout: SelfAttention.Layout, keyLength: Int, keyFirstRow: @escaping (Int) -> Int,
                           q: inout Tensor, k: inout Tensor, v: inout Tensor, mixed: inout Tensor,
                           into result: UnsafeMutablePointer<Float>) {
        let d = config.width, heads = config.numAttentionHeads, eps = Float(config.eps)
        withUnsafeMutablePointers(&q, &k, &v, &mixed) { qp, kp, vp, mp in
            p.q.apply(x, rows: rows, into: qp)
            p.k.apply(source, rows: keyRows, into: kp)
            p.v.apply(source, rows: keyRows, into: vp)
            WanKernels.rmsNorm(qp, rows: rows, width: d, weight: p.normQ, epsilon: eps)
            WanKernels.rmsNorm(kp, rows: keyRows, width: d, weight: p.normK, epsilon: eps)
            if let rotary {
                rotary.apply(qp, rows: rows, heads: heads, width: d)
                rotary.apply(kp, rows: keyRows, heads: heads, width: d)
            }
            SelfAttention.attend(queries: qp, queryStride: d, keys: kp, values: vp, keyStride: d,
                                 output: mp, outputStride: d, width: d, heads: heads, layout: layout,
                                 keyLength: { _ in keyLength }, keyFirstRow: keyFirstRow, keyRowStride: 1)
            p.out.apply(mp, rows: rows, into: result)
        }
    }

    // MARK: pieces

    /// diffusers' Timesteps(flip_sin_to_cos: true, downscale_freq_shift: 0): [cos(t·f), sin(t·f)]
    /// with f_i = 10000^(−i/half), in f32 as the reference computes it.
    static func sinusoids(_ timesteps: [Float], width: Int) -> Tensor {
        let half = width / 2
        var out = Tensor(zeros: [timesteps.count, width])
        let lnPeriod = Float(log(10000.0))
        for (b, t) in timesteps.enumerated() {
            for i in 0..<half {
                let frequency = Foundation.exp(-lnPeriod * Float(i) / Float(half))
                let angle = t * frequency
                out.scalars[b * width + i] = Foundation.cos(angle)
                out.scalars[b * width + half + i] = Foundation.sin(angle)
            }
        }
        return out
    }

    static func silu(_ x: Tensor) -> Tensor {
        var y = x
        y.withUnsafeMutablePointer { Kernels.silu($0, count: x.count) }
        return y
    }

    /// [B, C, F, H, W] -> [B·tokens, C·pt·ph·pw], each row ordered (c, kt, kh, kw) as the Conv3d kernel.
    static func patchify(_ x: Tensor, patch: [Int]) -> Tensor {
        let (b, c, f, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        let (pt, ph, pw) = (patch[0], patch[1], patch[2])
        let (gf, gh, gw) = (f / pt, h / ph, w / pw)
        let values = c * pt * ph * pw
        var out = Tensor.uninitialized([b * gf * gh * gw, values])
        x.withUnsafePointer { xp in
            out.withUnsafeMutablePointer { op in
                var row = 0
                for bi in 0..<b { for fi in 0..<gf { for hi in 0..<gh { for wi in 0..<gw {
                    var j = 0
                    for ci in 0..<c { for kt in 0..<pt { for kh in 0..<ph { for kw in 0..<pw {
                        op[row * values + j] = xp[(((bi * c + ci) * f + fi * pt + kt) * h + hi * ph + kh) * w + wi * pw + kw]
                        j += 1
                    } } } }
                    row += 1
                } } } }
            }
        }
        return out
    }

    /// [B·tokens, pt·ph·pw·C] (ordered (kt, kh, kw, c), as proj_out is) -> [B, C, F, H, W].
    static func unpatchify(_ p: Tensor, batch: Int, channels: Int, grid: (Int, Int, Int), patch: [Int]) -> Tensor {
        let (pt, ph, pw) = (patch[0], patch[1], patch[2])
        let (f, h, w) = (grid.0 * pt, grid.1 * ph, grid.2 * pw)
        var out = Tensor.uninitialized([batch, channels, f, h, w])
        p.withUnsafePointer { pp in
            out.withUnsafeMutablePointer { op in
                let values = pt * ph * pw * channels
                var row = 0
                for b in 0..<batch { for gf in 0..<grid.0 { for gh in 0..<grid.1 { for gw in 0..<grid.2 {
                    var j = 0
                    for kt in 0..<pt { for kh in 0..<ph { for kw in 0..<pw { for c in 0..<channels {
                        op[(((b * channels + c) * f + gf * pt + kt) * h + gh * ph + kh) * w + gw * pw + kw] = pp[row * values + j]
                        j += 1
                    } } } }
                    row += 1
                } } } }
            }
        }
        return out
    }
}

/// Wan's 3D rotary positions: the head dimension is split into frame, row and column parts
/// (the row and column parts 2·⌊head/6⌋ each, the frame part the rest), each part rotating its
/// pairs by position · θ^(−2i/part). Angles are computed and applied in f64, as the reference does.
struct RotaryTable {
    let headDim: Int
    let parts: [Int]        // pairs per part: frame, row, column
    let frequencies: [[Double]]

    init(headDim: Int, maxPositions: Int, theta: Double = 10000) {
        self.headDim = headDim
        let spatial = 2 * (headDim / 6)
        let dims = [headDim - 2 * spatial, spatial, spatial]
        parts = dims.map { $0 / 2 }
        frequencies = dims.map { dim in (0..<(dim / 2)).map { i in 1 / pow(theta, Double(2 * i) / Double(dim)) } }
    }

    /// cos and sin of every (token, pair) for a (frames, rows, columns) token grid.
    struct Angles {
        let pairs: Int
        let cos: [Double]
        let sin: [Double]
        let tokens: Int

        /// Rotates each head of each row in place (the pairs are adjacent elements).
        func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, width: Int) {
            let headDim = 2 * pairs
            Kernels.forEachRowRange(rows, costPerRow: width * 6) { range in
                for row in range {
                    let table = (row % tokens) * pairs
                    for head in 0..<heads {
                        let base = x + row * width + head * headDim
                        for i in 0..<pairs {
                            let (a, b) = (Double(base[2 * i]), Double(base[2 * i + 1]))
                            let (c, s) = (cos[table + i], sin[table + i])
                            base[2 * i] = Float(a * c - b * s)
                            base[2 * i + 1] = Float(a * s + b * c)
                        }
                    }
                }
            }
        }
    }

    func angles(grid: (Int, Int, Int)) -> Angles {
        let pairs = headDim / 2
        let tokens = grid.0 * grid.1 * grid.2
        var cos = [Double](repeating: 0, count: tokens * pairs)
        var sin = cos
        var token = 0
        for f in 0..<grid.0 { for h in 0..<grid.1 { for w in 0..<grid.2 {
            var j = token * pairs
            for (part, position) in [f, h, w].enumerated() {
                for frequency in frequencies[part] {
                    let angle = Double(position) * frequency
                    cos[j] = Foundation.cos(angle)
                    sin[j] = Foundation.sin(angle)
                    j += 1
                }
            }
            token += 1
        } } }
        return Angles(pairs: pairs, cos: cos, sin: sin, tokens: tokens)
    }
}
