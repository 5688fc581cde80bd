import Coordinator
import Diffusion
import Foundation
import Logging
import Planning
import Wire

/// The `coordinator` fuzz target's world: a real coordinator on its own thread, serving a real
/// job, with a worker socket that holds one of the job's shards. Each input becomes one message
/// from that worker, mostly a result built from the shard it holds with fields and payloads
/// overwritten by the input, so the fuzzer reaches the checks behind a valid attempt id, not
/// only the decoders. A status round trip on the same socket after each message makes sure the
/// coordinator has handled it before the next input.
final class LiveCoordinator: @unchecked Sendable {
    /// Made at the first input; libFuzzer calls the target from one thread.
    static let shared = try! LiveCoordinator()

    let context: ZMQContext
    let coordinator: CoordinatorServer
    let worker: ZMQSocket
    let client: FarmClient
    let model: String
    /// The shard the worker socket holds: its assignment and its latent's size in bytes. (The
    /// size, not the bytes: Data kept across inputs reads as a leak to LeakSanitizer, which
    /// cannot follow the tagged references Swift stores it behind.)
    var held: (assignment: Reel_V1_ShardAssignment, latentBytes: Int)?
    var job = ""

    init() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .critical  // millions of refusals are the point, not news
            return handler
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("reel-fuzz-\(getpid())").path
        model = "\(root)/model"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try encoder.encode(FuzzTarget.model).write(to: URL(fileURLWithPath: "\(model)/config.json"))
        try "<start>\na\nred\ncircle\nmoving\nleft".write(toFile: "\(model)/vocab.txt", atomically: true, encoding: .utf8)
        context = try ZMQContext()
        var options = CoordinatorOptions(bind: ["inproc://reel-fuzz"], dataDirectory: "\(root)/data")
        options.modelPathsAllowed = true
        options.checkpointInterval = 0  // every accepted result is checkpointed: that path is fuzzed too
        coordinator = try CoordinatorServer(options: options, context: context)
        Thread { [coordinator] in try? coordinator.run() }.start()
        client = try FarmClient(context: context, endpoint: "inproc://reel-fuzz")
        worker = try ZMQSocket(context, .dealer)
        try worker.setReceiveTimeout(milliseconds: 5000)
        try worker.connect("inproc://reel-fuzz")
        try join()
    }

    func send(_ kind: MessageKind, _ message: any SwiftProtobufMessage, payloads: [Data] = []) throws {
        try worker.send(Envelope(kind, message, payloads: payloads).frames)
    }

    func join() throws {
        try send(.hello, Reel_V1_WorkerHello.with {
            $0.protocolVersion = Envelope.protocolVersion
            $0.workerID = "fuzz"
            $0.models = [model]
        })
        try send(.ready, Reel_V1_Ready.with { $0.credits = 1 })
    }

    /// A running job with many steps, so that it outlives many inputs.
    func ensureJob() throws {
        if !job.isEmpty, try client.status(job).first?.state == .running { return }
        if !job.isEmpty { _ = try? client.cancel(job) }
        job = try client.submit(.with {
            $0.prompt = "a red circle moving left"; $0.model = model; $0.frames = 16; $0.width = 64; $0.height = 64; $0.steps = 1000
        })
        held = nil
    }

    /// Handles one input, then waits until the coordinator has answered a status request sent
    /// after it on the same socket, reading what else came meanwhile.
    func run(_ data: Data) throws {
        try ensureJob()
        if held == nil { try send(.ready, Reel_V1_Ready.with { $0.credits = 1 }) }
        try roundTrip()
        if let first = data.first, first & 1 == 0, let (assignment, latentBytes) = held {
            let (header, payloads) = result(assignment, Data(count: latentBytes), Data(data.dropFirst()))
            try send(.result, header, payloads: payloads)
        } else {
            try worker.send(FuzzTarget.frames(Data(data.dropFirst())))
        }
        try roundTrip()
    }

    /// A result for the held shard: the input's first byte says how long a protobuf patch is
    /// (merged over the honest header), then the latent payload; an empty payload stands for
    /// the right-sized latent the worker was given.
    func result(_ assignment: Reel_V1_ShardAssignment, _ latent: Data, _ data: Data) -> (Reel_V1_ShardResult, [Data]) {
        var result = Reel_V1_ShardResult(answering: assignment)
        let patchLength = min(Int(data.first ?? 0), max(0, data.count - 1))
        let patch = data.dropFirst().prefix(patchLength)
        try? result.merge(serializedBytes: patch)
        let payload = data.dropFirst(1 + patchLength)
        return (result, [payload.isEmpty ? latent : Data(payload), Data()])
    }

    /// Sends a status request and reads until its reply, keeping any assignment and saying hello
    /// again when the coordinator no longer knows this worker.
    func roundTrip() throws {
        try send(.status, Reel_V1_StatusRequest.with { $0.jobID = job })
        while true {
            guard let envelope = try? Envelope(frames: worker.receive()) else { continue }
            switch envelope.kind {
            case .assignment:
                held = (try envelope.decode(Reel_V1_ShardAssignment.self), envelope.payloads[0].count)
            case .disconnect:
                held = nil
                try join()
            case .statusReply, .error:
                return
            default:
                continue
            }
        }
    }
}
