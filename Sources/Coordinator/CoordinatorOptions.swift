import Foundation
import Wire

/// How a coordinator runs.
public struct CoordinatorOptions: Sendable {
    /// Endpoints to bind, e.g. tcp://*:5555 or inproc://reel.
    public var bind: [String]
    /// Where finished videos are kept.
    public var dataDirectory: String
    /// Seconds between heartbeats, and heartbeats a worker may miss before it is presumed dead.
    public var heartbeatInterval: Double = 1
    public var liveness: Int = 5
    /// Largest frame a peer may send; a bigger one disconnects that peer.
    public var maxMessageBytes: Int64 = 64 << 20
    /// The most a latent job's decode shard returns: half the largest message, so a piece's
    /// frames and its header always fit.
    var maxPieceBytes: Int { Int(clamping: maxMessageBytes / 2) }
    /// Seconds a shard may go without finishing a step before it is given to another worker.
    public var shardTimeout: Double = 600
    /// Attempts of one shard that may fail before its job fails.
    public var maxShardAttempts = 3
    /// Failed shards after which a worker is kept off a job.
    public var failuresBeforeBlocking = 2
    /// Shards one worker may hold at once, credits it asked for included: a worker that asks
    /// for more gets no more, so one that vanishes takes at most this many with it.
    public var maxShardsPerWorker = defaultMaxShardsPerWorker
    public static let defaultMaxShardsPerWorker = 2
    /// Seconds between checkpoints of one job at most: what a crash can cost in recomputation,
    /// against the disk and CPU a checkpoint of every result would take.
    public var checkpointInterval: Double = 1
    /// Unfinished jobs one client may have; more submissions are refused until some end.
    public var maxActiveJobsPerClient = 32
    /// Seconds a finished job (done, failed or cancelled) stays listed, its video on disk;
    /// nil keeps every job until an operator removes the data directory's files.
    public var keepFinished: Double?
    /// Whether a job may name its model by a path (only a coordinator inside `reel render`);
    /// a farm accepts package names alone.
    public var modelPathsAllowed = false
    /// CURVE with the enrolled keys of DATA-DIR/keys, or plaintext (`--insecure`, and inproc).
    public var security: SocketSecurity = .plaintext
    /// Every interval and timestamp is read from here; tests move a `ManualClock` by hand.
    public var clock: any FarmClock = SystemClock()
    /// Told of what happens to workers, shards and jobs, on the coordinator's thread: for tests
    /// and tools that watch a farm without reading its log. It must return quickly.
    public var observer: (@Sendable (CoordinatorEvent) -> Void)?
    /// The Ed25519 key that signs its videos' manifests; nil: DATA-DIR/keys/signing.key, made
    /// on first start beside the CURVE keys.
    public var signingKeyPath: String?

    public init(bind: [String], dataDirectory: String) {
        self.bind = bind
        self.dataDirectory = dataDirectory
    }
}

/// Counters of a coordinator's own work, for benchmarks and operators.
public struct CoordinatorStatistics: Sendable {
    public var bytesReceived = 0
    public var bytesSent = 0
    public var assignmentsSent = 0
    public var resultsAccepted = 0
    /// CPU time of the coordinator's thread.
    public var cpuSeconds = 0.0
    /// Turns of the loop completed: statistics read after a later turn include all that an
    /// earlier one handled.
    public var turns = 0
    /// From the moment a shard could go to a worker (it was released and the worker had asked
    /// for work, whichever came later) to its sending: the coordinator's assignment latency.
    public var assignmentLatency = LatencyHistogram()
    /// Per kind of shard ("text", "denoise", "decode"): assignments sent and results accepted,
    /// and the payload bytes each way.
    public var traffic: [String: ShardTraffic] = [:]
}

/// One kind of shard's traffic.
public struct ShardTraffic: Sendable, Equatable, Encodable {
    public var assigned = 0, accepted = 0
    public var payloadBytesSent = 0, payloadBytesReceived = 0

    /// This minus `earlier`: the traffic between two readings.
    public func since(_ earlier: ShardTraffic?) -> ShardTraffic {
        guard let earlier else { return self }
        return ShardTraffic(assigned: assigned - earlier.assigned, accepted: accepted - earlier.accepted,
                            payloadBytesSent: payloadBytesSent - earlier.payloadBytesSent,
                            payloadBytesReceived: payloadBytesReceived - earlier.payloadBytesReceived)
    }
}

extension Reel_V1_ShardKind {
    /// How operators and benchmarks name it.
    public var name: String {
        switch self {
        case .text: return "text"
        case .decode: return "decode"
        case .encode: return "encode"
        case .denoise, .UNRECOGNIZED: return "denoise"
        }
    }
}
