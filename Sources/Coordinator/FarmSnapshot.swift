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
    /// The middle frame of each chunk's first tile at the last step that region finished
    /// (chunks still at their first step have nothing to show yet).
    public func previewFrames() -> [PreviewFrame] {
        let tiles = plan.tileRows.count * plan.tileColumns.count
        return plan.chunks.indices.compactMap { chunk in
            let region = plan.regions[chunk * tiles]
            guard let latent = latestLatent(of: region.index) else { return nil }
            let box = region.box
            let (rows, columns) = (box.rows.count, box.columns.count)
            let middle = box.frames.count / 2
            let frameSize = plan.channels * rows * columns
            let planar = Array(latent[(middle * frameSize)..<((middle + 1) * frameSize)])
            return PreviewFrame(chunk: chunk, frame: box.frames.lowerBound + middle, step: progress[region.index],
                                width: columns, height: rows, planar: planar)
        }
    }
}
