import Foundation

/// Counts of durations in buckets a quarter-octave wide, from 1 µs to about 18 minutes: small
/// enough to copy with the coordinator's statistics every turn, fine enough for percentiles
/// to within 19 %.
public struct LatencyHistogram: Sendable, Equatable {
    static let bucketsPerOctave = 4.0
    public private(set) var counts = [Int](repeating: 0, count: 120)
    public private(set) var total = 0

    public init() {}

    /// The upper bound of bucket `index`, in seconds.
    static func bound(_ index: Int) -> Double { 1e-6 * pow(2, Double(index + 1) / bucketsPerOctave) }

    public mutating func record(seconds: Double) {
        let index = seconds <= 1e-6 ? 0 : Int((log2(seconds / 1e-6) * Self.bucketsPerOctave).rounded(.down))
        counts[min(max(index, 0), counts.count - 1)] += 1
        total += 1
    }

    /// The duration `fraction` of the recorded ones do not exceed (a bucket's upper bound),
    /// in seconds; 0 with nothing recorded.
    public func percentile(_ fraction: Double) -> Double {
        guard total > 0 else { return 0 }
        let rank = max(1, Int((fraction * Double(total)).rounded(.up)))
        var seen = 0
        for (index, count) in counts.enumerated() {
            seen += count
            if seen >= rank { return Self.bound(index) }
        }
        return Self.bound(counts.count - 1)
    }

    /// What was recorded since `earlier`, a copy of this histogram taken before.
    public func since(_ earlier: LatencyHistogram) -> LatencyHistogram {
        var difference = self
        for index in counts.indices { difference.counts[index] -= earlier.counts[index] }
        difference.total -= earlier.total
        return difference
    }
}
