import Dispatch
import Foundation

/// Elementwise and row-wise kernels of the denoiser: layer norm, activations, softmax.
///
/// They work on raw pointers because they run on every token of every step; reductions use
/// SIMD accumulators since the compiler may not reorder float sums by itself.
package enum Kernels {
    package typealias Vector = SIMD8<Float>

    /// Splits `count` rows into contiguous ranges and runs them on `ComputeThreads.count` threads.
    /// Small jobs run inline: a thread hop costs more than a few thousand flops.
    package static func forEachRowRange(_ count: Int, costPerRow: Int, _ body: (Range<Int>) -> Void) {
        let worthSplitting = count * costPerRow >= 1 << 15
        ComputeThreads.forEachSlice(of: count, parts: worthSplitting ? ComputeThreads.count : 1, body)
    }

    // MARK: exp

    /// exp(x) for eight lanes: range reduction to x = n·ln2 + r, a degree-6 polynomial for e^r
    /// and the exponent field for 2^n. Relative error below 2e-7 over the float range.
    ///
    /// Rounding uses the 1.5·2²³ trick: adding it leaves round(x·log2e) in the low mantissa
    /// bits, which serve both as the float n and, through the bit pattern, as the integer
    /// exponent (a generic float-to-int vector conversion costs more than the whole polynomial).
    @inline(__always)
    package static func exp(_ x: Vector) -> Vector {
        let magic = Vector(repeating: 12_582_912)
        var clamped = x.replacing(with: -87, where: x .< -87)
        clamped.replace(with: 88, where: clamped .> 88)
        let shifted = clamped * 1.442_695_04 + magic
        let n = shifted - magic
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = Vector(repeating: 1.987_569_1e-4)
        p = p * r + 1.398_199_9e-3
        p = p * r + 8.333_452e-3
        p = p * r + 4.166_579_6e-2
        p = p * r + 1.666_666_6e-1
        p = p * r + 5.000_000_1e-1
        p = p * r * r + r + 1
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        return p * unsafeBitCast((integer &+ 127) &<< 23, to: Vector.self)
    }

    @inline(__always)
    package static func load(_ p: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    package static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self)
    }

    // MARK: softmax


    @inline(__always)
    package static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let sum = exponentiate(x, count: count, minus: maximum(x, count: count))
        let inverse = 1 / sum
        for j in 0..<count { x[j] *= inverse }
    }

    /// The largest of `count` floats (−∞ for none).
    package static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        let vectorEnd = count & ~7
        var maxV = Vector(repeating: -.infinity)
        var i = 0
        while i < vectorEnd { maxV = pointwiseMax(maxV, load(x + i)); i += 8 }
        var maximum = maxV.max()
        while i < count { maximum = max(maximum, x[i]); i += 1 }
        return maximum
    }

    /// x ← exp(x − shift), in place; returns the sum of the results.
    package static func exponentiate(_ x: UnsafeMutablePointer<Float>, count: Int, minus shift: Float) -> Float {
        let vectorEnd = count & ~7
        var sumV = Vector.zero
        let shiftV = Vector(repeating: shift)
        var i = 0
        while i < vectorEnd {
            let e = exp(load(x + i) - shiftV)
            store(e, x + i)
            sumV += e
            i += 8
        }
        var sum = sumV.sum()
        while i < count {
            let e = scalarExp(x[i] - shift)
            x[i] = e
            sum += e
            i += 1
        }
        return sum
    }

    @inline(__always)
    package static func scalarExp(_ x: Float) -> Float {
        exp(Vector(repeating: x))[0]
    }

    // MARK: layer norm

    /// Layer norm of each `width`-wide row: (x - mean) / sqrt(var + eps), then either an affine
    /// weight and bias, or adaLN modulation `· (1 + scale) + shift` with one (scale, shift) pair
    /// per group of `rowsPerGroup` rows (one group per video in the batch).
    package static func layerNorm(
        _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rows: Int, width: Int,
        epsilon: Float = 1e-6, affine: Affine
    ) {
        forEachRowRange(rows, costPerRow: width * 6) { range in
            for row in range {
                let input = x + row * width
                let output = out + row * width
                var sumV = Vector.zero, i = 0
                while i + 8 <= width { sumV += load(input + i); i += 8 }
                var sum = sumV.sum()
                while i < width { sum += input[i]; i += 1 }
                let mean = sum / Float(width)

                var squaresV = Vector.zero
                let meanV = Vector(repeating: mean)
                i = 0
                while i + 8 <= width { let d = load(input + i) - meanV; squaresV += d * d; i += 8 }
                var squares = squaresV.sum()
                while i < width { let d = input[i] - mean; squares += d * d; i += 1 }
                let inverseStd = 1 / (squares / Float(width) + epsilon).squareRoot()

                switch affine {
                case .none:
                    for j in 0..<width { output[j] = (input[j] - mean) * inverseStd }
                case .weightBias(let weight, let bias):
                    for j in 0..<width { output[j] = (input[j] - mean) * inverseStd * weight[j] + bias[j] }
                case .modulation(let shift, let scale, let stride, let rowsPerGroup):
                    let group = row / rowsPerGroup
                    let sh = shift + group * stride, sc = scale + group * stride
                    for j in 0..<width { output[j] = (input[j] - mean) * inverseStd * (1 + sc[j]) + sh[j] }
                }
            }
        }
    }

    package enum Affine {
        case none
        case weightBias(UnsafePointer<Float>, UnsafePointer<Float>)
        /// Per-group shift and scale vectors, `stride` floats apart from one group to the next.
        case modulation(shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, stride: Int, rowsPerGroup: Int)
    }

    // MARK: activations

    /// GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in place.
    /// tanh(u) is written as 1 - 2/(1 + e^{2u}) so it can use the vector exp.
    package static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        forEachRowRange(count / 64 + 1, costPerRow: 64 * 20) { range in
            let lower = range.lowerBound * 64
            let upper = min(count, range.upperBound * 64)
            var i = lower
            let c = Vector(repeating: 0.797_884_56), k = Vector(repeating: 0.044_715)
            while i + 8 <= upper {
                let v = load(x + i)
                let u = c * (v + k * v * v * v)
                let tanh = 1 - 2 / (1 + exp(2 * u))
                store(0.5 * v * (1 + tanh), x + i)
                i += 8
            }
            while i < upper {
                let v = x[i]
                let u = 0.797_884_56 * (v + 0.044_715 * v * v * v)
                x[i] = 0.5 * v * (1 + (1 - 2 / (1 + scalarExp(2 * u))))
                i += 1
            }
        }
    }

    /// SiLU, x·sigmoid(x), in place.
    package static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = load(x + i)
            store(v / (1 + exp(-v)), x + i)
            i += 8
        }
        while i < count { x[i] = x[i] / (1 + scalarExp(-x[i])); i += 1 }
    }

    // MARK: residuals

    /// x += gate ⊙ h row by row, with one gate vector per group of `rowsPerGroup` rows.
    package static func addGated(
        _ h: UnsafePointer<Float>, to x: UnsafeMutablePointer<Float>, rows: Int, width: Int,
        gate: UnsafePointer<Float>, gateStride: Int, rowsPerGroup: Int
    ) {
        forEachRowRange(rows, costPerRow: width * 2) { range in
            for row in range {
                let g = gate + (row / rowsPerGroup) * gateStride
                let xr = x + row * width, hr = h + row * width
                for j in 0..<width { xr[j] += g[j] * hr[j] }
            }
        }
    }

    /// x += h elementwise.
    package static func add(_ h: UnsafePointer<Float>, to x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] += h[i] }
    }
}
