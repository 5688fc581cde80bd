import Foundation
import Media

/// Input videos for SDEdit jobs: any file FFmpeg reads, brought to the job's canvas and rate.
enum InputVideo {
    /// Decodes `bytes` (a whole video file), scaled to width×height and resampled to `fps`.
    static func frames(_ bytes: Data, width: Int, height: Int, fps: Int) throws -> RGBVideo {
        guard !bytes.isEmpty else { throw CoordinatorError("the job says it has an input video, but none was sent") }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("reel-input-\(UUID().uuidString)").path
        try bytes.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let decoded = try VideoDecoder.read(path, width: width, height: height)
            return decoded.video.resampled(from: decoded.fps, to: fps)
        } catch let error as MediaError {
            throw CoordinatorError("input video: \(error.description.replacingOccurrences(of: path, with: "the file"))")
        }
    }
}
