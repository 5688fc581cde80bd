import Diffusion
import Foundation

/// Row kernels Wan's parts need beyond Diffusion's.
enum WanKernels {
    /// RMS norm of each `width`-wide row in place: x / sqrt(mean(x²) + eps) · weight.
    static func rmsNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, weight: [Float], epsilon: Float) {
        weight.withUnsafeBufferPointer { w in
            Kernels.forEachRowRange(rows, costPerRow: width * 4) { range in
                for row in range {
                    let r = x + row * width
                    var sumV = Kernels.Vector.zero, i = 0
                    while i + 8 <= width { let v = Kernels.load(r + i); sumV += v * v; i += 8 }
                    var sum = sumV.sum()
                    while i < width { sum += r[i] * r[i]; i += 1 }
                    let inverse = 1 / (sum / Float(width) + epsilon).squareRoot()
                    for j in 0..<width { r[j] = r[j] * inverse * w[j] }
                }
            }
        }
    }
}
