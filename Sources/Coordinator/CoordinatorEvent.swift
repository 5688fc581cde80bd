/// What happens on a farm, as the coordinator's thread sees it: the facts its log lines tell
/// in words, as values a test or a tool can match (`CoordinatorOptions.observer`).
public enum CoordinatorEvent: Sendable, Equatable {
    case workerJoined(worker: String)
    case workerRemoved(worker: String, why: WorkerRemoval)
    case jobSubmitted(job: String)
    /// A shard taken from its worker (gone or stalled) and released for another.
    case shardRequeued(job: String, region: Int)
    /// A shard that made no progress for `shardTimeout`, taken from a live worker.
    case shardStalled(job: String, region: Int, worker: String)
    /// A shard its worker failed or answered wrongly; it runs again elsewhere.
    case shardFailed(job: String, region: Int, worker: String, reason: String)
    case jobEnded(job: String, outcome: JobOutcome)
    /// A finished job past `keepFinished`, its row and video removed.
    case jobForgotten(job: String)
}

/// Why a worker was forgotten.
public enum WorkerRemoval: Sendable, Equatable, CustomStringConvertible {
    /// It said goodbye.
    case left(reason: String)
    /// It missed `liveness` heartbeats.
    case silent(heartbeats: Int)
    /// The key of the worker so enrolled was revoked while it was connected.
    case revoked(name: String)
    /// Its messages broke the protocol, or were too large.
    case misbehaved(problem: String)
    /// The coordinator could not send to it.
    case unreachable
    /// It registered again on the same connection.
    case registeredAgain

    public var description: String {
        switch self {
        case .left(let reason): "left: \(reason)"
        case .silent(let heartbeats): "silent for more than \(heartbeats) heartbeats"
        case .revoked(let name): "the key of worker \(name) was revoked on the coordinator"
        case .misbehaved(let problem): problem
        case .unreachable: "unreachable"
        case .registeredAgain: "said hello again"
        }
    }
}

/// How a job ended.
public enum JobOutcome: Sendable, Equatable {
    case done
    case failed(reason: String)
    case cancelled
}
