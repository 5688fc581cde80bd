import Diffusion
import Foundation

/// The umT5 text encoder (UMT5EncoderModel): token embeddings, then pre-norm blocks of
/// self-attention and a gated-GELU MLP, with T5's RMS norm (no mean, no bias) and attention that
/// is not scaled by 1/√d but biased by a learned table per layer and head, indexed by the bucket
/// of the relative position (bidirectional: half the buckets for keys after the query).
///
/// The reference pads every prompt to 512 tokens and masks the padding; the real tokens never
/// attend to it and the pipeline replaces the padding's outputs with zeros, so Reel encodes the
/// real tokens only and pads with zeros after: the same result for a fraction of the work.
public final class UMT5Encoder: @unchecked Sendable {
    public let config: UMT5Config
    let embedding: StoredTensor
    let layers: [Layer]
    let finalNorm: [Float]
    /// Bytes its linear layers' weights take as held (stored or int8).
    public let linearBytes: Int

    struct Layer {
        let attentionNorm: [Float]
        let q: Linear, k: Linear, v: Linear, o: Linear
        let positionBias: [Float]        // [buckets, heads]
        let mlpNorm: [Float]
        let gate: Linear, up: Linear, down: Linear
    }

    public init(config: UMT5Config, weights: PartWeights, path: String) throws {
        try config.validate(path)
        self.config = config
        let d = config.dModel, inner = config.inner
        let embeddingName = weights.has("shared.weight") ? "shared.weight" : "encoder.embed_tokens.weight"
        embedding = try weights.stored(embeddingName, shape: [config.vocabSize, d])
        layers = try (0..<config.numLayers).map { i in
            let name = "encoder.block.\(i).layer"
            return Layer(
                attentionNorm: try weights.vector("\(name).0.layer_norm.weight", count: d),
                q: try weights.linear("\(name).0.SelfAttention.q", inputs: d, outputs: inner, bias: false),
                k: try weights.linear("\(name).0.SelfAttention.k", inputs: d, outputs: inner, bias: false),
                v: try weights.linear("\(name).0.SelfAttention.v", inputs: d, outputs: inner, bias: false),
                o: try weights.linear("\(name).0.SelfAttention.o", inputs: inner, outputs: d, bias: false),
                positionBias: try weights.vector("\(name).0.SelfAttention.relative_attention_bias.weight",
                                                 count: config.relativeAttentionNumBuckets * config.numHeads),
                mlpNorm: try weights.vector("\(name).1.layer_norm.weight", count: d),
                gate: try weights.linear("\(name).1.DenseReluDense.wi_0", inputs: d, outputs: config.dFf, bias: false),
                up: try weights.linear("\(name).1.DenseReluDense.wi_1", inputs: d, outputs: config.dFf, bias: false),
                down: try weights.linear("\(name).1.DenseReluDense.wo", inputs: config.dFf, outputs: d, bias: false))
        }
        finalNorm = try weights.vector("encoder.final_layer_norm.weight", count: d)
        linearBytes = weights.linearBytes
    }

    /// The encoder's output for `ids` [L, d_model], zero-padded to `padTo` rows when given.
    /// `afterLayer` is called after each layer (a worker heartbeats from it).
    public func encode(_ ids: [Int], padTo: Int? = nil, afterLayer: () -> Void = {}) -> Tensor {
        let length = ids.count, d = config.dModel, inner = config.inner
        var h = Tensor(zeros: [length, d])
        h.withUnsafeMutablePointer { hp in
            for (row, id) in ids.enumerated() {
                let id = min(max(id, 0), config.vocabSize - 1)
                embedding.widen(into: hp + row * d, range: (id * d)..<((id + 1) * d))
            }
        }
        let buckets = (0..<(2 * length - 1)).map { bucket(relative: $0 - (length - 1)) }
        let eps = Float(config.layerNormEpsilon)
        var normed = Tensor.uninitialized([length, d])
        var q = Tensor.uninitialized([length, inner]), k = q, v = q, mixed = q
        var update = Tensor.uninitialized([length, d])
        var gate = Tensor.uninitialized([length, config.dFf]), up = gate
        for layer in layers {
            h.withUnsafeMutablePointer { hp in
                normed.withUnsafeMutablePointer { np in
                    update.withUnsafeMutablePointer { upd in
                        np.update(from: hp, count: length * d)
                        WanKernels.rmsNorm(np, rows: length, width: d, weight: layer.attentionNorm, epsilon: eps)
                        withUnsafeMutablePointers(&q, &k, &v, &mixed) { qp, kp, vp, mp in
                            layer.q.apply(np, rows: length, into: qp)
                            layer.k.apply(np, rows: length, into: kp)
                            layer.v.apply(np, rows: length, into: vp)
                            attend(qp, kp, vp, into: mp, length: length, layer: layer, buckets: buckets)
                            layer.o.apply(mp, rows: length, into: upd)
                        }
                        Kernels.add(upd, to: hp, count: length * d)

                        np.update(from: hp, count: length * d)
                        WanKernels.rmsNorm(np, rows: length, width: d, weight: layer.mlpNorm, epsilon: eps)
                        gate.withUnsafeMutablePointer { gp in
                            up.withUnsafeMutablePointer { ip in
                                layer.gate.apply(np, rows: length, into: gp)
                                layer.up.apply(np, rows: length, into: ip)
                                Kernels.gelu(gp, count: length * config.dFf)
                                for i in 0..<(length * config.dFf) { gp[i] *= ip[i] }
                                layer.down.apply(gp, rows: length, into: upd)
                            }
                        }
                        Kernels.add(upd, to: hp, count: length * d)
                    }
                }
            }
            afterLayer()
        }
        h.withUnsafeMutablePointer { WanKernels.rmsNorm($0, rows: length, width: d, weight: finalNorm, epsilon: eps) }
        guard let padTo, padTo > length else { return h }
        return Tensor(shape: [padTo, d], scalars: h.scalars + [Float](repeating: 0, count: (padTo - length) * d))
    }

    /// softmax(Q·Kᵀ + bias)·V per head, unscaled, as T5.
    private func attend(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>,
                        into out: UnsafeMutablePointer<Float>, length: Int, layer: Layer, buckets: [Int]) {
        let heads = config.numHeads, dk = config.dKv, inner = config.inner
        ComputeThreads.forEachSlice(of: heads, parts: length * length * dk >= 1 << 16 ? ComputeThreads.count : 1) { slice in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: length * length)
            defer { scores.deallocate() }
            for head in slice {
                BLAS.gemm(transposeB: true, m: length, n: length, k: dk, a: q + head * dk, lda: inner,
                          b: k + head * dk, ldb: inner, c: scores, ldc: length)
                for i in 0..<length {
                    let row = scores + i * length
                    for j in 0..<length { row[j] += layer.positionBias[buckets[j - i + length - 1] * heads + head] }
                    Kernels.softmax(row, count: length)
                }
                BLAS.gemm(m: length, n: dk, k: length, a: scores, lda: length, b: v + head * dk, ldb: inner,
                          c: out + head * dk, ldc: inner)
            }
        }
    }

    /// T5's bidirectional relative-position bucket of key position − query position, computed
    /// in f32 as the reference does (the bucket edges fall on its rounding).
    func bucket(relative: Int) -> Int {
        let half = config.relativeAttentionNumBuckets / 2
        var bucket = relative > 0 ? half : 0
        let distance = abs(relative)
        let exact = half / 2
        if distance < exact { return bucket + distance }
        let ratio = Foundation.log(Float(distance) / Float(exact)) / Float(Foundation.log(Double(config.relativeAttentionMaxDistance) / Double(exact)))
        let large = exact + Int(ratio * Float(half - exact))
        bucket += min(large, half - 1)
        return bucket
    }
}
