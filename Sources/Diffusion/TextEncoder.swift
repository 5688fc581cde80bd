/// A prompt encoded for cross-attention: one row of `width` values per token.
public struct TextEmbedding: Sendable, Equatable {
    public let values: Tensor
    public var tokens: Int { values.shape[0] }
}

/// A small pre-norm transformer over word tokens with fixed sin-cos positions.
public struct TextEncoder {
    public let config: ModelConfig.TextEncoderConfig
    public let vocabulary: Vocabulary
    let tokenEmbedding: Tensor
    let blocks: [Block]
    let finalNorm: LayerNormWeights

    struct Block {
        let norm1: LayerNormWeights
        let attention: SelfAttention
        let norm2: LayerNormWeights
        let feedForward: FeedForward
    }

    public init(config: ModelConfig.TextEncoderConfig, vocabulary: Vocabulary, weights: WeightSource) throws {
        self.config = config
        self.vocabulary = vocabulary
        let width = config.width
        tokenEmbedding = try weights.tensor("text.token_embed.weight", shape: [vocabulary.count, width])
        blocks = try (0..<config.depth).map { i in
            let name = "text.blocks.\(i)"
            return Block(norm1: try LayerNormWeights(weights, "\(name).norm1", width: width),
                         attention: try SelfAttention(weights, "\(name).attn", width: width, heads: config.heads),
                         norm2: try LayerNormWeights(weights, "\(name).norm2", width: width),
                         feedForward: try FeedForward(weights, "\(name).mlp", width: width, ratio: config.mlpRatio))
        }
        finalNorm = try LayerNormWeights(weights, "text.norm", width: width)
    }

    /// Encodes a prompt; unknown words and over-long prompts are errors that say what fits.
    public func encode(_ prompt: String) throws -> TextEmbedding {
        encode(tokens: try vocabulary.tokenize(prompt, maxTokens: config.maxTokens))
    }

    public func encode(tokens: [Int]) -> TextEmbedding {
        let width = config.width, rows = tokens.count
        var h = Tensor.uninitialized([rows, width])
        let positions = PositionEmbedding.sinusoid(positions: (0..<rows).map(Float.init), width: width)
        h.withUnsafeMutablePointer { hp in
            tokenEmbedding.withUnsafePointer { ep in
                for (row, token) in tokens.enumerated() {
                    for j in 0..<width { hp[row * width + j] = ep[token * width + j] + positions[row * width + j] }
                }
            }
        }
        var normed = Tensor.uninitialized([rows, width])
        var update = Tensor.uninitialized([rows, width])
        let layout = SelfAttention.Layout(sequences: 1, length: rows, firstRow: { _ in 0 }, rowStride: 1)
        h.withUnsafeMutablePointer { hp in
            normed.withUnsafeMutablePointer { np in
                update.withUnsafeMutablePointer { up in
                    for block in blocks {
                        block.norm1.apply(hp, rows: rows, into: np)
                        block.attention.apply(np, rows: rows, layout: layout, into: up)
                        Kernels.add(up, to: hp, count: rows * width)
                        block.norm2.apply(hp, rows: rows, into: np)
                        block.feedForward.apply(np, rows: rows, into: up)
                        Kernels.add(up, to: hp, count: rows * width)
                    }
                    finalNorm.apply(hp, rows: rows, into: np)
                }
            }
        }
        return TextEmbedding(values: normed)
    }
}
