import Diffusion
import Foundation
import Logging
import Wire

/// How a worker runs.
public struct WorkerOptions: Sendable {
    public var endpoint: String
    public var workerID: String
    /// Compute threads this worker announces (the process's ComputeThreads).
    public var threads: Int
    public var heartbeatInterval: Double = 1
    /// Heartbeats from the coordinator that may be missed before reconnecting.
    public var liveness: Int = 5
    /// Reconnect backoff, doubling from the first to the second.
    public var backoff: (first: Double, limit: Double) = (1, 32)
    /// CURVE with this worker's enrolled key, or plaintext (`--insecure`, and inproc).
    public var security: SocketSecurity = .plaintext

    public init(endpoint: String, workerID: String, threads: Int) {
        self.endpoint = endpoint
        self.workerID = workerID
        self.threads = threads
    }
}

/// A worker: a DEALER socket to the coordinator, pulling one shard at a time. It heartbeats
/// every second from the thread that computes (so a stuck computation goes silent and its
/// shard is requeued), and reconnects with backoff when the coordinator falls silent.
public final class WorkerService: @unchecked Sendable {
    /// How a denoising shard is computed: normally the model's denoiser (`ShardRunner`); `tick`
    /// must be called often (the worker heartbeats from it).
    public typealias Computation = (_ work: ShardWork, _ model: String, _ onStep: @escaping (Int) -> Void,
                                    _ tick: @escaping () -> Void) throws -> (latent: Tensor, state: Sampler.State)

    public let options: WorkerOptions
    private let context: ZMQContext
    private let library: ModelLibrary
    private var runners: [String: ShardRunner] = [:]
    private var computation: Computation?
    private var logger: Logger
    private let clock = ContinuousClock()
    private let stopLock = NSLock()
    private var stopRequested = false

    /// Seconds a coordinator may keep refusing this worker's handshakes before it stops.
    static let refusalGrace = 2.0

    /// A worker offering `library`'s models; `computation` replaces the denoiser (the farm
    /// benchmark measures dispatch with the identity).
    public init(options: WorkerOptions, context: ZMQContext, library: ModelLibrary, computation: Computation? = nil) {
        self.options = options
        self.context = context
        self.library = library
        self.computation = computation
        logger = Logger(label: "reel.worker.\(options.workerID)")
    }

    func compute(_ task: ShardTask, model: String, weights: WeightPrecision, onStep: @escaping (Int) -> Void,
                 tick: @escaping () -> Void) throws -> ShardOutput {
        if let computation, case .denoise(let work) = task {
            let (latent, state) = try computation(work, model, onStep, tick)
            return ShardOutput(values: latent.scalars, state: state)
        }
        return try runner(for: model, weights: weights).run(task, onStep: onStep, tick: tick)
    }

    /// Asks `run` to return after the shard in hand; safe from any thread.
    public func stop() { stopLock.withLock { stopRequested = true } }
    private var shouldStop: Bool { stopLock.withLock { stopRequested } }

    /// Works until `stop()`, or throws `WorkerRefused` when the coordinator will not take this
    /// worker. Blocking: run it on its own thread.
    public func run() throws {
        var backoff = options.backoff.first
        while !shouldStop {
            let session = try Session(worker: self)
            if try session.serve() {
                backoff = options.backoff.first
            } else if !shouldStop {
                logger.warning("coordinator at \(options.endpoint) silent; reconnecting in \(Int(backoff)) s")
                sleepUnlessStopped(backoff)
                backoff = min(backoff * 2, options.backoff.limit)
            }
        }
    }

    private func sleepUnlessStopped(_ seconds: Double) {
        let deadline = clock.now + .milliseconds(Int(seconds * 1000))
        while !shouldStop && clock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
    }

    /// The runner of `model` at `weights`: kept while the library keeps that model, so that its
    /// cached embeddings go with it.
    func runner(for model: String, weights: WeightPrecision) throws -> ShardRunner {
        let loaded = try library.model(model, weights: weights)
        if let runner = runners[model], runner.model === loaded { return runner }
        // The library let go of any other precision of this model: so do its runners, which
        // would otherwise keep it loaded under another name.
        runners = runners.filter { $0.value.model.directory != loaded.directory }
        let runner = ShardRunner(model: loaded)
        runners[model] = runner
        return runner
    }

    /// One connection to the coordinator, from hello to silence or stop.
    final class Session {
        let worker: WorkerService
        let socket: ZMQSocket
        /// The socket's handshake outcomes: a coordinator that refuses this worker's key says
        /// nothing on the socket itself, so this is how the worker can tell its operator.
        let handshakes: ZMQSocket
        /// When the coordinator first refused this connection's handshake, and whether it refused
        /// the key (rather than the security mode); nil once a handshake succeeds.
        var refusal: (since: ContinuousClock.Instant, key: Bool)?
        var lastHeard: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
        var heardAnything = false
        var current: (job: String, region: UInt32, attempt: UInt64, steps: Int)?

        init(worker: WorkerService) throws {
            self.worker = worker
            socket = try ZMQSocket(worker.context, .dealer)
            // A send that cannot leave (no connection: the coordinator refuses this worker's
            // security mode, say) gives up within a poll's time instead of blocking the thread
            // that heeds SIGTERM. A connected socket queues at once, so this never bites then.
            try socket.setSendTimeout(milliseconds: Int32(worker.options.heartbeatInterval * 250))
            try socket.secure(worker.options.security)
            handshakes = try socket.monitor(worker.context, events: SocketEvent.handshakeEvents)
            try socket.connect(worker.options.endpoint)
            lastHeard = worker.clock.now
            lastSent = worker.clock.now
        }

        /// Returns true when it stopped on request or the coordinator said goodbye, false when
        /// the coordinator fell silent.
        func serve() throws -> Bool {
            let options = worker.options
            send(.hello, Reel_V1_WorkerHello.with {
                $0.protocolVersion = Envelope.protocolVersion
                $0.build = ReelVersion.build
                $0.workerID = options.workerID
                $0.hostname = ProcessInfo.processInfo.hostName
                $0.threads = UInt32(options.threads)
                $0.models = worker.library.names
                $0.parts = worker.library.parts.map(\.rawValue)
                $0.memoryBytes = ProcessInfo.processInfo.physicalMemory
                $0.previewProjections = worker.library.previewProjections().map { projection in
                    Reel_V1_PreviewProjection.with { $0.model = projection.model; $0.weights = projection.weights }
                }
                $0.cpuKernel = BLAS.coreName
                $0.modelWeights = worker.library.weightFiles().map { entry in
                    Reel_V1_ModelWeights.with {
                        $0.model = entry.model
                        $0.files = entry.files.map { file in
                            Reel_V1_WeightFileDigest.with { $0.path = file.path; $0.bytes = UInt64(file.bytes); $0.sha256 = file.sha256 }
                        }
                    }
                }
            })
            send(.ready, Reel_V1_Ready.with { $0.credits = 1 })
            let silence = options.heartbeatInterval * Double(options.liveness)
            let pollTimeout = options.heartbeatInterval / 4
            var turnBegan = worker.clock.now
            while !worker.shouldStop {
                let readable = try ZMQSocket.poll([socket, handshakes], milliseconds: Int(pollTimeout * 1000))
                if readable.contains(1) { noteHandshakes() }
                try stopIfRefused()
                if readable.contains(0) {
                    let frames = try socket.receive()
                    lastHeard = worker.clock.now
                    heardAnything = true
                    do {
                        if try !handle(Envelope(frames: frames)) { return true }
                    } catch let error as WireError {
                        worker.logger.warning("ignoring a malformed message from the coordinator: \(error)")
                    }
                }
                heartbeatIfDue()
                let now = worker.clock.now
                if (now - turnBegan).seconds > pollTimeout + options.heartbeatInterval * 2 {
                    // A turn that outlasted its poll this far: this process was stopped (SIGSTOP,
                    // a suspended VM) somewhere in it, in the poll or between, or it computed a
                    // shard. The coordinator's silence meanwhile is not news, and what it sent
                    // may not have reached the socket yet (libzmq's I/O thread was stopped too):
                    // its silence is judged from now.
                    lastHeard = now
                }
                turnBegan = now
                if (now - lastHeard).seconds > silence {
                    // A worker that was paused itself (SIGSTOP, a suspended VM) may find the
                    // coordinator's messages waiting: not silence. It reads them (an assignment
                    // is computed; a requeued one's result is dropped as late) and stays.
                    if try ZMQSocket.poll([socket], milliseconds: 0).isEmpty { return false }
                }
            }
            // Never heard from: there is nobody to say goodbye to, and a goodbye left queued
            // on a connection that never came up would hold the exit for the whole linger.
            guard heardAnything else { return true }
            send(.disconnect, Reel_V1_Disconnect.with { $0.reason = "worker stopping" })
            // The last result and the goodbye may still be queued; without lingering, closing
            // drops them and the coordinator waits out its liveness before requeueing.
            try? socket.setLinger(milliseconds: Int32(options.heartbeatInterval * 3000))
            return true
        }

        /// Notes the coordinator refusing this connection's handshake (and a later success).
        func noteHandshakes() {
            while let frames = try? handshakes.receive(dontWait: true) {
                guard let event = SocketEvent(frames: frames) else { continue }
                if event.isHandshakeSuccess {
                    refusal = nil
                } else if event.isHandshakeFailure, refusal == nil {
                    refusal = (worker.clock.now, event.isAuthenticationFailure)
                }
            }
        }

        /// Stops the worker, saying why, once the coordinator has refused its handshake for
        /// `refusalGrace` seconds with none succeeding: its key is not enrolled (or was
        /// revoked), or the two run different security modes (CURVE against `--insecure`).
        /// Nothing can get through then, so waiting on would only hide the mistake.
        func stopIfRefused() throws {
            guard !worker.shouldStop, let refusal, (worker.clock.now - refusal.since).seconds >= WorkerService.refusalGrace else { return }
            let endpoint = worker.options.endpoint
            if refusal.key {
                worker.logger.error("the coordinator at \(endpoint) refused this worker's key: it is not enrolled there, or was revoked (`reel keys enroll worker NAME.pub` on the coordinator's machine)")
                throw WorkerRefused(reason: "its key is not enrolled at \(endpoint), or was revoked")
            }
            var mode = "CURVE"
            if case .plaintext = worker.options.security { mode = "plaintext (--insecure)" }
            worker.logger.error("the coordinator at \(endpoint) refused this worker's \(mode) handshake: the two run different security modes")
            throw WorkerRefused(reason: "this worker speaks \(mode) and the coordinator at \(endpoint) does not; start both with keys, or both with --insecure")
        }

        /// Handles one message; false when the coordinator told this worker to go.
        func handle(_ envelope: Envelope) throws -> Bool {
            switch envelope.kind {
            case .assignment:
                compute(try envelope.decode(Reel_V1_ShardAssignment.self), envelope.payloads)
                // A draining worker asks for nothing more; it says goodbye next.
                if !worker.shouldStop { send(.ready, Reel_V1_Ready.with { $0.credits = 1 }) }
                // Nothing was read while computing; what the coordinator sent meanwhile is
                // queued and read next, so its silence is judged from now.
                lastHeard = worker.clock.now
            case .heartbeat:
                break
            case .disconnect:
                let goodbye = try envelope.decode(Reel_V1_Disconnect.self)
                // Refused (another protocol version): no reconnect can help, so stop and say why.
                if goodbye.refused { throw WorkerRefused(reason: goodbye.reason) }
                // The coordinator is stopping, or restarted and does not know us: reconnect.
                worker.logger.info("coordinator says: \(goodbye.reason)")
                // A result sent just before this goodbye was read may still be queued; closing
                // without lingering would lose it instead of letting the coordinator count it
                // (or drop it as late). Only results, readies and heartbeats can be queued here,
                // never a hello, so a lingering socket cannot register a second worker.
                try? socket.setLinger(milliseconds: Int32(worker.options.heartbeatInterval * 1000))
                return false
            default:
                throw WireError(.unexpectedMessage, "\(envelope.kind) is not a message a worker accepts")
            }
            return true
        }

        func compute(_ assignment: Reel_V1_ShardAssignment, _ payloads: [Data]) {
            let started = worker.clock.now
            current = (assignment.jobID, assignment.region, assignment.attempt, 0)
            defer { current = nil }
            var result = Reel_V1_ShardResult(answering: assignment)
            do {
                let task = try ShardTask(assignment: assignment, payloads: payloads)
                worker.logger.info("shard \(assignment.jobID)/\(assignment.region) (\(task.part.rawValue), steps \(assignment.stepBegin)..<\(assignment.stepEnd), attempt \(assignment.attempt)) started")
                CrashHook.at(.midShard, of: task.part.rawValue)
                guard let weights = WeightPrecision(rawValue: assignment.spec.weights) else {
                    throw ShardError("weights \(assignment.spec.weights.prefix(40).debugDescription) is not a precision this worker knows (\(WeightPrecision.names))")
                }
                let output = try worker.compute(task, model: assignment.spec.model, weights: weights, onStep: { step in
                    self.current?.steps = step + 1 - Int(assignment.stepBegin)
                    self.heartbeatIfDue()
                }, tick: { self.heartbeatIfDue() })
                guard output.count == result.shape.count else {
                    throw ShardError("the \(task.part.rawValue) computed \(output.count) values, not the \(result.shape.count ?? 0) assigned")
                }
                result.carriesState = output.state.previousPrediction != nil
                result.seconds = (worker.clock.now - started).seconds
                worker.logger.info("shard \(assignment.jobID)/\(assignment.region) (\(task.part.rawValue)) done in \(String(format: "%.2f", result.seconds)) s")
                send(.result, result, payloads: output.payloads)
            } catch {
                worker.logger.error("shard \(assignment.jobID)/\(assignment.region) failed: \(error)")
                result.error = "\(error)"
                send(.result, result, payloads: [Data(), Data()])
            }
        }

        func heartbeatIfDue() {
            guard (worker.clock.now - lastSent).seconds >= worker.options.heartbeatInterval else { return }
            send(.heartbeat, Reel_V1_Heartbeat.with {
                if let current {
                    $0.jobID = current.job
                    $0.region = current.region
                    $0.attempt = current.attempt
                    $0.stepsDone = UInt32(current.steps)
                }
            })
        }

        func send(_ kind: MessageKind, _ message: any SwiftProtobufMessage, payloads: [Data] = []) {
            do {
                try socket.send(Envelope(kind, message, payloads: payloads).frames)
                lastSent = worker.clock.now
            } catch {
                worker.logger.warning("cannot send \(kind): \(error)")
            }
        }
    }
}

/// The coordinator will not take this worker as it is: reconnecting cannot help.
public struct WorkerRefused: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { "the coordinator refused this worker: \(reason)" }
}
