import Metrics
import Wire

/// The coordinator's series (swift-metrics; Prometheus names them in `reel coordinator --http`).
/// Made once, when the coordinator starts: a process that bootstrapped no metrics system gets
/// no-op handlers. Every series' help line is in `help`, the one place its meaning is written.
public final class CoordinatorMetrics {
    /// `# HELP` of each family, by name.
    public static let help: [String: String] = [
        "reel_build_info": "The coordinator's build: release, commit and protocol version as labels; always 1.",
        "reel_shards_completed_total": "Shard results accepted.",
        "reel_requeues_total": "Shards handed to another worker after theirs left, stalled or failed.",
        "reel_shard_failures_total": "Shard attempts that failed (a worker's error, or a result that did not match its assignment).",
        "reel_wire_bytes_total": "Bytes of messages received (direction=in) and sent (direction=out) on the ZeroMQ socket.",
        "reel_shard_latency_seconds": "From a shard's dispatch to its accepted result.",
        "reel_step_latency_seconds": "A worker's seconds per denoising step, from its results.",
        "reel_queue_depth": "Shards ready to run and waiting for a worker.",
        "reel_workers": "Workers connected.",
        "reel_jobs": "Jobs the coordinator holds, by state.",
        "reel_jobs_ended_total": "Jobs that ended since the coordinator started, by how (done, failed, cancelled).",
        "reel_worker_shards_held": "Shards a worker holds now, by worker.",
        "reel_worker_shards_completed": "Shards a worker has completed, counted across the coordinator's restarts, by worker.",
        "reel_worker_heartbeat_age_seconds": "Seconds since a worker was last heard from, by worker.",
    ]

    let shardsCompleted = Counter(label: "reel_shards_completed_total")
    let requeues = Counter(label: "reel_requeues_total")
    let shardFailures = Counter(label: "reel_shard_failures_total")
    let bytesReceived = Counter(label: "reel_wire_bytes_total", dimensions: [("direction", "in")])
    let bytesSent = Counter(label: "reel_wire_bytes_total", dimensions: [("direction", "out")])
    /// From a shard's dispatch to its accepted result, and the worker's time per step.
    let shardLatency = Timer(label: "reel_shard_latency_seconds")
    let stepLatency = Timer(label: "reel_step_latency_seconds")
    let queueDepth = Gauge(label: "reel_queue_depth")
    let workers = Gauge(label: "reel_workers")
    let jobsByState: [String: Gauge] = Dictionary(uniqueKeysWithValues: ["running", "done", "failed", "cancelled"].map {
        ($0, Gauge(label: "reel_jobs", dimensions: [("state", $0)]))
    })
    let jobsEnded: [String: Counter] = Dictionary(uniqueKeysWithValues: ["done", "failed", "cancelled"].map {
        ($0, Counter(label: "reel_jobs_ended_total", dimensions: [("state", $0)]))
    })
    let buildInfo = Gauge(label: "reel_build_info", dimensions: [("release", ReelVersion.release), ("commit", ReelVersion.commit),
                                                                 ("protocol", "\(Envelope.protocolVersion)")])
    /// Each connected worker's series, by name; a worker's go when it does.
    private var workerSeries: [String: (held: Gauge, completed: Gauge, heartbeatAge: Gauge)] = [:]

    init() { buildInfo.record(1) }

    /// Sets every connected worker's series, and removes those of workers that left.
    func record(_ statuses: [Reel_V1_WorkerStatus]) {
        var seen = Set<String>()
        for status in statuses {
            let name = status.workerID
            seen.insert(name)
            let series = workerSeries[name] ?? {
                let made = (Gauge(label: "reel_worker_shards_held", dimensions: [("worker", name)]),
                            Gauge(label: "reel_worker_shards_completed", dimensions: [("worker", name)]),
                            Gauge(label: "reel_worker_heartbeat_age_seconds", dimensions: [("worker", name)]))
                workerSeries[name] = made
                return made
            }()
            series.held.record(status.shardsHeld)
            series.completed.record(status.shardsCompleted)
            series.heartbeatAge.record(status.heartbeatAgeSeconds)
        }
        for (name, series) in workerSeries where !seen.contains(name) {
            series.held.destroy(); series.completed.destroy(); series.heartbeatAge.destroy()
            workerSeries[name] = nil
        }
    }
}
