/// A layout pass for a video longer than one chunk: each shot is first rendered whole as one
/// window of keyframes spread over the shot (to a model without `frame_stride`, a video of one
/// window, its objects crossing the canvas in `window` frames); the chunks then start from that
/// layout, stretched in time to the shot's length and noised back to their first step (SDEdit).
/// Chunks that share only a few frames otherwise each choose where an object lies across its
/// way, and an object ends up drawn twice. Keyframes are frames of the video, so the chunks also
/// keep them at every step (`keyframe(atFrame:)`), and draw only the frames between.
public struct LayoutPass: Sendable, Equatable {
    /// Frames of each shot's layout window.
    public let window: Int
    /// The frames of each shot in the video; the whole video for a job of one prompt.
    public let shots: [Range<Int>]
    /// Where the layout windows lie in the plan's frame coordinates: one per shot, after the
    /// video's last frame, so their boxes never meet the video's and their noise is the seed's
    /// noise of frames the video does not have.
    public let firstFrame: Int
    /// Whether the layout windows are keyframes, frames of the video itself, which the chunks
    /// keep (see `keyframe(atFrame:)`); otherwise a stretched layout only starts them.
    public let keyframes: Bool

    public init(spec: JobSpec, keyframes: Bool = false) {
        window = spec.window
        shots = spec.shotRanges
        firstFrame = spec.frames
        self.keyframes = keyframes
    }

    /// The frames of a shot's layout window, in the plan's frame coordinates.
    public func frames(ofShot shot: Int) -> Range<Int> {
        (firstFrame + shot * window)..<(firstFrame + (shot + 1) * window)
    }

    /// The shot a frame of the video lies in.
    public func shot(ofFrame frame: Int) -> Int {
        shots.index(holding: frame)
    }

    /// The layout frames either side of where a video frame falls in its shot's stretched
    /// layout, and the later one's share (linear interpolation).
    public func source(ofFrame frame: Int) -> (earlier: Int, later: Int, share: Float) {
        let shot = shot(ofFrame: frame), frames = shots[shot]
        let position = frames.count > 1 ? Double(frame - frames.lowerBound) * Double(window - 1) / Double(frames.count - 1) : 0
        let earlier = min(Int(position), window - 1), later = min(earlier + 1, window - 1)
        let first = self.frames(ofShot: shot).lowerBound
        return (first + earlier, first + later, Float(position - Double(earlier)))
    }

    /// The layout frame whose keyframe `frame` is the nearest video frame to, in the plan's frame
    /// coordinates; nil for a frame between keyframes. Keyframe k of a shot of N frames lies
    /// k·(N − 1)/(window − 1) frames into it: in a shot longer than the window each keyframe has
    /// a frame of its own (in a shorter one, each frame keeps the keyframe nearest it).
    public func keyframe(atFrame frame: Int) -> Int? {
        let shot = shot(ofFrame: frame), frames = shots[shot]
        guard frames.count > 1 else { return self.frames(ofShot: shot).lowerBound }
        let spacing = Double(frames.count - 1) / Double(window - 1)
        let index = min(Int((Double(frame - frames.lowerBound) / spacing).rounded()), window - 1)
        let nearest = frames.lowerBound + Int((Double(index) * spacing).rounded())
        return nearest == frame ? self.frames(ofShot: shot).lowerBound + index : nil
    }

    /// The layout frames a box of the video is stretched from, over the box's rows and columns.
    public func sourceBox(of box: Box) -> Box {
        let first = source(ofFrame: box.frames.lowerBound).earlier, last = source(ofFrame: box.frames.upperBound - 1).later
        return Box(frames: first..<(last + 1), rows: box.rows, columns: box.columns)
    }

    /// The layout stretched over `box`'s frames: `latent` is the finished layout over
    /// `sourceBox(of: box)`, planar [frames, channels, rows, columns].
    public func stretched(_ latent: [Float], to box: Box, channels: Int) -> [Float] {
        let layoutFrames = sourceBox(of: box).frames
        let frameSize = channels * box.rows.count * box.columns.count
        precondition(latent.count == layoutFrames.count * frameSize, "layout latent of the wrong size")
        var out = [Float](repeating: 0, count: box.frames.count * frameSize)
        for (index, frame) in box.frames.enumerated() {
            let (earlier, later, share) = source(ofFrame: frame)
            let a = (earlier - layoutFrames.lowerBound) * frameSize, b = (later - layoutFrames.lowerBound) * frameSize
            for i in 0..<frameSize {
                out[index * frameSize + i] = (1 - share) * latent[a + i] + share * latent[b + i]
            }
        }
        return out
    }
}
