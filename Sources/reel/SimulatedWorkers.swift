import Foundation
import Wire

/// Many workers in one process, each a real DEALER socket on loopback that says hello, asks
/// for one shard at a time, heartbeats every second and answers every assignment with its own
/// latent (the identity denoiser), at once or after a set time: a farm of many machines, for measuring what the
/// coordinator costs, without the machines. Each of a few threads owns a share of the sockets.
final class SimulatedWorkers: @unchecked Sendable {
    private let context: ZMQContext
    private var threads: [Thread] = []
    private let finished = DispatchGroup()
    private let lock = NSLock()
    private var stopRequested = false
    /// Seconds from a worker's result (with its credit) to its next assignment, as measured
    /// at the worker: the coordinator's turnaround, queues on both sides included.
    private var latencies: [Double] = []
    private var measuring = false
    private var failure: String?

    /// How long a worker takes over a shard before it answers (0: at once).
    private var shardTime = Duration.zero

    /// Connects `count` workers offering `model` to `endpoint`, on `threadCount` threads; each
    /// thread makes the sockets it owns (a ZeroMQ socket lives on one thread).
    init(count: Int, endpoint: String, model: String, threadCount: Int = 4) throws {
        SimulatedWorkers.raiseFileLimit()
        context = try ZMQContext(maxSockets: count + 64)
        let shares = (0..<threadCount).map { t in stride(from: t, to: count, by: threadCount).map { $0 } }.filter { !$0.isEmpty }
        let connected = DispatchSemaphore(value: 0)
        threads = shares.map { share in
            let thread = Thread { [self] in
                do {
                    let sockets = try share.map { _ in try ZMQSocket(context, .dealer) }
                    for socket in sockets { try socket.connect(endpoint) }
                    connected.signal()
                    serve(sockets, ids: share, model: model)
                } catch {
                    lock.withLock { failure = "\(error)" }
                    connected.signal()
                    finished.leave()
                }
            }
            thread.name = "simulated-workers"
            return thread
        }
        for thread in threads {
            finished.enter()
            thread.start()
        }
        for _ in threads { connected.wait() }
        if let failure = lock.withLock({ failure }) {
            stop()
            throw UserError("cannot connect the simulated workers: \(failure)")
        }
    }

    /// From now on each worker answers a shard `seconds` (±50 %, at random) after it arrives.
    func answer(after seconds: Double) { lock.withLock { shardTime = .milliseconds(Int64((seconds * 1000).rounded())) } }

    /// Starts (or restarts) collecting assignment latencies.
    func startMeasuring() { lock.withLock { latencies = []; measuring = true } }

    /// The latencies collected since `startMeasuring`, sorted.
    func measuredLatencies() -> [Double] { lock.withLock { measuring = false; return latencies.sorted() } }

    func stop() {
        lock.withLock { stopRequested = true }
        finished.wait()
    }

    private var shouldStop: Bool { lock.withLock { stopRequested } }

    private func serve(_ sockets: [ZMQSocket], ids: [Int], model: String) {
        defer { finished.leave() }
        let clock = ContinuousClock()
        var lastBeat = [ContinuousClock.Instant](repeating: clock.now, count: sockets.count)
        var resultSentAt = [ContinuousClock.Instant?](repeating: nil, count: sockets.count)
        var collected: [Double] = []
        func send(_ index: Int, _ kind: MessageKind, _ message: any SwiftProtobufMessage, payloads: [Data] = []) {
            try? sockets[index].send(Envelope(kind, message, payloads: payloads).frames, dontWait: true)
            lastBeat[index] = clock.now
        }
        for (index, id) in ids.enumerated() {
            send(index, .hello, Reel_V1_WorkerHello.with {
                $0.protocolVersion = Envelope.protocolVersion
                $0.workerID = "sim-\(id + 1)"
                $0.hostname = "simulated"
                $0.threads = 1
                $0.models = [model]
            })
            send(index, .ready, Reel_V1_Ready.with { $0.credits = 1 })
        }
        /// Answers due: (when, socket, result, payloads), in the order they fall due.
        var jitter = SystemRandomNumberGenerator()
        var due: [(at: ContinuousClock.Instant, index: Int, result: Reel_V1_ShardResult, payloads: [Data])] = []
        while !shouldStop {
            let wait = due.first.map { max(0, min(50, Int(((($0.at - clock.now).seconds) * 1000).rounded(.up)))) } ?? 50
            let readable = (try? ZMQSocket.poll(sockets, milliseconds: wait)) ?? []
            let shardTime = lock.withLock { self.shardTime }
            for index in readable {
                while let frames = try? sockets[index].receive(dontWait: true), let envelope = try? Envelope(frames: frames) {
                    guard envelope.kind == .assignment, let assignment = try? envelope.decode(Reel_V1_ShardAssignment.self) else { continue }
                    if let sent = resultSentAt[index] { collected.append((clock.now - sent).seconds) }
                    var result = Reel_V1_ShardResult(answering: assignment)
                    result.carriesState = assignment.carriesState
                    // Real shards take unequal times; equal ones would have every worker
                    // answer in the same instant, round after round.
                    due.append((clock.now + shardTime * Double.random(in: 0.5...1.5, using: &jitter), index, result,
                                Array(envelope.payloads.prefix(2))))  // the latent and state back; embeddings stay
                    due.sort { $0.at < $1.at }
                }
            }
            var now = clock.now
            while let first = due.first, first.at <= now {
                due.removeFirst()
                send(first.index, .result, first.result, payloads: first.payloads)
                send(first.index, .ready, Reel_V1_Ready.with { $0.credits = 1 })
                now = clock.now
                resultSentAt[first.index] = now
            }
            for index in sockets.indices where (now - lastBeat[index]).seconds >= 1 {
                send(index, .heartbeat, Reel_V1_Heartbeat())
            }
            if !collected.isEmpty {
                lock.withLock { if measuring { latencies += collected } }
                collected.removeAll(keepingCapacity: true)
            }
        }
        for index in sockets.indices { send(index, .disconnect, Reel_V1_Disconnect.with { $0.reason = "simulation over" }) }
    }

    /// A thousand connections in one process need more descriptors than the usual soft limit.
    static func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
