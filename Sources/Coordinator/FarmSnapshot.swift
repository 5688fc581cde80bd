import Foundation
import Planning
import Wire

/// What the coordinator shows outside its own thread (the dashboard reads it): jobs, workers
/// and a preview of each running job, republished a few times a second.
public struct FarmSnapshot: Sendable {
    public var jobs: [Reel_V1_JobStatus] = []
    public var workers: [Reel_V1_WorkerStatus] = []
    /// Per running job, a frame from the middle of each chunk (its first tile) at the step
    /// that chunk has reached: the latent as it is being denoised.
    public var previews: [String: [PreviewFrame]] = [:]
    public var dataDirectory = ""
    public var taken = Date(timeIntervalSince1970: 0)

    public init() {}
}

/// One frame of a job's current latent: RGB planar in [-1, 1].
public struct PreviewFrame: Sendable, Equatable {
    public let chunk: Int
    public let frame: Int
    public let step: Int
    public let width: Int
    public let height: Int
    public let planar: [Float]
}

/// What an operator may ask of a running coordinator from outside its thread.
public enum FarmCommand: Sendable, Equatable {
    case cancel(job: String)
    case setPriority(job: String, priority: Int)
    /// Pause, resume or retry, as `reel pause`, `reel resume` and `reel retry` do.
    case control(job: String, action: JobAction)
}

/// What an operator may do to a job besides cancelling it.
public enum JobAction: String, Sendable, Equatable, CustomStringConvertible {
    case pause, resume, retry
    public var description: String { rawValue }
}

extension JobRun {
    /// The middle frame of each chunk's first tile at the last step that region finished; for a
    /// chunk that has not started, while the layout pass runs, the layout's frame at that place
    /// (chunks still at their first step have nothing to show otherwise).
    /// `projection`: for a latent job, RGB ≈ W·latent + b (3 × (channels + 1) values, a
    /// worker's `PreviewProjection`); without one, its first three channels stand in for RGB.
    public func previewFrames(projection: [Float]? = nil) -> [PreviewFrame] {
        let projection = projection.flatMap { $0.count == 3 * (plan.channels + 1) ? $0 : nil }
        let tiles = plan.tileRows.count * plan.tileColumns.count
        return plan.chunks.indices.compactMap { chunk in
            let region = plan.regions[chunk * tiles]
            let middle = region.box.frames.lowerBound + region.box.frames.count / 2
            if let latent = latestLatent(of: region.index) {
                return preview(of: region, frame: middle - region.box.frames.lowerBound, latent: latent, chunk: chunk, shownAs: middle,
                               projection: projection)
            }
            guard let layout = plan.layout,
                  let source = plan.layoutSources[region.index].first(where: {
                      plan.regions[$0].layoutShot == layout.shot(ofFrame: middle) && plan.regions[$0].tile == region.tile }),
                  let latent = latestLatent(of: source) else { return nil }
            let layoutRegion = plan.regions[source]
            return preview(of: layoutRegion, frame: layout.source(ofFrame: middle).earlier - layoutRegion.box.frames.lowerBound,
                           latent: latent, chunk: chunk, shownAs: middle, projection: projection)
        }
    }

    /// One frame of `region`'s latent, shown as frame `shownAs` of chunk `chunk`.
    private func preview(of region: Region, frame: Int, latent: [Float], chunk: Int, shownAs: Int, projection: [Float]?) -> PreviewFrame {
        let (rows, columns) = (region.box.rows.count, region.box.columns.count)
        let plane = rows * columns, channels = plan.channels, frameSize = channels * plane
        var planar = Array(latent[(frame * frameSize)..<(frame * frameSize + 3 * plane)])
        if let projection, stages != nil {
            // A latent pixel's colour, as its VAE roughly decodes it, clamped to the frame's range.
            for k in 0..<3 {
                let row = k * (channels + 1)
                for i in 0..<plane {
                    var value = projection[row + channels]
                    for c in 0..<channels { value += projection[row + c] * latent[frame * frameSize + c * plane + i] }
                    planar[k * plane + i] = min(1, max(-1, value))
                }
            }
        }
        return PreviewFrame(chunk: chunk, frame: shownAs, step: progress[region.index], width: columns, height: rows, planar: planar)
    }
}
