import Foundation
import Planning
import Wire

/// Dispatch and liveness: the scheduler's decisions sent, and workers that died or stalled
/// noticed.
extension CoordinatorServer {
    /// Sends what the scheduler decides. A shard decided for a worker dropped meanwhile (its
    /// connection failed on an earlier send) goes back to its job.
    func dispatch() {
        for decision in scheduler.dispatch(jobs: table, workers: workers, at: clock.now) {
            guard workers[decision.worker] != nil else {
                decision.job.run.requeue(region: decision.assignment.region)
                continue
            }
            send(decision.assignment, of: decision.job, to: decision.worker)
            counters.assignmentLatency.record(seconds: (clock.now - decision.possibleSince).seconds)
        }
    }

    /// A job's status as clients see it: the job's own, and why it waits, if it does.
    func status(of job: FarmJob) -> Reel_V1_JobStatus {
        var status = job.status()
        status.waiting = scheduler.waitingReason(for: job, workers: workers)
        return status
    }

    func send(_ assignment: ShardAssignment, of job: FarmJob, to peer: Data) {
        let (message, payloads) = job.run.message(for: assignment, job: job.id)
        workers.handOut(ShardInFlight(job: job.id, kind: message.kind, region: assignment.region, attempt: assignment.attempt,
                                      stepBegin: message.stepBegin, stepEnd: message.stepEnd, shape: message.resultShape,
                                      assignedAt: clock.now),
                        model: job.spec.model, to: peer)
        counters.assignmentsSent += 1
        counters.traffic[message.kind.name, default: ShardTraffic()].assigned += 1
        counters.traffic[message.kind.name, default: ShardTraffic()].payloadBytesSent += payloads.reduce(0) { $0 + $1.count }
        if !send(.assignment, message, payloads: payloads, to: peer) {
            drop(peer, .unreachable)
        }
    }

    func sendHeartbeats() {
        for worker in workers.all { send(.heartbeat, Reel_V1_Heartbeat(), to: worker.identity) }
    }

    /// A worker silent for `liveness` heartbeats is dropped and its shards requeued; one alive
    /// but stuck on a shard for `shardTimeout` loses the shard, whose results, if they ever
    /// come, belong to a superseded attempt and are dropped.
    func reapSilentWorkers(_ now: ContinuousClock.Instant) {
        let limit = options.heartbeatInterval * Double(options.liveness)
        for worker in workers.silent(at: now, limit: limit) {
            drop(worker.identity, .silent(heartbeats: options.liveness))
        }
        for worker in workers.stalled(at: now, timeout: options.shardTimeout) {
            let current = worker.current!
            observe(.shardStalled(job: current.job, region: current.region, worker: worker.name))
            logger.warning("shard \(current.job)/\(current.region) made no progress on \(worker.name) for \(Int(options.shardTimeout)) s; reassigned")
            requeue(workers.takeAll(from: worker.identity))
        }
    }
}
