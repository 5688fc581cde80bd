import Foundation
import Logging
import ServiceLifecycle

/// A daemon's blocking loop (a coordinator's or a worker's `run`) as a swift-service-lifecycle
/// Service: the loop runs on a thread of its own, since it polls sockets and computes; a
/// graceful shutdown (SIGTERM, SIGINT) or a cancelled group calls `stop`, and `run` returns once
/// the loop has drained (a worker finishes its shard, a coordinator its encodes and checkpoints).
struct LoopService: Service, CustomStringConvertible {
    let description: String
    let loop: @Sendable () throws -> Void
    let stop: @Sendable () -> Void

    func run() async throws {
        let (loop, stop, name) = (loop, stop, description)
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                    let thread = Thread {
                        do { try loop(); done.resume() } catch { done.resume(throwing: error) }
                    }
                    thread.name = name
                    thread.stackSize = 8 << 20
                    thread.start()
                }
            } onGracefulShutdown: { stop() }
        } onCancel: { stop() }
    }
}

/// How a daemon runs: its services in one ServiceGroup until SIGTERM or SIGINT, which shuts
/// them down gracefully, the last given first. A service that ends ends the daemon; one that
/// fails ends it with its error.
enum Daemon {
    static func run(_ services: [any Service], logger: Logger) async throws {
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
