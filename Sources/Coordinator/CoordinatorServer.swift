import Diffusion
import Foundation
import Logging
import Media
import Planning
import Wire

/// How a coordinator runs.
public struct CoordinatorOptions: Sendable {
    /// Endpoints to bind, e.g. tcp://*:5555 or inproc://reel.
    public var bind: [String]
    /// Where finished videos are kept.
    public var dataDirectory: String
    /// Seconds between heartbeats, and heartbeats a worker may miss before it is presumed dead.
    public var heartbeatInterval: Double = 1
    public var liveness: Int = 5
    /// Largest frame a peer may send; a bigger one disconnects that peer.
    public var maxMessageBytes: Int64 = 64 << 20

    public init(bind: [String], dataDirectory: String) {
        self.bind = bind
        self.dataDirectory = dataDirectory
    }
}

/// Counters of a coordinator's own work, for benchmarks and operators.
public struct CoordinatorStatistics: Sendable {
    public var bytesReceived = 0
    public var bytesSent = 0
    public var assignmentsSent = 0
    public var resultsAccepted = 0
    /// CPU time of the coordinator's thread.
    public var cpuSeconds = 0.0
}

/// The coordinator daemon: one ROUTER socket on one thread. It registers workers, hands out
/// shards as workers ask for them (credit-based pull), fences results by attempt, requeues the
/// shards of workers that fall silent, fuses, encodes finished jobs, and answers clients.
public final class CoordinatorServer: @unchecked Sendable {
    public let options: CoordinatorOptions
    private let context: ZMQContext
    private let router: ZMQSocket
    private let monitor: ZMQSocket
    private var logger = Logger(label: "reel.coordinator")
    private let stopLock = NSLock()
    private var stopRequested = false
    private var counters = CoordinatorStatistics()
    private var publishedCounters = CoordinatorStatistics()

    /// A snapshot of the counters, safe from any thread.
    public var statistics: CoordinatorStatistics { stopLock.withLock { publishedCounters } }

    private var workers: [Data: WorkerRecord] = [:]
    private var jobs: [String: FarmJob] = [:]
    private var jobOrder: [String] = []
    /// Assignments released by their jobs, waiting for a worker with credit; `pendingStart`
    /// is the first not yet sent (the array is compacted when it is all sent).
    private var pending: [(job: String, assignment: ShardAssignment)] = []
    private var pendingStart = 0
    private var modelConfigs: [String: ModelConfig] = [:]
    private let clock = ContinuousClock()
    private var lastHeartbeat: ContinuousClock.Instant

    /// The endpoints actually bound (wildcard ports resolved).
    public private(set) var endpoints: [String] = []

    public init(options: CoordinatorOptions, context: ZMQContext) throws {
        self.options = options
        self.context = context
        try FileManager.default.createDirectory(atPath: "\(options.dataDirectory)/jobs", withIntermediateDirectories: true)
        router = try ZMQSocket(context, .router, maxMessageBytes: options.maxMessageBytes)
        monitor = try router.monitor(context)
        for endpoint in options.bind {
            try router.bind(endpoint)
            endpoints.append(endpoint.hasPrefix("tcp://") ? router.lastEndpoint : endpoint)
        }
        lastHeartbeat = clock.now
    }

    /// Asks `run` to return; safe from any thread.
    public func stop() {
        stopLock.withLock { stopRequested = true }
    }

    private var shouldStop: Bool { stopLock.withLock { stopRequested } }

    /// Serves until `stop()`. Blocking: run it on its own thread.
    public func run() throws {
        logger.info("coordinator listening on \(endpoints.joined(separator: ", ")), data in \(options.dataDirectory)")
        while !shouldStop {
            let readable = try ZMQSocket.poll([router, monitor], milliseconds: 50)
            if readable.contains(0) {
                while let frames = try? router.receive(dontWait: true) { handle(frames) }
            }
            if readable.contains(1) {
                while let frames = try? monitor.receive(dontWait: true) { note(SocketEvent(frames: frames)) }
            }
            let now = clock.now
            if (now - lastHeartbeat).seconds >= options.heartbeatInterval {
                sendHeartbeats()
                lastHeartbeat = now
            }
            reapSilentWorkers(now)
            dispatch()
            publishStatistics()
        }
        for worker in workers.values {
            try? router.send([worker.identity] + Envelope(.disconnect, Reel_V1_Disconnect.with { $0.reason = "coordinator stopping" }).frames, dontWait: true)
        }
        logger.info("coordinator stopped")
    }

    private func publishStatistics() {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        counters.cpuSeconds = Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
        let snapshot = counters
        stopLock.withLock { publishedCounters = snapshot }
    }

    // MARK: messages

    private func handle(_ frames: [Data]) {
        counters.bytesReceived += frames.reduce(0) { $0 + $1.count }
        guard let identity = frames.first else { return }
        do {
            let envelope = try Envelope(frames: Array(frames.dropFirst()))
            if var worker = workers[identity] {
                worker.lastSeen = clock.now
                workers[identity] = worker
            }
            try handle(envelope, from: identity)
        } catch {
            logger.warning("dropping peer \(Self.hex(identity)): \(error)")
            drop(identity, reason: "\(error)")
        }
    }

    /// Connections libzmq closed itself (an oversized frame, a failed handshake, a peer gone)
    /// are logged; a worker among them falls silent and is reaped by its heartbeats.
    private func note(_ event: SocketEvent?) {
        guard let event else { return }
        if event.isDisconnect {
            logger.info("\(event)")
        } else if event.description.hasPrefix("handshake failed") {
            logger.warning("\(event)")
        } else {
            logger.debug("\(event)")
        }
    }

    private func handle(_ envelope: Envelope, from peer: Data) throws {
        switch envelope.kind {
        case .hello: try register(peer, envelope.decode(Reel_V1_WorkerHello.self))
        case .ready:
            let ready = try envelope.decode(Reel_V1_Ready.self)
            guard workers[peer] != nil else {
                send(.disconnect, Reel_V1_Disconnect.with { $0.reason = "unknown worker: send hello first" }, to: peer)
                return
            }
            workers[peer]!.credits += Int(ready.credits)
        case .heartbeat:
            let beat = try envelope.decode(Reel_V1_Heartbeat.self)
            workers[peer]?.stepsDone = Int(beat.stepsDone)
        case .result: try accept(envelope, from: peer)
        case .disconnect:
            let reason = try envelope.decode(Reel_V1_Disconnect.self).reason
            drop(peer, reason: "left: \(reason)", level: .info)
        case .submit: reply(to: peer) { try self.submit(envelope) }
        case .status: reply(to: peer) { try self.status(envelope) }
        case .cancel: reply(to: peer) { try self.cancel(envelope) }
        case .workers: reply(to: peer) { (.workersReply, self.workersReply(), []) }
        case .fetch: reply(to: peer) { try self.fetch(envelope) }
        case .assignment, .submitReply, .statusReply, .cancelReply, .workersReply, .fetchReply, .error:
            throw WireError("\(envelope.kind) is not a message a coordinator accepts")
        }
    }

    private func register(_ peer: Data, _ hello: Reel_V1_WorkerHello) throws {
        guard hello.protocolVersion == Envelope.protocolVersion else {
            throw WireError("protocol version \(hello.protocolVersion); this coordinator speaks \(Envelope.protocolVersion)")
        }
        if workers[peer] != nil { drop(peer, reason: "said hello again") }
        workers[peer] = WorkerRecord(identity: peer, hello: hello, lastSeen: clock.now)
        logger.info("worker \(hello.workerID) joined from \(hello.hostname): \(hello.threads) thread(s), models \(hello.models.joined(separator: ", ")), OpenBLAS \(hello.cpuKernel)")
    }

    /// Forgets a peer; a worker's shard goes back to its job under a new attempt. A worker
    /// that said goodbye is news; one that fell silent or misbehaved is a warning.
    private func drop(_ peer: Data, reason: String, level: Logger.Level = .warning) {
        guard let worker = workers.removeValue(forKey: peer) else { return }
        logger.log(level: level, "worker \(worker.name) removed: \(reason)")
        if let current = worker.current, let job = jobs[current.job], job.isActive {
            job.run.requeue(region: current.region)
            logger.info("requeued region \(current.region) of \(current.job)")
        }
    }

    private func accept(_ envelope: Envelope, from peer: Data) throws {
        let result = try envelope.decode(Reel_V1_ShardResult.self)
        guard workers[peer] != nil else { return }  // a worker presumed dead: its result is stale anyway
        if workers[peer]?.current?.attempt == result.attempt { workers[peer]!.current = nil }
        guard let job = jobs[result.jobID], job.isActive else { return }
        if !result.error.isEmpty {
            logger.warning("shard \(result.jobID)/\(result.region) failed on \(workers[peer]!.name): \(result.error)")
            job.run.requeue(region: Int(result.region))
            return
        }
        let region = Int(result.region)
        guard region < job.run.plan.regions.count,
              result.shape.count == job.run.plan.regions[region].box.count(channels: job.run.plan.channels) else {
            throw WireError("result for region \(region) of \(result.jobID) has the wrong shape")
        }
        let latent = try LatentCodec.decode(envelope.payloads[0], count: result.shape.count)
        let state = result.carriesState ? try LatentCodec.decode(envelope.payloads[1], count: result.shape.count) : nil
        let outcome = job.run.accept(ShardResult(region: region, steps: Int(result.stepBegin)..<Int(result.stepEnd),
                                                 attempt: result.attempt, latent: latent, state: state))
        if outcome == .stale {
            logger.info("dropped stale result for \(result.jobID)/\(region) attempt \(result.attempt)")
            return
        }
        workers[peer]!.shardsCompleted += 1
        counters.resultsAccepted += 1
        if job.run.isComplete { finish(job) }
    }

    private func finish(_ job: FarmJob) {
        let latent = job.run.finalLatent()
        job.latentDigest = latentDigest(latent)
        let spec = job.spec
        let video = RGBVideo(planar: latent, frames: spec.frames, height: spec.height, width: spec.width)
        let path = "\(options.dataDirectory)/jobs/\(job.id).mp4"
        do {
            try VideoEncoder.writeMP4(video, options: EncodeOptions(fps: spec.fps, scale: job.outputScale), to: path)
            job.outputPath = path
            job.state = .done
            job.finishedSeconds = (clock.now - job.started).seconds
            logger.info("job \(job.id) done in \(String(format: "%.1f", job.finishedSeconds!)) s: \(path), latent digest \(job.latentDigest)")
        } catch {
            job.state = .failed("encoding failed: \(error)")
            logger.error("job \(job.id) failed: \(error)")
        }
        publishStatistics()  // whoever sees the job end sees the counters that include it
    }

    // MARK: scheduling

    private func dispatch() {
        for id in jobOrder {
            guard let job = jobs[id], job.isActive else { continue }
            pending += job.run.takeReadyShards().map { (id, $0) }
        }
        while pendingStart < pending.count {
            let (jobID, assignment) = pending[pendingStart]
            guard let job = jobs[jobID], job.isActive else {
                pendingStart += 1
                continue
            }
            guard let worker = workers.values.filter({ $0.credits > 0 && $0.hello.models.contains(job.spec.model) })
                .min(by: { $0.shardsCompleted < $1.shardsCompleted }) else { break }
            pendingStart += 1
            send(assignment, of: job, to: worker.identity)
        }
        if pendingStart == pending.count || pendingStart > 1024 {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
    }

    private func send(_ assignment: ShardAssignment, of job: FarmJob, to peer: Data) {
        let box = job.run.plan.regions[assignment.region].box
        var message = Reel_V1_ShardAssignment()
        message.jobID = job.id
        message.region = UInt32(assignment.region)
        message.stepBegin = UInt32(assignment.steps.lowerBound)
        message.stepEnd = UInt32(assignment.steps.upperBound)
        message.attempt = assignment.attempt
        message.spec = job.spec.message()
        message.shape = Reel_V1_LatentShape(frames: box.frames.count, channels: job.run.plan.channels, rows: box.rows.count, columns: box.columns.count)
        message.carriesState = assignment.state != nil
        let payloads = [LatentCodec.encode(assignment.latent), assignment.state.map(LatentCodec.encode) ?? Data()]
        workers[peer]!.credits -= 1
        workers[peer]!.current = (job.id, assignment.region, assignment.attempt)
        counters.assignmentsSent += 1
        if !send(.assignment, message, payloads: payloads, to: peer) {
            drop(peer, reason: "unreachable")
        }
    }

    private func sendHeartbeats() {
        for worker in workers.values { send(.heartbeat, Reel_V1_Heartbeat(), to: worker.identity) }
    }

    private func reapSilentWorkers(_ now: ContinuousClock.Instant) {
        let limit = options.heartbeatInterval * Double(options.liveness)
        for worker in workers.values where (now - worker.lastSeen).seconds > limit {
            drop(worker.identity, reason: "silent for more than \(options.liveness) heartbeats")
        }
    }

    // MARK: client requests

    private typealias Reply = (MessageKind, any SwiftProtobufMessage, [Data])

    private func reply(to peer: Data, _ body: () throws -> Reply) {
        do {
            let (kind, message, payloads) = try body()
            send(kind, message, payloads: payloads, to: peer)
        } catch let error as WireError {
            logger.warning("dropping peer \(Self.hex(peer)): \(error)")
        } catch {
            send(.error, Reel_V1_ErrorReply.with { $0.message = "\(error)" }, to: peer)
        }
    }

    private func submit(_ envelope: Envelope) throws -> Reply {
        let request = try envelope.decode(Reel_V1_SubmitRequest.self)
        let config = try modelConfig(request.spec.model)
        var spec = JobSpec(resolving: request.spec, with: config)
        var input: [Float]?
        if request.spec.withInput {
            let frames = try InputVideo.frames(envelope.payloads[0], width: spec.width, height: spec.height, fps: spec.fps)
            if request.spec.frames == 0 { spec.frames = frames.frameCount }
            guard spec.frames <= frames.frameCount else {
                throw CoordinatorError("frames \(spec.frames) is more than the input video has at \(spec.fps) fps (\(frames.frameCount))")
            }
            input = Array(frames.planar().prefix(spec.frames * 3 * spec.width * spec.height))
        }
        try spec.validate(for: ModelShape(config))
        let id = "j" + String(UInt64.random(in: 0..<(1 << 48)), radix: 16)
        let job = FarmJob(id: id, spec: spec, outputScale: max(1, Int(request.spec.outputScale)), model: ModelShape(config),
                          channels: config.channels, input: input)
        jobs[id] = job
        jobOrder.append(id)
        jobOrder.sort { (jobs[$0]!.spec.priority, 0) > (jobs[$1]!.spec.priority, 1) }
        logger.info("job \(id) submitted: \(spec.frames) frames \(spec.width)x\(spec.height), \(job.run.plan.regions.count) region(s) x \(job.run.plan.stepRanges.count) shard(s)")
        if job.run.isComplete { finish(job) }  // strength 0: the input is the answer
        return (.submitReply, Reel_V1_SubmitReply.with { $0.jobID = id }, [])
    }

    /// The coordinator reads a model's config.json (never its weights) to plan and fill defaults.
    private func modelConfig(_ name: String) throws -> ModelConfig {
        if let known = modelConfigs[name] { return known }
        let config = try ModelPackage.readConfig(in: try ModelPackage.locate(name))
        modelConfigs[name] = config
        return config
    }

    private func job(_ id: String) throws -> FarmJob {
        guard let job = jobs[id] else { throw CoordinatorError("no job \(id); `reel status` lists the jobs") }
        return job
    }

    private func status(_ envelope: Envelope) throws -> Reply {
        let request = try envelope.decode(Reel_V1_StatusRequest.self)
        let selected = request.jobID.isEmpty ? jobOrder.compactMap { jobs[$0] } : [try job(request.jobID)]
        return (.statusReply, Reel_V1_StatusReply.with { $0.jobs = selected.map { $0.status() } }, [])
    }

    private func cancel(_ envelope: Envelope) throws -> Reply {
        let job = try job(try envelope.decode(Reel_V1_CancelRequest.self).jobID)
        if job.isActive {
            job.state = .cancelled
            logger.info("job \(job.id) cancelled")
        }
        return (.cancelReply, Reel_V1_CancelReply.with { $0.status = job.status() }, [])
    }

    private func workersReply() -> Reel_V1_WorkersReply {
        let now = clock.now
        return Reel_V1_WorkersReply.with { reply in
            reply.workers = workers.values.sorted { $0.name < $1.name }.map { worker in
                Reel_V1_WorkerStatus.with {
                    $0.workerID = worker.name
                    $0.hostname = worker.hello.hostname
                    $0.models = worker.hello.models
                    $0.threads = worker.hello.threads
                    $0.cpuKernel = worker.hello.cpuKernel
                    $0.jobID = worker.current?.job ?? ""
                    $0.region = UInt32(worker.current?.region ?? 0)
                    $0.stepsDone = UInt32(worker.stepsDone)
                    $0.heartbeatAgeSeconds = (now - worker.lastSeen).seconds
                    $0.shardsCompleted = UInt32(worker.shardsCompleted)
                }
            }
        }
    }

    private func fetch(_ envelope: Envelope) throws -> Reply {
        let job = try job(try envelope.decode(Reel_V1_FetchRequest.self).jobID)
        let video = try job.outputPath.map { try Data(contentsOf: URL(fileURLWithPath: $0)) } ?? Data()
        return (.fetchReply, Reel_V1_FetchReply.with { $0.status = job.status() }, [video])
    }

    // MARK: sending

    @discardableResult
    private func send(_ kind: MessageKind, _ message: any SwiftProtobufMessage, payloads: [Data] = [], to peer: Data) -> Bool {
        do {
            let frames = [peer] + Envelope(kind, message, payloads: payloads).frames
            try router.send(frames, dontWait: true)
            counters.bytesSent += frames.reduce(0) { $0 + $1.count }
            return true
        } catch {
            logger.warning("cannot send \(kind) to \(Self.hex(peer)): \(error)")
            return false
        }
    }

    static func hex(_ data: Data) -> String { data.prefix(8).map { String(format: "%02x", $0) }.joined() }
}

/// A request the coordinator refuses, in words for the user.
public struct CoordinatorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
