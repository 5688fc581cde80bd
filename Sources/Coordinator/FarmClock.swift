import Diffusion
import Foundation

/// Time as the coordinator reads it. Liveness, shard timeouts, checkpoint intervals, retention
/// and key re-reads all go through one clock, so a test can move it by hand (`ManualClock`)
/// and see a worker reaped or a job forgotten at once instead of sleeping through it.
public protocol FarmClock: AnyObject, Sendable {
    /// Monotonic time, for intervals.
    var now: ContinuousClock.Instant { get }
    /// Wall-clock time, for what is shown and stored (when a job ended).
    var date: Date { get }
}

/// The system's clocks.
public final class SystemClock: FarmClock {
    public init() {}
    public var now: ContinuousClock.Instant { ContinuousClock.now }
    public var date: Date { Date() }
}

/// A clock that moves only when told: both of its readings advance together.
public final class ManualClock: FarmClock, @unchecked Sendable {
    private let lock = NSLock()
    private let startInstant = ContinuousClock.now
    private let startDate = Date()
    private var elapsed = Duration.zero

    public init() {}

    public var now: ContinuousClock.Instant { lock.withLock { startInstant + elapsed } }
    public var date: Date { lock.withLock { startDate.addingTimeInterval(elapsed.seconds) } }

    public func advance(by duration: Duration) {
        lock.withLock { elapsed += duration }
    }

    public func advance(seconds: Double) { advance(by: .milliseconds(Int64((seconds * 1000).rounded()))) }
}
