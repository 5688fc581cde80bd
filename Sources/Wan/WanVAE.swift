import Diffusion
import Foundation

/// A stretch of video inside the VAE: `frames` frames of [channels, height, width], frame-major.
public struct Clip: Sendable, Equatable {
    public var frames: Int, channels: Int, height: Int, width: Int
    public var data: [Float]

    public init(frames: Int, channels: Int, height: Int, width: Int, data: [Float]? = nil) {
        self.frames = frames; self.channels = channels; self.height = height; self.width = width
        self.data = data ?? [Float](repeating: 0, count: frames * channels * height * width)
        precondition(self.data.count == frames * channels * height * width)
    }

    var frameSize: Int { channels * height * width }

    public func frames(_ range: Range<Int>) -> Clip {
        Clip(frames: range.count, channels: channels, height: height, width: width,
             data: Array(data[(range.lowerBound * frameSize)..<(range.upperBound * frameSize)]))
    }

    public func appending(_ other: Clip) -> Clip {
        precondition(other.frameSize == frameSize || frames == 0)
        return Clip(frames: frames + other.frames, channels: other.channels, height: other.height, width: other.width,
                    data: data + other.data)
    }

    static func empty(like c: Clip) -> Clip { Clip(frames: 0, channels: c.channels, height: c.height, width: c.width, data: []) }

    /// From a [1, C, T, H, W] tensor (channel-major, as PyTorch lays out video).
    public init(channelMajor t: Tensor) {
        self.init(frames: t.shape[2], channels: t.shape[1], height: t.shape[3], width: t.shape[4], data: t.swappingAxes1And2().scalars)
    }

    /// As a [1, C, T, H, W] tensor.
    public var channelMajor: Tensor {
        Tensor(shape: [1, frames, channels, height, width], scalars: data).swappingAxes1And2()
    }
}

/// A 3D (or 2D, kt = 1) convolution as im2col + sgemm over bands of output rows, so scratch
/// stays bounded whatever the picture size.
struct Convolution {
    let weight: Tensor          // [out, in·kt·kh·kw]
    let bias: [Float]
    let inputs: Int, outputs: Int, kt: Int, kh: Int, kw: Int

    init(_ weights: PartWeights, _ name: String, inputs: Int, outputs: Int, kernel: [Int]) throws {
        let stored = try weights.stored("\(name).weight", shape: [outputs, inputs] + kernel)
        let k = kernel.count == 3 ? kernel : [1] + kernel
        self.inputs = inputs; self.outputs = outputs; kt = k[0]; kh = k[1]; kw = k[2]
        weight = Tensor(shape: [outputs, inputs * k.reduce(1, *)], scalars: stored.floats())
        bias = try weights.vector("\(name).bias", count: outputs)
    }

    /// One output frame from `kt` input frames (nil: a frame of zeros), each [inputs, height, width].
    func frame(_ sources: [UnsafePointer<Float>?], height: Int, width: Int, pad: (top: Int, bottom: Int, left: Int, right: Int),
               stride: Int, into out: UnsafeMutablePointer<Float>) {
        let outH = (height + pad.top + pad.bottom - kh) / stride + 1
        let outW = (width + pad.left + pad.right - kw) / stride + 1
        let k = inputs * kt * kh * kw
        let plane = outH * outW
        // Bands of output rows, fixed by the problem (never by the thread count), so the bits do
        // not depend on how many threads run.
        let bandRows = max(1, min(outH, (1 << 21) / max(1, k * outW)))
        let bands = (outH + bandRows - 1) / bandRows
        weight.withUnsafePointer { w in
            bias.withUnsafeBufferPointer { b in
                ComputeThreads.forEachSlice(of: bands, parts: bands > 1 ? ComputeThreads.count : 1) { slice in
                    let columns = UnsafeMutablePointer<Float>.allocate(capacity: k * bandRows * outW)
                    defer { columns.deallocate() }
                    for band in slice {
                        let firstRow = band * bandRows, rows = min(bandRows, outH - firstRow)
                        let n = rows * outW
                        var r = 0
                        for ci in 0..<inputs { for t in 0..<kt { for dy in 0..<kh { for dx in 0..<kw {
                            let dst = columns + r * n
                            if let source = sources[t] {
                                let channel = source + ci * height * width
                                for oy in 0..<rows {
                                    let y = (firstRow + oy) * stride - pad.top + dy
                                    let line = dst + oy * outW
                                    if y < 0 || y >= height {
                                        line.update(repeating: 0, count: outW)
                                        continue
                                    }
                                    if stride == 1 {
                                        // A run of the input row between zero margins: one copy.
                                        let low = min(outW, max(0, pad.left - dx)), high = max(low, min(outW, width + pad.left - dx))
                                        line.update(repeating: 0, count: low)
                                        (line + low).update(from: channel + y * width + low - pad.left + dx, count: high - low)
                                        (line + high).update(repeating: 0, count: outW - high)
                                        continue
                                    }
                                    for ox in 0..<outW {
                                        let x = ox * stride - pad.left + dx
                                        line[ox] = (x >= 0 && x < width) ? channel[y * width + x] : 0
                                    }
                                }
                            } else {
                                dst.update(repeating: 0, count: n)
                            }
                            r += 1
                        } } } }
                        let c = out + firstRow * outW
                        for o in 0..<outputs { (c + o * plane).update(repeating: b[o], count: n) }
                        BLAS.gemm(m: outputs, n: n, k: k, a: w, lda: k, b: columns, ldb: n, beta: 1, c: c, ldc: plane)
                    }
                }
            }
        }
    }
}

/// A causal Conv3d: `2·pad` frames of zeros (or of the previous call's last frames) in front,
/// none after, so a frame never sees the future. Called on successive pieces of a video with
/// `stream`, it keeps the last two input frames as the reference's feature cache does, and the
/// pieces' outputs join to what the whole video gives.
final class CausalConv3d {
    let conv: Convolution
    let padT: Int, padS: Int
    var cache: Clip?

    init(_ weights: PartWeights, _ name: String, inputs: Int, outputs: Int, kernel: [Int], padding: [Int]) throws {
        conv = try Convolution(weights, name, inputs: inputs, outputs: outputs, kernel: kernel)
        padT = padding[0]; padS = padding[1]
    }

    /// Convolves `x` after `previous` (frames that came before it, at most 2·padT of them).
    func apply(_ x: Clip, after previous: Clip?) -> Clip {
        let before = padT > 0 ? (previous?.frames ?? 0) : 0
        let zeros = max(0, 2 * padT - before)
        let total = zeros + before + x.frames
        let outFrames = total - (conv.kt - 1)
        let outH = x.height + 2 * padS - conv.kh + 1, outW = x.width + 2 * padS - conv.kw + 1
        var out = Clip(frames: max(0, outFrames), channels: conv.outputs, height: outH, width: outW)
        let size = x.frameSize, outSize = out.frameSize
        x.data.withUnsafeBufferPointer { xp in
            (previous?.data ?? []).withUnsafeBufferPointer { pp in
                out.data.withUnsafeMutableBufferPointer { op in
                    for f in 0..<max(0, outFrames) {
                        let sources: [UnsafePointer<Float>?] = (0..<conv.kt).map { t in
                            let i = f + t
                            if i < zeros { return nil }
                            if i < zeros + before { return pp.baseAddress! + (i - zeros) * size }
                            return xp.baseAddress! + (i - zeros - before) * size
                        }
                        conv.frame(sources, height: x.height, width: x.width, pad: (padS, padS, padS, padS), stride: 1,
                                   into: op.baseAddress! + f * outSize)
                    }
                }
            }
        }
        return out
    }

    /// The reference's cached call: convolve after the cache, then keep the last two input frames.
    func stream(_ x: Clip) -> Clip {
        var next = x.frames(max(0, x.frames - 2)..<x.frames)
        if next.frames < 2, let cache { next = cache.frames((cache.frames - 1)..<cache.frames).appending(next) }
        let out = apply(x, after: cache)
        cache = next
        return out
    }
}

enum VAEKernels {
    /// F.normalize over channels, then · √C · γ: each pixel's channel vector scaled to length √C.
    static func channelRMS(_ x: inout Clip, gamma: [Float]) {
        let (c, plane) = (x.channels, x.height * x.width)
        let scale = Float(c).squareRoot()
        x.data.withUnsafeMutableBufferPointer { p in
            for f in 0..<x.frames {
                let base = p.baseAddress! + f * c * plane
                Kernels.forEachRowRange(plane, costPerRow: c * 4) { range in
                    // Pixels in runs of 64, so each channel is read along its row, not across
                    // the planes; every pixel still sums its channels in order (the same bits).
                    var sums = [Float](repeating: 0, count: 64), factors = sums
                    var first = range.lowerBound
                    while first < range.upperBound {
                        let count = min(64, range.upperBound - first)
                        for i in 0..<count { sums[i] = 0 }
                        for ch in 0..<c {
                            let row = base + ch * plane + first
                            for i in 0..<count { let v = row[i]; sums[i] += v * v }
                        }
                        for i in 0..<count { factors[i] = 1 / max(sums[i].squareRoot(), 1e-12) * scale }
                        for ch in 0..<c {
                            let row = base + ch * plane + first, g = gamma[ch]
                            for i in 0..<count { row[i] *= factors[i] * g }
                        }
                        first += count
                    }
                }
            }
        }
    }

    static func silu(_ x: inout Clip) {
        x.data.withUnsafeMutableBufferPointer { p in
            let count = p.count
            Kernels.forEachRowRange(count / 1024 + 1, costPerRow: 1024 * 8) { range in
                let lower = range.lowerBound * 1024, upper = min(count, range.upperBound * 1024)
                if lower < upper { Kernels.silu(p.baseAddress! + lower, count: upper - lower) }
            }
        }
    }

    /// Nearest 2× upsampling of every frame.
    static func upsample(_ x: Clip) -> Clip {
        var out = Clip(frames: x.frames, channels: x.channels, height: 2 * x.height, width: 2 * x.width)
        let (h, w) = (x.height, x.width)
        for plane in 0..<(x.frames * x.channels) {
            let src = plane * h * w, dst = plane * 4 * h * w
            for y in 0..<(2 * h) { for xx in 0..<(2 * w) { out.data[dst + y * 2 * w + xx] = x.data[src + (y / 2) * w + xx / 2] } }
        }
        return out
    }
}

/// A residual block: RMS norm, SiLU, causal conv, twice, plus a 1×1×1 shortcut when the width changes.
final class ResidualBlock {
    let norm1: [Float], norm2: [Float]
    let conv1: CausalConv3d, conv2: CausalConv3d
    let shortcut: CausalConv3d?

    init(_ w: PartWeights, _ name: String, inputs: Int, outputs: Int) throws {
        norm1 = try w.vector("\(name).norm1.gamma", count: inputs)
        norm2 = try w.vector("\(name).norm2.gamma", count: outputs)
        conv1 = try CausalConv3d(w, "\(name).conv1", inputs: inputs, outputs: outputs, kernel: [3, 3, 3], padding: [1, 1])
        conv2 = try CausalConv3d(w, "\(name).conv2", inputs: outputs, outputs: outputs, kernel: [3, 3, 3], padding: [1, 1])
        shortcut = inputs != outputs
            ? try CausalConv3d(w, "\(name).conv_shortcut", inputs: inputs, outputs: outputs, kernel: [1, 1, 1], padding: [0, 0]) : nil
    }

    func callAsFunction(_ x: Clip) -> Clip {
        let skip = shortcut.map { $0.apply(x, after: nil) } ?? x
        var h = x
        VAEKernels.channelRMS(&h, gamma: norm1)
        VAEKernels.silu(&h)
        h = conv1.stream(h)
        VAEKernels.channelRMS(&h, gamma: norm2)
        VAEKernels.silu(&h)
        h = conv2.stream(h)
        for i in 0..<h.data.count { h.data[i] += skip.data[i] }
        return h
    }

    func reset() { conv1.cache = nil; conv2.cache = nil }
}

/// Single-head self-attention over the pixels of each frame (the middle block's).
final class FrameAttention {
    let norm: [Float]
    let qkv: Convolution, projection: Convolution

    init(_ w: PartWeights, _ name: String, channels: Int) throws {
        norm = try w.vector("\(name).norm.gamma", count: channels)
        qkv = try Convolution(w, "\(name).to_qkv", inputs: channels, outputs: 3 * channels, kernel: [1, 1])
        projection = try Convolution(w, "\(name).proj", inputs: channels, outputs: channels, kernel: [1, 1])
    }

    func callAsFunction(_ x: Clip) -> Clip {
        var normed = x
        VAEKernels.channelRMS(&normed, gamma: norm)
        let (c, n) = (x.channels, x.height * x.width)
        var out = x
        var packed = [Float](repeating: 0, count: 3 * c * n)
        var mixed = [Float](repeating: 0, count: c * n)
        var projected = [Float](repeating: 0, count: c * n)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer { scores.deallocate() }
        for f in 0..<x.frames {
            normed.data.withUnsafeBufferPointer { np in
                packed.withUnsafeMutableBufferPointer { pp in
                    qkv.frame([np.baseAddress! + f * c * n], height: x.height, width: x.width, pad: (0, 0, 0, 0), stride: 1, into: pp.baseAddress!)
                    let (q, k, v) = (pp.baseAddress!, pp.baseAddress! + c * n, pp.baseAddress! + 2 * c * n)
                    // scores[i, j] = q_i · k_j / √C, with q and k stored channel-major [C, N].
                    BLAS.gemm(transposeA: true, m: n, n: n, k: c, alpha: 1 / Float(c).squareRoot(), a: q, lda: n, b: k, ldb: n, c: scores, ldc: n)
                    Kernels.forEachRowRange(n, costPerRow: n * 8) { range in
                        for i in range { Kernels.softmax(scores + i * n, count: n) }
                    }
                    mixed.withUnsafeMutableBufferPointer { mp in
                        // mixed[C, N] = V[C, N] · scoresᵀ.
                        BLAS.gemm(transposeB: true, m: c, n: n, k: n, a: v, lda: n, b: scores, ldb: n, c: mp.baseAddress!, ldc: n)
                        projected.withUnsafeMutableBufferPointer { rp in
                            projection.frame([UnsafePointer(mp.baseAddress!)], height: x.height, width: x.width, pad: (0, 0, 0, 0), stride: 1, into: rp.baseAddress!)
                        }
                    }
                }
            }
            for i in 0..<(c * n) { out.data[f * c * n + i] += projected[i] }
        }
        return out
    }
}

/// Spatial 2× up- or downsampling of each frame, with the temporal half where the level has one.
final class Resample {
    enum Mode: String { case upsample2d, upsample3d, downsample2d, downsample3d }
    let mode: Mode
    let spatial: Convolution
    let timeConv: CausalConv3d?
    /// upsample3d: whether the first frame has gone by (it is not doubled), and the time conv's
    /// cache after it; downsample3d: the last frame of the previous call.
    var started = false
    var previous: Clip?

    init(_ w: PartWeights, _ name: String, channels: Int, mode: Mode, outputs: Int) throws {
        self.mode = mode
        switch mode {
        case .upsample2d, .upsample3d:
            spatial = try Convolution(w, "\(name).resample.1", inputs: channels, outputs: outputs, kernel: [3, 3])
        case .downsample2d, .downsample3d:
            spatial = try Convolution(w, "\(name).resample.1", inputs: channels, outputs: channels, kernel: [3, 3])
        }
        switch mode {
        case .upsample3d:
            timeConv = try CausalConv3d(w, "\(name).time_conv", inputs: channels, outputs: 2 * channels, kernel: [3, 1, 1], padding: [1, 0])
        case .downsample3d:
            timeConv = try CausalConv3d(w, "\(name).time_conv", inputs: channels, outputs: channels, kernel: [3, 1, 1], padding: [0, 0])
        default:
            timeConv = nil
        }
    }

    func reset() { started = false; previous = nil; timeConv?.cache = nil }

    func callAsFunction(_ input: Clip) -> Clip {
        var x = input
        if mode == .upsample3d, let timeConv {
            if !started {
                started = true          // the reference's "Rep": the first frame passes as it is
            } else {
                // Zeros stand before the second frame: the first frame is not in the time conv's history.
                var next = x.frames(max(0, x.frames - 2)..<x.frames)
                if next.frames < 2 {
                    next = (previous?.frames((previous!.frames - 1)..<previous!.frames)
                            ?? Clip(frames: 1, channels: x.channels, height: x.height, width: x.width)).appending(next)
                }
                let doubled = timeConv.apply(x, after: previous)
                previous = next
                // Channels [0, C) are each frame's first half step, [C, 2C) its second.
                var interleaved = Clip(frames: 2 * x.frames, channels: x.channels, height: x.height, width: x.width)
                let size = x.frameSize
                for f in 0..<x.frames {
                    for half in 0..<2 {
                        let src = f * 2 * size + half * size, dst = (2 * f + half) * size
                        for i in 0..<size { interleaved.data[dst + i] = doubled.data[src + i] }
                    }
                }
                x = interleaved
            }
        }
        x = spatialPass(x)
        if mode == .downsample3d, let timeConv {
            if let previous {
                let last = x.frames((x.frames - 1)..<x.frames)
                x = strided(timeConv.conv, previous.appending(x))
                self.previous = last
            } else {
                previous = x.frames((x.frames - 1)..<x.frames)
            }
        }
        return x
    }

    private func spatialPass(_ x: Clip) -> Clip {
        switch mode {
        case .upsample2d, .upsample3d:
            let up = VAEKernels.upsample(x)
            return convolveFrames(up, outputs: spatial.outputs, height: up.height, width: up.width, pad: (1, 1, 1, 1), stride: 1)
        case .downsample2d, .downsample3d:
            // Zero padding on the right and bottom only, then a stride-2 3×3 conv.
            return convolveFrames(x, outputs: x.channels, height: (x.height + 1 - 3) / 2 + 1, width: (x.width + 1 - 3) / 2 + 1,
                                  pad: (0, 1, 0, 1), stride: 2)
        }
    }

    /// The spatial conv on every frame of `x`, giving frames of `height`×`width`.
    private func convolveFrames(_ x: Clip, outputs: Int, height: Int, width: Int, pad: (top: Int, bottom: Int, left: Int, right: Int),
                                stride: Int) -> Clip {
        var out = Clip(frames: x.frames, channels: outputs, height: height, width: width)
        let outSize = out.frameSize
        x.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                for f in 0..<x.frames {
                    spatial.frame([src.baseAddress! + f * x.frameSize], height: x.height, width: x.width, pad: pad, stride: stride,
                                  into: dst.baseAddress! + f * outSize)
                }
            }
        }
        return out
    }

    /// The downsampling time conv: kernel 3 over time, stride 2, no padding.
    private func strided(_ conv: Convolution, _ x: Clip) -> Clip {
        let outFrames = (x.frames - 3) / 2 + 1
        var out = Clip(frames: max(0, outFrames), channels: conv.outputs, height: x.height, width: x.width)
        let outSize = out.frameSize
        x.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                for f in 0..<max(0, outFrames) {
                    let sources: [UnsafePointer<Float>?] = (0..<3).map { src.baseAddress! + (2 * f + $0) * x.frameSize }
                    conv.frame(sources, height: x.height, width: x.width, pad: (0, 0, 0, 0), stride: 1, into: dst.baseAddress! + f * outSize)
                }
            }
        }
        return out
    }
}

/// Wan 2.1's causal 3D VAE (AutoencoderKLWan): frames <-> latents with 8×8 spatial and 4×
/// temporal compression (as the config's dim_mult and temperal_downsample give). Both halves
/// stream: the decoder takes one latent frame at a time (the first gives one frame, each later
/// one four), the encoder one frame then groups of four, each conv keeping the last two frames
/// it saw. A video decoded in pieces, in order, on one decoder is therefore exactly the video
/// decoded whole; memory is bounded by a few frames at full size.
public final class WanVAE: @unchecked Sendable {
    public let config: WanVAEConfig
    let postQuant: CausalConv3d, quant: CausalConv3d
    // Decoder
    let decoderIn: CausalConv3d
    let decoderMid: (ResidualBlock, FrameAttention, ResidualBlock)
    let upLevels: [(blocks: [ResidualBlock], resample: Resample?)]
    let decoderNorm: [Float]
    let decoderOut: CausalConv3d
    // Encoder: residual blocks and resamplers in one list, as the reference numbers them.
    enum EncoderLayer {
        case residual(ResidualBlock)
        case resample(Resample)
    }
    let encoderIn: CausalConv3d
    let downLayers: [EncoderLayer]
    let encoderMid: (ResidualBlock, FrameAttention, ResidualBlock)
    let encoderNorm: [Float]
    let encoderOut: CausalConv3d

    public init(config: WanVAEConfig, weights w: PartWeights, path: String) throws {
        try config.validate(path)
        self.config = config
        let z = config.zDim
        postQuant = try CausalConv3d(w, "post_quant_conv", inputs: z, outputs: z, kernel: [1, 1, 1], padding: [0, 0])
        quant = try CausalConv3d(w, "quant_conv", inputs: 2 * z, outputs: 2 * z, kernel: [1, 1, 1], padding: [0, 0])

        // Decoder: widths from the deepest level up, as the reference builds them.
        let base = config.decoderBaseDim ?? config.baseDim
        let mult = config.dimMult
        let dims = ([mult.last!] + mult.reversed()).map { base * $0 }
        decoderIn = try CausalConv3d(w, "decoder.conv_in", inputs: z, outputs: dims[0], kernel: [3, 3, 3], padding: [1, 1])
        decoderMid = (try ResidualBlock(w, "decoder.mid_block.resnets.0", inputs: dims[0], outputs: dims[0]),
                      try FrameAttention(w, "decoder.mid_block.attentions.0", channels: dims[0]),
                      try ResidualBlock(w, "decoder.mid_block.resnets.1", inputs: dims[0], outputs: dims[0]))
        let temporalUp = Array(config.temperalDownsample.reversed())
        var levels: [(blocks: [ResidualBlock], resample: Resample?)] = []
        for i in 0..<(dims.count - 1) {
            var inputs = i > 0 ? dims[i] / 2 : dims[i]
            let outputs = dims[i + 1]
            var blocks: [ResidualBlock] = []
            for j in 0...config.numResBlocks {
                blocks.append(try ResidualBlock(w, "decoder.up_blocks.\(i).resnets.\(j)", inputs: inputs, outputs: outputs))
                inputs = outputs
            }
            var resample: Resample?
            if i != mult.count - 1 {
                resample = try Resample(w, "decoder.up_blocks.\(i).upsamplers.0", channels: outputs,
                                        mode: temporalUp[i] ? .upsample3d : .upsample2d, outputs: outputs / 2)
            }
            levels.append((blocks, resample))
        }
        upLevels = levels
        let top = dims.last!
        decoderNorm = try w.vector("decoder.norm_out.gamma", count: top)
        decoderOut = try CausalConv3d(w, "decoder.conv_out", inputs: top, outputs: 3, kernel: [3, 3, 3], padding: [1, 1])

        // Encoder: a flat list of residual blocks and resamplers, as the reference numbers them.
        let encoderDims = ([1] + mult).map { config.baseDim * $0 }
        encoderIn = try CausalConv3d(w, "encoder.conv_in", inputs: 3, outputs: encoderDims[0], kernel: [3, 3, 3], padding: [1, 1])
        var layers: [EncoderLayer] = []
        for i in 0..<(encoderDims.count - 1) {
            var inputs = encoderDims[i]
            let outputs = encoderDims[i + 1]
            for _ in 0..<config.numResBlocks {
                layers.append(.residual(try ResidualBlock(w, "encoder.down_blocks.\(layers.count)", inputs: inputs, outputs: outputs)))
                inputs = outputs
            }
            if i != mult.count - 1 {
                layers.append(.resample(try Resample(w, "encoder.down_blocks.\(layers.count)", channels: outputs,
                                                     mode: config.temperalDownsample[i] ? .downsample3d : .downsample2d, outputs: outputs)))
            }
        }
        downLayers = layers
        let deepest = encoderDims.last!
        encoderMid = (try ResidualBlock(w, "encoder.mid_block.resnets.0", inputs: deepest, outputs: deepest),
                      try FrameAttention(w, "encoder.mid_block.attentions.0", channels: deepest),
                      try ResidualBlock(w, "encoder.mid_block.resnets.1", inputs: deepest, outputs: deepest))
        encoderNorm = try w.vector("encoder.norm_out.gamma", count: deepest)
        encoderOut = try CausalConv3d(w, "encoder.conv_out", inputs: deepest, outputs: 2 * z, kernel: [3, 3, 3], padding: [1, 1])
    }

    // MARK: decoding

    /// Forgets the frames the decoder has seen: the next latent frame is a video's first.
    public func resetDecoder() {
        decoderIn.cache = nil; decoderOut.cache = nil
        for block in [decoderMid.0, decoderMid.2] { block.reset() }
        for level in upLevels { level.blocks.forEach { $0.reset() }; level.resample?.reset() }
    }

    /// Decodes the next latent frames (raw VAE latents, [z, H, W] each) into frames in about
    /// [-1, 1] (not clamped), continuing from what the decoder has seen since `resetDecoder`.
    /// `afterBlock` is called after each block (a worker heartbeats from it).
    public func decodeNext(_ latents: Clip, afterBlock: () -> Void = {}, progress: (Int) -> Void = { _ in }) -> Clip {
        var pieces: [Clip] = []
        for f in 0..<latents.frames {
            var x = postQuant.apply(latents.frames(f..<(f + 1)), after: nil)
            x = decoderIn.stream(x)
            x = decoderMid.0(x)
            x = decoderMid.1(x)
            x = decoderMid.2(x)
            afterBlock()
            for level in upLevels {
                for block in level.blocks { x = block(x); afterBlock() }
                if let resample = level.resample { x = resample(x); afterBlock() }
            }
            VAEKernels.channelRMS(&x, gamma: decoderNorm)
            VAEKernels.silu(&x)
            x = decoderOut.stream(x)
            // Gathered once at the end: appending each frame to all before it would copy the
            // video again for every latent frame.
            pieces.append(x)
            progress(f)
        }
        var out = Clip(frames: 0, channels: 3, height: latents.height * config.spatialFactor, width: latents.width * config.spatialFactor)
        out.data.reserveCapacity(pieces.reduce(0) { $0 + $1.data.count })
        for piece in pieces {
            out.data += piece.data
            out.frames += piece.frames
        }
        return out
    }

    /// Decodes a whole latent video from its first frame.
    public func decode(_ latents: Clip, afterBlock: () -> Void = {}, progress: (Int) -> Void = { _ in }) -> Clip {
        resetDecoder()
        defer { resetDecoder() }
        return decodeNext(latents, afterBlock: afterBlock, progress: progress)
    }

    /// The pipeline's latents (normalised) back to the VAE's: x · std + mean per channel.
    public func denormalize(_ latents: Clip) -> Clip {
        var x = latents
        let plane = x.height * x.width
        for f in 0..<x.frames { for c in 0..<x.channels {
            let base = (f * x.channels + c) * plane
            for i in 0..<plane { x.data[base + i] = x.data[base + i] * config.latentsStd[c] + config.latentsMean[c] }
        } }
        return x
    }

    /// The VAE's latents to the pipeline's: (x − mean) / std per channel.
    public func normalize(_ latents: Clip) -> Clip {
        var x = latents
        let plane = x.height * x.width
        for f in 0..<x.frames { for c in 0..<x.channels {
            let base = (f * x.channels + c) * plane
            for i in 0..<plane { x.data[base + i] = (x.data[base + i] - config.latentsMean[c]) / config.latentsStd[c] }
        } }
        return x
    }

    // MARK: encoding

    /// The mean of the latent distribution of `video` (frames in [-1, 1]; a count of 1 + 4k).
    /// `afterBlock` is called after each block (a worker heartbeats from it).
    public func encodeMean(_ video: Clip, afterBlock: () -> Void = {}) -> Clip {
        precondition(video.channels == 3 && (video.frames - 1) % config.temporalFactor == 0,
                     "the encoder takes 1 + \(config.temporalFactor)k frames")
        encoderIn.cache = nil; encoderOut.cache = nil
        for layer in downLayers {
            switch layer {
            case .residual(let block): block.reset()
            case .resample(let resample): resample.reset()
            }
        }
        encoderMid.0.reset(); encoderMid.2.reset()
        var latent: Clip?
        var start = 0
        while start < video.frames {
            let count = start == 0 ? 1 : config.temporalFactor
            var x = encoderIn.stream(video.frames(start..<(start + count)))
            for layer in downLayers {
                switch layer {
                case .residual(let block): x = block(x)
                case .resample(let resample): x = resample(x)
                }
                afterBlock()
            }
            x = encoderMid.0(x)
            x = encoderMid.1(x)
            x = encoderMid.2(x)
            VAEKernels.channelRMS(&x, gamma: encoderNorm)
            VAEKernels.silu(&x)
            x = encoderOut.stream(x)
            latent = latent.map { $0.appending(x) } ?? x
            start += count
        }
        let moments = quant.apply(latent!, after: nil)
        var mean = Clip(frames: moments.frames, channels: config.zDim, height: moments.height, width: moments.width)
        let plane = moments.height * moments.width
        for f in 0..<moments.frames {
            for i in 0..<(config.zDim * plane) { mean.data[f * config.zDim * plane + i] = moments.data[f * moments.frameSize + i] }
        }
        return mean
    }
}
