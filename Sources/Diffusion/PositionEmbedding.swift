import Foundation

/// Fixed sin-cos embeddings: of token positions, of video patch coordinates, and of the timestep.
enum PositionEmbedding {
    /// Rows of [sin(p·ω₀) … sin(p·ω_{h-1}), cos(p·ω₀) … cos(p·ω_{h-1})], h = width/2,
    /// ωᵢ = 10000^(-i/h); one row per position.
    static func sinusoid(positions: [Float], width: Int) -> [Float] {
        let half = width / 2
        var out = [Float](repeating: 0, count: positions.count * width)
        for (row, position) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(position) * pow(10_000, -Double(i) / Double(half))
                out[row * width + i] = Float(sin(angle))
                out[row * width + half + i] = Float(cos(angle))
            }
        }
        return out
    }

    /// One row per token of a [frames × gridHeight × gridWidth] video: half the width encodes the
    /// frame within the window, a quarter each the patch row and column.
    static func video(frames: Int, gridHeight: Int, gridWidth: Int, width: Int) -> [Float] {
        let timeWidth = width / 2, axisWidth = width / 4
        let time = sinusoid(positions: (0..<frames).map(Float.init), width: timeWidth)
        let rowsEmbedding = sinusoid(positions: (0..<gridHeight).map(Float.init), width: axisWidth)
        let columns = sinusoid(positions: (0..<gridWidth).map(Float.init), width: axisWidth)
        var out = [Float]()
        out.reserveCapacity(frames * gridHeight * gridWidth * width)
        for f in 0..<frames {
            for y in 0..<gridHeight {
                for x in 0..<gridWidth {
                    out += time[(f * timeWidth)..<((f + 1) * timeWidth)]
                    out += rowsEmbedding[(y * axisWidth)..<((y + 1) * axisWidth)]
                    out += columns[(x * axisWidth)..<((x + 1) * axisWidth)]
                }
            }
        }
        return out
    }

    /// Frequency features of a timestep t ∈ [0, 1], scaled to [0, 1000] as diffusion models do.
    static let timestepFeatures = 256
    static func timestep(_ t: Float) -> [Float] {
        sinusoid(positions: [t * 1000], width: timestepFeatures)
    }
}
