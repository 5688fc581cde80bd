import Foundation

/// Blocking services (a coordinator's or worker's `run`) started on threads of their own, and
/// waited for together when a test's farm is torn down.
public final class TestThreads: Sendable {
    private let group = DispatchGroup()

    public init() {}

    /// Runs `body` on a new thread; what it throws is the test's to observe elsewhere.
    public func run(_ body: @escaping @Sendable () throws -> Void) {
        group.enter()
        Thread { [group] in
            defer { group.leave() }
            try? body()
        }.start()
    }

    /// Waits until every thread started here has returned.
    public func wait() { group.wait() }
}
