/// Philox4x32-10, the counter-based generator of Salmon et al. (SC'11): a pure function of a
/// 64-bit key and a 128-bit counter. Any machine can make any element of any noise tensor
/// without making the others, which is what lets a farm split a video and still render it
/// bit-identically to one machine.
public struct Philox4x32: Sendable {
    public let key: (UInt32, UInt32)

    public init(seed: UInt64) {
        key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
    }

    /// The four 32-bit outputs for one counter.
    @inline(__always)
    public func block(_ counter: (UInt32, UInt32, UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for _ in 0..<10 {
            let product0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let product1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: product0 >> 32), lo0 = UInt32(truncatingIfNeeded: product0)
            let hi1 = UInt32(truncatingIfNeeded: product1 >> 32), lo1 = UInt32(truncatingIfNeeded: product1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
            k0 = k0 &+ 0x9E37_79B9
            k1 = k1 &+ 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }
}

/// Gaussian noise addressed by (seed, step, frame, channel, y, x).
///
/// Each element is one Philox block on the counter (x, y, frame, step << 8 | channel), turned
/// into a standard normal by Box–Muller. Channels are below 256 and steps below 2^24.
public struct NoiseField: Sendable {
    public let seed: UInt64
    private let philox: Philox4x32

    public init(seed: UInt64) {
        self.seed = seed
        philox = Philox4x32(seed: seed)
    }

    @inline(__always)
    public func sample(step: Int, frame: Int, channel: Int, y: Int, x: Int) -> Float {
        let counter = (UInt32(truncatingIfNeeded: x), UInt32(truncatingIfNeeded: y),
                       UInt32(truncatingIfNeeded: frame), UInt32(truncatingIfNeeded: step << 8 | channel))
        let (a, b, _, _) = philox.block(counter)
        // Uniforms in (0, 1] and [0, 1) from the top 24 bits, so log never sees zero.
        let u1 = (Double(a >> 8) + 1) / 16_777_216
        let u2 = Double(b >> 8) / 16_777_216
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    /// Noise for frames `frames` (absolute frame numbers) of a [frames, channels, height, width]
    /// tensor whose top-left pixel sits at (`originY`, `originX`) of the whole canvas.
    public func tensor(step: Int, frames: Range<Int>, channels: Int, height: Int, width: Int,
                       originY: Int = 0, originX: Int = 0) -> Tensor {
        var out = Tensor.uninitialized([frames.count, channels, height, width])
        out.withUnsafeMutablePointer { p in
            var index = 0
            for frame in frames {
                for channel in 0..<channels {
                    for y in 0..<height {
                        for x in 0..<width {
                            p[index] = sample(step: step, frame: frame, channel: channel, y: originY + y, x: originX + x)
                            index += 1
                        }
                    }
                }
            }
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Darwin
@inline(__always) private func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
