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
}

extension JobRun {
    /// The middle frame of each chunk's first tile at the last step that region finished; for a
    /// chunk that has not started, while the layout pass runs, the layout's frame at that place
    /// (chunks still at their first step have nothing to show otherwise).
    public func previewFrames() -> [PreviewFrame] {
        let tiles = plan.tileRows.count * plan.tileColumns.count
        return plan.chunks.indices.compactMap { chunk in
            let region = plan.regions[chunk * tiles]
            let middle = region.box.frames.lowerBound + region.box.frames.count / 2
            if let latent = latestLatent(of: region.index) {
                return preview(of: region, frame: middle - region.box.frames.lowerBound, latent: latent, chunk: chunk, shownAs: middle)
            }
            guard let layout = plan.layout,
                  let source = plan.layoutSources[region.index].first(where: {
                      plan.regions[$0].layoutShot == layout.shot(ofFrame: middle) && plan.regions[$0].tile == region.tile }),
                  let latent = latestLatent(of: source) else { return nil }
            let layoutRegion = plan.regions[source]
            return preview(of: layoutRegion, frame: layout.source(ofFrame: middle).earlier - layoutRegion.box.frames.lowerBound,
                           latent: latent, chunk: chunk, shownAs: middle)
        }
    }

    /// One frame of `region`'s latent, shown as frame `shownAs` of chunk `chunk`.
    private func preview(of region: Region, frame: Int, latent: [Float], chunk: Int, shownAs: Int) -> PreviewFrame {
        let (rows, columns) = (region.box.rows.count, region.box.columns.count)
        let frameSize = plan.channels * rows * columns
        // A latent model's frame shows its first three latent channels as red, green and blue:
        // enough to see shapes settle, not its colours.
        let planar = Array(latent[(frame * frameSize)..<(frame * frameSize + 3 * rows * columns)])
        return PreviewFrame(chunk: chunk, frame: shownAs, step: progress[region.index], width: columns, height: rows, planar: planar)
    }
}
