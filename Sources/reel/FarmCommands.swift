import ArgumentParser
import Coordinator
import Dashboard
import Diffusion
import Families
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Wan
import Wire
import Worker

/// Connection options shared by every command that talks to a coordinator.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "The coordinator's endpoint, HOST:PORT or tcp://HOST:PORT (default: $REEL_COORDINATOR, else the config file's (`reel login`), else tcp://127.0.0.1:5555).")
    var coordinator: String?

    @Option(help: "Seconds to wait for the coordinator's answer.")
    var timeout: Double = 10

    @OptionGroup var keys: PeerKeyOptions

    func client() throws -> FarmClient {
        try FarmClient(context: try ZMQContext(), endpoint: try Self.endpoint(coordinator), timeoutSeconds: timeout,
                       security: try keys.security(as: "client"))
    }

    /// Used when no flag, variable or config file names a coordinator.
    static let defaultEndpoint = "tcp://127.0.0.1:5555"

    /// The endpoint `given` by a flag, else $REEL_COORDINATOR, else the config file's, else the
    /// default; `HOST:PORT` as the TCP endpoint it means (ZeroMQ's own error for a missing
    /// transport is "Invalid argument").
    static func endpoint(_ given: String?) throws -> String {
        let chosen = try given ?? ProcessInfo.processInfo.environment["REEL_COORDINATOR"] ?? ClientConfig.load().coordinator ?? defaultEndpoint
        return chosen.contains("://") ? chosen : "tcp://" + chosen
    }
}

/// The keys a worker or client connects with: its own pair and the coordinator's public key.
struct PeerKeyOptions: ParsableArguments {
    @Option(help: "This side's key pair, a .key file from `reel keys new` (default: $REEL_KEY).")
    var key: String?

    @Option(help: "The coordinator's public key: its coordinator.pub, or the key itself (default: $REEL_COORDINATOR_KEY).")
    var coordinatorKey: String?

    @Flag(help: "Talk plaintext, with no keys: only on a network you trust entirely.")
    var insecure = false

    /// CURVE with the given keys, or plaintext when --insecure says so. Each key comes from its
    /// flag, else its variable, else the config file (`reel login`).
    func security(as role: String) throws -> SocketSecurity {
        try Self.security(key: key, coordinatorKey: coordinatorKey, insecure: insecure, as: role)
    }

    /// The same from values a command took under other names (`reel verify`'s --key is the
    /// signer's).
    static func security(key: String?, coordinatorKey: String?, insecure: Bool, as role: String) throws -> SocketSecurity {
        if insecure { return .plaintext }
        let environment = ProcessInfo.processInfo.environment
        let config = try ClientConfig.load()
        if key == nil, coordinatorKey == nil, environment["REEL_KEY"] == nil, config.insecure { return .plaintext }
        guard let key = key ?? environment["REEL_KEY"] ?? config.key,
              let coordinatorKey = coordinatorKey ?? environment["REEL_COORDINATOR_KEY"] ?? config.coordinatorKey else {
            throw UserError("a \(role) needs --key (its .key file; make one with `reel keys new NAME` and enroll the .pub on the coordinator) and --coordinator-key (the coordinator's coordinator.pub), or --insecure on a trusted network")
        }
        return .curveClient(try KeyFile.readPair(key), serverPublicKey: try KeyFile.publicKey(coordinatorKey))
    }
}

/// Log lines go to stderr, as text or as JSON; daemons log at info, `reel render` only warnings.
enum LogSetup {
    enum Format: String, CaseIterable, ExpressibleByArgument { case text, json }

    static func start(level: Logger.Level, format: Format = .text) {
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                return JSONLogHandler(label: label, logLevel: level)
            }
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Flags every daemon takes.
struct DaemonOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log lines as text, or as one JSON object each (time, level, logger, message, source, metadata) for log shippers.")
    var logFormat: LogSetup.Format = .text

    func start() { LogSetup.start(level: logLevel, format: logFormat) }
}

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator daemon: take jobs, plan them, dispatch shards to workers, fuse and encode.",
        discussion: """
            Jobs live in DATA-DIR/reel.sqlite and running jobs are checkpointed under \
            DATA-DIR/jobs, so a coordinator restarted on the same data directory resumes \
            every unfinished job. Finished videos are kept under DATA-DIR/jobs, until \
            --keep-finished says to forget them. \
            Connections are CURVE-encrypted: the coordinator's key pair is made in DATA- \
            DIR/keys on first start, and only keys enrolled with `reel keys enroll` may \
            connect. Stop with SIGINT or SIGTERM: it stops taking work and writes its \
            checkpoints first.
            """)

    @Option(help: "Endpoint to listen on (repeatable).")
    var bind: [String] = ["tcp://*:5555"]

    @Option(help: "Directory for the job store, checkpoints and finished videos.")
    var dataDir: String = "reel-data"

    @Option(help: "Largest message frame a peer may send, in MiB; a bigger one disconnects it.")
    var maxMessageMb: Int = 64

    @Option(help: "Seconds of silence after which a worker is presumed dead and its shard requeued.")
    var workerTimeout: Int = 5

    @Option(help: "Seconds a shard may go without finishing a step before it is given to another worker.")
    var shardTimeout: Double = 600

    @Option(help: "Seconds between checkpoints of a running job at most (what a crash can cost in recomputation).")
    var checkpointInterval: Double = 1

    @Option(help: "Unfinished jobs one client may have; further submissions are refused until some end.")
    var maxJobsPerClient: Int = 32

    @Option(help: "Shards one worker may hold at once, whatever it asks for (default: \(CoordinatorOptions.defaultMaxShardsPerWorker)); one that vanishes takes at most this many with it.")
    var maxShardsPerWorker: Int?

    @Option(help: "Forget finished jobs (done, failed or cancelled) this long after they end, their videos with them: a number with s, m, h or d, e.g. 30d (default: keep them all).")
    var keepFinished: String?

    @Flag(help: "Run plaintext, with no keys: anyone who can reach the endpoint may submit and work. Only on a network you trust entirely.")
    var insecure = false

    @Option(help: "Serve the dashboard and Prometheus /metrics on [HOST]:PORT: :8080 is loopback only; 0.0.0.0:8080 every address (put it behind a TLS proxy, docs/operations.md).")
    var http: String?

    @Option(help: "The dashboard's access token (default: DATA-DIR/keys/http-token, made on first use).")
    var httpToken: String?

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        daemon.start()
        let web = try http.map { try WebOptions(address: $0, token: httpToken, dataDirectory: dataDir) }
        var options = CoordinatorOptions(bind: bind, dataDirectory: dataDir)
        let logger = Logger(label: "reel.coordinator")
        if insecure {
            logger.warning("running plaintext (--insecure): anyone who can reach \(bind.joined(separator: ", ")) can submit jobs and join as a worker")
        } else {
            guard CurveKey.isAvailable else { throw UserError("this libzmq has no CURVE support (it needs libsodium); install Debian's libzmq5, or pass --insecure") }
            let keys = KeyDirectory(dataDirectory: dataDir)
            options.security = .curveServer(try keys.coordinatorKeys())
            let enrolled = keys.enrolled()
            logger.info("coordinator public key in \(keys.coordinatorPublicKeyPath); \(enrolled.filter { $0.role == .worker }.count) worker, \(enrolled.filter { $0.role == .client }.count) client and \(enrolled.filter { $0.role == .admin }.count) admin key(s) enrolled")
        }
        guard (1...4096).contains(maxMessageMb) else { throw UserError("--max-message-mb \(maxMessageMb) is out of range; use 1 to 4096") }
        options.maxMessageBytes = Int64(maxMessageMb) << 20
        if let maxShardsPerWorker { options.maxShardsPerWorker = try Render.positive(maxShardsPerWorker, "--max-shards-per-worker") }
        options.liveness = try Render.positive(workerTimeout, "--worker-timeout")
        guard shardTimeout > 0 else { throw UserError("--shard-timeout must be above 0 seconds") }
        options.shardTimeout = shardTimeout
        guard checkpointInterval >= 0 else { throw UserError("--checkpoint-interval must be 0 seconds or more") }
        options.checkpointInterval = checkpointInterval
        options.maxActiveJobsPerClient = try Render.positive(maxJobsPerClient, "--max-jobs-per-client")
        options.keepFinished = try keepFinished.map { try Self.seconds($0, "--keep-finished") }
        let registry = web.map { _ in WebOptions.bootstrapMetrics() }
        let server = try CoordinatorServer(options: options, context: try ZMQContext())
        var services: [any Service] = [LoopService(description: "reel-coordinator", loop: server.run, stop: server.stop)]
        if let web, let registry {
            let dashboard = Dashboard(coordinator: server, registry: registry, token: web.token)
            services.append(DashboardService(application: dashboard.application(host: web.host, port: web.port) { port in
                logger.info("dashboard on http://\(web.host == "0.0.0.0" ? "HOST" : web.host):\(port)/#token=… (token in \(web.tokenSource)); Prometheus metrics at /metrics with Authorization: Bearer TOKEN")
            }, address: http ?? ""))
        }
        // On SIGTERM the dashboard stops first, then the coordinator drains.
        try await Daemon.run(services, logger: logger)
    }

    /// "90s", "45m", "12h", "30d" (or plain seconds) in seconds.
    static func seconds(_ text: String, _ flag: String) throws -> Double {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        let unit = text.last.flatMap { units[$0] }
        guard let number = Double(unit == nil ? text : String(text.dropLast())), number.isFinite, number > 0 else {
            throw UserError("\(flag) \(text.debugDescription): use a number above 0 with s, m, h or d, e.g. 30d")
        }
        return number * (unit ?? 1)
    }
}

/// The dashboard as one of the coordinator's services. A coordinator that cannot serve the
/// dashboard it was asked for (a busy port, say) stops rather than run without it.
struct DashboardService: Service {
    let application: any Service
    let address: String

    func run() async throws {
        do {
            try await application.run()
        } catch {
            throw UserError("--http \(address): cannot serve the dashboard: \(error)")
        }
    }
}

/// Where the dashboard listens and the token it asks for.
struct WebOptions {
    let host: String
    let port: Int
    let token: String
    let tokenSource: String

    init(address: String, token: String?, dataDirectory: String) throws {
        let parts = address.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = Int(parts[1]), (0...65535).contains(port) else {
            throw UserError("--http \(address): use [HOST]:PORT, e.g. :8080 or 127.0.0.1:8080")
        }
        // Loopback unless an address is named: the dashboard speaks plain HTTP, so reaching it
        // from elsewhere should be a decision (behind a TLS proxy), not a default.
        host = parts[0].isEmpty ? "127.0.0.1" : String(parts[0])
        self.port = port
        if let token {
            guard token.utf8.count >= Dashboard.minimumTokenLength else { throw UserError("--http-token: use at least \(Dashboard.minimumTokenLength) characters") }
            self.token = token
            tokenSource = "--http-token"
        } else {
            let path = "\(dataDirectory)/keys/http-token"
            tokenSource = path
            if let stored = FileManager.default.contents(atPath: path) {
                self.token = String(decoding: stored, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard self.token.utf8.count >= Dashboard.minimumTokenLength else {
                    throw UserError("\(path) holds a token of \(self.token.utf8.count) characters; use at least \(Dashboard.minimumTokenLength) (or delete the file and one is made)")
                }
            } else {
                let made = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
                try FileManager.default.createDirectory(atPath: "\(dataDirectory)/keys", withIntermediateDirectories: true)
                guard FileManager.default.createFile(atPath: path, contents: Data(made.utf8), attributes: [.posixPermissions: 0o600]) else {
                    throw UserError("cannot write \(path)")
                }
                self.token = made
            }
        }
    }

    /// Routes swift-metrics into a Prometheus registry, before the coordinator makes its series.
    static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusHelpFactory(registry: registry))
        return registry
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker: connect to a coordinator and compute the shards it hands out.",
        discussion: "Stop with SIGINT or SIGTERM; the shard in hand is finished first.")

    @Option(help: "The coordinator's endpoint, HOST:PORT or tcp://HOST:PORT (default: $REEL_COORDINATOR, else the config file's (`reel login`), else tcp://127.0.0.1:5555).")
    var connect: String?

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Option(help: "Model this worker offers (repeatable; default: every package it finds).")
    var model: [String] = []

    @Option(help: ArgumentHelp("Parts of latent models (Wan) this worker holds, comma-separated: text (the text encoder), dit (the denoiser), vae (default: those whose weights fit in 85 % of this machine's memory, the denoiser first, then the VAE, then the text encoder). The coordinator sends each kind of shard only to workers holding its part; pixel models (reel-shapes) run whole.", valueName: "parts"))
    var parts: String?

    @Option(help: "Name shown in `reel workers` (default: host name and process id).")
    var id: String?

    /// `text,dit,vae` as parts, each named once.
    static func parts(_ list: String) throws -> [ModelPart] {
        let names = list.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var parts: [ModelPart] = []
        for name in names {
            guard let part = ModelPart(rawValue: name) else {
                throw UserError("--parts \(list): \(name.isEmpty ? "an empty name" : "'\(name)'") is not a part; use text, dit and vae, comma-separated")
            }
            if !parts.contains(part) { parts.append(part) }
        }
        return parts
    }

    @OptionGroup var keys: PeerKeyOptions
    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        daemon.start()
        let security = try keys.security(as: "worker")
        if case .plaintext = security { Logger(label: "reel.worker").warning("running plaintext (--insecure): shards and results cross the network unencrypted") }
        if let threads { ComputeThreads.set(try Render.positive(threads, "--threads")) }
        // Every model is loaded now, so a broken package fails here, not mid-shard. One given
        // by --model is offered by its package name and by its directory: jobs name it either way.
        let opened = try model.map { try ModelFamilies.open(ModelFamilies.locate($0)) }
        let latent = opened.filter { $0.latentParts != nil }
        let memory = ProcessInfo.processInfo.physicalMemory
        let held = try parts.map(Self.parts(_:)) ?? ModelPart.fitting(latent, memory: memory)
        if parts == nil, !latent.isEmpty, held.count < ModelPart.allCases.count {
            let left = ModelPart.allCases.filter { !held.contains($0) }.map(\.rawValue).joined(separator: ", ")
            Logger(label: "reel.worker").warning("holding \(held.isEmpty ? "no part" : held.map(\.rawValue).joined(separator: ", ")) of \(latent.map(\.name).joined(separator: ", ")): the weights of \(left) do not fit beside them in 85 % of \(memory >> 30) GiB; choose with --parts")
        }
        let library = model.isEmpty ? ModelLibrary(parts: held) : ModelLibrary(names: [], preloaded: opened, parts: held)
        guard !library.names.isEmpty else { throw UserError("no model packages found; pass --model or set REEL_MODELS") }
        for name in library.names { try library.model(name).prepare(held) }
        let name = id ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        var options = WorkerOptions(endpoint: try ConnectionOptions.endpoint(connect), workerID: name, threads: ComputeThreads.count)
        options.security = security
        let context = try ZMQContext()
        let worker = WorkerService(options: options, context: context, library: library)
        try await Daemon.run([LoopService(description: "reel-worker", loop: worker.run, stop: worker.stop)],
                             logger: Logger(label: "reel.worker"))
        // The worker's socket is closed once its loop returns; terminating the context waits
        // for the goodbye it left lingering to be sent, rather than exiting over it.
        context.terminate()
    }
}

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a render job to a coordinator and print its id.",
        discussion: "With --wait, shows progress and writes the video when it is done.")

    @OptionGroup var job: JobOptions
    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Higher runs first.")
    var priority: Int = 0

    @Flag(help: "Wait for the job, showing progress, and write the video.")
    var wait = false

    @Option(name: [.short, .customLong("output")], help: "Where --wait writes the MP4 (default: JOB.mp4).")
    var output: String?

    func run() throws {
        let (request, fileOutput) = try job.resolvedRequest(priority: priority)
        let output = output ?? fileOutput
        if let output { try OutputPath.check(output, extension: "mp4", flag: "--output") }
        let client = try connection.client()
        let input = try job.loadInput(fps: request.fps > 0 ? Int(request.fps) : 8)
        let id = try client.submit(request, input: input?.bytes ?? Data())
        print(id)
        guard wait else { return }
        try Watch.follow(id, client: client, writeTo: output ?? "\(id).mp4")
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show jobs: state, progress, chunks and tiles, time.")

    @Argument(help: "A job id (default: every job).")
    var job: String?

    @Flag(help: "Print each job's whole status as one line of JSON (the wire's JobStatus, field names in lowerCamelCase), for scripts.")
    var json = false

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let jobs = try connection.client().status(job ?? "")
        if json {
            for status in jobs { print(try status.jsonString()) }
            return
        }
        guard !jobs.isEmpty else { return print("no jobs") }
        let rows = jobs.map { status in
            [status.jobID, status.state.word, Self.steps(status),
             "\(status.chunks)x\(status.tiles)", String(format: "%.1fs", status.secondsElapsed),
             status.state == .running && status.stepsDone > 0 ? String(format: "%.0fs", status.secondsRemaining) : "-",  // no rate before a step
             status.spec.prompt]
        }
        print(TextTable.render([["JOB", "STATE", "STEPS", "REGIONS", "ELAPSED", "ETA", "PROMPT"]] + rows))
        // On stderr, so the table on stdout stays one row a job for scripts.
        for status in jobs where !status.waiting.isEmpty {
            FileHandle.standardError.write(Data("\(status.jobID) waits: \(status.waiting)\n".utf8))
        }
    }

    /// The step every chunk of the job has reached, of the job's own steps: a 30-step job of
    /// eight chunks reads 12/30, not a sum over its chunks. A job whose regions the
    /// coordinator does not list (one waiting for its model) shows its summed steps.
    static func steps(_ status: Reel_V1_JobStatus) -> String {
        guard let slowest = status.videoRegionSteps.min(), status.spec.steps > 0 else { return "\(status.stepsDone)/\(status.stepsTotal)" }
        return "\(status.state == .done ? Int(status.spec.steps) : slowest)/\(status.spec.steps)"
    }
}

/// One job on one coordinator: what `watch` and `cancel` act on.
struct JobTarget: ParsableArguments {
    @Argument(help: "The job id.")
    var job: String

    @OptionGroup var connection: ConnectionOptions
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Follow a job's progress until it ends.")

    @OptionGroup var target: JobTarget

    @Flag(help: "Print the job's status as one line of JSON each time it changes (as `reel status --json`), instead of a progress line.")
    var json = false

    func run() throws {
        try Self.follow(target.job, client: target.connection.client(), writeTo: nil, json: json)
    }

    /// What a client following a job says while the coordinator does not answer: a restarting
    /// coordinator keeps its jobs, so it asks again until it is back.
    static func unanswered(_ error: FarmClientError) {
        FileHandle.standardError.write(Data("\nreel: \(error.description); asking again\n".utf8))
    }

    static func follow(_ id: String, client: FarmClient, writeTo output: String?, json: Bool = false) throws {
        let display = ProgressDisplay(label: id)
        var last: Reel_V1_JobStatus?
        let status = try client.wait(for: id, interval: 0.5, unanswered: unanswered) { status in
            guard json else { return display.update(status) }
            var unchanged = status
            unchanged.secondsElapsed = last?.secondsElapsed ?? 0
            unchanged.secondsRemaining = last?.secondsRemaining ?? 0
            if let last, unchanged == last { return }
            last = status
            if let line = try? status.jsonString() { print(line) }
        }
        guard status.state == .done else {
            throw UserError("job \(id) \(status.state.word)\(status.error.isEmpty ? "" : ": \(status.error)")")
        }
        if json { return }
        print("job \(id) done in \(String(format: "%.1f", status.secondsElapsed)) s")
        if let output { try Fetch.save(id, client: client, to: output) }
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a job; its shards in flight are dropped.")

    @OptionGroup var target: JobTarget

    func run() throws {
        let status = try target.connection.client().cancel(target.job)
        print("job \(target.job) \(status.state.word)")
    }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pause a running job: no new shard is handed out; those in flight finish. `reel resume` continues it.")

    @OptionGroup var target: JobTarget

    func run() throws {
        let status = try target.connection.client().control(target.job, .pause)
        print("job \(target.job) \(status.state.word)")
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Resume a paused job.")

    @OptionGroup var target: JobTarget

    func run() throws {
        let status = try target.connection.client().control(target.job, .resume)
        print("job \(target.job) \(status.state.word)")
    }
}

struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a failed or cancelled job again, as a new job; prints the new job's id.",
        discussion: "The new job has the old one's spec and starts from its first step. A job that re-rendered an input video cannot be retried (the coordinator does not keep the input once a job ends): submit it again with --input.")

    @OptionGroup var target: JobTarget

    func run() throws {
        print(try target.connection.client().control(target.job, .retry).jobID)
    }
}

struct Workers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the workers a coordinator knows, what they do and when they last spoke.")

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Print each worker's whole status as one JSON object per line.")
    var json = false

    func run() throws {
        let workers = try connection.client().workers()
        if json { return try workers.forEach { print(try $0.jsonString()) } }
        guard !workers.isEmpty else { return print("no workers") }
        let rows = workers.map { worker in
            [worker.workerID, worker.hostname, "\(worker.threads)", worker.modelsShown.joined(separator: ","),
             worker.jobID.isEmpty ? "idle" : "\(worker.jobID)/\(worker.region) step +\(worker.stepsDone)",
             String(format: "%.1fs ago", worker.heartbeatAgeSeconds), "\(worker.shardsCompleted)",
             "\(worker.shardsHeld)/\(worker.shardCap)",
             worker.parts.isEmpty || worker.parts.count == ModelPart.allCases.count ? "all" : worker.parts.joined(separator: ","),
             worker.cpuKernel, worker.build.isEmpty ? "-" : worker.build]
        }
        print(TextTable.render([["WORKER", "HOST", "THREADS", "MODELS", "DOING", "HEARTBEAT", "SHARDS", "HELD/CAP", "PARTS", "KERNEL", "BUILD"]] + rows))
    }
}

struct Fetch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download a finished job's video.")

    @Argument(help: "The job id.")
    var job: String

    @Option(name: [.short, .customLong("output")], help: "Output MP4 path (default: JOB.mp4).")
    var output: String?

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let path = output ?? "\(job).mp4"
        try OutputPath.check(path, extension: "mp4", flag: "--output")
        try Self.save(job, client: connection.client(), to: path)
    }

    static func save(_ id: String, client: FarmClient, to path: String) throws {
        // Asked first, the coordinator then counts as one that answers: a restart during the
        // download is waited out, a wrong address is not.
        _ = try client.status(id)
        let (status, video) = try client.askingAgain(patience: 300, unanswered: Watch.unanswered) { try client.fetch(id) }
        guard status.state == .done, !video.isEmpty else {
            throw UserError("job \(id) is \(status.state.word), not done; `reel watch \(id)` follows it")
        }
        try OutputPath.write(video, to: path)
        print("wrote \(path) (\(video.count) bytes)")
    }
}
