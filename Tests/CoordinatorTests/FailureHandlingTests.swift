import Coordinator
import Diffusion
import Foundation
import Media
import Provenance
import TestSupport
import Testing
import Wire
import Worker

/// Retries, blocklists and stalled shards, and what a worker is handed, with a coordinator and
/// workers in this process whose computations fail, stall or record on purpose (the identity
/// stands in for denoising).
@Suite(.serialized) struct FailureHandlingTests {
    /// Counts calls from any thread.
    final class Calls: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func add() { lock.withLock { count += 1 } }
        var value: Int { lock.withLock { count } }
    }

    struct Injected: Error, CustomStringConvertible {
        var description: String { "injected failure" }
    }

    static func identity(_ calls: Calls = Calls()) -> WorkerService.Computation {
        { work, _, _, _ in calls.add(); return (work.latent, work.state) }
    }

    static func failing(_ calls: Calls) -> WorkerService.Computation {
        { _, _, _, _ in calls.add(); throw Injected() }
    }

    /// Runs without finishing a step for `seconds`, heartbeating all the while.
    static func stalling(_ calls: Calls, seconds: Double) -> WorkerService.Computation {
        { work, _, _, tick in
            calls.add()
            let until = Date().addingTimeInterval(seconds)
            while Date() < until { tick(); Thread.sleep(forTimeInterval: 0.02) }
            return (work.latent, work.state)
        }
    }

    /// A coordinator on inproc and workers started on demand, all stopped at the end.
    final class Farm {
        let context: ZMQContext
        let coordinator: CoordinatorServer
        let model: String
        let events = Recorder<CoordinatorEvent>()
        private var workers: [WorkerService] = []
        private let threads = TestThreads()

        init(shardTimeout: Double = 600) throws {
            context = try ZMQContext()
            model = try TestModels.makePackage().directory
            var options = CoordinatorOptions(bind: ["inproc://reel-failures-\(UUID().uuidString)"], dataDirectory: TestModels.temporaryPath("data"))
            options.modelPathsAllowed = true
            options.shardTimeout = shardTimeout
            options.observer = { [events] in events.append($0) }
            coordinator = try CoordinatorServer(options: options, context: context)
            run { [coordinator] in try coordinator.run() }
        }

        func startWorker(_ id: String, _ computation: @escaping WorkerService.Computation) {
            let worker = WorkerService(options: WorkerOptions(endpoint: coordinator.endpoints[0], workerID: id, threads: 1),
                                       context: context, library: ModelLibrary(names: [model]), computation: computation)
            workers.append(worker)
            run { try worker.run() }
        }

        private func run(_ body: @escaping @Sendable () throws -> Void) { threads.run(body) }

        func submit(steps: UInt32) throws -> (client: FarmClient, id: String) {
            var spec = Reel_V1_JobSpec()
            spec.prompt = "a red circle moving left"
            spec.frames = 4
            spec.steps = steps
            return try submit(spec)
        }

        func submit(_ spec: Reel_V1_JobSpec) throws -> (client: FarmClient, id: String) {
            let client = try FarmClient(context: context, endpoint: coordinator.endpoints[0])
            var spec = spec
            spec.model = model
            return (client, try client.submit(spec))
        }

        func waitForWorkers(_ count: Int) throws {
            try waitUntil("\(count) workers join") { coordinator.snapshot.workers.count >= count }
        }

        deinit {
            for worker in workers { worker.stop() }
            coordinator.stop()
            threads.wait()
        }
    }

    /// What a worker is handed for each chunk of a storyboard: its shot's prompt, and its place
    /// counted in its shot. The chunk from frame 4 opens the shot from frame 5, so its first
    /// frame arrives as -1 (the wire's field is signed for it).
    @Test func aStoryboardsShardsReachTheWorkerPlacedInTheirShots() throws {
        let farm = try Farm()
        let lock = NSLock()
        nonisolated(unsafe) var handed: [(String, WindowPlace)] = []
        farm.startWorker("recorder") { work, _, _, _ in
            lock.withLock { handed.append((work.prompt, work.place)) }
            return (work.latent, work.state)
        }
        try farm.waitForWorkers(1)
        var spec = Reel_V1_JobSpec()
        spec.steps = 1
        spec.overlap = 2  // window 4: chunks from frames 0, 2, 4, 6, 8 and 10
        spec.shots = [.with { $0.prompt = "a red circle moving left"; $0.frames = 5 },
                      .with { $0.prompt = "a blue square moving right"; $0.frames = 9 }]
        let (client, id) = try farm.submit(spec)
        #expect(try client.wait(for: id, interval: 0.02).state == .done)
        let seen = lock.withLock { handed.sorted { ($0.0, $0.1.firstFrame) < ($1.0, $1.1.firstFrame) } }
        #expect(seen.map(\.0) == Array(repeating: "a blue square moving right", count: 4) + Array(repeating: "a red circle moving left", count: 2))
        #expect(seen.map(\.1) == [-1, 1, 3, 5].map { WindowPlace(firstFrame: $0, videoFrames: 9) }
                + [0, 2].map { WindowPlace(firstFrame: $0, videoFrames: 5) })
    }

    /// Bits depend on the weights: once a job has a result, a worker announcing other weight
    /// files of its model fails its shards and is kept off the job; the manifest names the
    /// weights the accepted results were computed with.
    @Test func aWorkerWithOtherWeightsIsRefusedAndTheManifestNamesTheJobsWeights() throws {
        let farm = try Farm()
        let original = try WeightDigests.shared.weights(in: farm.model)
        let gate = DispatchSemaphore(value: 0), first = Calls()
        defer { for _ in 0..<16 { gate.signal() } }
        farm.startWorker("first") { work, _, _, _ in
            first.add()
            if first.value > 1 { gate.wait() }  // one result in, then it holds its next shard
            return (work.latent, work.state)
        }
        try farm.waitForWorkers(1)
        var spec = Reel_V1_JobSpec()
        spec.prompt = "a red circle moving left"
        spec.frames = 16
        spec.steps = 2
        let (client, id) = try farm.submit(spec)
        try waitUntil("the first result is in") { (try? client.status(id).first?.resultsAccepted) ?? 0 >= 1 }

        // The same model's file changed on disk before the second worker says hello.
        let path = "\(farm.model)/model.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(60)], ofItemAtPath: path)
        farm.startWorker("other", Self.identity())
        try waitUntil("the other worker's two results are refused") {
            farm.events.all.count { if case .shardFailed(_, _, "other", let reason) = $0 { reason.contains("other weights of") } else { false } } == 2
        }
        for _ in 0..<16 { gate.signal() }
        let status = try client.wait(for: id, interval: 0.02)
        #expect(status.state == .done, "\(status.error)")
        let video = TestModels.temporaryPath("weights.mp4")
        try client.fetch(id).video.write(to: URL(fileURLWithPath: video))
        let manifest = try Manifest.decode(Data(try #require(try ContainerMetadata.read(video)[Manifest.manifestTag]).utf8))
        #expect(manifest.model.weights == original && original.count == 1, "the first worker's weights: \(manifest.model.weights)")
    }

    @Test func aFailingWorkerIsKeptOffTheJobAfterTwoFailuresAndAnotherFinishesIt() throws {
        let farm = try Farm()
        let bad = Calls(), good = Calls()
        farm.startWorker("bad", Self.failing(bad))
        try farm.waitForWorkers(1)
        let (client, id) = try farm.submit(steps: 8)
        // Alone, the failing worker gets the first shard twice, and is then kept off the job,
        // which waits for a worker it may use.
        try waitUntil("the coordinator has taken both failures") {
            farm.events.all.count { if case .shardFailed(_, _, "bad", _) = $0 { true } else { false } } == 2
        }
        let waiting = try client.status(id).first
        #expect(waiting?.state == .running)
        #expect(waiting?.waiting.contains("failed 2 of this job's shards and is kept off it") == true, "\(waiting?.waiting ?? "")")
        farm.startWorker("good", Self.identity(good))
        let status = try client.wait(for: id, interval: 0.02)
        #expect(status.state == .done, "\(status.error)")
        #expect(status.waiting.isEmpty, "a finished job waits for nothing: \(status.waiting)")
        #expect(bad.value == 2, "the failing worker got exactly 2 shards of the job, then none: \(bad.value)")
        #expect(good.value == 8, "every shard, the two retried ones included, ran once on the good worker")
    }

    @Test func aShardThatFailsThreeTimesFailsItsJobWithTheReason() throws {
        let farm = try Farm()
        let calls = Calls()
        farm.startWorker("bad-1", Self.failing(calls))
        farm.startWorker("bad-2", Self.failing(calls))
        try farm.waitForWorkers(2)
        let (client, id) = try farm.submit(steps: 4)
        let status = try client.wait(for: id, interval: 0.02)
        #expect(status.state == .failed)
        #expect(status.error.contains("region 0 failed 3 times (on bad-1, bad-2)") && status.error.contains("injected failure"), "\(status.error)")
        #expect(calls.value == 3)
    }

    @Test func aStalledShardIsReassignedAndItsLateResultDropped() throws {
        let farm = try Farm(shardTimeout: 0.5)
        let stalled = Calls(), good = Calls()
        farm.startWorker("stuck", Self.stalling(stalled, seconds: 2))
        try farm.waitForWorkers(1)
        let (client, id) = try farm.submit(steps: 3)
        try waitUntil("the stuck worker takes a shard") { stalled.value > 0 }
        farm.startWorker("good", Self.identity(good))
        let status = try client.wait(for: id, interval: 0.02)
        #expect(status.state == .done, "\(status.error)")
        #expect(good.value >= 1, "the stalled shard went to the other worker")
        let stats = farm.coordinator.statistics
        #expect(stats.resultsAccepted == 3, "one result per shard: the stalled one's late result was dropped")
    }
}
