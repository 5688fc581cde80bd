import Diffusion
import Foundation

/// Which shard goes to which worker. Higher priority goes first; among equal priorities, the
/// client served the fewest shards so far (fair share), then the job submitted first; within a
/// job, the shard released first. A worker takes a shard only with credit, offering the job's
/// model and holding the part the shard runs (a latent model's text encoder, DiT or VAE), and
/// not kept off the job (`failuresBeforeBlocking` failed shards of it); preferred
/// is one that has not failed this region, then one that already holds the model (it has run
/// it before: no load), then the least used. It sends nothing itself: `dispatch` says what
/// to send where, and the coordinator sends it.
struct Scheduler {
    let failuresBeforeBlocking: Int
    /// Assignments released by their jobs, per job, waiting for a worker with credit.
    private var pending: [String: ShardQueue] = [:]
    /// Shards handed out per client, for fair share.
    private var served: [String: Int] = [:]

    init(failuresBeforeBlocking: Int) { self.failuresBeforeBlocking = failuresBeforeBlocking }

    /// One decision: send `assignment` of `job` to the worker `worker`; it could have gone
    /// since `possibleSince` (the later of its release and the worker's asking).
    struct Dispatch {
        let job: FarmJob
        let assignment: ShardAssignment
        let worker: Data
        var possibleSince: ContinuousClock.Instant
    }

    var queueDepth: Int { pending.values.reduce(0) { $0 + $1.count } }

    /// Takes the shards every active job has released, then decides sends until no worker with
    /// credit can take a waiting shard; each decision spends a credit of its worker.
    mutating func dispatch(jobs table: JobTable, workers: WorkerRegistry, at now: ContinuousClock.Instant) -> [Dispatch] {
        for id in table.order {
            guard let job = table.jobs[id], job.isActive, !job.paused else { continue }
            let ready = job.run.takeReadyShards()
            if !ready.isEmpty { pending[id, default: ShardQueue()].append(contentsOf: ready, at: now) }
        }
        guard !pending.isEmpty, workers.anyHasCredit else { return [] }
        var candidates = Candidates(workers)
        for id in pending.keys where table.jobs[id]?.isActive != true { pending[id] = nil }
        admitNewClients(table.jobs)
        // Submission order breaks ties; only needed when several jobs wait.
        let position = pending.count > 1 ? Dictionary(uniqueKeysWithValues: table.order.enumerated().map { ($1, $0) }) : [:]
        var decisions: [Dispatch] = []
        while candidates.creditLeft > 0, let next = nextShard(table.jobs, &candidates, position: position) {
            candidates.spend(next.worker)
            served[next.job.client, default: 0] += 1
            var decision = next
            if let asked = workers[next.worker]?.creditedAt, asked > decision.possibleSince { decision.possibleSince = asked }
            decisions.append(decision)
        }
        return decisions
    }

    /// A job that ended or was forgotten: its waiting shards go with it.
    mutating func forget(_ id: String) { pending[id] = nil }

    /// The first shard, in scheduling order, that some worker can take; nil if none.
    private mutating func nextShard(_ jobs: [String: FarmJob], _ candidates: inout Candidates, position: [String: Int]) -> Dispatch? {
        let order = pending.count == 1 ? Array(pending.keys) : pending.keys.sorted { a, b in
            let (jobA, jobB) = (jobs[a]!, jobs[b]!)
            if jobA.priority != jobB.priority { return jobA.priority > jobB.priority }
            let (servedA, servedB) = (served[jobA.client, default: 0], served[jobB.client, default: 0])
            return servedA != servedB ? servedA < servedB : position[a, default: 0] < position[b, default: 0]
        }
        for id in order where !jobs[id]!.paused {
            let job = jobs[id]!, blocking = failuresBeforeBlocking
            var worker: Data?
            guard let (assignment, released) = pending[id]!.takeFirst(where: { assignment in
                worker = candidates.best(for: job, region: assignment.region, failuresBeforeBlocking: blocking)
                return worker != nil
            }) else { continue }
            if pending[id]!.isEmpty { pending[id] = nil }
            return Dispatch(job: job, assignment: assignment, worker: worker!, possibleSince: released)
        }
        return nil
    }

    /// A client new to the queue starts level with the least-served client waiting, so it
    /// shares from now on rather than taking everything until it has caught up.
    private mutating func admitNewClients(_ jobs: [String: FarmJob]) {
        let waiting = Set(pending.keys.map { jobs[$0]!.client })
        let level = waiting.compactMap { served[$0] }.min() ?? 0
        for client in waiting where served[client] == nil { served[client] = level }
    }

    /// Why `job` cannot move now, for its status: no connected worker offers its model, or
    /// every one that does is kept off it. Empty when some worker may take its work.
    func waitingReason(for job: FarmJob, workers: WorkerRegistry) -> String {
        guard job.isActive else { return "" }
        if job.paused { return "paused; `reel resume \(job.id)` continues it" }
        let model = job.spec.model
        let part = job.run.stages == nil ? nil : job.run.promptsDone < job.run.stages!.prompts.count ? ModelPart.text
                                                  : !job.run.inputEncoded || job.run.isDenoised ? .vae : .dit
        let offering = workers.all.filter { $0.offers(model, part) }
        if offering.isEmpty, let part {
            return "no connected worker holds the \(part.title) of '\(model)'; start one with `reel worker --model \(model) --parts \(part.rawValue)`"
        }
        if offering.isEmpty {
            return "no connected worker offers model '\(model)'; start one with `reel worker --model \(model)`"
        }
        guard offering.allSatisfy({ job.workerFailures[$0.name, default: 0] >= failuresBeforeBlocking }) else { return "" }
        return "every worker offering '\(model)' failed \(failuresBeforeBlocking) of this job's shards and is kept off it; "
            + "it waits for another worker (`reel cancel \(job.id)` to give up)"
    }
}

/// The workers with credit during one dispatch, in order of preference for each model: those
/// that hold the model already (they ran it before: no load) first, then the least used. The
/// order is made once per model and dispatch, and workers whose credit is spent drop off its
/// front, so a thousand workers asking at once cost about one look each, not a scan each.
private struct Candidates {
    private let workers: WorkerRegistry
    private var credits: [Data: Int]
    private var orders: [String: ArraySlice<WorkerRecord>] = [:]
    private(set) var creditLeft: Int

    init(_ workers: WorkerRegistry) {
        self.workers = workers
        credits = Dictionary(uniqueKeysWithValues: workers.withCredit.map { ($0, workers[$0]!.credits) })
        creditLeft = credits.values.reduce(0, +)
    }

    mutating func spend(_ worker: Data) {
        credits[worker, default: 0] -= 1
        creditLeft -= 1
    }

    /// The preferred worker for `region` of `job`: one with credit that offers its model and is
    /// not kept off the job, one that has not failed this region before one that has.
    mutating func best(for job: FarmJob, region: Int, failuresBeforeBlocking: Int) -> Data? {
        let model = job.spec.model, part = job.run.part(of: region)
        let key = part.map { "\(model)\u{0}\($0.rawValue)" } ?? model
        var order = orders[key] ?? ArraySlice(workers.withCredit.compactMap { workers[$0] }
            .filter { $0.offers(model, part) }
            .sorted { ($0.modelsRun.contains(model) ? 0 : 1, $0.shardsCompleted) < ($1.modelsRun.contains(model) ? 0 : 1, $1.shardsCompleted) })
        while let first = order.first, credits[first.identity, default: 0] <= 0 { order.removeFirst() }
        orders[key] = order
        let failedHere = job.shardFailures[region] ?? []
        var fallback: Data?
        for worker in order where credits[worker.identity, default: 0] > 0
            && job.workerFailures[worker.name, default: 0] < failuresBeforeBlocking {
            guard failedHere.contains(worker.name) else { return worker.identity }
            if fallback == nil { fallback = worker.identity }
        }
        return fallback
    }
}

/// One job's assignments waiting for workers, in release order, each with when it was
/// released; taking the first is O(1).
struct ShardQueue {
    private var items: [(assignment: ShardAssignment, released: ContinuousClock.Instant)] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }

    mutating func append(contentsOf assignments: [ShardAssignment], at now: ContinuousClock.Instant) {
        items += assignments.map { ($0, now) }
    }

    /// Removes and returns the first assignment `accept` takes, if any, and its release time.
    mutating func takeFirst(where accept: (ShardAssignment) -> Bool) -> (ShardAssignment, ContinuousClock.Instant)? {
        guard let index = items[head...].firstIndex(where: { accept($0.assignment) }) else { return nil }
        let taken = items[index]
        if index == head { head += 1 } else { items.remove(at: index) }
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return taken
    }
}

extension WorkerRecord {
    /// Whether it offers `model` and, for a latent model's shard, holds `part` (a worker that
    /// names no parts holds them all).
    func offers(_ model: String, _ part: ModelPart?) -> Bool {
        hello.models.contains(model) && (part.map { hello.parts.isEmpty || hello.parts.contains($0.rawValue) } ?? true)
    }
}

extension JobRun {
    /// The model part a unit's shard runs on; nil for a pixel model, whose workers run it whole.
    func part(of unit: Int) -> ModelPart? {
        guard stages != nil else { return nil }
        switch self.unit(unit) {
        case .prompt: return .text
        case .piece, .input: return .vae
        case .region, nil: return .dit
        }
    }
}

extension ModelPart {
    /// How an operator names it.
    var title: String {
        switch self {
        case .text: return "text encoder"
        case .dit: return "denoiser (DiT)"
        case .vae: return "VAE"
        }
    }
}
