import Foundation
import Media
import Planning

/// Input videos for SDEdit jobs: a file the client sent, brought to the job's canvas and rate.
/// It is hostile until read: decoded from memory only, by a whitelist of container formats,
/// with no protocol able to open anything else, and its size checked before scaling.
public enum InputVideo {
    /// Decodes `bytes` (a whole video file), scaled to width×height and resampled to `fps`;
    /// decoding stops once the file has given what `maxFrames` frames at that rate need.
    public static func frames(_ bytes: Data, width: Int, height: Int, fps: Int, maxFrames: Int) throws -> RGBVideo {
        guard !bytes.isEmpty else { throw CoordinatorError(.inputMissing, "the job says it has an input video, but none was sent") }
        do {
            // Enough frames at the file's own rate for `maxFrames` at the job's (the file's rate is
            // only known once opened, so the bound assumes the fastest a job may have), but never
            // more decoded pictures than twice the largest job's latent holds: a long, fast file
            // for a slow job then comes up short, and the job is refused for it.
            let perFrame = width * height * 3
            let budget = 2 * JobLimits.maxSamples * 3 / max(perFrame, 1)
            let limits = UntrustedVideoLimits(maxFrames: max(1, min(maxFrames * max(1, JobLimits.maxFPS / max(fps, 1)) + 1, budget)))
            let decoded = try VideoDecoder.read(bytes: bytes, width: width, height: height, limits: limits)
            return decoded.video.resampled(from: decoded.fps, to: fps)
        } catch let error as MediaError {
            throw CoordinatorError(.inputUnreadable, "input video: \(error.description)")
        }
    }
}
