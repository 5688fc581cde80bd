import Diffusion
import Families
import Foundation
import Logging
import Media
import Planning
import Provenance
import Wire

/// The coordinator daemon: one ROUTER socket on one thread. It registers workers, hands out
/// shards as workers ask for them (credit-based pull), fences results by attempt, requeues the
/// shards of workers that fall silent, fuses, encodes finished jobs, and answers clients.
///
/// This file holds the socket loop and the worker side of the protocol. The state is in parts
/// of its own: `WorkerRegistry` (who is connected and what each holds), `JobTable` (jobs, their
/// order, idempotency keys), `Scheduler` (which shard goes where, decided without sending),
/// `JobStore` and `CheckpointWriter` (what outlives the process). The extensions
/// +Scheduling (dispatch, liveness), +Durability (checkpoints, restoring after a restart),
/// +Clients (submit, status, cancel, workers, fetch), +Retention and +Revocation apply them.
/// All of it runs on the loop's thread; only `stop`, `perform`, `statistics` and `snapshot`
/// are for others.
public final class CoordinatorServer: @unchecked Sendable {
    public let options: CoordinatorOptions
    let context: ZMQContext
    let router, monitor: ZMQSocket
    var zap: ZAPHandler?
    /// Under CURVE: the enrolled keys as last read, to close connections whose key was revoked.
    var enrollment: EnrollmentWatch?
    var logger = Logger(label: "reel.coordinator")
    let stopLock = NSLock()
    var stopRequested = false
    var counters = CoordinatorStatistics()
    var publishedCounters = CoordinatorStatistics()

    /// A snapshot of the counters, safe from any thread.
    public var statistics: CoordinatorStatistics { stopLock.withLock { publishedCounters } }

    /// Jobs, workers and previews as of a moment ago, safe from any thread.
    public var snapshot: FarmSnapshot { stopLock.withLock { publishedSnapshot } }
    var publishedSnapshot = FarmSnapshot()
    var lastSnapshot: ContinuousClock.Instant?
    var inbox: [FarmCommand] = []
    /// Work other threads hand back to the loop (finished encodes).
    var loopTasks: [@Sendable () -> Void] = []
    /// Encodes finished jobs, one at a time, off the loop thread.
    let encoder = DispatchQueue(label: "reel.encoder")
    /// Signs the manifests of the videos it writes.
    let signingKey: SigningKey
    let metrics = CoordinatorMetrics()

    var workers = WorkerRegistry()
    var table = JobTable()
    /// The jobs by id; `table` changes them.
    var jobs: [String: FarmJob] { table.jobs }
    var scheduler: Scheduler
    /// This coordinator's hold on its data directory.
    let lock: DataDirectoryLock
    /// The durable side: job rows, and checkpoints of running jobs written off this thread.
    let store: JobStore
    /// Shards each worker name has completed, in every life of this coordinator (`reel
    /// workers`), and the names whose counts the store has not heard yet.
    var shardsByWorker: [String: Int] = [:]
    var unsavedWorkerShards: Set<String> = []
    let checkpoints: CheckpointWriter
    /// Jobs with results newer than their last checkpoint.
    var uncheckpointed: Set<String> = []
    /// Expired jobs the store would not delete, each logged once while retried every heartbeat.
    var unforgettable: Set<String> = []
    /// What the coordinator reads of a model (never its weights), by model name.
    var knownModels: [String: PlannedModel] = [:]
    var clock: any FarmClock { options.clock }
    var lastHeartbeat: ContinuousClock.Instant
    var lastReap: ContinuousClock.Instant

    /// The endpoints actually bound (wildcard ports resolved).
    public private(set) var endpoints: [String] = []

    public init(options: CoordinatorOptions, context: ZMQContext) throws {
        self.options = options
        self.context = context
        scheduler = Scheduler(failuresBeforeBlocking: options.failuresBeforeBlocking)
        let files = JobFiles(dataDirectory: options.dataDirectory)
        do {
            try FileManager.default.createDirectory(atPath: files.directory, withIntermediateDirectories: true)
        } catch {
            let reason = (error as NSError).localizedDescription
            throw CoordinatorError(.dataDirectoryUnavailable, "cannot create \(files.directory): \(reason); give a --data-dir this user may write to")
        }
        lock = try DataDirectoryLock(directory: options.dataDirectory)
        // Files a crash left half-written (a checkpoint, an input, a video): never read, so
        // removed. The lock above makes sure no other coordinator is writing them.
        let orphans = AtomicFile.removeOrphans(in: files.directory)
        store = try JobStore(directory: options.dataDirectory)
        signingKey = try SigningKey.loadOrCreate(options.signingKeyPath ?? SigningKey.farmPath(dataDirectory: options.dataDirectory))
        shardsByWorker = try store.workerShards()
        let logger = self.logger
        checkpoints = CheckpointWriter(store: store, files: files) { job, error in
            logger.error("cannot checkpoint \(job): \(error); it will be computed again after a restart")
        }
        router = try ZMQSocket(context, .router, maxMessageBytes: options.maxMessageBytes)
        monitor = try router.monitor(context)
        lastHeartbeat = options.clock.now
        lastReap = lastHeartbeat
        if !orphans.isEmpty { logger.info("removed \(orphans.count) half-written file(s) a crash left in \(files.directory)") }
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
    func listen() throws {
        if case .curveServer(let keys) = options.security {
            let enrolled = KeyDirectory(dataDirectory: options.dataDirectory)
            let handler = try ZAPHandler(context: context, keys: enrolled, logger: logger)
            zap = handler
            enrollment = EnrollmentWatch(keys: enrolled, clock: clock)
            try router.secure(options.security)
            for endpoint in options.bind { try bindEndpoint(endpoint) }
            guard let probeTarget = endpoints.first(where: { $0.hasPrefix("tcp://") || $0.hasPrefix("ipc://") }) else { return }
            try ZAPHandler.selfTest(context: context, endpoint: Self.connectable(probeTarget), serverPublicKey: keys.publicKey, handler: handler)
            logger.info("CURVE on; ZAP self-test passed (an unknown key was refused); coordinator public key \(keys.publicKey)")
        } else {
            for endpoint in options.bind { try bindEndpoint(endpoint) }
        }
    }

    func bindEndpoint(_ endpoint: String) throws {
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

    var shouldStop: Bool { stopLock.withLock { stopRequested } }

    /// Serves until `stop()`. Blocking: run it on its own thread.
    public func run() throws {
        logger.info("coordinator listening on \(endpoints.joined(separator: ", ")), data in \(options.dataDirectory)")
        while !shouldStop { try turn() }
        shutDown()
    }

    /// One turn of the loop: reads what arrived within `milliseconds`, then does whatever the
    /// clock says is due (heartbeats, reaping, retention), dispatches, checkpoints and
    /// publishes. `run` turns it until stopped; a test may turn it by hand, on one thread,
    /// with a `ManualClock`, and never call `run`.
    public func turn(waitingUpTo milliseconds: Int = 50) throws {
        let readable = try ZMQSocket.poll([router, monitor], milliseconds: milliseconds)
        if readable.contains(0) {
            while true {
                do {
                    let (frames, userID, address) = try router.receiveWithPeer(dontWait: true)
                    handle(frames, userID: userID, address: address)
                } catch let oversized as OversizedMessage {
                    logger.warning("dropping peer \(Self.hex(oversized.firstFrame)): \(oversized)")
                    drop(oversized.firstFrame, .misbehaved(problem: "\(oversized)"))
                } catch {
                    break
                }
            }
        }
        if readable.contains(1) {
            while let frames = try? monitor.receive(dontWait: true) { note(SocketEvent(frames: frames)) }
        }
        let now = clock.now
        if (now - lastHeartbeat).seconds >= options.heartbeatInterval {
            sendHeartbeats()
            forgetExpiredJobs()
            readmitParkedJobs()
            saveWorkerShards()
            lastHeartbeat = now
        }
        // Four times a heartbeat, not every turn: a busy farm turns thousands of times a
        // second, and each look visits every worker.
        if (now - lastReap).seconds >= options.heartbeatInterval / 4 {
            reapSilentWorkers(now)
            lastReap = now
        }
        closeRevokedWorkers()
        performCommands()
        dispatch()
        checkpointProgress()
        counters.turns += 1
        publishStatistics()
        if lastSnapshot.map({ (now - $0).seconds >= 0.25 }) ?? true {
            publishSnapshot()
            lastSnapshot = now
        }
    }

    /// Tells workers to go, finishes encodes and checkpoints, and frees the data directory:
    /// what `run` does once stopped, and what a test that turned the loop by hand calls last.
    public func shutDown() {
        for worker in workers.all {
            try? router.send([worker.identity] + Envelope(.disconnect, Reel_V1_Disconnect.with { $0.reason = "coordinator stopping" }).frames, dontWait: true)
        }
        encoder.sync {}  // encodes under way finish, and their jobs are recorded done
        performCommands()
        flushCheckpoints()
        saveWorkerShards()
        zap?.stop()
        lock.release()  // whoever still holds this object, the directory is free once it has stopped
        logger.info("coordinator stopped")
    }

    /// Asks the coordinator's thread to do `command` at its next turn; safe from any thread.
    public func perform(_ command: FarmCommand) {
        stopLock.withLock { inbox.append(command) }
    }

    func performCommands() {
        let (commands, tasks) = stopLock.withLock { () -> ([FarmCommand], [@Sendable () -> Void]) in
            defer { inbox.removeAll(); loopTasks.removeAll() }
            return (inbox, loopTasks)
        }
        for task in tasks { task() }
        for command in commands {
            switch command {
            case .cancel(let id):
                if let job = jobs[id], job.isActive {
                    end(job, .cancelled)
                    logger.info("job \(id) cancelled from the dashboard")
                }
            case .control(let id, let action):
                guard let job = jobs[id] else { continue }
                do {
                    let result = try control(job, action)
                    logger.info("job \(id): \(action) from the dashboard\(result.id == id ? "" : ", as job \(result.id)")")
                } catch {
                    logger.warning("job \(id): \(action) from the dashboard refused: \(error)")
                }
            case .setPriority(let id, let priority):
                guard let job = jobs[id], job.isActive else { continue }
                job.priority = priority
                table.sort()
                try? store.setPriority(id, spec: job.spec.message(output: job.output), priority: priority)
                logger.info("job \(id) priority set to \(priority)")
            }
        }
    }

    func publishSnapshot() {
        var snapshot = FarmSnapshot()
        snapshot.jobs = table.order.compactMap { jobs[$0].map(status(of:)) }
        snapshot.workers = workersReply().workers
        metrics.record(snapshot.workers)
        for job in jobs.values where job.isActive {
            snapshot.previews[job.id] = job.run.previewFrames(projection: job.run.stages == nil ? nil : workers.previewProjection(for: job.spec.model))
        }
        snapshot.dataDirectory = options.dataDirectory
        snapshot.taken = clock.date
        stopLock.withLock { publishedSnapshot = snapshot }
        metrics.queueDepth.record(scheduler.queueDepth)
        metrics.workers.record(workers.count)
        var byState: [String: Int] = [:]
        for job in jobs.values { byState[job.state.stored, default: 0] += 1 }
        for (state, gauge) in metrics.jobsByState { gauge.record(byState[state] ?? 0) }
    }

    func publishStatistics() {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        counters.cpuSeconds = Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
        let snapshot = counters
        stopLock.withLock { publishedCounters = snapshot }
    }

    // MARK: messages

    /// `userID`: what the ZAP handler said the connection is ("worker:NAME", "client:NAME");
    /// nil for plaintext and inproc peers, which may do anything. `address`: the peer's IP.
    func handle(_ frames: [Data], userID: String?, address: String?) {
        let size = frames.reduce(0) { $0 + $1.count }
        counters.bytesReceived += size
        metrics.bytesReceived.increment(by: size)
        guard let identity = frames.first else { return }
        do {
            let envelope = try Envelope(frames: Array(frames.dropFirst()))
            workers.heard(from: identity, at: clock.now)
            let peer = userID.flatMap(PeerRole.parse)
            if let peer, let userID, let enrollment, !enrollment.isEnrolled(userID) {
                return refuseRevoked(envelope.kind, from: identity, peer)
            }
            if let peer, peer.role.kind != envelope.kind.sender {
                return refuse(envelope.kind, from: identity, peer)
            }
            let requester = Requester(name: Self.client(peer, address: address), seesEveryJob: peer.map { $0.role == .admin } ?? true)
            try handle(envelope, from: identity, userID: userID, requester: requester)
        } catch {
            logger.warning("dropping peer \(Self.hex(identity)): \(error)")
            drop(identity, .misbehaved(problem: "\(error)"))
        }
    }

    /// Connections libzmq closed itself are logged. Refused credentials and a security
    /// mismatch (a plaintext peer against CURVE) are warnings: someone is knocking with the
    /// wrong key. A closed connection is every CLI call's end, and a handshake that stops
    /// short is a TCP probe's (a load balancer's, Kubernetes'): debug. A worker among them
    /// falls silent and is reaped by its heartbeats, which is logged then.
    func note(_ event: SocketEvent?) {
        guard let event else { return }
        if event.isAuthenticationFailure || event.isSecurityMismatch {
            logger.warning("\(event)")
        } else {
            logger.debug("\(event)")
        }
    }

    /// Who sent a client request: the name its jobs are owned by, and whether it sees and
    /// cancels every job (an admin key; without keys, everyone, as nobody is authenticated)
    /// or only its own.
    struct Requester {
        let name: String
        let seesEveryJob: Bool

        func owns(_ client: String) -> Bool { seesEveryJob || client == name }
    }

    /// Who a client is, for ownership, fair share and the per-client job limit: its enrolled key's name;
    /// without keys (`--insecure`), the machine it connects from, so that people submitting from
    /// their own machines share the farm between them rather than as one.
    static func client(_ peer: (role: PeerRole, name: String)?, address: String?) -> String {
        if let peer { return peer.name }
        return address.map { "anonymous@\($0)" } ?? "anonymous"
    }

    /// A key enrolled for one role sending the other role's messages: a client request gets
    /// an error reply; a worker message is ignored. Both are logged.
    func refuse(_ kind: MessageKind, from identity: Data, _ peer: (role: PeerRole, name: String)) {
        let reason = peer.role == .worker ? "a worker key cannot submit jobs or ask about them"
                                          : "a client key cannot take part as a worker"
        logger.warning("refused \(kind) from \(peer.role.rawValue) \(peer.name): \(reason)")
        if peer.role == .worker { send(.error, Reel_V1_ErrorReply.with { $0.message = reason }, to: identity) }
    }

    func handle(_ envelope: Envelope, from peer: Data, userID: String?, requester: Requester) throws {
        switch envelope.kind {
        case .hello: try register(peer, envelope.decode(Reel_V1_WorkerHello.self), userID: userID)
        case .ready:
            let ready = try envelope.decode(Reel_V1_Ready.self)
            guard workers[peer] != nil else { return sayHelloFirst(peer) }
            workers.addCredits(Int(ready.credits), to: peer, cap: options.maxShardsPerWorker, at: clock.now)
        case .heartbeat:
            let beat = try envelope.decode(Reel_V1_Heartbeat.self)
            guard workers[peer] != nil else { return sayHelloFirst(peer) }
            workers.stepsDone(Int(beat.stepsDone), by: peer, at: clock.now)
        case .result: try accept(envelope, from: peer)
        case .disconnect:
            let reason = try envelope.decode(Reel_V1_Disconnect.self).reason
            drop(peer, .left(reason: reason))
        case .submit: reply(to: peer) { try self.submit(envelope, from: requester.name) }
        case .status: reply(to: peer) { try self.status(envelope, for: requester) }
        case .cancel: reply(to: peer) { try self.cancel(envelope, for: requester) }
        case .control: reply(to: peer) { try self.control(envelope, for: requester) }
        case .workers: reply(to: peer) { (.workersReply, self.workersReply(), []) }
        case .fetch: reply(to: peer) { try self.fetch(envelope, for: requester) }
        case .assignment, .submitReply, .statusReply, .cancelReply, .workersReply, .fetchReply, .controlReply, .error:
            throw WireError(.unexpectedMessage, "\(envelope.kind) is not a message a coordinator accepts")
        }
    }

    /// A worker this coordinator does not know (it restarted, or reaped the worker): the
    /// worker reconnects and says hello, instead of waiting out its liveness.
    func sayHelloFirst(_ peer: Data) {
        send(.disconnect, Reel_V1_Disconnect.with { $0.reason = "unknown worker: send hello first" }, to: peer)
    }

    /// The longest id, host name, kernel or build a worker's hello may announce, in bytes.
    public static let maxHelloText = 256
    /// The most models, and weight files of each, whose digests a hello may announce.
    public static let maxHelloModels = 256

    /// Whether a hello's weight digests are within bounds: names and paths a line long, digests
    /// 64 hexadecimal digits.
    static func weightsAreBounded(_ hello: Reel_V1_WorkerHello) -> Bool {
        hello.modelWeights.count <= maxHelloModels && hello.modelWeights.allSatisfy { model in
            model.model.utf8.count <= maxHelloText && model.files.count <= maxHelloModels && model.files.allSatisfy { file in
                file.path.utf8.count <= maxHelloText && file.sha256.utf8.count == 64 && file.sha256.allSatisfy(\.isHexDigit)
            }
        }
    }

    func register(_ peer: Data, _ hello: Reel_V1_WorkerHello, userID: String?) throws {
        guard hello.protocolVersion == Envelope.protocolVersion else {
            let mismatch = "protocol version \(hello.protocolVersion); this coordinator speaks \(Envelope.protocolVersion)"
            // Told, the worker stops and says why instead of finding the coordinator silent.
            send(.disconnect, Reel_V1_Disconnect.with {
                $0.reason = "\(mismatch): run a worker of the coordinator's build"
                $0.refused = true
            }, to: peer)
            throw WireError(.protocolVersion, mismatch)
        }
        // What it announces is shown, logged, labels metrics and names stored counts: a peer
        // gets a line's worth each, not a message's.
        guard [hello.workerID, hello.hostname, hello.cpuKernel, hello.build].allSatisfy({ $0.utf8.count <= Self.maxHelloText }) else {
            throw WireError(.malformed, "a hello whose id, host, kernel or build is over \(Self.maxHelloText) bytes")
        }
        guard Self.weightsAreBounded(hello) else {
            throw WireError(.malformed, "a hello whose weight digests are out of bounds (at most \(Self.maxHelloModels) models and files each, paths of \(Self.maxHelloText) bytes, 64-digit SHA-256)")
        }
        if workers[peer] != nil { drop(peer, .registeredAgain) }
        let worker = workers.register(peer, hello: hello, userID: userID, at: clock.now)
        workers.setShardsCompleted(peer, shardsByWorker[worker.name] ?? 0)
        observe(.workerJoined(worker: worker.name))
        logger.info("worker \(worker.name) joined from \(hello.hostname): \(hello.threads) thread(s), models \(hello.models.joined(separator: ", ")), OpenBLAS \(hello.cpuKernel), build \(hello.build)")
    }

    /// Forgets a peer; a worker's shards go back to their jobs under new attempts. A worker
    /// that said goodbye is news; one that fell silent or misbehaved is a warning.
    func drop(_ peer: Data, _ why: WorkerRemoval) {
        guard let worker = workers.remove(peer) else { return }
        if case .left = why { logger.info("worker \(worker.name) removed: \(why)") } else { logger.warning("worker \(worker.name) removed: \(why)") }
        observe(.workerRemoved(worker: worker.name, why: why))
        requeue(worker.inFlight.values)
    }

    /// Gives shards taken from their worker (gone, or stalled) to others under new attempts.
    func requeue(_ shards: some Sequence<ShardInFlight>) {
        for shard in shards.sorted(by: { $0.region < $1.region }) {
            guard let job = jobs[shard.job], job.isActive, job.run.isRunning(region: shard.region, attempt: shard.attempt) else { continue }
            job.run.requeue(region: shard.region)
            metrics.requeues.increment()
            observe(.shardRequeued(job: shard.job, region: shard.region))
            logger.info("requeued region \(shard.region) of \(shard.job)")
        }
    }

    /// A result or a failure from a worker. Only an attempt this worker holds counts, and its
    /// result must be what was handed over (job, region, steps, shape) with finite floats,
    /// checked before anything is read of it: anything else is a failed attempt of this worker,
    /// never a trap and never part of a checkpoint.
    func accept(_ envelope: Envelope, from peer: Data) throws {
        let result = try envelope.decode(Reel_V1_ShardResult.self)
        guard let worker = workers[peer] else {
            // A worker presumed dead (silent too long, or cut off) that came back: whatever it
            // computed was requeued meanwhile, so its result belongs to a superseded attempt.
            logger.info("dropped a late result for attempt \(result.attempt) from a worker no longer registered")
            return sayHelloFirst(peer)
        }
        guard let shard = workers.take(attempt: result.attempt, from: peer) else {
            // Taken from it after a stall, or never its own: nothing of it is read.
            logger.info("dropped a result from \(worker.name) for attempt \(result.attempt), which it does not hold")
            return
        }
        guard let job = jobs[shard.job], job.isActive, job.run.isRunning(region: shard.region, attempt: shard.attempt) else { return }
        if !result.error.isEmpty {
            return failed(shard, of: job, on: worker.name, reason: String(result.error.prefix(500)))
        }
        let output: ShardResult
        switch checked(result, envelope.payloads, against: shard) {
        case .failure(let problem): return failed(shard, of: job, on: worker.name, reason: "bad result: \(problem)")
        case .success(let checked): output = checked
        }
        // Bits depend on the weights: a result computed with other weight files than the job's
        // other results is a failed attempt of its worker (who then is kept off the job).
        let weights = worker.weights(of: job.spec.model)
        if let problem = job.weightsDiffer(weights) {
            return failed(shard, of: job, on: worker.name, reason: problem)
        }
        let outcome = job.run.accept(output)
        if outcome == .stale {
            logger.info("dropped stale result for \(shard.job)/\(shard.region) attempt \(shard.attempt)")
            return
        }
        if job.record(weights: weights, kernel: worker.hello.cpuKernel) {
            // Kept when it changes (a new worker's first result), not per result.
            do {
                try store.setRenderedWith(job.id, JSONEncoder().encode(job.renderedWith))
            } catch {
                logger.error("cannot record what job \(job.id) was rendered with: \(error)")
            }
        }
        workers.completedShard(peer)
        shardsByWorker[worker.name, default: 0] += 1
        unsavedWorkerShards.insert(worker.name)
        counters.resultsAccepted += 1
        counters.traffic[shard.kind.name, default: ShardTraffic()].accepted += 1
        counters.traffic[shard.kind.name, default: ShardTraffic()].payloadBytesReceived += envelope.payloads.reduce(0) { $0 + $1.count }
        job.resultsAccepted += 1
        metrics.shardsCompleted.increment()
        metrics.shardLatency.recordNanoseconds(Int64((clock.now - shard.assignedAt).seconds * 1e9))
        let steps = Int(shard.stepEnd) - Int(shard.stepBegin)
        if steps > 0 && result.seconds.isFinite && result.seconds > 0 {
            metrics.stepLatency.recordNanoseconds(Int64(min(result.seconds, 1e6) / Double(steps) * 1e9))
        }
        uncheckpointed.insert(job.id)
        job.shardFailures[shard.region] = nil
        if job.run.isComplete { finish(job) }
    }

    /// A result as its assignment says it must be, or what is wrong with it.
    func checked(_ result: Reel_V1_ShardResult, _ payloads: [Data], against shard: ShardInFlight) -> Result<ShardResult, CoordinatorError> {
        guard result.jobID == shard.job, result.region == UInt32(shard.region) else {
            return .failure(CoordinatorError(.resultMismatch, "it names \(result.jobID.prefix(40))/\(result.region), not \(shard.job)/\(shard.region)"))
        }
        guard result.stepBegin == shard.stepBegin, result.stepEnd == shard.stepEnd else {
            return .failure(CoordinatorError(.resultMismatch, "steps \(result.stepBegin)..<\(result.stepEnd), not \(shard.stepBegin)..<\(shard.stepEnd)"))
        }
        guard result.shape == shard.shape, result.kind == shard.kind, !result.carriesState || shard.kind == .denoise else {
            return .failure(CoordinatorError(.resultMismatch, "a \(result.kind) result of shape \(result.shape.frames)x\(result.shape.channels)x\(result.shape.rows)x\(result.shape.columns), not the one assigned"))
        }
        let count = shard.shape.count!  // made by this coordinator from a region of a validated plan
        if shard.kind == .decode {
            // Frames, 8-bit RGB: every byte is a pixel value.
            guard payloads[0].count == count, payloads[1].isEmpty else {
                return .failure(CoordinatorError(.resultMismatch, "frames of \(payloads[0].count) bytes; the piece has \(count)"))
            }
            return .success(ShardResult(region: shard.region, steps: Int(shard.stepBegin)..<Int(shard.stepEnd),
                                        attempt: shard.attempt, latent: [], state: nil, pixels: [UInt8](payloads[0])))
        }
        do {
            let latent = try LatentCodec.decode(payloads[0], count: count)
            let state = result.carriesState ? try LatentCodec.decode(payloads[1], count: count) : nil
            guard result.carriesState || payloads[1].isEmpty else { return .failure(CoordinatorError(.resultMismatch, "a sampler state it says it does not carry")) }
            guard latent.allSatisfy(\.isFinite), state?.allSatisfy(\.isFinite) ?? true else {
                return .failure(CoordinatorError(.resultMismatch, "values that are not finite (NaN or infinity)"))
            }
            return .success(ShardResult(region: shard.region, steps: Int(shard.stepBegin)..<Int(shard.stepEnd),
                                        attempt: shard.attempt, latent: latent, state: state))
        } catch {
            return .failure(CoordinatorError(.resultMismatch, "\(error)"))
        }
    }

    /// A shard its worker failed (or answered wrongly): it runs again elsewhere, and the failure
    /// counts against that worker.
    func failed(_ shard: ShardInFlight, of job: FarmJob, on worker: String, reason: String) {
        logger.warning("shard \(shard.job)/\(shard.region) failed on \(worker): \(reason)")
        job.run.requeue(region: shard.region)
        metrics.shardFailures.increment()
        observe(.shardFailed(job: shard.job, region: shard.region, worker: worker, reason: reason))
        shardFailed(job, region: shard.region, on: worker, reason: reason)
    }

    /// A shard that failed runs again on another worker, up to `maxShardAttempts` in all; a
    /// worker that fails `failuresBeforeBlocking` shards of a job is kept off that job.
    func shardFailed(_ job: FarmJob, region: Int, on worker: String, reason: String) {
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

    /// Every shard is done: fuse the whole video and encode it on the encoder's queue, so a
    /// long encode never stalls dispatch or heartbeats; the loop marks the job done after.
    func finish(_ job: FarmJob) {
        // A latent job's video is its decoded pieces (their digest is of the frames); a pixel
        // job's is its latent.
        let latent = job.run.stages == nil ? job.run.finalLatent() : nil
        let frames = job.run.stages == nil ? nil : job.run.finalFrames()
        var digest = FNV1a()
        if let latent { digest.add(latent) } else { digest.add(frames!) }
        job.latentDigest = String(digest.value, radix: 16)
        job.state = .encoding
        // A restart during the encode then finds every region done and only encodes again.
        checkpoints.write(job.id, job.run.checkpoint(), stepsDone: job.run.stepsDone)
        uncheckpointed.remove(job.id)
        let spec = job.spec, output = job.output, id = job.id, kernels = job.kernels, date = clock.date
        let weights = job.weights.isEmpty ? nil : job.weights.values.sorted { $0.path < $1.path }
        let path = jobFiles.video(id)
        let planned = knownModels[spec.model]
        encoder.async { [self] in
            let outcome = Result {
                let video = frames.map { RGBVideo(width: spec.width, height: spec.height, pixels: $0) }
                    ?? RGBVideo(planar: latent!, frames: spec.frames, height: spec.height, width: spec.width)
                let options = EncodeOptions(fps: spec.fps, scale: output.scale, watermark: try output.watermark.map { try Watermark($0) })
                // Read here, off the loop: the first digest of a model's weights reads all of them.
                let subject = try output.manifest ? Self.manifestSubject(spec: spec, output: output, model: planned, weights: weights, kernels: kernels) : nil
                // Synced to disk before it is renamed into place and the job recorded done.
                let temporary = AtomicFile.temporaryPath(for: path)
                do {
                    try SignedVideo.writeMP4(video, options: options, to: temporary, subject: subject, key: signingKey, date: date)
                    try AtomicFile.commit(temporary, to: path)
                } catch {
                    try? FileManager.default.removeItem(atPath: temporary)
                    throw error
                }
            }
            onLoop { self.encoded(id, path: path, outcome) }
        }
    }

    /// What a job's manifest says besides its frames: the job, the model and its weights'
    /// digests, the input's digest, and the kernels of the workers that rendered it. The weights
    /// are those its workers announced; without any (a job of no computed shard, or whose results
    /// came in before the store kept them), this coordinator's own copy's.
    static func manifestSubject(spec: JobSpec, output: OutputOptions, model: PlannedModel?, weights: [WeightFile]?,
                                kernels: Set<String>) throws -> ManifestSubject {
        let files = try weights ?? WeightDigests.shared.weights(in: try ModelFamilies.locate(spec.model))
        return ManifestSubject(
            job: JobRecord(pipeline: "farm", spec: spec, outputScale: output.scale, watermark: output.watermark, privatePrompt: output.privatePrompt),
            model: ModelRecord(name: spec.model, family: model?.family ?? "unknown", weights: files),
            input: output.inputSha256.map { InputRecord(sha256: $0) }, blasKernels: kernels.sorted())
    }

    private func encoded(_ id: String, path: String, _ outcome: Result<Void, any Error>) {
        guard let job = jobs[id], job.state == .encoding else { return }
        switch outcome {
        case .success:
            job.outputPath = path
            end(job, .done)
            logger.info("job \(job.id) done in \(String(format: "%.1f", job.finishedSeconds!)) s: \(job.resultsAccepted) results accepted for \(job.run.shardsTotal) shards, \(path), latent digest \(job.latentDigest)")
        case .failure(let error):
            end(job, .failed("encoding failed: \(error)"))
        }
        publishStatistics()  // whoever sees the job end sees the counters that include it
    }

    /// Runs `body` on the loop's thread at its next turn; safe from any thread.
    func onLoop(_ body: @escaping @Sendable () -> Void) {
        stopLock.withLock { loopTasks.append(body) }
    }

    /// Ends a job in memory and in the store; its checkpoint and input are no longer needed.
    func end(_ job: FarmJob, _ state: FarmJob.State) {
        job.finishedSeconds = job.elapsed
        job.state = state
        job.finishedAt = clock.date
        if case .failed(let reason) = state { logger.error("job \(job.id) failed: \(reason)") }
        var error = ""
        if case .failed(let reason) = state { error = reason }
        do {
            try store.finish(job.id, state: state.stored, error: error, outputPath: job.outputPath ?? "",
                             latentDigest: job.latentDigest, finishedSeconds: job.finishedSeconds, finishedAt: job.finishedAt,
                             regionSteps: job.run.progress, resultsAccepted: job.resultsAccepted)
        } catch {
            logger.error("cannot record the end of job \(job.id): \(error)")
        }
        uncheckpointed.remove(job.id)
        discardFiles(of: job.id)
        metrics.jobsEnded[state.stored]?.increment()
        if let outcome = state.outcome { observe(.jobEnded(job: job.id, outcome: outcome)) }
    }

    func observe(_ event: CoordinatorEvent) { options.observer?(event) }

    /// Names whose shard counts are kept. Without keys a worker's default name holds its
    /// process id, so every restart of a worker is a new name: past this many, the counts of
    /// workers not connected, fewest shards first, are forgotten.
    static let maxRememberedWorkers = 1024

    /// Writes the counts that changed since the last time: once a heartbeat, not per result.
    func saveWorkerShards() {
        guard !unsavedWorkerShards.isEmpty else { return }
        do {
            try store.setWorkerShards(shardsByWorker.filter { unsavedWorkerShards.contains($0.key) })
            unsavedWorkerShards.removeAll()
            let excess = shardsByWorker.count - Self.maxRememberedWorkers
            guard excess > 0 else { return }
            let connected = Set(workers.all.map(\.name))
            let forgotten = shardsByWorker.filter { !connected.contains($0.key) }.sorted { ($0.value, $0.key) < ($1.value, $1.key) }
                .prefix(excess).map(\.key)
            try store.forgetWorkers(forgotten)
            for name in forgotten { shardsByWorker[name] = nil }
        } catch {
            logger.error("cannot record workers' shard counts: \(error)")
        }
    }

    /// An ended job's checkpoint and input are no longer needed.
    func discardFiles(of id: String) {
        checkpoints.discard(id)
        try? FileManager.default.removeItem(atPath: inputPath(id))
    }

    // MARK: sending

    @discardableResult
    func send(_ kind: MessageKind, _ message: any SwiftProtobufMessage, payloads: [Data] = [], to peer: Data) -> Bool {
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
