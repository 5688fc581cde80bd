import Diffusion
import Foundation
import Planning
import Provenance
import Wire

/// A job the coordinator holds: its spec, where it stands, and its progress.
final class FarmJob {
    enum State: Equatable {
        /// `encoding`: every shard is done and the MP4 is being written, off the loop thread.
        case running, encoding, done, failed(String), cancelled

        /// The name the job store keeps; an encoding job is stored as running, so a restart
        /// finds its last checkpoint complete and encodes it again.
        /// Failed or cancelled: what a retry starts again.
        var endedWithoutVideo: Bool {
            switch self {
            case .failed, .cancelled: return true
            default: return false
            }
        }

        var stored: String {
            switch self {
            case .running, .encoding: return "running"
            case .done: return "done"
            case .failed: return "failed"
            case .cancelled: return "cancelled"
            }
        }

        init(stored: String, error: String) {
            switch stored {
            case "done": self = .done
            case "cancelled": self = .cancelled
            case "running": self = .running
            default: self = .failed(error.isEmpty ? "unknown state \(stored) in the job store" : error)
            }
        }

        /// How it ended, once it has.
        var outcome: JobOutcome? {
            switch self {
            case .running, .encoding: return nil
            case .done: return .done
            case .failed(let reason): return .failed(reason: reason)
            case .cancelled: return .cancelled
            }
        }

        var wire: Reel_V1_JobState {
            switch self {
            case .running: return .running
            case .encoding: return .encoding
            case .done: return .done
            case .failed: return .failed
            case .cancelled: return .cancelled
            }
        }
    }

    let id, client: String
    let spec: JobSpec
    let output: OutputOptions
    var outputScale: Int { output.scale }
    /// OpenBLAS kernel families of the workers whose results were accepted for it, for the
    /// manifest (kept in the job store as they change).
    var kernels: Set<String> = []
    /// The model's weight files its accepted results were computed with, by path, as their
    /// workers announced them (kept in the job store as they change).
    var weights: [String: WeightFile] = [:]

    /// Its kernels and weights as the job store keeps them, so that a restarted coordinator's
    /// manifest still names what the results before the restart were computed with.
    struct RenderedWith: Codable, Equatable {
        var kernels: [String]
        var weights: [WeightFile]
    }

    var renderedWith: RenderedWith {
        get { RenderedWith(kernels: kernels.sorted(), weights: weights.values.sorted { $0.path < $1.path }) }
        set {
            kernels = Set(newValue.kernels)
            weights = Dictionary(newValue.weights.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// What differs between the weight files a worker holds of the job's model and those of
    /// the job's accepted results; nil when nothing does.
    func weightsDiffer(_ files: [WeightFile]) -> String? {
        for file in files {
            if let known = weights[file.path], known != file {
                return "it holds other weights of \(spec.model) than the job's other results were computed with: \(file.path) has sha256 \(file.sha256), theirs \(known.sha256)"
            }
        }
        return nil
    }

    /// Records what an accepted result was computed with; true when that is new to the job
    /// (a new worker's first result), false for every later one, which changes nothing.
    func record(weights files: [WeightFile], kernel: String) -> Bool {
        var changed = kernels.insert(kernel).inserted
        for file in files where weights[file.path] == nil {
            weights[file.path] = file
            changed = true
        }
        return changed
    }
    let run: JobRun
    let submitted: Date
    let clock: any FarmClock
    var state: State = .running
    /// Starts as the spec's; an operator may change it while the job runs.
    var priority: Int
    var finishedSeconds: Double?
    /// When it ended (done, failed or cancelled), for `--keep-finished`.
    var finishedAt: Date?
    /// The MP4 in the data directory, once done.
    var outputPath: String?
    var latentDigest = ""
    /// When its last checkpoint was handed to the writer.
    var checkpointedAt: ContinuousClock.Instant?
    /// Shard results accepted in this coordinator's life (a restored job counts from its restart;
    /// an ended one reads what the store kept).
    var resultsAccepted = 0
    /// An ended job's region steps as the store kept them: a restored job has a fresh run.
    var endedRegionSteps: [Int]?
    /// A running job an operator paused: no new shard is handed out; those in flight finish.
    var paused = false

    /// Seconds from its submission to now, or to its end: wall time, so that it reads the same
    /// across a coordinator's restart.
    var elapsed: Double { finishedSeconds ?? max(0, clock.date.timeIntervalSince(submitted)) }
    /// Workers the current shard of each region failed on, in order.
    var shardFailures: [Int: [String]] = [:]
    /// Shards of this job each worker failed.
    var workerFailures: [String: Int] = [:]

    /// `input`: planar frames of an input video, at the job's canvas and frame count.
    /// `maxPieceBytes`: the most frames a latent job's decode shard may return, in bytes.
    init(id: String, client: String = "", spec: JobSpec, output: OutputOptions, model: PlannedModel,
         maxPieceBytes: Int = LatentStages.defaultMaxPieceBytes, input: [Float]? = nil, attemptIDs: @escaping () -> UInt64 = AttemptIDs.counting(), clock: any FarmClock = SystemClock(),
         submitted: Date? = nil) {
        self.clock = clock
        self.id = id
        self.client = client
        self.spec = spec
        self.output = output
        self.submitted = submitted ?? clock.date
        priority = spec.priority
        if let stages = model.stages(for: spec, maxPieceBytes: maxPieceBytes) {
            run = JobRun(spec: spec, stages: stages, input: input, attemptIDs: attemptIDs)
        } else {
            let channels = model.inputChannels
            run = JobRun(spec: spec, model: model.shape, channels: channels, attemptIDs: attemptIDs) { box in
                spec.startingLatent(box, channels: channels, input: input)
            }
        }
    }

    var isActive: Bool { state == .running }

    func status() -> Reel_V1_JobStatus {
        var status = Reel_V1_JobStatus()
        status.jobID = id
        status.state = paused && state == .running ? .paused : state.wire
        status.spec = spec.message(output: output)
        status.spec.priority = Int32(priority)
        let progress = endedRegionSteps.flatMap { $0.count == run.progress.count ? $0 : nil } ?? run.progress
        let stepsDone = run.stepsDone(in: progress)
        status.stepsDone = UInt32(state == .done ? run.stepsTotal : stepsDone)
        status.stepsTotal = UInt32(run.stepsTotal)
        status.chunks = UInt32(run.plan.chunks.count)
        status.tiles = UInt32(run.plan.tileRows.count * run.plan.tileColumns.count)
        status.regionSteps = progress.map { UInt32(clamping: $0) }
        status.chunkFirstStep = UInt32(run.plan.firstStep)
        let elapsed = elapsed
        status.secondsElapsed = elapsed
        if stepsDone > 0 && state == .running {
            status.secondsRemaining = elapsed / Double(stepsDone) * Double(run.stepsTotal - stepsDone)
        }
        if case .failed(let reason) = state { status.error = reason }
        status.latentDigest = latentDigest
        status.shardsTotal = UInt32(clamping: run.shardsTotal)
        status.resultsAccepted = UInt32(clamping: resultsAccepted)
        status.promptsEncoded = UInt32(run.promptsDone)
        status.promptsTotal = UInt32(run.stages?.prompts.count ?? 0)
        status.piecesDecoded = UInt32(run.piecesDone)
        status.piecesTotal = UInt32(run.stages?.pieces.count ?? 0)
        status.submittedUnixMs = UInt64(submitted.timeIntervalSince1970 * 1000)
        return status
    }
}


/// What the coordinator knows of one connected worker.
struct WorkerRecord {
    let identity: Data
    let hello: Reel_V1_WorkerHello
    /// What the ZAP handler said its connection is; nil without CURVE.
    let userID: String?
    /// Shards it asked for and may still be sent: with `inFlight`, never more than the
    /// coordinator's cap, whatever it announced.
    var credits = 0
    /// When it last asked for work.
    var creditedAt: ContinuousClock.Instant?
    var lastSeen: ContinuousClock.Instant
    /// The shards it holds, by attempt id: only these attempts' results and failures are taken
    /// from it, each checked against what was handed over.
    var inFlight: [UInt64: ShardInFlight] = [:]
    var stepsDone = 0
    /// When its shard last finished a step (or was handed over).
    var progressAt: ContinuousClock.Instant
    var shardsCompleted = 0
    /// Models it has computed shards of, and so holds loaded.
    var modelsRun: Set<String> = []

    /// The weight files it announced for each model, checked for bounds when it said hello and
    /// read from it once then: every result it returns is checked against its job's.
    var weightsByModel: [String: [WeightFile]] = [:]

    /// The weight files it announced for `model`.
    func weights(of model: String) -> [WeightFile] { weightsByModel[model] ?? [] }

    /// Who it is, for blocklists, logs and `reel workers`: under CURVE the name its key is
    /// enrolled as (what it announces could be anyone's); without keys, what it announces.
    var name: String {
        if let userID, let peer = PeerRole.parse(userID) { return peer.name }
        return hello.workerID.isEmpty ? identity.map { String(format: "%02x", $0) }.joined() : hello.workerID
    }

    /// The shard it was handed first of those it holds (an honest worker holds one).
    var current: ShardInFlight? { inFlight.values.min { $0.assignedAt < $1.assignedAt } }
}

/// A shard handed to a worker, as handed: what its result must match.
struct ShardInFlight {
    let job: String
    let kind: Reel_V1_ShardKind
    /// Its unit of the job: a region, or a latent job's prompt or piece (`JobRun.Unit`).
    let region: Int
    let attempt: UInt64
    let stepBegin, stepEnd: UInt32
    let shape: Reel_V1_LatentShape
    let assignedAt: ContinuousClock.Instant
}
