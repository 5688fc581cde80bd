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
    /// Seconds a shard may go without finishing a step before it is given to another worker.
    public var shardTimeout: Double = 600
    /// Attempts of one shard that may fail before its job fails.
    public var maxShardAttempts = 3
    /// Failed shards after which a worker is kept off a job.
    public var failuresBeforeBlocking = 2
    /// Seconds between checkpoints of one job at most: what a crash can cost in recomputation,
    /// against the disk and CPU a checkpoint of every result would take.
    public var checkpointInterval: Double = 1
    /// Unfinished jobs one client may have; more submissions are refused until some end.
    public var maxActiveJobsPerClient = 32
    /// Whether a job may name its model by a path (only a coordinator inside `reel render`);
    /// a farm accepts package names alone.
    public var modelPathsAllowed = false
    /// CURVE with the enrolled keys of DATA-DIR/keys, or plaintext (`--insecure`, and inproc).
    public var security: SocketSecurity = .plaintext

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
    private var zap: ZAPHandler?
    private var logger = Logger(label: "reel.coordinator")
    private let stopLock = NSLock()
    private var stopRequested = false
    private var counters = CoordinatorStatistics()
    private var publishedCounters = CoordinatorStatistics()

    /// A snapshot of the counters, safe from any thread.
    public var statistics: CoordinatorStatistics { stopLock.withLock { publishedCounters } }

    /// Jobs, workers and previews as of a moment ago, safe from any thread.
    public var snapshot: FarmSnapshot { stopLock.withLock { publishedSnapshot } }
    private var publishedSnapshot = FarmSnapshot()
    private var lastSnapshot: ContinuousClock.Instant?
    private var inbox: [FarmCommand] = []
    private let metrics = CoordinatorMetrics()

    private var workers: [Data: WorkerRecord] = [:]
    private var jobs: [String: FarmJob] = [:]
    private var jobOrder: [String] = []
    /// The durable side: job rows, and checkpoints of running jobs written off this thread.
    private let store: JobStore
    private let checkpoints: CheckpointWriter
    /// Jobs with results newer than their last checkpoint.
    private var uncheckpointed: Set<String> = []
    /// (client, idempotency key) → job id, so a resubmission finds the first job.
    private var submissions: [String: String] = [:]
    /// This life's number, the high half of every attempt id.
    private let epoch: UInt64
    /// Assignments released by their jobs, per job, waiting for a worker with credit.
    private var pending: [String: ShardQueue] = [:]
    /// Shards handed out per client, for fair share.
    private var served: [String: Int] = [:]
    private var modelConfigs: [String: ModelConfig] = [:]
    private let clock = ContinuousClock()
    private var lastHeartbeat: ContinuousClock.Instant

    /// The endpoints actually bound (wildcard ports resolved).
    public private(set) var endpoints: [String] = []

    public init(options: CoordinatorOptions, context: ZMQContext) throws {
        self.options = options
        self.context = context
        try FileManager.default.createDirectory(atPath: "\(options.dataDirectory)/jobs", withIntermediateDirectories: true)
        store = try JobStore(directory: options.dataDirectory)
        epoch = try store.nextEpoch()
        let logger = self.logger
        checkpoints = CheckpointWriter(store: store, directory: "\(options.dataDirectory)/jobs") { job, error in
            logger.error("cannot checkpoint \(job): \(error); it will be computed again after a restart")
        }
        router = try ZMQSocket(context, .router, maxMessageBytes: options.maxMessageBytes)
        monitor = try router.monitor(context)
        lastHeartbeat = clock.now
        do {
            try listen()
        } catch {
            zap?.stop()
            throw error
        }
        try restoreJobs()
    }

    /// Binds every endpoint; under CURVE the ZAP handler comes first, and a self-test must
    /// see it refuse a stranger before anything is served.
    private func listen() throws {
        if case .curveServer(let keys) = options.security {
            let handler = try ZAPHandler(context: context, keys: KeyDirectory(dataDirectory: options.dataDirectory), logger: logger)
            zap = handler
            try router.secure(options.security)
            for endpoint in options.bind { try bindEndpoint(endpoint) }
            guard let probeTarget = endpoints.first(where: { $0.hasPrefix("tcp://") || $0.hasPrefix("ipc://") }) else { return }
            try ZAPHandler.selfTest(context: context, endpoint: Self.connectable(probeTarget), serverPublicKey: keys.publicKey, handler: handler)
            logger.info("CURVE on; ZAP self-test passed (an unknown key was refused); coordinator public key \(keys.publicKey)")
        } else {
            for endpoint in options.bind { try bindEndpoint(endpoint) }
        }
    }

    private func bindEndpoint(_ endpoint: String) throws {
        try router.bind(endpoint)
        endpoints.append(endpoint.hasPrefix("tcp://") ? router.lastEndpoint : endpoint)
    }

    /// An endpoint this host can connect to for a bound one (a wildcard address becomes loopback).
    static func connectable(_ bound: String) -> String {
        bound.replacingOccurrences(of: "tcp://0.0.0.0:", with: "tcp://127.0.0.1:").replacingOccurrences(of: "tcp://[::]:", with: "tcp://[::1]:")
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
                while let (frames, userID) = try? router.receiveWithUserID(dontWait: true) { handle(frames, userID: userID) }
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
            performCommands()
            dispatch()
            checkpointProgress()
            publishStatistics()
            if lastSnapshot.map({ (now - $0).seconds >= 0.25 }) ?? true {
                publishSnapshot()
                lastSnapshot = now
            }
        }
        for worker in workers.values {
            try? router.send([worker.identity] + Envelope(.disconnect, Reel_V1_Disconnect.with { $0.reason = "coordinator stopping" }).frames, dontWait: true)
        }
        flushCheckpoints()
        zap?.stop()
        logger.info("coordinator stopped")
    }

    /// Asks the coordinator's thread to do `command` at its next turn; safe from any thread.
    public func perform(_ command: FarmCommand) {
        stopLock.withLock { inbox.append(command) }
    }

    private func performCommands() {
        let commands = stopLock.withLock { () -> [FarmCommand] in
            defer { inbox.removeAll() }
            return inbox
        }
        for command in commands {
            switch command {
            case .cancel(let id):
                if let job = jobs[id], job.isActive {
                    end(job, .cancelled)
                    logger.info("job \(id) cancelled from the dashboard")
                }
            case .setPriority(let id, let priority):
                guard let job = jobs[id], job.isActive else { continue }
                job.priority = priority
                sortJobOrder()
                try? store.setPriority(id, spec: job.spec.message(outputScale: job.outputScale), priority: priority)
                logger.info("job \(id) priority set to \(priority)")
            }
        }
    }

    private func publishSnapshot() {
        var snapshot = FarmSnapshot()
        snapshot.jobs = jobOrder.compactMap { jobs[$0]?.status() }
        snapshot.workers = workersReply().workers
        for job in jobs.values where job.isActive { snapshot.previews[job.id] = job.run.previewFrames() }
        snapshot.dataDirectory = options.dataDirectory
        snapshot.taken = Date()
        stopLock.withLock { publishedSnapshot = snapshot }
        metrics.queueDepth.record(pending.values.reduce(0) { $0 + $1.count })
        metrics.workers.record(workers.count)
        var byState: [String: Int] = [:]
        for job in jobs.values { byState[job.state.stored, default: 0] += 1 }
        for (state, gauge) in metrics.jobsByState { gauge.record(byState[state] ?? 0) }
    }

    private func publishStatistics() {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        counters.cpuSeconds = Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
        let snapshot = counters
        stopLock.withLock { publishedCounters = snapshot }
    }

    // MARK: messages

    /// `userID`: what the ZAP handler said the connection is ("worker:NAME", "client:NAME");
    /// nil for plaintext and inproc peers, which may do anything.
    private func handle(_ frames: [Data], userID: String?) {
        let size = frames.reduce(0) { $0 + $1.count }
        counters.bytesReceived += size
        metrics.bytesReceived.increment(by: size)
        guard let identity = frames.first else { return }
        do {
            let envelope = try Envelope(frames: Array(frames.dropFirst()))
            if var worker = workers[identity] {
                worker.lastSeen = clock.now
                workers[identity] = worker
            }
            let peer = userID.flatMap(PeerRole.parse)
            if let peer, peer.role != envelope.kind.sender {
                return refuse(envelope.kind, from: identity, peer)
            }
            try handle(envelope, from: identity, client: peer?.name ?? "anonymous")
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

    /// A key enrolled for one role sending the other role's messages: a client request gets
    /// an error reply; a worker message is ignored. Both are logged.
    private func refuse(_ kind: MessageKind, from identity: Data, _ peer: (role: PeerRole, name: String)) {
        let reason = peer.role == .worker ? "a worker key cannot submit jobs or ask about them"
                                          : "a client key cannot take part as a worker"
        logger.warning("refused \(kind) from \(peer.role.rawValue) \(peer.name): \(reason)")
        if peer.role == .worker { send(.error, Reel_V1_ErrorReply.with { $0.message = reason }, to: identity) }
    }

    private func handle(_ envelope: Envelope, from peer: Data, client: String) throws {
        switch envelope.kind {
        case .hello: try register(peer, envelope.decode(Reel_V1_WorkerHello.self))
        case .ready:
            let ready = try envelope.decode(Reel_V1_Ready.self)
            guard workers[peer] != nil else { return sayHelloFirst(peer) }
            workers[peer]!.credits += Int(ready.credits)
        case .heartbeat:
            let beat = try envelope.decode(Reel_V1_Heartbeat.self)
            guard workers[peer] != nil else { return sayHelloFirst(peer) }
            if Int(beat.stepsDone) != workers[peer]!.stepsDone {
                workers[peer]!.stepsDone = Int(beat.stepsDone)
                workers[peer]!.progressAt = clock.now
            }
        case .result: try accept(envelope, from: peer)
        case .disconnect:
            let reason = try envelope.decode(Reel_V1_Disconnect.self).reason
            drop(peer, reason: "left: \(reason)", level: .info)
        case .submit: reply(to: peer) { try self.submit(envelope, from: client) }
        case .status: reply(to: peer) { try self.status(envelope) }
        case .cancel: reply(to: peer) { try self.cancel(envelope) }
        case .workers: reply(to: peer) { (.workersReply, self.workersReply(), []) }
        case .fetch: reply(to: peer) { try self.fetch(envelope) }
        case .assignment, .submitReply, .statusReply, .cancelReply, .workersReply, .fetchReply, .error:
            throw WireError("\(envelope.kind) is not a message a coordinator accepts")
        }
    }

    /// A worker this coordinator does not know (it restarted, or reaped the worker): the
    /// worker reconnects and says hello, instead of waiting out its liveness.
    private func sayHelloFirst(_ peer: Data) {
        send(.disconnect, Reel_V1_Disconnect.with { $0.reason = "unknown worker: send hello first" }, to: peer)
    }

    private func register(_ peer: Data, _ hello: Reel_V1_WorkerHello) throws {
        guard hello.protocolVersion == Envelope.protocolVersion else {
            throw WireError("protocol version \(hello.protocolVersion); this coordinator speaks \(Envelope.protocolVersion)")
        }
        if workers[peer] != nil { drop(peer, reason: "said hello again") }
        workers[peer] = WorkerRecord(identity: peer, hello: hello, lastSeen: clock.now, progressAt: clock.now)
        logger.info("worker \(hello.workerID) joined from \(hello.hostname): \(hello.threads) thread(s), models \(hello.models.joined(separator: ", ")), OpenBLAS \(hello.cpuKernel)")
    }

    /// Forgets a peer; a worker's shard goes back to its job under a new attempt. A worker
    /// that said goodbye is news; one that fell silent or misbehaved is a warning.
    private func drop(_ peer: Data, reason: String, level: Logger.Level = .warning) {
        guard let worker = workers.removeValue(forKey: peer) else { return }
        logger.log(level: level, "worker \(worker.name) removed: \(reason)")
        if let current = worker.current, let job = jobs[current.job], job.isActive {
            job.run.requeue(region: current.region)
            metrics.requeues.increment()
            logger.info("requeued region \(current.region) of \(current.job)")
        }
    }

    private func accept(_ envelope: Envelope, from peer: Data) throws {
        let result = try envelope.decode(Reel_V1_ShardResult.self)
        guard workers[peer] != nil else {
            // A worker presumed dead (silent too long, or cut off) that came back: whatever it
            // computed was requeued meanwhile, so its result belongs to a superseded attempt.
            logger.info("dropped a late result for \(result.jobID)/\(result.region) attempt \(result.attempt) from a worker no longer registered")
            return sayHelloFirst(peer)
        }
        if workers[peer]?.current?.attempt == result.attempt { workers[peer]!.current = nil }
        guard let job = jobs[result.jobID], job.isActive else { return }
        let region = Int(result.region)
        if !result.error.isEmpty {
            guard job.run.isRunning(region: region, attempt: result.attempt) else { return }
            logger.warning("shard \(result.jobID)/\(region) failed on \(workers[peer]!.name): \(result.error)")
            job.run.requeue(region: region)
            metrics.shardFailures.increment()
            shardFailed(job, region: region, on: workers[peer]!.name, reason: result.error)
            return
        }
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
        job.resultsAccepted += 1
        metrics.shardsCompleted.increment()
        if let assigned = workers[peer]!.assignedAt {
            metrics.shardLatency.recordNanoseconds(Int64((clock.now - assigned).seconds * 1e9))
        }
        let steps = Int(result.stepEnd) - Int(result.stepBegin)
        if steps > 0 && result.seconds > 0 { metrics.stepLatency.recordNanoseconds(Int64(result.seconds / Double(steps) * 1e9)) }
        uncheckpointed.insert(job.id)
        job.shardFailures[region] = nil
        if job.run.isComplete { finish(job) }
    }

    /// A shard that failed runs again on another worker, up to `maxShardAttempts` in all; a
    /// worker that fails `failuresBeforeBlocking` shards of a job is kept off that job.
    private func shardFailed(_ job: FarmJob, region: Int, on worker: String, reason: String) {
        job.shardFailures[region, default: []].append(worker)
        job.workerFailures[worker, default: 0] += 1
        if job.workerFailures[worker] == options.failuresBeforeBlocking {
            logger.warning("worker \(worker) failed \(options.failuresBeforeBlocking) shards of \(job.id); it is kept off that job")
        }
        let attempts = job.shardFailures[region]!.count
        if attempts >= options.maxShardAttempts {
            end(job, .failed("region \(region) failed \(attempts) times (on \(Set(job.shardFailures[region]!).sorted().joined(separator: ", "))); last error: \(reason)"))
        }
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
            job.finishedSeconds = (clock.now - job.started).seconds
            end(job, .done)
            logger.info("job \(job.id) done in \(String(format: "%.1f", job.finishedSeconds!)) s: \(job.resultsAccepted) results accepted for \(job.run.shardsTotal) shards, \(path), latent digest \(job.latentDigest)")
        } catch {
            end(job, .failed("encoding failed: \(error)"))
        }
        publishStatistics()  // whoever sees the job end sees the counters that include it
    }

    /// Ends a job in memory and in the store; its checkpoint and input are no longer needed.
    private func end(_ job: FarmJob, _ state: FarmJob.State) {
        job.state = state
        if case .failed(let reason) = state { logger.error("job \(job.id) failed: \(reason)") }
        var error = ""
        if case .failed(let reason) = state { error = reason }
        do {
            try store.finish(job.id, state: state.stored, error: error, outputPath: job.outputPath ?? "",
                             latentDigest: job.latentDigest, finishedSeconds: job.finishedSeconds)
        } catch {
            logger.error("cannot record the end of job \(job.id): \(error)")
        }
        uncheckpointed.remove(job.id)
        checkpoints.discard(job.id)
        try? FileManager.default.removeItem(atPath: inputPath(job.id))
    }

    // MARK: durability

    private func inputPath(_ id: String) -> String { "\(options.dataDirectory)/jobs/\(id).input" }

    /// Hands the newest state of each job with new results to the checkpoint writer, unless
    /// a write of that job is still under way or its last was under `checkpointInterval` ago
    /// (a later pass takes it).
    private func checkpointProgress(force: Bool = false) {
        let now = clock.now
        for id in uncheckpointed where !checkpoints.isWriting(id) {
            guard let job = jobs[id], job.isActive else { continue }
            if !force, let last = job.checkpointedAt, (now - last).seconds < options.checkpointInterval { continue }
            checkpoints.write(id, job.run.checkpoint(), stepsDone: job.run.stepsDone)
            job.checkpointedAt = now
            uncheckpointed.remove(id)
        }
    }

    /// Writes every outstanding checkpoint and waits for the disk: a stopping coordinator
    /// leaves nothing behind that a restart would have to compute again.
    private func flushCheckpoints() {
        checkpoints.flush()
        checkpointProgress(force: true)
        checkpoints.flush()
    }

    /// Rebuilds every job of the store; running ones continue from their checkpoints.
    private func restoreJobs() throws {
        for stored in try store.all() {
            if !stored.idempotencyKey.isEmpty { submissions[stored.client + "\n" + stored.idempotencyKey] = stored.id }
            do {
                let job = try restore(stored)
                jobs[job.id] = job
                jobOrder.append(job.id)
            } catch {
                logger.error("cannot restore job \(stored.id): \(error)")
                try? store.finish(stored.id, state: "failed", error: "could not be restored after a restart: \(error)")
            }
        }
        sortJobOrder()
        let running = jobs.values.filter(\.isActive)
        if !jobs.isEmpty {
            logger.info("restored \(jobs.count) job(s) from \(store.path), \(running.count) still running")
        }
        for job in running where job.run.isComplete { finish(job) }
    }

    private func restore(_ stored: StoredJob) throws -> FarmJob {
        let message = try Reel_V1_JobSpec(serializedBytes: stored.spec)
        let config = try modelConfig(message.model)
        let spec = JobSpec(resolving: message, with: config)
        let state = FarmJob.State(stored: stored.state, error: stored.error)
        let input = state == .running && message.withInput
            ? try LatentCodec.decode(Data(contentsOf: URL(fileURLWithPath: inputPath(stored.id))),
                                     count: spec.frames * config.channels * spec.width * spec.height)
            : nil
        let job = FarmJob(id: stored.id, client: stored.client, spec: spec, outputScale: max(1, Int(message.outputScale)),
                          model: ModelShape(config), channels: config.channels, input: input,
                          firstAttempt: epoch << 32 | 1, submitted: Date(timeIntervalSince1970: Double(stored.submittedMs) / 1000))
        job.state = state
        job.outputPath = stored.outputPath.isEmpty ? nil : stored.outputPath
        job.latentDigest = stored.latentDigest
        job.finishedSeconds = stored.finishedSeconds
        guard state == .running else { return job }
        let path = checkpoints.path(for: stored.id)
        if FileManager.default.fileExists(atPath: path) {
            do {
                try job.run.restore(CheckpointFile.read(path))
                logger.info("job \(job.id) resumes at \(job.run.stepsDone)/\(job.run.stepsTotal) region steps")
            } catch {
                logger.warning("job \(job.id): checkpoint unusable (\(error)); it starts again from the first step")
            }
        }
        return job
    }

    // MARK: scheduling

    /// Hands released shards to workers with credit. Higher priority goes first; among equal
    /// priorities, the client served the fewest shards so far (fair share), then the job
    /// submitted first; within a job, the shard released first.
    private func dispatch() {
        for id in jobOrder {
            guard let job = jobs[id], job.isActive else { continue }
            let ready = job.run.takeReadyShards()
            if !ready.isEmpty { pending[id, default: ShardQueue()].append(contentsOf: ready) }
        }
        guard !pending.isEmpty, workers.values.contains(where: { $0.credits > 0 }) else { return }
        for id in pending.keys where jobs[id]?.isActive != true { pending[id] = nil }
        admitNewClients()
        // Submission order breaks ties; only needed when several jobs wait.
        let position = pending.count > 1 ? Dictionary(uniqueKeysWithValues: jobOrder.enumerated().map { ($1, $0) }) : [:]
        while workers.values.contains(where: { $0.credits > 0 }), sendNextShard(position: position) {}
    }

    /// Sends the first shard, in scheduling order, that some worker can take; false if none.
    private func sendNextShard(position: [String: Int]) -> Bool {
        let order = pending.count == 1 ? Array(pending.keys) : pending.keys.sorted { a, b in
            let (jobA, jobB) = (jobs[a]!, jobs[b]!)
            if jobA.priority != jobB.priority { return jobA.priority > jobB.priority }
            let (servedA, servedB) = (served[jobA.client, default: 0], served[jobB.client, default: 0])
            return servedA != servedB ? servedA < servedB : position[a, default: 0] < position[b, default: 0]
        }
        for id in order {
            let job = jobs[id]!
            var worker: Data?
            guard let assignment = pending[id]!.takeFirst(where: { assignment in
                worker = bestWorker(for: job, region: assignment.region)
                return worker != nil
            }) else { continue }
            if pending[id]!.isEmpty { pending[id] = nil }
            send(assignment, of: job, to: worker!)
            served[job.client, default: 0] += 1
            return true
        }
        return false
    }

    /// A client new to the queue starts level with the least-served client waiting, so it
    /// shares from now on rather than taking everything until it has caught up.
    private func admitNewClients() {
        let waiting = Set(pending.keys.map { jobs[$0]!.client })
        let level = waiting.compactMap { served[$0] }.min() ?? 0
        for client in waiting where served[client] == nil { served[client] = level }
    }

    /// A worker with credit that offers the job's model and is not kept off the job. Preferred:
    /// one that has not failed this region, then one that already holds the model (it has
    /// run it before: no load), then the least used.
    private func bestWorker(for job: FarmJob, region: Int) -> Data? {
        let failedHere = job.shardFailures[region] ?? []
        let model = job.spec.model
        let able = workers.values.filter {
            $0.credits > 0 && $0.hello.models.contains(model)
                && job.workerFailures[$0.name, default: 0] < options.failuresBeforeBlocking
        }
        return able.min { a, b in
            let keyA = (failedHere.contains(a.name) ? 1 : 0, a.modelsRun.contains(model) ? 0 : 1, a.shardsCompleted)
            let keyB = (failedHere.contains(b.name) ? 1 : 0, b.modelsRun.contains(model) ? 0 : 1, b.shardsCompleted)
            return keyA < keyB
        }?.identity
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
        message.spec.prompt = job.spec.prompt(forChunk: box.frames)  // a storyboard's shot
        message.spec.shots = []
        message.shape = Reel_V1_LatentShape(frames: box.frames.count, channels: job.run.plan.channels, rows: box.rows.count, columns: box.columns.count)
        message.carriesState = assignment.state != nil
        let payloads = [LatentCodec.encode(assignment.latent), assignment.state.map(LatentCodec.encode) ?? Data()]
        workers[peer]!.credits -= 1
        workers[peer]!.current = (job.id, assignment.region, assignment.attempt)
        workers[peer]!.modelsRun.insert(job.spec.model)
        workers[peer]!.stepsDone = 0
        workers[peer]!.progressAt = clock.now
        workers[peer]!.assignedAt = clock.now
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
        for worker in workers.values {
            if (now - worker.lastSeen).seconds > limit {
                drop(worker.identity, reason: "silent for more than \(options.liveness) heartbeats")
            } else if let current = worker.current, (now - worker.progressAt).seconds > options.shardTimeout {
                // Alive but stuck: the shard goes to someone else; this worker's result, if it
                // ever comes, belongs to a superseded attempt and is dropped.
                workers[worker.identity]!.current = nil
                if let job = jobs[current.job], job.isActive {
                    job.run.requeue(region: current.region)
                    metrics.requeues.increment()
                    logger.warning("shard \(current.job)/\(current.region) made no progress on \(worker.name) for \(Int(options.shardTimeout)) s; reassigned")
                }
            }
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

    private func sortJobOrder() {
        jobOrder.sort { (jobs[$0]!.priority, 0) > (jobs[$1]!.priority, 1) }
    }

    private func submit(_ envelope: Envelope, from client: String) throws -> Reply {
        let request = try envelope.decode(Reel_V1_SubmitRequest.self)
        if !request.idempotencyKey.isEmpty, let known = submissions[client + "\n" + request.idempotencyKey] {
            logger.info("resubmission of \(known) (idempotency key \(request.idempotencyKey))")
            return (.submitReply, Reel_V1_SubmitReply.with { $0.jobID = known }, [])
        }
        guard request.idempotencyKey.count <= 128 else {
            throw CoordinatorError("idempotency_key is \(request.idempotencyKey.count) characters; at most 128")
        }
        guard options.modelPathsAllowed || JobLimits.isPackageName(request.spec.model) else {
            throw CoordinatorError("model \(request.spec.model.prefix(80).debugDescription) is not a package name; use 1 to \(JobLimits.maxModelNameCharacters) letters, digits, '.', '_' or '-'")
        }
        let active = jobs.values.count(where: { $0.client == client && $0.isActive })
        guard active < options.maxActiveJobsPerClient else {
            throw CoordinatorError("client \(client) has \(active) unfinished jobs, the most this coordinator takes; wait for some to finish or cancel them")
        }
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
        let outputScale = max(1, Int(request.spec.outputScale))
        let job = FarmJob(id: id, client: client, spec: spec, outputScale: outputScale, model: ModelShape(config),
                          channels: config.channels, input: input, firstAttempt: epoch << 32 | 1)
        // Acknowledged only once it is on disk: the input first, then the row that names it.
        if let input { try AtomicFile.write(LatentCodec.encode(input), to: inputPath(id)) }
        try store.insert(StoredJob(id: id, client: client, idempotencyKey: request.idempotencyKey,
                                   spec: try spec.message(outputScale: outputScale).serializedData(), state: job.state.stored,
                                   submittedMs: Int64(job.submitted.timeIntervalSince1970 * 1000)))
        if !request.idempotencyKey.isEmpty { submissions[client + "\n" + request.idempotencyKey] = id }
        jobs[id] = job
        jobOrder.append(id)
        sortJobOrder()
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
            end(job, .cancelled)
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
            let size = frames.reduce(0) { $0 + $1.count }
            counters.bytesSent += size
            metrics.bytesSent.increment(by: size)
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

/// One job's assignments waiting for workers, in release order; taking the first is O(1).
struct ShardQueue {
    private var items: [ShardAssignment] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }

    mutating func append(contentsOf assignments: [ShardAssignment]) { items += assignments }

    /// Removes and returns the first assignment `accept` takes, if any.
    mutating func takeFirst(where accept: (ShardAssignment) -> Bool) -> ShardAssignment? {
        guard let index = items[head...].firstIndex(where: accept) else { return nil }
        let taken = items[index]
        if index == head { head += 1 } else { items.remove(at: index) }
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return taken
    }
}
