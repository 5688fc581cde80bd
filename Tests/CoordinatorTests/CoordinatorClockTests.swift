import Coordinator
import Foundation
import TestSupport
import Testing
import Wire

/// The coordinator's timing rules, with time moved by hand: a coordinator on a `ManualClock`,
/// turned one loop turn at a time on the test's thread, with peers that speak the protocol
/// over inproc sockets. Liveness, shard timeouts and retention are decided in microseconds of
/// real time, and the outcomes are read from the coordinator's events, never from its log.
@Suite struct CoordinatorClockTests {
    /// A coordinator turned by the test, and what it has told its observer.
    final class Bench {
        let clock = ManualClock()
        let context: ZMQContext
        let coordinator: CoordinatorServer
        let model: String
        private let recorded = Recorder<CoordinatorEvent>()

        init(configure: (inout CoordinatorOptions) -> Void = { _ in }) throws {
            context = try ZMQContext()
            model = try TestModels.makePackage().directory
            var options = CoordinatorOptions(bind: ["inproc://clock-\(UUID().uuidString)"],
                                             dataDirectory: TestModels.temporaryPath("data"))
            options.modelPathsAllowed = true
            options.heartbeatInterval = 1
            options.liveness = 3
            options.shardTimeout = 30
            options.clock = clock
            options.observer = { [recorded] in recorded.append($0) }
            configure(&options)
            coordinator = try CoordinatorServer(options: options, context: context)
        }

        var events: [CoordinatorEvent] { recorded.all }

        /// Turns the loop until `condition` holds; false if it never does within a few
        /// thousand turns (each waits at most a millisecond for messages).
        @discardableResult
        func turn(until condition: () throws -> Bool) throws -> Bool {
            for _ in 0..<5000 {
                try coordinator.turn(waitingUpTo: 1)
                if try condition() { return true }
            }
            return false
        }

        /// Moves the clock in steps of `step` seconds, turning the loop after each, while
        /// `between` runs before every turn (a peer's heartbeat, say).
        func advance(seconds: Double, step: Double = 0.5, between: () throws -> Void = {}) throws {
            var moved = 0.0
            while moved < seconds {
                clock.advance(seconds: step)
                moved += step
                try between()
                try coordinator.turn(waitingUpTo: 1)
            }
        }

        func peer() throws -> Peer { try Peer(context: context, endpoint: coordinator.endpoints[0]) }

        /// Submits a small job as a client and returns its id.
        func submit(frames: UInt32 = 4, steps: UInt32 = 2, priority: Int32 = 0) throws -> String {
            let client = try peer()
            try client.send(.submit, Reel_V1_SubmitRequest.with {
                $0.spec.prompt = "a red circle moving left"
                $0.spec.model = model
                $0.spec.frames = frames
                $0.spec.steps = steps
                $0.spec.priority = priority
            }, payloads: [Data()])
            var reply: Envelope?
            try turn { reply = try client.take(.submitReply); return reply != nil }
            return try #require(reply).decode(Reel_V1_SubmitReply.self).jobID
        }

        deinit { coordinator.shutDown() }
    }

    /// A worker or client written by hand.
    final class Peer {
        let socket: ZMQSocket
        private var inbox: [Envelope] = []

        init(context: ZMQContext, endpoint: String) throws {
            socket = try ZMQSocket(context, .dealer)
            try socket.connect(endpoint)
        }

        func send(_ kind: MessageKind, _ message: any SwiftProtobufMessage, payloads: [Data] = []) throws {
            try socket.send(Envelope(kind, message, payloads: payloads).frames)
        }

        /// Joins as a worker of `model` asking for `credits` shards.
        func join(as id: String, model: String, credits: UInt32 = 1) throws {
            try send(.hello, Reel_V1_WorkerHello.with {
                $0.protocolVersion = Envelope.protocolVersion
                $0.workerID = id
                $0.models = [model]
                $0.threads = 1
            })
            try send(.ready, Reel_V1_Ready.with { $0.credits = credits })
        }

        /// The first message of `kind` that has arrived, if any; others are kept.
        func take(_ kind: MessageKind) throws -> Envelope? {
            while let frames = try? socket.receive(dontWait: true) { inbox.append(try Envelope(frames: frames)) }
            guard let index = inbox.firstIndex(where: { $0.kind == kind }) else { return nil }
            return inbox.remove(at: index)
        }
    }

    @Test func aSilentWorkerIsRemovedAfterItsMissedHeartbeatsAndNotBefore() throws {
        let bench = try Bench()
        let worker = try bench.peer()
        try worker.join(as: "quiet", model: bench.model)
        #expect(try bench.turn { bench.events.contains(.workerJoined(worker: "quiet")) })

        try bench.advance(seconds: 2.5)  // liveness 3 x 1 s: not yet
        #expect(!bench.events.contains { if case .workerRemoved = $0 { true } else { false } })
        #expect(bench.coordinator.snapshot.workers.count == 1)

        try bench.advance(seconds: 1)
        #expect(bench.events.last == .workerRemoved(worker: "quiet", why: .silent(heartbeats: 3)))
    }

    @Test func aWorkerThatKeepsBeatingStaysWhateverTheTime() throws {
        let bench = try Bench()
        let worker = try bench.peer()
        try worker.join(as: "steady", model: bench.model)
        try bench.turn { bench.events.contains(.workerJoined(worker: "steady")) }
        try bench.advance(seconds: 60) { try worker.send(.heartbeat, Reel_V1_Heartbeat()) }
        #expect(bench.events == [.workerJoined(worker: "steady")])
    }

    /// A worker alive but stuck on one step loses its shard after `shardTimeout`, and another
    /// worker gets it under a new attempt.
    @Test func aStalledShardGoesToAnotherWorkerAfterTheTimeout() throws {
        let bench = try Bench()
        let stuck = try bench.peer()
        try stuck.join(as: "stuck", model: bench.model)
        let job = try bench.submit()
        var first: Reel_V1_ShardAssignment?
        #expect(try bench.turn { first = try stuck.take(.assignment)?.decode(Reel_V1_ShardAssignment.self); return first != nil })
        let region = Int(try #require(first).region)
        let beat = { try stuck.send(.heartbeat, Reel_V1_Heartbeat.with { $0.jobID = job; $0.region = UInt32(region) }) }

        try bench.advance(seconds: 29, between: beat)
        #expect(!bench.events.contains(.shardStalled(job: job, region: region, worker: "stuck")), "not before 30 s")

        try bench.advance(seconds: 2, between: beat)
        #expect(bench.events.contains(.shardStalled(job: job, region: region, worker: "stuck")))
        #expect(bench.events.contains(.shardRequeued(job: job, region: region)))

        let helper = try bench.peer()
        try helper.join(as: "helper", model: bench.model)
        var second: Reel_V1_ShardAssignment?
        #expect(try bench.turn { second = try helper.take(.assignment)?.decode(Reel_V1_ShardAssignment.self); return second != nil })
        #expect(second?.region == UInt32(region) && second?.attempt != first?.attempt, "the same shard under a new attempt")
        #expect(!bench.events.contains { if case .workerRemoved = $0 { true } else { false } }, "the stuck worker is alive, only its shard moved")
    }

    /// With `keepFinished`, a job that ended is listed for that long, then forgotten.
    @Test func aFinishedJobIsForgottenOnceKeepFinishedHasPassed() throws {
        let bench = try Bench { $0.keepFinished = 60 }
        let job = try bench.submit()
        let client = try bench.peer()
        try client.send(.cancel, Reel_V1_CancelRequest.with { $0.jobID = job })
        #expect(try bench.turn { try client.take(.cancelReply) != nil })
        #expect(bench.events.contains(.jobEnded(job: job, outcome: .cancelled)))

        try bench.advance(seconds: 59)
        #expect(!bench.events.contains(.jobForgotten(job: job)), "listed until a minute after it ended")
        try bench.advance(seconds: 2)
        #expect(bench.events.last == .jobForgotten(job: job))
    }

    /// A worker that says goodbye is removed at once, with its reason.
    @Test func aWorkerThatLeavesIsRemovedWithItsReason() throws {
        let bench = try Bench()
        let worker = try bench.peer()
        try worker.join(as: "brief", model: bench.model)
        try bench.turn { bench.events.contains(.workerJoined(worker: "brief")) }
        try worker.send(.disconnect, Reel_V1_Disconnect.with { $0.reason = "shutting down" })
        #expect(try bench.turn { bench.events.last == .workerRemoved(worker: "brief", why: .left(reason: "shutting down")) })
    }

    /// A worker that joins a queue gets the highest-priority job's shard first, whatever the
    /// order of submission.
    @Test func theFirstShardAWorkerGetsIsTheHighestPriorityJobs() throws {
        let bench = try Bench()
        let low = try bench.submit(priority: 0), high = try bench.submit(priority: 5)
        let worker = try bench.peer()
        try worker.join(as: "only", model: bench.model, credits: 1)
        var first: Reel_V1_ShardAssignment?
        #expect(try bench.turn { first = try worker.take(.assignment)?.decode(Reel_V1_ShardAssignment.self); return first != nil })
        #expect(first?.jobID == high, "priority 5 before priority 0 (\(low))")
    }
}
