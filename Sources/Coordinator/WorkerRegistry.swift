import Foundation
import Provenance
import Wire

/// The workers a coordinator knows, by connection identity, and what each holds: credits it
/// asked for, shards in flight, when it was last heard from and last made progress. Plain
/// state with no sockets or clock of its own: the coordinator says what happened and when.
struct WorkerRegistry {
    private var records: [Data: WorkerRecord] = [:]
    /// Those with credit: the scheduler's candidates, kept as credits change so that a farm
    /// of a thousand busy workers is not scanned for every shard.
    private(set) var withCredit: Set<Data> = []

    var all: Dictionary<Data, WorkerRecord>.Values { records.values }
    var count: Int { records.count }
    var anyHasCredit: Bool { !withCredit.isEmpty }

    subscript(identity: Data) -> WorkerRecord? { records[identity] }

    /// A worker that said hello; one that said it before on the same connection is replaced.
    @discardableResult
    mutating func register(_ identity: Data, hello: Reel_V1_WorkerHello, userID: String?, at now: ContinuousClock.Instant) -> WorkerRecord {
        var record = WorkerRecord(identity: identity, hello: hello, userID: userID, lastSeen: now, progressAt: now)
        // A model announced twice keeps its first list.
        record.weightsByModel = Dictionary(hello.modelWeights.map { model in
            (model.model, model.files.map { WeightFile(path: $0.path, bytes: Int(clamping: $0.bytes), sha256: $0.sha256) })
        }, uniquingKeysWith: { first, _ in first })
        records[identity] = record
        withCredit.remove(identity)
        return record
    }

    mutating func remove(_ identity: Data) -> WorkerRecord? {
        withCredit.remove(identity)
        return records.removeValue(forKey: identity)
    }

    /// Any message counts as a sign of life.
    mutating func heard(from identity: Data, at now: ContinuousClock.Instant) { records[identity]?.lastSeen = now }

    /// Credits asked for, up to `cap` shards held and promised together.
    mutating func addCredits(_ requested: Int, to identity: Data, cap: Int, at now: ContinuousClock.Instant) {
        guard let worker = records[identity] else { return }
        records[identity]!.credits += min(requested, max(0, cap - worker.inFlight.count - worker.credits))
        records[identity]!.creditedAt = now
        if records[identity]!.credits > 0 { withCredit.insert(identity) }
    }

    /// A heartbeat's step count; a change is progress.
    mutating func stepsDone(_ steps: Int, by identity: Data, at now: ContinuousClock.Instant) {
        guard let worker = records[identity], worker.stepsDone != steps else { return }
        records[identity]!.stepsDone = steps
        records[identity]!.progressAt = now
    }

    /// A shard handed over: it spends a credit, and the worker holds the model from now on.
    mutating func handOut(_ shard: ShardInFlight, model: String, to identity: Data) {
        records[identity]!.credits -= 1
        if records[identity]!.credits == 0 { withCredit.remove(identity) }
        records[identity]!.inFlight[shard.attempt] = shard
        records[identity]!.modelsRun.insert(model)
        records[identity]!.stepsDone = 0
        records[identity]!.progressAt = shard.assignedAt
    }

    /// The shard of `attempt` if this worker holds it, no longer held.
    mutating func take(attempt: UInt64, from identity: Data) -> ShardInFlight? {
        records[identity]?.inFlight.removeValue(forKey: attempt)
    }

    mutating func completedShard(_ identity: Data) { records[identity]?.shardsCompleted += 1 }

    /// A worker's count as the store kept it for its name, when it (re)connects.
    mutating func setShardsCompleted(_ identity: Data, _ count: Int) { records[identity]?.shardsCompleted = count }

    /// Every shard a worker holds, taken from it (it stalled).
    mutating func takeAll(from identity: Data) -> [ShardInFlight] {
        defer { records[identity]?.inFlight = [:] }
        return records[identity].map { Array($0.inFlight.values) } ?? []
    }

    /// Workers not heard from for more than `limit` seconds.
    func silent(at now: ContinuousClock.Instant, limit: Double) -> [WorkerRecord] {
        records.values.filter { (now - $0.lastSeen).seconds > limit }
    }

    /// Workers holding a shard that made no progress for more than `timeout` seconds (asked
    /// after the silent ones are dropped, so these are alive).
    func stalled(at now: ContinuousClock.Instant, timeout: Double) -> [WorkerRecord] {
        records.values.filter { (now - $0.progressAt).seconds > timeout && $0.current != nil }
    }

    /// As `reel workers` and the dashboard list them.
    func statuses(at now: ContinuousClock.Instant, shardCap: Int) -> [Reel_V1_WorkerStatus] {
        records.values.sorted { $0.name < $1.name }.map { worker in
            Reel_V1_WorkerStatus.with {
                $0.workerID = worker.name
                $0.hostname = worker.hello.hostname
                $0.models = worker.hello.models
                $0.parts = worker.hello.parts
                $0.threads = worker.hello.threads
                $0.cpuKernel = worker.hello.cpuKernel
                $0.jobID = worker.current?.job ?? ""
                $0.region = UInt32(worker.current?.region ?? 0)
                $0.stepsDone = UInt32(worker.stepsDone)
                $0.heartbeatAgeSeconds = (now - worker.lastSeen).seconds
                $0.shardsCompleted = UInt32(worker.shardsCompleted)
                $0.shardCap = UInt32(shardCap)
                $0.shardsHeld = UInt32(worker.inFlight.count)
                $0.build = worker.hello.build
            }
        }
    }

    /// A latent model's preview projection, as a worker holding its VAE announced it: finite
    /// values of a sane size only (a worker's hello is not to be trusted with more than its
    /// own previews' colours).
    func previewProjection(for model: String) -> [Float]? {
        for worker in records.values.sorted(by: { $0.name < $1.name }) {
            for projection in worker.hello.previewProjections where projection.model == model {
                if projection.weights.count <= 3 * 1025, projection.weights.allSatisfy({ $0.isFinite && abs($0) <= 100 }) {
                    return projection.weights
                }
            }
        }
        return nil
    }
}
