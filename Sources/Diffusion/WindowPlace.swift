/// Where a window of frames lies in the whole video it belongs to: what a model told its
/// window's place (`frame_phase` and `video_progress` in its config) is conditioned on, so that
/// every chunk of a long render draws its part of one video.
public struct WindowPlace: Sendable, Equatable {
    /// The index in the whole video of the window's first frame.
    public var firstFrame: Int
    /// The whole video's length in frames; a video no longer than the window is one window.
    public var videoFrames: Int

    public init(firstFrame: Int = 0, videoFrames: Int = 0) {
        self.firstFrame = firstFrame; self.videoFrames = videoFrames
    }

    /// A window that is the whole video.
    public static let whole = WindowPlace()

    /// [u0, 1 − u1] for a window `window` frames long, where u0 and u1 are how far through the
    /// video (0 at its first frame, 1 at its last) the window's first and last frames lie: [0, 0]
    /// for a window that is the whole video. Computed in double, as the trainer does.
    public func progressFeatures(window: Int) -> [Float] {
        let length = Double(max(videoFrames, window) - 1)
        guard length > 0 else { return [0, 0] }
        let first = Double(firstFrame)
        return [Float(first / length), Float(1 - (first + Double(window) - 1) / length)]
    }
}
