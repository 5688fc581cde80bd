import Coordinator
import Diffusion
import Foundation
import Media
import Planning
import TestSupport
import Testing
import Wire
import Worker

/// A real coordinator over real sockets (TCP on loopback, in this process) with honest workers
/// and a scripted hostile one that speaks the protocol by hand: every attack costs at most the
/// attacker's own shards, the coordinator keeps serving, and honest jobs end with the bits of a
/// clean run. `make faults` runs this suite.
@Suite(.serialized) struct HostilePeerTests {
    /// A coordinator on a loopback port; workers and clients started on demand, all stopped at
    /// the end.
    final class Farm {
        let context: ZMQContext
        let coordinator: CoordinatorServer
        let model: String
        let data: String
        private var workers: [WorkerService] = []
        private let threads = TestThreads()

        init(model: String? = nil, data: String = TestModels.temporaryPath("data"), security: SocketSecurity = .plaintext,
             configure: (inout CoordinatorOptions) -> Void = { _ in }) throws {
            context = try ZMQContext()
            self.model = try model ?? TestModels.makePackage().directory
            self.data = data
            var options = CoordinatorOptions(bind: ["tcp://127.0.0.1:*"], dataDirectory: data)
            options.modelPathsAllowed = true
            options.heartbeatInterval = 0.2
            options.maxMessageBytes = 1 << 20
            options.security = security
            configure(&options)
            coordinator = try CoordinatorServer(options: options, context: context)
            run { [coordinator] in try coordinator.run() }
        }

        var endpoint: String { coordinator.endpoints[0] }

        /// An honest worker whose computation scales the latent: cheap, and not the identity,
        /// so a result that skipped it would show in the digest.
        func startHonestWorker(_ id: String, security: SocketSecurity = .plaintext) {
            var options = WorkerOptions(endpoint: endpoint, workerID: id, threads: 1)
            options.heartbeatInterval = 0.2
            options.security = security
            let worker = WorkerService(options: options, context: context, library: ModelLibrary(names: [model])) { work, _, _, _ in
                (Tensor(shape: work.latent.shape, scalars: work.latent.scalars.map { $0 * 0.75 }), work.state)
            }
            workers.append(worker)
            run { try worker.run() }
        }

        func client(timeout: Double = 10, security: SocketSecurity = .plaintext) throws -> FarmClient {
            try FarmClient(context: context, endpoint: endpoint, timeoutSeconds: timeout, security: security)
        }

        func spec(frames: UInt32 = 4, steps: UInt32 = 2, seed: UInt64 = 5) -> Reel_V1_JobSpec {
            var spec = Reel_V1_JobSpec()
            spec.prompt = "a red circle moving left"
            spec.model = model
            spec.frames = frames
            spec.steps = steps
            spec.seed = seed
            return spec
        }

        private func run(_ body: @escaping @Sendable () throws -> Void) { threads.run(body) }

        deinit {
            for worker in workers { worker.stop() }
            coordinator.stop()
            threads.wait()
        }
    }

    /// A worker written by hand: it says hello, asks for credits, and answers as a script says.
    final class ScriptedWorker {
        let socket: ZMQSocket

        init(_ farm: Farm, id: String, credits: UInt32 = 1, security: SocketSecurity = .plaintext,
             weights: [Reel_V1_ModelWeights] = []) throws {
            socket = try ZMQSocket(farm.context, .dealer)
            try socket.secure(security)
            try socket.connect(farm.endpoint)
            try send(.hello, Reel_V1_WorkerHello.with {
                $0.protocolVersion = Envelope.protocolVersion
                $0.workerID = id
                $0.models = [farm.model]
                $0.threads = 1
                $0.modelWeights = weights
            })
            try ready(credits)
        }

        func send(_ kind: MessageKind, _ message: any SwiftProtobufMessage, payloads: [Data] = []) throws {
            try socket.send(Envelope(kind, message, payloads: payloads).frames)
        }

        func ready(_ credits: UInt32) throws { try send(.ready, Reel_V1_Ready.with { $0.credits = credits }) }

        /// Asks for status on the same socket and waits for the answer: everything sent before
        /// it has been handled by then (a plaintext peer may ask).
        func roundTrip() throws {
            try send(.status, Reel_V1_StatusRequest())
            while try ZMQSocket.poll([socket], milliseconds: 10_000) == [0] {
                if try Envelope(frames: socket.receive()).kind == .statusReply { return }
            }
            throw TestFailure("no status reply")
        }

        /// The next assignment within `seconds` (heartbeats are answered meanwhile), or nil.
        func assignment(within seconds: Double = 10) throws -> (header: Reel_V1_ShardAssignment, latent: Data)? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                guard try ZMQSocket.poll([socket], milliseconds: 50) == [0] else { continue }
                let envelope = try Envelope(frames: socket.receive())
                if envelope.kind == .heartbeat { try send(.heartbeat, Reel_V1_Heartbeat()) }
                if envelope.kind == .assignment { return (try envelope.decode(Reel_V1_ShardAssignment.self), envelope.payloads[0]) }
            }
            return nil
        }

    }

    static func floats(_ values: [Float]) -> Data { LatentCodec.encode(values) }

    /// The latent digest of a job with `spec`, rendered by one honest worker alone.
    static func cleanDigest(_ spec: (Farm) -> Reel_V1_JobSpec) throws -> String {
        let farm = try Farm()
        farm.startHonestWorker("clean")
        let client = try farm.client()
        let id = try client.submit(spec(farm))
        let status = try client.wait(for: id, interval: 0.02)
        #expect(status.state == .done, "\(status.error)")
        return status.latentDigest
    }

    /// Every kind of poisoned result a compromised worker can send for a shard it holds is a
    /// failed attempt of that worker: none traps the coordinator, none reaches a checkpoint,
    /// and the job ends with the clean run's bits once an honest worker takes over.
    @Test func poisonedResultsAreFailedAttemptsOfTheirWorkerAndNeverReachTheJob() throws {
        let clean = try Self.cleanDigest { $0.spec() }
        let farm = try Farm { $0.maxShardAttempts = 100; $0.failuresBeforeBlocking = 100 }
        let mallory = try ScriptedWorker(farm, id: "mallory")
        try waitUntil("mallory joins") { farm.coordinator.snapshot.workers.count == 1 }
        let client = try farm.client()
        let id = try client.submit(farm.spec())

        let attacks: [(String, (Reel_V1_ShardAssignment, Int) -> (Reel_V1_ShardResult, [Data]))] = [
            ("NaN latents", { a, n in (Reel_V1_ShardResult(answering: a), [Self.floats([Float](repeating: .nan, count: n)), Data()]) }),
            ("an infinite sampler state", { a, n in
                var r = Reel_V1_ShardResult(answering: a); r.carriesState = true
                return (r, [Self.floats([Float](repeating: 0, count: n)), Self.floats([Float](repeating: .infinity, count: n))]) }),
            ("step_begin > step_end", { a, n in
                var r = Reel_V1_ShardResult(answering: a); r.stepBegin = 9; r.stepEnd = 1
                return (r, [Self.floats([Float](repeating: 0, count: n)), Data()]) }),
            ("a shape of 4 x 0xFFFFFFFF", { a, n in
                var r = Reel_V1_ShardResult(answering: a); r.shape = Reel_V1_LatentShape(frames: 4, channels: 0xFFFF_FFFF, rows: 0xFFFF_FFFF, columns: 0xFFFF_FFFF)
                return (r, [Self.floats([Float](repeating: 0, count: n)), Data()]) }),
            ("a latent shorter than its shape", { a, n in (Reel_V1_ShardResult(answering: a), [Self.floats([Float](repeating: 0, count: n - 1)), Data()]) }),
            ("another job's id", { a, n in
                var r = Reel_V1_ShardResult(answering: a); r.jobID = "jdeadbeef"
                return (r, [Self.floats([Float](repeating: 0, count: n)), Data()]) }),
            ("another region", { a, n in
                var r = Reel_V1_ShardResult(answering: a); r.region = a.region + 7
                return (r, [Self.floats([Float](repeating: 0, count: n)), Data()]) }),
            ("a forged failure", { a, _ in
                var r = Reel_V1_ShardResult(answering: a); r.error = String(repeating: "x", count: 100_000)
                return (r, [Data(), Data()]) }),
        ]
        var attempts: [UInt64] = []
        for (name, attack) in attacks {
            let (assignment, latent) = try #require(try mallory.assignment(), "mallory is handed the shard again before \(name)")
            attempts.append(assignment.attempt)
            let (result, payloads) = attack(assignment, latent.count / 4)
            try mallory.send(.result, result, payloads: payloads)
            try mallory.ready(1)
            let status = try #require(try client.status(id).first, "the coordinator still answers after \(name)")
            #expect(status.state == .running, "after \(name): \(status.error)")
        }
        #expect(Set(attempts).count == attempts.count, "every retry under a new attempt id")
        #expect(attempts.allSatisfy { $0 > UInt64(1) << 40 }, "attempt ids are not small counters: \(attempts)")

        // Mallory now answers a shard it no longer holds, correctly shaped: dropped, not counted.
        let (held, latent) = try #require(try mallory.assignment())
        var replay = Reel_V1_ShardResult(answering: held)
        replay.attempt = attempts[0]
        try mallory.send(.result, replay, payloads: [latent, Data()])
        var forged = Reel_V1_ShardResult(answering: held)
        forged.attempt = held.attempt &+ 1
        forged.error = "forged failure of an attempt it does not hold"
        try mallory.send(.result, forged, payloads: [Data(), Data()])
        try mallory.roundTrip()  // both handled before mallory leaves
        // Mallory leaves holding a shard; an honest worker finishes the job.
        try mallory.send(.disconnect, Reel_V1_Disconnect.with { $0.reason = "done attacking" })
        farm.startHonestWorker("honest")
        let done = try client.wait(for: id, interval: 0.02)
        #expect(done.state == .done, "\(done.error)")
        #expect(done.latentDigest == clean, "the same bits as a clean run")
        try waitUntil("the done job's checkpoint is removed", timeout: 5) {
            try FileManager.default.contentsOfDirectory(atPath: "\(farm.data)/jobs").allSatisfy { !$0.hasSuffix(".checkpoint") }
        }
        print("hostile results: \(attacks.count) poisoned answers each a failed attempt of their worker, a replayed and a forged one dropped; the job ended with the clean run's digest")
    }

    /// A worker that learns another's attempt (here the test tells it) and answers that shard
    /// first is ignored: its result is dropped unread, and the shard's own worker's result is
    /// accepted, not dropped as stale. A forged failure of the other's attempt fails nothing.
    @Test func aResultOrFailureForAnotherWorkersShardIsDropped() throws {
        let farm = try Farm()
        let alice = try ScriptedWorker(farm, id: "alice"), mallory = try ScriptedWorker(farm, id: "mallory")
        try waitUntil("both join") { farm.coordinator.snapshot.workers.count == 2 }
        let client = try farm.client()
        let id = try client.submit(farm.spec(frames: 16, steps: 1))
        let (aliceShard, latent) = try #require(try alice.assignment())
        _ = try #require(try mallory.assignment())
        var forgedFailure = Reel_V1_ShardResult(answering: aliceShard)
        forgedFailure.error = "forged"
        try mallory.send(.result, forgedFailure, payloads: [Data(), Data()])
        try mallory.send(.result, Reel_V1_ShardResult(answering: aliceShard), payloads: [latent, Data()])
        try mallory.roundTrip()  // the coordinator has handled both by the time it answers this
        // Statistics are published at the end of a turn: one ended after the answer counts both.
        let turns = farm.coordinator.statistics.turns
        try waitUntil("a turn after the answer ends") { farm.coordinator.statistics.turns > turns }
        #expect(farm.coordinator.statistics.resultsAccepted == 0, "mallory's result for alice's shard was not taken")
        try alice.send(.result, Reel_V1_ShardResult(answering: aliceShard), payloads: [latent, Data()])
        try waitUntil("alice's own result is accepted") { farm.coordinator.statistics.resultsAccepted == 1 }
        let status = try #require(try client.status(id).first)
        #expect(status.state == .running && status.error.isEmpty, "\(status)")
    }

    /// A worker that asks for a thousand shards gets the coordinator's cap, and when it vanishes
    /// every shard it held goes back: the job does not hang.
    @Test func aWorkerAskingForAThousandShardsGetsTheCapAndLosesNothingWhenItVanishes() throws {
        let clean = try Self.cleanDigest { $0.spec(frames: 16, steps: 2) }
        let farm = try Farm()
        var greedy: ScriptedWorker? = try ScriptedWorker(farm, id: "greedy", credits: 1000)
        try waitUntil("greedy joins") { farm.coordinator.snapshot.workers.count == 1 }
        let client = try farm.client()
        let id = try client.submit(farm.spec(frames: 16, steps: 2))
        var taken = 0
        while try greedy!.assignment(within: taken < CoordinatorOptions.defaultMaxShardsPerWorker ? 10 : 1) != nil { taken += 1 }
        #expect(taken == CoordinatorOptions.defaultMaxShardsPerWorker, "it holds the cap, not a thousand")
        let listed = try #require(try client.workers().first)
        #expect(listed.shardCap == UInt32(CoordinatorOptions.defaultMaxShardsPerWorker) && listed.shardsHeld == UInt32(taken),
                "`reel workers` shows the cap and what it holds: \(listed)")
        // Gone without a word: its shards come back once it has been silent for its liveness.
        greedy = nil
        farm.startHonestWorker("honest")
        let done = try client.wait(for: id, interval: 0.02)
        #expect(done.state == .done && done.latentDigest == clean, "\(done.error)")
        print("greedy worker: asked for 1000 shards, held \(taken); all requeued when it vanished; the job finished with the clean digest")
    }

    /// Numbers a client may send that overflow, sizes past the limits and input files that name
    /// other files: each is refused with the field named, and the coordinator keeps serving.
    @Test func hostileSubmissionsAreRefusedAndTheCoordinatorKeepsServing() throws {
        let farm = try Farm()
        let client = try farm.client()
        func refusal(_ edit: (inout Reel_V1_JobSpec) -> Void, input: Data = Data()) throws -> String {
            var spec = farm.spec()
            edit(&spec)
            do {
                _ = try client.submit(spec, input: input, attempts: 1)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        let huge = try refusal { $0.frames = 4_294_967_295; $0.width = 4_294_967_292; $0.height = 64 }
        #expect(huge.contains("frames") && huge.contains("width"), "\(huge)")
        let shots = try refusal { spec in
            spec.frames = 8
            spec.shots = (0..<3).map { _ in Reel_V1_Shot.with { $0.prompt = "a red circle"; $0.frames = 0xFFFF_FFFF } }
        }
        #expect(shots.contains("shots"), "\(shots)")
        let scale = try refusal { $0.outputScale = 0x7FFF_FFFF }
        #expect(scale.contains("output_scale"), "\(scale)")

        // An ffconcat list and an HLS playlist naming a file on the coordinator's own disk.
        let secret = "\(farm.data)/secret.mp4"
        try VideoEncoderFixture.write(to: secret)
        let concat = Data("ffconcat version 1.0\nfile '\(secret)'\n".utf8)
        let playlist = Data("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://\(secret)\n#EXT-X-ENDLIST\n".utf8)
        for (name, file) in [("ffconcat", concat), ("HLS", playlist)] {
            let refused = try refusal({ $0.withInput = true; $0.strength = 0.5 }, input: file)
            #expect(refused.contains("not a file of an accepted container"), "\(name): \(refused)")
        }
        // The same video sent as itself is read.
        let real = try Data(contentsOf: URL(fileURLWithPath: secret))
        #expect(try refusal({ $0.withInput = true; $0.strength = 0.5; $0.frames = 2 }, input: real) == "accepted")
        #expect(try client.status().count == 1, "only the honest job was taken")
        print("hostile submissions: overflowing sizes, shots and scale refused by field; ffconcat and HLS inputs refused, a real video read")
    }

    /// A message over the total size limit in many small frames is read and thrown away, and
    /// its sender dropped, before it is held whole.
    @Test func aMessageOverTheTotalLimitInManyFramesDropsItsSender() throws {
        let farm = try Farm()
        let mallory = try ScriptedWorker(farm, id: "mallory")
        try waitUntil("mallory joins") { farm.coordinator.snapshot.workers.count == 1 }
        // 12 frames of 200 kB: each under the 1 MiB frame limit, 2.4 MB in all.
        let frames = [Envelope.protocolTag, Data([MessageKind.heartbeat.rawValue]), Data()] + (0..<9).map { _ in Data(count: 200_000) }
        try mallory.socket.send(frames)
        try waitUntil("mallory is dropped") { farm.coordinator.snapshot.workers.isEmpty }
        #expect(try farm.client().status().isEmpty, "still serving")
    }

    /// A hello announcing a name longer than a line (it would name logs, metric series and
    /// stored counts) is not a worker; one of an ordinary name joins beside it.
    @Test func aHelloWithAnOverlongNameIsRefused() throws {
        let farm = try Farm()
        let long = try ScriptedWorker(farm, id: String(repeating: "m", count: CoordinatorServer.maxHelloText + 1))
        try long.roundTrip()  // its hello has been handled by the time it is answered
        #expect(farm.coordinator.snapshot.workers.isEmpty, "the overlong hello was refused")
        let honest = try ScriptedWorker(farm, id: String(repeating: "w", count: CoordinatorServer.maxHelloText))
        try honest.roundTrip()
        try waitUntil("a worker of the longest name joins") { farm.coordinator.snapshot.workers.count == 1 }
    }

    /// Weight digests a hello announces are bounded where they are read: a digest that is not
    /// 64 hexadecimal digits, or more files than the bound, and the hello is refused.
    @Test func aHelloWithUnboundedWeightDigestsIsRefused() throws {
        let farm = try Farm()
        func weights(files: Int, sha256: String) -> [Reel_V1_ModelWeights] {
            [Reel_V1_ModelWeights.with { model in
                model.model = farm.model
                model.files = (0..<files).map { index in Reel_V1_WeightFileDigest.with { $0.path = "f\(index).safetensors"; $0.sha256 = sha256 } }
            }]
        }
        let digest = String(repeating: "ab", count: 32)
        for (id, bad) in [("short", weights(files: 1, sha256: "abc")), ("many", weights(files: CoordinatorServer.maxHelloModels + 1, sha256: digest))] {
            try ScriptedWorker(farm, id: id, weights: bad).roundTrip()
        }
        #expect(farm.coordinator.snapshot.workers.isEmpty, "both hellos were refused")
        try ScriptedWorker(farm, id: "honest", weights: weights(files: CoordinatorServer.maxHelloModels, sha256: digest)).roundTrip()
        try waitUntil("a worker of bounded digests joins") { farm.coordinator.snapshot.workers.count == 1 }
    }

    /// Who may do what: a client sees, fetches and cancels only its own jobs; an admin all of
    /// them; a worker key nothing a client does; another client's job is "no job", so ids
    /// cannot be probed.
    @Test func theAuthorizationMatrixOfWorkersClientsAndAdmins() throws {
        let data = TestModels.temporaryPath("data")
        let keys = KeyDirectory(dataDirectory: data)
        let server = try keys.coordinatorKeys()
        var pairs: [String: CurveKeyPair] = [:]
        for (name, role) in [("alice", PeerRole.client), ("bob", .client), ("root", .admin), ("w1", .worker)] {
            pairs[name] = try CurveKeyPair.generate()
            try keys.enroll(pairs[name]!.publicKey, name: name, as: role)
        }
        let farm = try Farm(data: data, security: .curveServer(server))
        func client(_ name: String) throws -> FarmClient {
            try farm.client(timeout: 5, security: .curveClient(pairs[name]!, serverPublicKey: server.publicKey))
        }
        let alice = try client("alice"), bob = try client("bob"), root = try client("root"), worker = try client("w1")
        let aliceJob = try alice.submit(farm.spec(seed: 1))
        let bobJob = try bob.submit(farm.spec(seed: 2))
        func outcome(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "ok" } catch { return "\(error)" }
        }
        #expect(try alice.status().map(\.jobID) == [aliceJob], "a client lists its own jobs")
        #expect(try bob.status().map(\.jobID) == [bobJob])
        #expect(Set(try root.status().map(\.jobID)) == [aliceJob, bobJob], "an admin lists every job")
        for request in ["status", "fetch", "cancel"] {
            func run(_ who: FarmClient, _ job: String) -> String {
                switch request {
                case "status": return outcome { try who.status(job) }
                case "fetch": return outcome { try who.fetch(job) }
                default: return outcome { try who.cancel(job) }
                }
            }
            let foreign = run(bob, aliceJob)
            #expect(foreign.contains("no job \(aliceJob)"), "bob may not \(request) alice's job: \(foreign)")
            #expect(run(alice, aliceJob) == "ok", "alice may \(request) her own job")
            #expect(run(root, bobJob) == "ok", "an admin may \(request) bob's job")
            #expect(run(worker, aliceJob).contains("worker key"), "a worker key may not \(request)")
        }
        #expect(outcome { try worker.submit(farm.spec(), attempts: 1) }.contains("worker key"), "a worker key may not submit")
        #expect(outcome { try worker.workers() }.contains("worker key"), "nor list workers")
        #expect(outcome { try alice.workers() } == "ok" && outcome { try root.workers() } == "ok")
        let aliceState = try #require(try root.status(aliceJob).first).state
        #expect(aliceState == .cancelled, "alice cancelled her own job; bob's attempt changed nothing before it")
        // A client key cannot work: its hello is ignored, and it is never listed as a worker.
        let impostor = try ScriptedWorker(farm, id: "impostor", security: .curveClient(pairs["alice"]!, serverPublicKey: server.publicKey))
        try impostor.roundTrip()  // its hello has been handled (and ignored) by the time it is answered
        #expect(try root.workers().isEmpty)
        _ = impostor
        print("authorization: client/admin/worker x submit, status, list, fetch, cancel, workers as expected")
    }

    /// A coordinator restarted without its model waits with the reason shown, instead of
    /// failing the job for good; the job resumes once the model is back.
    @Test func aJobWhoseModelIsMissingAfterARestartWaitsAndResumes() throws {
        let package = try TestModels.makePackage().directory
        let data = TestModels.temporaryPath("data")
        var id = ""
        do {
            let farm = try Farm(model: package, data: data)
            id = try farm.client().submit(farm.spec())
        }
        let moved = package + "-away"
        try FileManager.default.moveItem(atPath: package, toPath: moved)
        let farm = try Farm(model: package, data: data)
        let client = try farm.client()
        let waiting = try #require(try client.status().first)
        #expect(waiting.jobID == id && waiting.state == .running && waiting.waiting.contains("is not in this coordinator's model path"),
                "\(waiting)")
        try FileManager.default.moveItem(atPath: moved, toPath: package)
        farm.startHonestWorker("w1")
        let done = try client.wait(for: id, interval: 0.05)
        #expect(done.state == .done, "\(done.error)")
        print("a job whose model went missing across a restart waited (\(waiting.waiting)) and finished once it was back")
    }
}

/// A short real video to send as an input, written by Reel's own encoder.
enum VideoEncoderFixture {
    static func write(to path: String) throws {
        let frames = 4, side = 16
        var pixels = [UInt8](repeating: 0, count: frames * side * side * 3)
        for index in pixels.indices { pixels[index] = UInt8(truncatingIfNeeded: index * 7) }
        try VideoEncoder.writeMP4(RGBVideo(width: side, height: side, pixels: pixels), options: EncodeOptions(fps: 8), to: path)
    }
}
