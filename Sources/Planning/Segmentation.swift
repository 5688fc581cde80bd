/// Cutting one axis — frames, rows or columns — into overlapping windows.
public enum Segmentation {
    /// Windows of `window` covering 0..<total, each starting `window - overlap` after the one
    /// before, the last one moved back to end exactly at `total` (so it may overlap its
    /// neighbour by more). The cut depends on these three numbers only, never on how many
    /// machines will render it. A total no longer than the window is one segment.
    public static func cover(total: Int, window: Int, overlap: Int) -> [Range<Int>] {
        precondition(total > 0 && window > 0 && overlap >= 0 && overlap < window)
        guard total > window else { return [0..<total] }
        let stride = window - overlap
        var segments: [Range<Int>] = []
        var start = 0
        while start + window < total {
            segments.append(start..<(start + window))
            start += stride
        }
        segments.append((total - window)..<total)
        return segments
    }

    /// Fusion weight of each position of `segments[index]`: 1 inside, ramping linearly down to
    /// 1/(n+1) across the n positions it shares with each neighbour, so overlapping segments
    /// cross-fade instead of cutting. Edges of the whole axis are not ramped.
    public static func weights(of segments: [Range<Int>], at index: Int) -> [Float] {
        let segment = segments[index]
        let before = index > 0 ? max(0, segments[index - 1].upperBound - segment.lowerBound) : 0
        let after = index + 1 < segments.count ? max(0, segment.upperBound - segments[index + 1].lowerBound) : 0
        return (0..<segment.count).map { i in
            var weight: Float = 1
            if i < before { weight = min(weight, Float(i + 1) / Float(before + 1)) }
            if segment.count - i <= after { weight = min(weight, Float(segment.count - i) / Float(after + 1)) }
            return weight
        }
    }
}
