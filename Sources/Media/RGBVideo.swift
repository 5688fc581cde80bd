/// Video frames as packed 8-bit RGB, frame after frame, row after row.
public struct RGBVideo: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public private(set) var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count % (width * height * 3) == 0,
                     "pixels must hold whole \(width)x\(height) RGB frames")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Frames from planar floats [frames, 3, height, width] in [-1, 1] (values outside are
    /// clipped), the layout the denoiser produces.
    public init(planar values: [Float], frames: Int, height: Int, width: Int) {
        precondition(values.count == frames * 3 * height * width, "planar values must be [frames, 3, height, width]")
        let plane = height * width
        var pixels = [UInt8](repeating: 0, count: frames * plane * 3)
        for frame in 0..<frames {
            for channel in 0..<3 {
                let source = (frame * 3 + channel) * plane
                for i in 0..<plane {
                    let unit = (values[source + i] + 1) * 0.5
                    pixels[(frame * plane + i) * 3 + channel] = UInt8((min(max(unit, 0), 1) * 255).rounded())
                }
            }
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// Planar floats [frames, 3, height, width] in [-1, 1]: the inverse of `init(planar:)`.
    public func planar() -> [Float] {
        let plane = width * height
        var values = [Float](repeating: 0, count: frameCount * 3 * plane)
        for frame in 0..<frameCount {
            for i in 0..<plane {
                for channel in 0..<3 {
                    values[(frame * 3 + channel) * plane + i] = Float(pixels[(frame * plane + i) * 3 + channel]) / 127.5 - 1
                }
            }
        }
        return values
    }

    /// The video at another frame rate, same duration: each output frame is the input frame
    /// nearest its time.
    public func resampled(from sourceFPS: Double, to targetFPS: Int) -> RGBVideo {
        guard sourceFPS > 0, abs(sourceFPS - Double(targetFPS)) > 1e-6 else { return self }
        let count = max(1, Int((Double(frameCount) / sourceFPS * Double(targetFPS)).rounded()))
        var out = [UInt8]()
        out.reserveCapacity(count * frameBytes)
        for index in 0..<count {
            out += frame(min(frameCount - 1, Int((Double(index) * sourceFPS / Double(targetFPS)).rounded())))
        }
        return RGBVideo(width: width, height: height, pixels: out)
    }

    public var frameBytes: Int { width * height * 3 }
    public var frameCount: Int { pixels.count / frameBytes }

    public func frame(_ index: Int) -> ArraySlice<UInt8> {
        pixels[(index * frameBytes)..<((index + 1) * frameBytes)]
    }

    /// Peak signal-to-noise ratio against another video of the same size, in dB over all frames.
    public func psnr(against other: RGBVideo) -> Double {
        precondition(width == other.width && height == other.height && pixels.count == other.pixels.count)
        var squared = 0.0
        for i in 0..<pixels.count {
            let d = Double(pixels[i]) - Double(other.pixels[i])
            squared += d * d
        }
        let mse = squared / Double(pixels.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }
}

import Foundation
