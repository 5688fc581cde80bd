import Coordinator
import Diffusion
import Foundation
import Planning
import Wire

/// Fuzz targets for everything a coordinator or worker decodes from the network.
///
/// Built with `-sanitize=fuzzer` (`make fuzz`), libFuzzer drives the target named by
/// $REEL_FUZZ_TARGET. Built normally, `reel-fuzz TARGET FILE…`
/// replays inputs (a crash found by the fuzzer, say) and `reel-fuzz --seeds DIR` writes a
/// seed corpus of real messages for each target.
enum FuzzTarget: String, CaseIterable {
    /// Frames as a ROUTER receives them: the envelope, then the header and payloads of its kind.
    case envelope
    /// A submission's job spec: parsed, resolved against a model's defaults, validated and planned.
    case spec
    /// A job checkpoint as a restarted coordinator reads it from its data directory.
    case checkpoint
    /// Messages from a worker holding a shard of a live job, to a real coordinator
    /// (`LiveCoordinator`): the first byte's low bit picks a result for that shard with fields
    /// and payload from the input, or any frames at all.
    case coordinator
    /// A model's safetensors file (weights are files from elsewhere, as hostile as the network):
    /// the header parsed, every tensor read as floats and as integers.
    case safetensors

    func run(_ data: Data) {
        switch self {
        case .envelope: Self.envelope(data)
        case .spec: Self.spec(data)
        case .checkpoint: _ = try? CheckpointFile.decode(data)
        case .coordinator:
            do { try LiveCoordinator.shared.run(data) } catch { fatalError("the live coordinator stopped answering: \(error)") }
        case .safetensors: Self.safetensors(data)
        }
    }

    static let safetensorsPath = FileManager.default.temporaryDirectory.appendingPathComponent("reel-fuzz-\(getpid()).safetensors").path

    static func safetensors(_ data: Data) {
        guard (try? data.write(to: URL(fileURLWithPath: safetensorsPath))) != nil,
              let file = try? SafeTensorsFile(path: safetensorsPath) else { return }
        for name in file.names {
            _ = try? file.tensor(name)
            _ = try? file.integers(name)
        }
    }

    /// Splits `data` into frames: each is a one-byte length (×4 when the top bit is set)
    /// and that many bytes; what is left is the last frame.
    static func frames(_ data: Data) -> [Data] {
        var frames: [Data] = [], index = data.startIndex
        while index < data.endIndex, frames.count < 8 {
            let byte = Int(data[index])
            let length = byte & 0x80 != 0 ? (byte & 0x7f) * 64 : byte
            index += 1
            let end = min(data.endIndex, index + length)
            frames.append(data[index..<end])
            index = end
        }
        if index < data.endIndex { frames.append(data[index...]) }
        return frames
    }

    static func envelope(_ data: Data) {
        guard let envelope = try? Envelope(frames: frames(data)) else { return }
        switch envelope.kind {
        case .hello: _ = try? envelope.decode(Reel_V1_WorkerHello.self)
        case .ready: _ = try? envelope.decode(Reel_V1_Ready.self)
        case .heartbeat: _ = try? envelope.decode(Reel_V1_Heartbeat.self)
        case .disconnect: _ = try? envelope.decode(Reel_V1_Disconnect.self)
        case .assignment:
            if let message = try? envelope.decode(Reel_V1_ShardAssignment.self), let count = message.shape.count {
                _ = try? LatentCodec.decode(envelope.payloads[0], count: count)
            }
        case .result:
            if let message = try? envelope.decode(Reel_V1_ShardResult.self), let count = message.shape.count {
                _ = try? LatentCodec.decode(envelope.payloads[0], count: count)
            }
        case .submit: if let message = try? envelope.decode(Reel_V1_SubmitRequest.self) { resolve(message.spec) }
        case .submitReply: _ = try? envelope.decode(Reel_V1_SubmitReply.self)
        case .status: _ = try? envelope.decode(Reel_V1_StatusRequest.self)
        case .statusReply: _ = try? envelope.decode(Reel_V1_StatusReply.self)
        case .cancel: _ = try? envelope.decode(Reel_V1_CancelRequest.self)
        case .cancelReply: _ = try? envelope.decode(Reel_V1_CancelReply.self)
        case .workers: _ = try? envelope.decode(Reel_V1_WorkersRequest.self)
        case .workersReply: _ = try? envelope.decode(Reel_V1_WorkersReply.self)
        case .fetch: _ = try? envelope.decode(Reel_V1_FetchRequest.self)
        case .fetchReply: _ = try? envelope.decode(Reel_V1_FetchReply.self)
        case .control: _ = try? envelope.decode(Reel_V1_ControlRequest.self)
        case .controlReply: _ = try? envelope.decode(Reel_V1_ControlReply.self)
        case .error: _ = try? envelope.decode(Reel_V1_ErrorReply.self)
        }
    }

    static func spec(_ data: Data) {
        guard let message = try? Reel_V1_JobSpec(serializedBytes: data) else { return }
        resolve(message)
    }

    static let model = ModelConfig(canvasHeight: 64, canvasWidth: 64, windowFrames: 16, fps: 8, patch: 8,
                                   width: 128, depth: 4, heads: 4, mlpRatio: 4,
                                   text: .init(width: 128, depth: 2, heads: 4, mlpRatio: 4, maxTokens: 32))

    static let vocabulary = try! Vocabulary(words: [Vocabulary.startToken, "a", "small", "red", "circle", "moving", "left", "on", "gray", "background"])

    /// What a coordinator does with a submitted spec before accepting it (an input video is
    /// the `coordinator` target's; here it is said to have 8 frames).
    static func resolve(_ message: Reel_V1_JobSpec) {
        _ = JobLimits.isPackageName(message.model)
        guard let spec = try? SpecResolver(config: model, vocabulary: vocabulary).resolve(message, inputFrames: { _, _ in 8 }).spec else { return }
        _ = RenderPlan(spec: spec, model: ModelShape(model), channels: 3).regions.count
    }

    /// Real messages of every kind, to start the fuzzer from.
    static func seeds() -> [FuzzTarget: [Data]] {
        var spec = Reel_V1_JobSpec()
        spec.prompt = "a small red circle moving left on a gray background"
        spec.model = "reel-shapes"
        spec.frames = 64; spec.width = 64; spec.height = 64; spec.steps = 30; spec.guidance = 4; spec.overlap = 4
        let envelopes = [
            Envelope(.hello, Reel_V1_WorkerHello.with { $0.protocolVersion = 1; $0.workerID = "w1"; $0.models = ["reel-shapes"] }),
            Envelope(.ready, Reel_V1_Ready.with { $0.credits = 1 }),
            Envelope(.heartbeat, Reel_V1_Heartbeat.with { $0.jobID = "j1"; $0.stepsDone = 3 }),
            Envelope(.result, Reel_V1_ShardResult.with { $0.jobID = "j1"; $0.shape = .init(frames: 1, channels: 1, rows: 2, columns: 2) },
                     payloads: [LatentCodec.encode([1, 2, 3, 4]), Data()]),
            Envelope(.submit, Reel_V1_SubmitRequest.with { $0.spec = spec; $0.idempotencyKey = "k" }, payloads: [Data()]),
            Envelope(.status, Reel_V1_StatusRequest.with { $0.jobID = "j1" }),
            Envelope(.fetch, Reel_V1_FetchRequest.with { $0.jobID = "j1" }),
        ]
        let checkpoint = JobRun.Checkpoint(progress: [2, 1], entries: [.init(region: 0, step: 2, latent: [1, 2], state: nil),
                                                                       .init(region: 1, step: 1, latent: [3, 4], state: [5, 6])])
        let nan = LatentCodec.encode([.nan, 1, 2, 3])
        let wrongSteps = try! Reel_V1_ShardResult.with { $0.stepBegin = 9; $0.stepEnd = 1 }.serializedData()
        let weights = FileManager.default.temporaryDirectory.appendingPathComponent("reel-fuzz-seed-\(getpid()).safetensors").path
        try! SafeTensorsFile.write(["w": Tensor(shape: [2, 2], scalars: [1, -2, 0.5, 3]), "b": Tensor(shape: [2], scalars: [0, 1])],
                                   metadata: ["prompt": "a fox"], dtype: .bf16, to: weights)
        let weightFile = try! Data(contentsOf: URL(fileURLWithPath: weights))
        try? FileManager.default.removeItem(atPath: weights)
        return [.envelope: envelopes.map { pack($0.frames) }, .spec: [try! spec.serializedData()],
                .safetensors: [weightFile],
                .checkpoint: [CheckpointFile.encode(checkpoint)],
                .coordinator: [Data([0, 0]), Data([0, 0]) + nan, Data([0, UInt8(wrongSteps.count)]) + wrongSteps,
                               Data([1]) + pack(envelopes[2].frames), Data([1]) + pack(envelopes[3].frames)]]
    }

    /// The inverse of `frames`, for frames short enough to have a one-byte length.
    static func pack(_ frames: [Data]) -> Data {
        var data = Data()
        for (index, frame) in frames.enumerated() {
            if index == frames.count - 1 { data.append(frame); break }
            precondition(frame.count < 128, "seed frames are short")
            data.append(UInt8(frame.count))
            data.append(frame)
        }
        return data
    }
}

#if FUZZING
// SwiftPM links an executable's entry point under the name `reel_fuzz_main` (so tests can
// link executables); here that entry point hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("reel_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc, arguments = argv
    _ = FuzzTarget.selected
    return LLVMFuzzerRunDriver(&count, &arguments) { bytes, size in
        FuzzTarget.selected.run(bytes.map { Data(bytes: $0, count: size) } ?? Data())
        return 0
    }
}

extension FuzzTarget {
    static let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["REEL_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fatalError("set REEL_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return target
    }()
}
#else
@main
struct ReelFuzz {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--seeds", arguments.count == 2 {
            for (target, inputs) in FuzzTarget.seeds() {
                let directory = "\(arguments[1])/\(target.rawValue)"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                for (index, input) in inputs.enumerated() { try input.write(to: URL(fileURLWithPath: "\(directory)/seed-\(index)")) }
            }
            return
        }
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
            print("usage: reel-fuzz TARGET FILE… | reel-fuzz --seeds DIR   (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))")
            return
        }
        for path in arguments.dropFirst() { target.run(try Data(contentsOf: URL(fileURLWithPath: path))) }
        print("replayed \(arguments.count - 1) input(s) through \(name)")
    }
}
#endif
