/// Where a window of frames lies in the whole video it belongs to: what a model told its
/// window's place (`frame_phase`, `video_progress` and `frame_stride` in its config) is
/// conditioned on, so that every chunk of a long render draws its part of one video.
public struct WindowPlace: Sendable, Equatable {
    /// The index in the whole video of the window's first frame.
    public var firstFrame: Int
    /// The whole video's length in frames; a video no longer than the window is one window.
    public var videoFrames: Int
    /// Whether the window's frames are keyframes, spread evenly from `firstFrame` to the
    /// video's last frame, instead of consecutive frames: the layout a long render draws first
    /// (read with `frame_stride`).
    public var keyframes: Bool

    public init(firstFrame: Int = 0, videoFrames: Int = 0, keyframes: Bool = false) {
        self.firstFrame = firstFrame; self.videoFrames = videoFrames; self.keyframes = keyframes
    }

    /// A window that is the whole video.
    public static let whole = WindowPlace()

    /// [u0, 1 − u1] for a window `window` frames long, where u0 and u1 are how far through the
    /// video (0 at its first frame, 1 at its last) the window's first and last frames lie: [0, 0]
    /// for a window that is the whole video, or its keyframes. Computed in double, as the trainer does.
    public func progressFeatures(window: Int) -> [Float] {
        let length = Double(max(videoFrames, window) - 1)
        guard length > 0 else { return [0, 0] }
        let first = Double(firstFrame)
        let last = keyframes ? length : first + Double(window) - 1
        return [Float(first / length), Float(1 - last / length)]
    }

    /// How many video frames apart the window's frames lie: 1 for consecutive frames.
    public func stride(window: Int) -> Double {
        guard keyframes, window > 1 else { return 1 }
        return max(Double(max(videoFrames, window) - 1 - firstFrame) / Double(window - 1), 1)
    }

    /// [1 − 1/stride]: 0 for consecutive frames, towards 1 for keyframes far apart.
    public func strideFeatures(window: Int) -> [Float] {
        [Float(1 - 1 / stride(window: window))]
    }
}
