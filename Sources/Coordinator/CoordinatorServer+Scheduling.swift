import Foundation
import Planning
import Wire

/// Scheduling: which shard goes to which worker, and noticing workers that died or stalled.
extension CoordinatorServer {
    /// Hands released shards to workers with credit. Higher priority goes first; among equal
    /// priorities, the client served the fewest shards so far (fair share), then the job
    /// submitted first; within a job, the shard released first.
    func dispatch() {
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
    func sendNextShard(position: [String: Int]) -> Bool {
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
    func admitNewClients() {
        let waiting = Set(pending.keys.map { jobs[$0]!.client })
        let level = waiting.compactMap { served[$0] }.min() ?? 0
        for client in waiting where served[client] == nil { served[client] = level }
    }

    /// Why `job` cannot move now, for its status: no connected worker offers its model, or
    /// every one that does is kept off it. Empty when some worker may take its work.
    func waitingReason(for job: FarmJob) -> String {
        guard job.isActive else { return "" }
        let model = job.spec.model
        let offering = workers.values.filter { $0.hello.models.contains(model) }
        if offering.isEmpty {
            return "no connected worker offers model '\(model)'; start one with `reel worker --model \(model)`"
        }
        guard offering.allSatisfy({ job.workerFailures[$0.name, default: 0] >= options.failuresBeforeBlocking }) else { return "" }
        return "every worker offering '\(model)' failed \(options.failuresBeforeBlocking) of this job's shards and is kept off it; "
            + "it waits for another worker (`reel cancel \(job.id)` to give up)"
    }

    /// A job's status as clients see it: the job's own, and why it waits, if it does.
    func status(of job: FarmJob) -> Reel_V1_JobStatus {
        var status = job.status()
        status.waiting = waitingReason(for: job)
        return status
    }

    /// A worker with credit that offers the job's model and is not kept off the job. Preferred:
    /// one that has not failed this region, then one that already holds the model (it has
    /// run it before: no load), then the least used.
    func bestWorker(for job: FarmJob, region: Int) -> Data? {
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

    func send(_ assignment: ShardAssignment, of job: FarmJob, to peer: Data) {
        let (message, payloads) = job.run.message(for: assignment, job: job.id)
        workers[peer]!.credits -= 1
        workers[peer]!.inFlight[assignment.attempt] = ShardInFlight(
            job: job.id, region: assignment.region, attempt: assignment.attempt, stepBegin: message.stepBegin,
            stepEnd: message.stepEnd, shape: message.shape, assignedAt: clock.now)
        workers[peer]!.modelsRun.insert(job.spec.model)
        workers[peer]!.stepsDone = 0
        workers[peer]!.progressAt = clock.now
        counters.assignmentsSent += 1
        if !send(.assignment, message, payloads: payloads, to: peer) {
            drop(peer, .unreachable)
        }
    }

    func sendHeartbeats() {
        for worker in workers.values { send(.heartbeat, Reel_V1_Heartbeat(), to: worker.identity) }
    }

    func reapSilentWorkers(_ now: ContinuousClock.Instant) {
        let limit = options.heartbeatInterval * Double(options.liveness)
        for worker in workers.values {
            if (now - worker.lastSeen).seconds > limit {
                drop(worker.identity, .silent(heartbeats: options.liveness))
            } else if (now - worker.progressAt).seconds > options.shardTimeout, let current = worker.current {
                // Alive but stuck: its shards go to someone else; this worker's results, if they
                // ever come, belong to superseded attempts and are dropped.
                workers[worker.identity]!.inFlight = [:]
                observe(.shardStalled(job: current.job, region: current.region, worker: worker.name))
                logger.warning("shard \(current.job)/\(current.region) made no progress on \(worker.name) for \(Int(options.shardTimeout)) s; reassigned")
                requeue(worker.inFlight.values)
            }
        }
    }
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
