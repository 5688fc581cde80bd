import Dispatch
import Foundation

/// How many threads the diffusion core uses. OpenBLAS itself runs single-threaded: Reel splits
/// the work (rows of a linear layer, the sequences and heads of attention, rows of the
/// elementwise kernels) so that one thread pool, not two competing ones, owns the cores.
/// A worker process that shares its machine with others sets this to its share.
public enum ComputeThreads {
    nonisolated(unsafe) private static var current: Int = {
        BLAS.threads = 1
        return ProcessInfo.processInfo.activeProcessorCount
    }()

    public static var count: Int { current }

    /// Reads the setting once so that its first use configures OpenBLAS.
    @inline(__always)
    static func ensureConfigured() { _ = current }

    public static func set(_ threads: Int) {
        current = max(1, threads)
        BLAS.threads = 1
    }

    /// Runs `body` on `parts` contiguous slices of 0..<count on up to `count` threads.
    package static func forEachSlice(of count: Int, parts: Int, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(parts, count))
        guard parts > 1 else {
            body(0..<count)
            return
        }
        // The slices are disjoint, so the work is safe to run concurrently even though the
        // closure captures raw pointers, which Swift cannot prove Sendable.
        withoutActuallyEscaping(body) { body in
            let work = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                work.value(count * part / parts..<count * (part + 1) / parts)
            }
        }
    }
}

/// Carries a value the compiler cannot prove Sendable across a concurrency boundary whose
/// safety the caller has established.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
