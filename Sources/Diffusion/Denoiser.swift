/// The video denoiser: a spatio-temporal diffusion transformer (DiT) in pixel space.
///
/// Frames are cut into patch tokens with fixed sin-cos (frame, row, column) positions. Each block
/// runs spatial self-attention (within a frame), temporal self-attention (one patch position
/// across frames), cross-attention to the prompt and an MLP; the timestep conditions the
/// spatial, temporal and MLP branches through adaLN-Zero (shift, scale and gate per branch),
/// joined there by the pooled prompt when the config has `pooled_text`, by the window's phase in
/// the whole video when it has `frame_phase` and by how far through the video the window lies
/// when it has `video_progress` and by how far apart the window's frames lie when it has
/// `frame_stride`.
/// It predicts the rectified-flow velocity v = noise − clean for a noisy video at time t.
public struct Denoiser {
    public let config: ModelConfig
    let patchEmbed: Linear
    let timeEmbed1: Linear
    let timeEmbed2: Linear
    let textPool: Linear?
    let phaseEmbed: Linear?
    let progressEmbed: Linear?
    let strideEmbed: Linear?
    let blocks: [Block]
    let finalModulation: Linear
    let finalProjection: Linear

    struct Block {
        let modulation: Linear          // c -> 9·width: (shift, scale, gate) × (spatial, temporal, mlp)
        let spatial: SelfAttention
        let temporal: SelfAttention
        let crossNorm: LayerNormWeights
        let cross: CrossAttention
        let feedForward: FeedForward
    }

    public init(config: ModelConfig, weights: WeightSource) throws {
        self.config = config
        let width = config.width
        patchEmbed = try Linear(weights, "patch_embed", inputs: config.patchValues, outputs: width)
        timeEmbed1 = try Linear(weights, "time_embed.fc1", inputs: PositionEmbedding.timestepFeatures, outputs: width)
        timeEmbed2 = try Linear(weights, "time_embed.fc2", inputs: width, outputs: width)
        textPool = config.pooledText ? try Linear(weights, "text_pool", inputs: config.text.width, outputs: width) : nil
        phaseEmbed = try config.framePhase.map { try Linear(weights, "phase_embed", inputs: 2 * $0.harmonics, outputs: width) }
        progressEmbed = config.videoProgress ? try Linear(weights, "progress_embed", inputs: 2, outputs: width) : nil
        strideEmbed = config.frameStride ? try Linear(weights, "stride_embed", inputs: 1, outputs: width) : nil
        blocks = try (0..<config.depth).map { i in
            let name = "blocks.\(i)"
            return Block(
                modulation: try Linear(weights, "\(name).adaln", inputs: width, outputs: 9 * width),
                spatial: try SelfAttention(weights, "\(name).attn_s", width: width, heads: config.heads),
                temporal: try SelfAttention(weights, "\(name).attn_t", width: width, heads: config.heads),
                crossNorm: try LayerNormWeights(weights, "\(name).norm_c", width: width),
                cross: try CrossAttention(weights, "\(name).cross", width: width, textWidth: config.text.width, heads: config.heads),
                feedForward: try FeedForward(weights, "\(name).mlp", width: width, ratio: config.mlpRatio))
        }
        finalModulation = try Linear(weights, "final.adaln", inputs: width, outputs: 2 * width)
        finalProjection = try Linear(weights, "final.linear", inputs: width, outputs: config.patchValues)
    }

    /// Velocity for a batch of videos `x` shaped [batch, frames, channels, height, width] at
    /// times `t` (one per video), each conditioned on its own prompt. `place` is where the
    /// videos' window lies in the whole video (read with `frame_phase`, `video_progress` and `frame_stride` only). `afterBlock`
    /// runs on the calling thread after every transformer block: a worker heartbeats from it,
    /// so even a slow step never goes silent for long.
    public func velocity(_ x: Tensor, t: [Float], contexts: [TextEmbedding], place: WindowPlace = .whole,
                         afterBlock: () -> Void = {}) -> Tensor {
        let (batch, frames, height, width) = (x.shape[0], x.shape[1], x.shape[3], x.shape[4])
        precondition(x.shape.count == 5 && x.shape[2] == config.channels, "velocity expects [batch, frames, channels, height, width]")
        precondition(t.count == batch && contexts.count == batch, "one time and one prompt per video")
        precondition(height % config.patch == 0 && width % config.patch == 0, "canvas must be a multiple of the patch size")
        let grid = (height / config.patch, width / config.patch)
        let tokensPerFrame = grid.0 * grid.1
        let tokensPerVideo = frames * tokensPerFrame
        let rows = batch * tokensPerVideo
        let d = config.width

        var h = patchEmbed.apply(Patches.patchify(x, patch: config.patch), rows: rows)
        let positions = PositionEmbedding.video(frames: frames, gridHeight: grid.0, gridWidth: grid.1, width: d)
        h.withUnsafeMutablePointer { hp in
            for row in 0..<rows { for j in 0..<d { hp[row * d + j] += positions[(row % tokensPerVideo) * d + j] } }
        }
        let conditioning = conditioning(t: t, contexts: contexts, place: place)

        var normed = Tensor.uninitialized([rows, d])
        var update = Tensor.uninitialized([rows, d])
        let spatial = SelfAttention.Layout(sequences: batch * frames, length: tokensPerFrame,
                                           firstRow: { $0 * tokensPerFrame }, rowStride: 1)
        let temporal = SelfAttention.Layout(
            sequences: batch * tokensPerFrame, length: frames,
            firstRow: { ($0 / tokensPerFrame) * tokensPerVideo + $0 % tokensPerFrame }, rowStride: tokensPerFrame)

        h.withUnsafeMutablePointer { hp in
            normed.withUnsafeMutablePointer { np in
                update.withUnsafeMutablePointer { up in
                    for block in blocks {
                        let modulation = block.modulation.apply(conditioning, rows: batch)
                        modulation.withUnsafePointer { m in
                            // Branch k reads shift at k·3d, scale at k·3d + d, gate at k·3d + 2d.
                            func modulatedNorm(_ branch: Int) {
                                Kernels.layerNorm(hp, into: np, rows: rows, width: d, affine: .modulation(
                                    shift: m + branch * 3 * d, scale: m + branch * 3 * d + d, stride: 9 * d, rowsPerGroup: tokensPerVideo))
                            }
                            func gatedResidual(_ branch: Int) {
                                Kernels.addGated(up, to: hp, rows: rows, width: d, gate: m + branch * 3 * d + 2 * d,
                                                 gateStride: 9 * d, rowsPerGroup: tokensPerVideo)
                            }
                            modulatedNorm(0)
                            block.spatial.apply(np, rows: rows, layout: spatial, into: up)
                            gatedResidual(0)
                            modulatedNorm(1)
                            block.temporal.apply(np, rows: rows, layout: temporal, into: up)
                            gatedResidual(1)
                            block.crossNorm.apply(hp, rows: rows, into: np)
                            block.cross.apply(np, tokensPerVideo: tokensPerVideo, contexts: contexts, into: up)
                            Kernels.add(up, to: hp, count: rows * d)
                            modulatedNorm(2)
                            block.feedForward.apply(np, rows: rows, into: up)
                            gatedResidual(2)
                        }
                        afterBlock()
                    }
                    let modulation = finalModulation.apply(conditioning, rows: batch)
                    modulation.withUnsafePointer { m in
                        Kernels.layerNorm(hp, into: np, rows: rows, width: d, affine: .modulation(
                            shift: m, scale: m + d, stride: 2 * d, rowsPerGroup: tokensPerVideo))
                    }
                }
            }
        }
        let patches = finalProjection.apply(normed, rows: rows)
        let output = Patches.unpatchify(patches, batch: batch, frames: frames, channels: config.channels,
                                        height: height, width: width, patch: config.patch)
        return config.prediction == .clean ? Self.velocity(fromClean: output, x: x, t: t) : output
    }

    /// v = (x_t − x̂₀) / max(t, 0.05), video by video.
    static func velocity(fromClean clean: Tensor, x: Tensor, t: [Float]) -> Tensor {
        var v = x
        let perVideo = x.count / t.count
        v.withUnsafeMutablePointer { vp in
            clean.withUnsafePointer { cp in
                for (video, time) in t.enumerated() {
                    let inverse = 1 / max(time, ModelConfig.minimumPredictionTime)
                    for i in (video * perVideo)..<((video + 1) * perVideo) { vp[i] = (vp[i] - cp[i]) * inverse }
                }
            }
        }
        return v
    }

    /// SiLU(MLP(timestep features) + text_pool(mean of the prompt's tokens) + phase_embed(the
    /// window's phase) + progress_embed(its progress through the video) + stride_embed(how far
    /// apart its frames lie)) for each video: the input of every adaLN layer. The last four only
    /// when the config has `pooled_text`, `frame_phase`, `video_progress` and `frame_stride`.
    func conditioning(t: [Float], contexts: [TextEmbedding], place: WindowPlace = .whole) -> Tensor {
        let features = Tensor(shape: [t.count, PositionEmbedding.timestepFeatures], scalars: t.flatMap(PositionEmbedding.timestep))
        var hidden = timeEmbed1.apply(features, rows: t.count)
        let hiddenCount = hidden.count
        hidden.withUnsafeMutablePointer { Kernels.silu($0, count: hiddenCount) }
        var c = timeEmbed2.apply(hidden, rows: t.count)
        if let textPool {
            let pooled = textPool.apply(Self.meanTokens(contexts, width: config.text.width), rows: contexts.count)
            c.withUnsafeMutablePointer { cp in pooled.withUnsafePointer { Kernels.add($0, to: cp, count: pooled.count) } }
        }
        if let phaseEmbed, let framePhase = config.framePhase {
            Self.add(phaseEmbed, of: framePhase.features(firstFrame: place.firstFrame), toEachRowOf: &c)
        }
        if let progressEmbed {
            Self.add(progressEmbed, of: place.progressFeatures(window: config.windowFrames), toEachRowOf: &c)
        }
        if let strideEmbed {
            Self.add(strideEmbed, of: place.strideFeatures(window: config.windowFrames), toEachRowOf: &c)
        }
        let cCount = c.count
        c.withUnsafeMutablePointer { Kernels.silu($0, count: cCount) }
        return c
    }

    /// Adds `embed(features)` to every row of `c` [rows, width]: a condition all the videos of
    /// one call share, since they are one window of one video, projected once.
    static func add(_ embed: Linear, of features: [Float], toEachRowOf c: inout Tensor) {
        let row = embed.apply(Tensor(shape: [1, features.count], scalars: features), rows: 1)
        let (rows, width) = (c.shape[0], row.count)
        c.withUnsafeMutablePointer { cp in
            row.withUnsafePointer { r in for i in 0..<rows { Kernels.add(r, to: cp + i * width, count: width) } }
        }
    }

    /// [prompts, width]: each prompt's encoded tokens averaged.
    static func meanTokens(_ contexts: [TextEmbedding], width: Int) -> Tensor {
        var means = [Float](repeating: 0, count: contexts.count * width)
        for (i, context) in contexts.enumerated() {
            context.values.withUnsafePointer { v in
                for token in 0..<context.tokens { for j in 0..<width { means[i * width + j] += v[token * width + j] } }
            }
            for j in 0..<width { means[i * width + j] /= Float(context.tokens) }
        }
        return Tensor(shape: [contexts.count, width], scalars: means)
    }

    /// Multiply-add count ×2 of every matrix product in one `velocity` call: the work the
    /// engine benchmark divides by time. Layer norms, softmax and activations are not counted.
    public func flops(batch: Int, frames: Int, height: Int, width: Int, textTokens: Int) -> Double {
        let d = Double(config.width), p = Double(config.patchValues), r = Double(config.mlpRatio)
        let n = Double((height / config.patch) * (width / config.patch))
        let f = Double(frames), b = Double(batch), l = Double(textTokens), dt = Double(config.text.width)
        let tokens = b * f * n
        let linearPerToken = 3 * d * d + d * d   // spatial qkv + out
            + 3 * d * d + d * d                  // temporal qkv + out
            + 2 * d * d                          // cross q + out
            + 2 * r * d * d                      // mlp
        let attentionPerToken = 2 * n * d + 2 * f * d + 2 * l * d
        let perBlock = 2 * (tokens * (linearPerToken + attentionPerToken) + b * l * dt * 2 * d + b * d * 9 * d)
        let embed = 2 * tokens * p * d + 2 * b * (Double(PositionEmbedding.timestepFeatures) * d + d * d)
        let final = 2 * b * d * 2 * d + 2 * tokens * d * p
        let pooledText = config.pooledText ? 2 * b * dt * d : 0
        let phase = config.framePhase.map { 2 * b * Double(2 * $0.harmonics) * d } ?? 0
        return embed + pooledText + phase + Double(config.depth) * perBlock + final
    }
}

/// Between videos and patch tokens.
enum Patches {
    /// Visits every value of a [videos, channels, H, W] stack in token order — (video, patch
    /// row, patch column) tokens, each with (channel, dy, dx) features — passing its index in
    /// the token matrix and in the video stack. Patchify and unpatchify are this one walk.
    @inline(__always)
    static func walk(videos: Int, channels: Int, height: Int, width: Int, patch p: Int, _ visit: (Int, Int) -> Void) {
        var token = 0
        for video in 0..<videos {
            let frame = video * channels * height * width
            for gy in 0..<(height / p) { for gx in 0..<(width / p) {
                for c in 0..<channels { for dy in 0..<p { for dx in 0..<p {
                    visit(token, frame + (c * height + gy * p + dy) * width + gx * p + dx)
                    token += 1
                } } }
            } }
        }
    }

    /// [batch, frames, channels, H, W] -> [batch·frames·(H/p)·(W/p), channels·p·p].
    static func patchify(_ x: Tensor, patch p: Int) -> Tensor {
        let (batch, frames, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        var out = Tensor.uninitialized([batch * frames * (height / p) * (width / p), channels * p * p])
        x.withUnsafePointer { src in
            out.withUnsafeMutablePointer { dst in
                walk(videos: batch * frames, channels: channels, height: height, width: width, patch: p) { dst[$0] = src[$1] }
            }
        }
        return out
    }

    /// The inverse of `patchify`.
    static func unpatchify(_ tokens: Tensor, batch: Int, frames: Int, channels: Int, height: Int, width: Int, patch p: Int) -> Tensor {
        var out = Tensor.uninitialized([batch, frames, channels, height, width])
        tokens.withUnsafePointer { src in
            out.withUnsafeMutablePointer { dst in
                walk(videos: batch * frames, channels: channels, height: height, width: width, patch: p) { dst[$1] = src[$0] }
            }
        }
        return out
    }
}
