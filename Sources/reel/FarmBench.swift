import ArgumentParser
import Coordinator
import Diffusion
import Families
import Foundation
import InProcessFarm
import Media
import Planning
import Wire
import Worker

/// The farm's scaling and the coordinator's own cost, measured in one run.
struct FarmBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "farm",
        abstract: "The same job on 1 and on 2 worker processes, and the coordinator's cost per shard.",
        discussion: """
            Rows: the job on 1 worker process and on 2 (each with one compute thread), \
            their speedup, bytes on the wire per shard, the coordinator's CPU per shard, \
            and each kind of shard's payload bytes (a latent model such as Wan has text, \
            denoise and decode shards); then, for a pixel model, a dispatch run of many \
            tiny shards through workers whose denoiser is the identity, so the time is \
            the coordinator's and the protocol's own. The seam figure is the mean \
            absolute frame-to-frame change at chunk boundaries divided by the same \
            within chunks, on the 2-worker output.

            With --simulated-workers N, instead: one coordinator and N simulated workers \
            in this process (real sockets on loopback, real heartbeats, the identity \
            denoiser), the way a farm of many machines is planned without having them. \
            Rows: the coordinator thread's CPU share while the workers only heartbeat; \
            then a job of --dispatch-shards tiny shards answered at once, which saturates \
            the coordinator: shards/s and its CPU share; then a job whose shards each take \
            --shard-seconds, as real shards do, and the assignment latency each worker sees \
            from its result to its next shard.
            """)

    @Option(help: "Model of the scaling job: a package name or a model folder (Wan too).")
    var model: String = ModelPackage.defaultModel

    @Option(help: "Frames of the scaling job (default: 100 for a pixel model, 8 chunks of reel-shapes' 16-frame window; 117 for Wan, 2 chunks of its 21 latent frames).")
    var frames: Int?

    @Option(help: "Size of the scaling job, WIDTHxHEIGHT (default: a pixel model's canvas; 256x256 for Wan).")
    var size: String?

    @Option(help: "Steps of the scaling job.")
    var steps: Int = 8

    @Option(help: "Shards in the dispatch run.")
    var dispatchShards: Int = 10_000

    @Option(help: "Measure the coordinator with this many simulated workers instead (see above).")
    var simulatedWorkers: Int?

    @Option(help: "With --simulated-workers: seconds of idle heartbeating measured.")
    var idleSeconds: Double = 5

    @Option(help: "With --simulated-workers: seconds each shard of the latency run takes (±50 %, at random).")
    var shardSeconds: Double = 1

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    struct Report: Encodable {
        var model: String
        var frames, chunks, shards: Int
        var oneWorkerSeconds, twoWorkerSeconds, speedup, bytesPerShard, seamFigure: Double
        /// Whether one worker and two made the same video stream, byte for byte (they should:
        /// fusion order and noise do not depend on who ran what); the files' manifests differ.
        var sameFile: Bool
        /// The coordinator thread's CPU per shard of the job, in the 2-worker run.
        var jobCoordinatorMillisecondsPerShard: Double
        /// Per kind of shard, in the 2-worker run.
        var traffic: [String: ShardTraffic]
        /// The dispatch run: a pixel model's only.
        var dispatchShards: Int?
        var dispatchSeconds: Double?
        var dispatchShardsPerSecond: Double?
        var coordinatorMillisecondsPerShard: Double?
    }

    func run() throws {
        LogSetup.start(level: .warning)
        let planned = try PlannedModel(directory: ModelFamilies.locate(model))
        if let simulatedWorkers {
            guard case .pixel(let config, _) = planned else {
                throw UserError("--simulated-workers measures the coordinator with a pixel model's tiny shards; leave --model out")
            }
            guard (1...20_000).contains(simulatedWorkers), idleSeconds > 0, dispatchShards >= 5, (0.01...60).contains(shardSeconds) else {
                throw UserError("--simulated-workers takes 1 to 20000, --idle-seconds above 0, --dispatch-shards at least 5, --shard-seconds 0.01 to 60")
            }
            // The latency run: twice as many regions as workers, so a shard always waits for
            // each worker that asks (a region's next step is released only when its step ends),
            // and ten rounds of shards for every worker.
            let report = try Self.simulation(workers: simulatedWorkers, capacityJob: Self.dispatchJob(model: model, config: config, shards: dispatchShards),
                                             latencyJob: Self.dispatchJob(model: model, config: config, shards: 10 * simulatedWorkers),
                                             shardSeconds: shardSeconds, idleSeconds: idleSeconds)
            return print(json ? Bench.json(report) : Self.table(report))
        }
        var latent = false
        if case .latent = planned { latent = true }
        let job = try Reel_V1_JobSpec.with {
            $0.prompt = latent ? "a red fox runs through snow" : "a red circle moving right"; $0.model = model
            $0.frames = UInt32(try Render.positive(frames ?? (latent ? 117 : 100), "--frames"))
            if let (width, height) = try (size ?? (latent ? "256x256" : nil)).map(JobOptions.parseSize) {
                $0.width = UInt32(width); $0.height = UInt32(height)
            }
            $0.steps = UInt32(steps); $0.seed = 1; $0.outputScale = 1
        }
        let spec = try SpecResolver(model: planned).resolve(job).spec
        let stages = planned.stages(for: spec)
        let run = stages.map { JobRun(spec: spec, stages: $0) } ?? JobRun(spec: spec, model: planned.shape) { _ in [] }
        // Chunk boundaries in video frames, for the seam figure.
        let chunks = stages.map { stages in run.plan.chunks.map { stages.parts.videoFrames($0) } } ?? run.plan.chunks

        let one = try Self.timeJob(job, workerProcesses: 1)
        let two = try Self.timeJob(job, workerProcesses: 2)
        let seam = Self.seamFigure(two.video, chunks: chunks)
        var report = Report(
            model: model, frames: spec.frames, chunks: run.plan.chunks.count, shards: run.shardsTotal,
            oneWorkerSeconds: one.seconds, twoWorkerSeconds: two.seconds, speedup: one.seconds / two.seconds,
            bytesPerShard: two.bytesPerShard, seamFigure: seam, sameFile: one.file == two.file,
            jobCoordinatorMillisecondsPerShard: two.coordinatorSecondsPerShard * 1000, traffic: two.traffic)
        if case .pixel(let config, _) = planned {
            let dispatch = try Self.dispatchRun(Self.dispatchJob(model: model, config: config, shards: dispatchShards))
            report.dispatchShards = dispatch.shards
            report.dispatchSeconds = dispatch.seconds
            report.dispatchShardsPerSecond = Double(dispatch.shards) / dispatch.seconds
            report.coordinatorMillisecondsPerShard = dispatch.coordinatorCPU / Double(dispatch.shards) * 1000
        }
        print(json ? Bench.json(report) : Self.table(report))
    }

    /// A job of `shards` tiny shards, every one alike: one-frame windows of one patch, 5 steps,
    /// no overlap and no layout pass, so each region runs its steps on its own.
    static func dispatchJob(model: String, config: ModelConfig, shards: Int) -> Reel_V1_JobSpec {
        Reel_V1_JobSpec.with {
            $0.prompt = "a red circle"; $0.model = model; $0.window = 1; $0.overlap = 0; $0.width = UInt32(config.patch)
            $0.height = UInt32(config.patch); $0.steps = 5; $0.frames = UInt32(max(1, shards / 5)); $0.outputScale = 1
            $0.layoutStrength = 1
        }
    }

    struct SimulationReport: Encodable {
        var workers: Int
        var idleSeconds, idleCoordinatorShare: Double
        /// The saturating run: shards answered at once.
        var dispatchShards: Int
        var dispatchSeconds, shardsPerSecond, dispatchCoordinatorShare: Double
        /// The latency run: each shard takes `shardSeconds`.
        var latencyShards: Int
        var shardSeconds, latencyRunShardsPerSecond, latencyRunCoordinatorShare: Double
        /// The coordinator's: from when a shard could go (released, and its worker asking) to
        /// its sending.
        var assignmentLatencyP50Milliseconds, assignmentLatencyP99Milliseconds: Double
        /// What a worker sees, from its result to its next shard: the coordinator's latency,
        /// the loopback both ways, and any wait for a region's next step to be released.
        var workerTurnaroundP50Milliseconds: Double
    }

    /// A coordinator in this process with `workers` simulated workers: its thread's CPU share
    /// over `idleSeconds` of heartbeats alone, over `capacityJob` answered at once, and over
    /// `latencyJob` whose shards take `shardSeconds`, with the latencies the workers saw.
    static func simulation(workers count: Int, capacityJob: Reel_V1_JobSpec, latencyJob: Reel_V1_JobSpec,
                           shardSeconds: Double, idleSeconds: Double) throws -> SimulationReport {
        let work = WorkDirectory(prefix: "reel-bench")
        defer { work.remove() }
        let farm = try LocalFarm(workerCount: 0, library: ModelLibrary(names: []), dataDirectory: work.path, bind: "tcp://127.0.0.1:*")
        defer { farm.stop() }
        let fleet = try SimulatedWorkers(count: count, endpoint: farm.endpoint, model: capacityJob.model)
        defer { fleet.stop() }
        let deadline = Date().addingTimeInterval(120)
        while farm.coordinator.snapshot.workers.count < count {
            guard Date() < deadline else { throw UserError("\(farm.coordinator.snapshot.workers.count) of \(count) simulated workers joined within 120 s") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        // The idle row is a window of wall time: heartbeats flow both ways meanwhile.
        let idleStart = farm.coordinator.statistics
        Thread.sleep(forTimeInterval: idleSeconds)
        let idleCPU = farm.coordinator.statistics.cpuSeconds - idleStart.cpuSeconds
        let client = try FarmClient(context: farm.context, endpoint: farm.endpoint, timeoutSeconds: 60)

        let capacity = try measure(capacityJob, on: farm, client: client)
        let capacityShards = capacity.after.resultsAccepted - capacity.before.resultsAccepted

        fleet.answer(after: shardSeconds)
        // Latency in the steady state: after the first round, whose shards all go out in one
        // burst as the job starts, every worker asking at once.
        var steady: (latency: LatencyHistogram, at: ContinuousClock.Instant)?
        let started = ContinuousClock.now
        let paced = try measure(latencyJob, on: farm, client: client) { _ in
            if steady == nil, (ContinuousClock.now - started).seconds >= 2 * shardSeconds {
                steady = (farm.coordinator.statistics.assignmentLatency, ContinuousClock.now)
                fleet.startMeasuring()
            }
        }
        let turnarounds = fleet.measuredLatencies()
        let pacedShards = paced.after.resultsAccepted - paced.before.resultsAccepted
        let latency = paced.after.assignmentLatency.since(steady?.latency ?? paced.before.assignmentLatency)
        return SimulationReport(
            workers: count, idleSeconds: idleSeconds, idleCoordinatorShare: idleCPU / idleSeconds,
            dispatchShards: capacityShards, dispatchSeconds: capacity.seconds, shardsPerSecond: Double(capacityShards) / capacity.seconds,
            dispatchCoordinatorShare: (capacity.after.cpuSeconds - capacity.before.cpuSeconds) / capacity.seconds,
            latencyShards: pacedShards, shardSeconds: shardSeconds, latencyRunShardsPerSecond: Double(pacedShards) / paced.seconds,
            latencyRunCoordinatorShare: (paced.after.cpuSeconds - paced.before.cpuSeconds) / paced.seconds,
            assignmentLatencyP50Milliseconds: latency.percentile(0.5) * 1000, assignmentLatencyP99Milliseconds: latency.percentile(0.99) * 1000,
            workerTurnaroundP50Milliseconds: turnarounds.isEmpty ? 0 : turnarounds[turnarounds.count / 2] * 1000)
    }

    // MARK: runs

    /// The job on a coordinator in this process and `workerProcesses` `reel worker` processes
    /// with one compute thread each, from submission to the finished video: its MP4 bytes and
    /// its frames (the file goes with the run's data directory).
    static func timeJob(_ job: Reel_V1_JobSpec, workerProcesses: Int) throws
        -> (seconds: Double, bytesPerShard: Double, coordinatorSecondsPerShard: Double, traffic: [String: ShardTraffic], file: VideoDigest, video: RGBVideo) {
        let work = WorkDirectory(prefix: "reel-bench")
        defer { work.remove() }
        let directory = work.path
        let farm = try LocalFarm(workerCount: 0, library: ModelLibrary(names: []), dataDirectory: directory, bind: "tcp://127.0.0.1:*")
        defer { farm.stop() }
        var processes: [Process] = []
        defer {
            for process in processes {
                process.terminate()
                process.waitUntilExit()
                work.release(process)
            }
        }
        for index in 0..<workerProcesses {  // those started end with the run even if one fails to start
            let process = try launchWorker(endpoint: farm.endpoint, id: "bench-\(index + 1)", model: job.model)
            work.adopt(process)
            processes.append(process)
        }
        let client = try FarmClient(context: farm.context, endpoint: farm.endpoint)
        let deadline = Date().addingTimeInterval(30)
        while try client.workers().count < workerProcesses {
            guard Date() < deadline else { throw UserError("worker processes did not join within 30 s") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let (id, seconds, before, after) = try measure(job, on: farm, client: client)
        let shards = max(1, after.resultsAccepted - before.resultsAccepted)
        let bytes = (after.bytesSent - before.bytesSent) + (after.bytesReceived - before.bytesReceived)
        let path = "\(directory)/\(id).mp4"
        let file = try client.fetch(id).video
        try file.write(to: URL(fileURLWithPath: path))
        // The stream and its frames: the files' manifests differ in the time they were written.
        let digest = try VideoDigest.of(file: path)
        let traffic = after.traffic.mapValues { $0 }.reduce(into: [String: ShardTraffic]()) { $0[$1.key] = $1.value.since(before.traffic[$1.key]) }
        return (seconds, Double(bytes) / Double(shards), (after.cpuSeconds - before.cpuSeconds) / Double(shards), traffic, digest,
                try VideoDecoder.read(path).video)
    }

    static func launchWorker(endpoint: String, id: String, model: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Reel.executablePath)
        process.arguments = ["worker", "--connect", endpoint, "--threads", "1", "--id", id, "--model", model, "--insecure", "--log-level", "warning"]
        try process.run()
        return process
    }

    /// Many tiny shards through two in-process workers whose denoiser is the identity.
    static func dispatchRun(_ job: Reel_V1_JobSpec) throws -> (shards: Int, seconds: Double, coordinatorCPU: Double) {
        let work = WorkDirectory(prefix: "reel-bench")
        defer { work.remove() }
        let directory = work.path
        let identity: WorkerService.Computation = { work, _, _, _ in (work.latent, work.state) }
        let farm = try LocalFarm(workerCount: 2, library: ModelLibrary(names: [job.model]), dataDirectory: directory, computation: identity)
        defer { farm.stop() }
        let client = try FarmClient(context: farm.context, endpoint: farm.endpoint, timeoutSeconds: 60)
        while try client.workers().count < 2 { Thread.sleep(forTimeInterval: 0.01) }
        let (_, seconds, before, after) = try measure(job, on: farm, client: client)
        return (after.resultsAccepted - before.resultsAccepted, seconds, after.cpuSeconds - before.cpuSeconds)
    }

    /// Submits `job`, waits for it, and returns its id, the seconds from submission to the
    /// finished video, and the coordinator's counters before and after.
    static func measure(_ job: Reel_V1_JobSpec, on farm: LocalFarm, client: FarmClient,
                        update: (Reel_V1_JobStatus) -> Void = { _ in }) throws
        -> (id: String, seconds: Double, before: CoordinatorStatistics, after: CoordinatorStatistics) {
        let before = farm.coordinator.statistics
        let clock = ContinuousClock(), start = clock.now
        let id = try client.submit(job)
        let status = try client.wait(for: id, interval: 0.01, update: update)
        let seconds = (clock.now - start).seconds
        guard status.state == .done else { throw UserError("bench job \(status.state.word): \(status.error)") }
        return (id, seconds, before, farm.coordinator.statistics)
    }

    // MARK: seams

    /// Mean absolute change between consecutive frames where a chunk's overlap begins or ends,
    /// divided by the same over every other pair of consecutive frames. 1 means the chunk
    /// boundaries are invisible in motion statistics.
    static func seamFigure(_ video: RGBVideo, chunks: [Range<Int>]) -> Double {
        guard chunks.count > 1, video.frameCount > 2 else { return 1 }
        var boundaries = Set<Int>()
        for (a, b) in zip(chunks, chunks.dropFirst()) {
            boundaries.insert(b.lowerBound)   // the pair (lowerBound - 1, lowerBound)
            boundaries.insert(a.upperBound)
        }
        var (seam, seamCount, inside, insideCount) = (0.0, 0, 0.0, 0)
        for frame in 1..<video.frameCount {
            let change = zip(video.frame(frame), video.frame(frame - 1)).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(video.frameBytes)
            if boundaries.contains(frame) { seam += change; seamCount += 1 } else { inside += change; insideCount += 1 }
        }
        return (seam / Double(max(seamCount, 1))) / max(inside / Double(max(insideCount, 1)), 1e-9)
    }

    // MARK: output

    static func table(_ r: SimulationReport) -> String {
        let percent = { (share: Double) in String(format: "%.1f %% of a core", share * 100) }
        return """
        coordinator with \(r.workers) simulated workers (real sockets on loopback, the identity denoiser)
        idle heartbeating            coordinator thread \(percent(r.idleCoordinatorShare)) over \(String(format: "%.0f", r.idleSeconds)) s
        saturating dispatch          \(r.dispatchShards) shards answered at once in \(String(format: "%.2f", r.dispatchSeconds)) s: \(Int(r.shardsPerSecond)) shards/s, coordinator thread \(percent(r.dispatchCoordinatorShare))
        shards of \(String(format: "%g", r.shardSeconds)) s each          \(r.latencyShards) shards: \(Int(r.latencyRunShardsPerSecond)) shards/s, coordinator thread \(percent(r.latencyRunCoordinatorShare))
        assignment latency           p50 \(String(format: "%.3f", r.assignmentLatencyP50Milliseconds)) ms, p99 \(String(format: "%.3f", r.assignmentLatencyP99Milliseconds)) ms in that run after its first round (a shard able to go, to sent)
        worker turnaround            p50 \(String(format: "%.2f", r.workerTurnaroundP50Milliseconds)) ms (a worker's result to its next shard, as it sees it)
        """
    }

    static func table(_ r: Report) -> String {
        var lines = """
        farm benchmark: \(r.model), \(r.frames) frames in \(r.chunks) chunks, \(r.shards) shards; worker processes with 1 compute thread each
        row                          seconds   figure
        1 worker process             \(String(format: "%7.2f", r.oneWorkerSeconds))
        2 worker processes           \(String(format: "%7.2f", r.twoWorkerSeconds))   speedup \(String(format: "%.2f", r.speedup))x
        bytes on the wire per shard            \(Int(r.bytesPerShard))
        coordinator CPU per shard              \(String(format: "%.3f", r.jobCoordinatorMillisecondsPerShard)) ms
        seam figure                            \(String(format: "%.3f", r.seamFigure))
        same MP4 from 1 and 2 workers          \(r.sameFile ? "yes" : "NO: the two runs differ")
        """
        for (kind, traffic) in r.traffic.sorted(by: { $0.key < $1.key }) where traffic.accepted > 0 {
            lines += "\n\(kind.padding(toLength: 7, withPad: " ", startingAt: 0)) shards \(String(format: "%4d", traffic.accepted))        payload per shard: \(traffic.payloadBytesSent / max(traffic.assigned, 1)) bytes out, \(traffic.payloadBytesReceived / traffic.accepted) back"
        }
        if let shards = r.dispatchShards, let seconds = r.dispatchSeconds, let rate = r.dispatchShardsPerSecond, let cpu = r.coordinatorMillisecondsPerShard {
            lines += "\ndispatch, identity denoiser  \(String(format: "%7.2f", seconds))   \(shards) shards, \(Int(rate)) shards/s, coordinator \(String(format: "%.3f", cpu)) ms CPU/shard"
        }
        return lines
    }
}
