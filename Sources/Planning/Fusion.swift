/// Co-denoising fusion (MultiDiffusion): where regions overlap, the fused latent is the
/// weighted mean of their results, Σ w_q·x_q / Σ w_q, summed in canonical region order. Every
/// point gets the same bits whichever area it is fused for and whatever order results arrived in.
public enum Fusion {
    /// A region's latent: planar [frames, channels, rows, columns] over its box.
    public struct Contribution {
        public let region: Int
        public let values: [Float]
        public init(region: Int, values: [Float]) { self.region = region; self.values = values }
    }

    /// The fused latent of `area`, from contributions that cover it, given in any order.
    public static func fuse(_ area: Box, plan: RenderPlan, contributions: [Contribution]) -> [Float] {
        let channels = plan.channels
        let (areaRows, areaColumns) = (area.rows.count, area.columns.count)
        var sum = [Float](repeating: 0, count: area.count(channels: channels))
        var weightSum = [Float](repeating: 0, count: area.frames.count * areaRows * areaColumns)
        for contribution in contributions.sorted(by: { $0.region < $1.region }) {
            let region = plan.regions[contribution.region]
            guard let shared = area.intersection(region.box) else { continue }
            precondition(contribution.values.count == region.box.count(channels: channels), "contribution of region \(region.index) has the wrong size")
            let weights = plan.weights(of: region)
            let box = region.box
            let columnWeights = Array(weights.columns[(shared.columns.lowerBound - box.columns.lowerBound)..<(shared.columns.upperBound - box.columns.lowerBound)])
            let width = shared.columns.count
            contribution.values.withUnsafeBufferPointer { values in
                for frame in shared.frames {
                    let wf = weights.frames[frame - box.frames.lowerBound]
                    for row in shared.rows {
                        let wfr = wf * weights.rows[row - box.rows.lowerBound]
                        let pixel = ((frame - area.frames.lowerBound) * areaRows + row - area.rows.lowerBound) * areaColumns + shared.columns.lowerBound - area.columns.lowerBound
                        for j in 0..<width { weightSum[pixel + j] += wfr * columnWeights[j] }
                        for channel in 0..<channels {
                            let source = (((frame - box.frames.lowerBound) * channels + channel) * box.rows.count + row - box.rows.lowerBound) * box.columns.count + shared.columns.lowerBound - box.columns.lowerBound
                            let target = (((frame - area.frames.lowerBound) * channels + channel) * areaRows + row - area.rows.lowerBound) * areaColumns + shared.columns.lowerBound - area.columns.lowerBound
                            for j in 0..<width { sum[target + j] += (wfr * columnWeights[j]) * values[source + j] }
                        }
                    }
                }
            }
        }
        let plane = areaRows * areaColumns
        for frame in 0..<area.frames.count {
            for channel in 0..<channels {
                let base = (frame * channels + channel) * plane
                for pixel in 0..<plane {
                    let total = weightSum[frame * plane + pixel]
                    precondition(total > 0, "fusion area not covered by its contributions")
                    sum[base + pixel] /= total
                }
            }
        }
        return sum
    }

    /// Copies the part of a latent over `source` that lies in `target` (planar layout).
    public static func crop(_ values: [Float], from source: Box, to target: Box, channels: Int) -> [Float] {
        var out = [Float](repeating: 0, count: target.count(channels: channels))
        var index = 0
        for frame in target.frames {
            for channel in 0..<channels {
                for row in target.rows {
                    let start = (((frame - source.frames.lowerBound) * channels + channel) * source.rows.count + row - source.rows.lowerBound) * source.columns.count + target.columns.lowerBound - source.columns.lowerBound
                    for offset in 0..<target.columns.count {
                        out[index] = values[start + offset]
                        index += 1
                    }
                }
            }
        }
        return out
    }
}
