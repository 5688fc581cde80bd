import Metrics

/// The coordinator's series (swift-metrics; Prometheus names them in `reel coordinator --http`).
/// Made once, when the coordinator starts: a process that bootstrapped no metrics system gets
/// no-op handlers.
struct CoordinatorMetrics {
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
}
