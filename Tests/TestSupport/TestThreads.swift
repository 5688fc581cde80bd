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

/// What a service reports from its own thread (a coordinator's events, say), kept in order
/// for the test's thread to read.
public final class Recorder<Element: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var elements: [Element] = []

    public init() {}

    public func append(_ element: Element) { lock.withLock { elements.append(element) } }
    public var all: [Element] { lock.withLock { elements } }
}

/// Polls `condition` every `interval` seconds until it holds: how a test waits for something
/// another thread or process does, never for a fixed time. Fails after `timeout` seconds.
public func waitUntil(_ what: String, timeout: Double = 20, interval: Double = 0.02, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while try !condition() {
        guard Date() < deadline else { throw TestFailure("timed out after \(timeout) s waiting until \(what)") }
        Thread.sleep(forTimeInterval: interval)
    }
}

/// A test's own failure (a wait that timed out, a reply that never came), in words.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
