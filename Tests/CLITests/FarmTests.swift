import Foundation
import Media
import Provenance
import TestSupport
import Testing
import Wire

/// The farm as users run it: coordinator and workers as separate processes over TCP.
@Suite(.serialized) struct FarmTests {
    static let job = ["a blue square moving up", "--frames", "64", "--steps", "3", "--seed", "11", "--scale", "1"]

    /// Submits `job`, waits, and returns the MP4 bytes and the latent digest.
    static func render(on farm: ProcessFarm, _ job: [String] = job, name: String) throws -> (video: VideoDigest, digest: String, regions: String) {
        let submitted = try farm.client(["submit"] + job + ["--wait", "-o", "\(name).mp4"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let id = String(submitted.stdout.split(separator: "\n").first ?? "")
        let status = try farm.status(id)
        return (try ReelCommand.video("\(farm.directory)/\(name).mp4"), status.latentDigest, "\(status.chunks)x\(status.tiles)")
    }

    @Test func threeWorkerProcessesRenderTheSameBitsAsOneWorkerAndAsReelRender() throws {
        let three = try ProcessFarm()
        for index in 1...3 { try three.startWorker("w\(index)") }
        try three.waitForWorkers(3)
        let fromThree = try Self.render(on: three, name: "three")
        #expect(fromThree.regions == "7x1", "64 frames in a 16-frame window with reel-shapes's overlap of 8 are 7 chunks")
        let shardsDone = try three.client(["workers"]).stdout.split(separator: "\n").dropFirst()
            .compactMap { row in row.tableCells.dropFirst(6).first.flatMap { Int($0) } }  // the SHARDS column
        #expect(shardsDone.filter { $0 > 0 }.count >= 2, "the work was shared: \(shardsDone)")
        let listed = try three.client(["workers", "--json"]).stdout.split(separator: "\n")
            .compactMap { try? Reel_V1_WorkerStatus(jsonString: String($0)) }
        #expect(listed.count == 3 && listed.allSatisfy { $0.build == ReelVersion.build && !$0.cpuKernel.isEmpty }, "each worker names its build: \(listed.map(\.build))")
        three.stop()

        let one = try ProcessFarm()
        try one.startWorker("solo")
        try one.waitForWorkers(1)
        let fromOne = try Self.render(on: one, name: "one")
        one.stop()

        let local = try ReelCommand.run(["render"] + Self.job + ["-o", "local.mp4"], in: one.directory)
        #expect(local.status == 0, "\(local.stderr)")
        let fromRender = try ReelCommand.video("\(one.directory)/local.mp4")

        #expect(!fromThree.digest.isEmpty && fromThree.digest == fromOne.digest, "final latent digests \(fromThree.digest) vs \(fromOne.digest)")
        #expect(fromThree.video == fromOne.video && fromOne.video == fromRender, "the video streams, byte for byte")
        let frames = try VideoDecoder.read("\(three.directory)/three.mp4").video
        let localFrames = try VideoDecoder.read("\(one.directory)/local.mp4").video
        #expect(frames.frameCount == 64 && frames.pixels == localFrames.pixels)

        // The farm's file and the in-process one verify the same way, each by its signer's key:
        // the same job, model and frames; only the time and the signer differ.
        let farmKey = try ReelCommand.run(["keys", "export-signing", "--data-dir", "\(three.directory)/data"], in: three.directory)
        let localKey = try ReelCommand.run(["keys", "export-signing", "--local"], in: one.directory)
        var manifests: [Manifest] = []
        for (path, key) in [("\(three.directory)/three.mp4", farmKey.stdout), ("\(one.directory)/local.mp4", localKey.stdout)] {
            let verified = try ReelCommand.run(["verify", path, "--key", key.trimmingCharacters(in: .whitespacesAndNewlines)], in: one.directory)
            #expect(verified.status == 0 && verified.stdout.hasSuffix("verified\n"), "\(path): \(verified.stdout)\(verified.stderr)")
            manifests.append(try #require(try Verification.check(file: path, trustedKey: nil).manifest))
        }
        #expect(manifests[0].signer != manifests[1].signer)
        #expect(manifests[0].job == manifests[1].job && manifests[0].model == manifests[1].model && manifests[0].video == manifests[1].video)
    }

    @Test func aJobNoWorkerCanTakeSaysWhyUntilAWorkerOffersItsModel() throws {
        let farm = try ProcessFarm()
        defer { farm.stop() }
        try farm.startWorker("tiny-only", extra: ["--model", "reel-tiny"])
        try farm.waitForWorkers(1)
        let submitted = try farm.client(["submit", "a red circle moving left", "--model", "reel-shapes", "--frames", "16", "--steps", "1"])
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let waiting = try farm.client(["status", id]).stderr
        #expect(waiting.contains("\(id) waits: no connected worker offers model 'reel-shapes'"), "\(waiting)")

        // A worker given the package as a directory offers it by name too, and takes the job.
        try farm.startWorker("shapes", extra: ["--model", ReelCommand.packageRoot + "/models/reel-shapes"])
        let watched = try ReelCommand.run(["watch", id, "--json", "--coordinator", farm.endpoint, "--insecure"], in: farm.directory, wrapper: ["timeout", "60"])
        #expect(watched.status == 0, "\(watched.stderr)")
        // One JobStatus a line, a line when something but the clock changed, the last one done.
        let updates = watched.stdout.split(separator: "\n")
        let statuses = updates.compactMap { try? Reel_V1_JobStatus(jsonString: String($0)) }
        #expect(statuses.count == updates.count && statuses.count >= 2 && statuses.last?.state == .done, "\(watched.stdout)")
        let after = try farm.client(["status", id])
        #expect(after.stdout.contains("done") && !after.stderr.contains("waits:"), "\(after.stdout)\(after.stderr)")
        let listed = try farm.client(["workers"]).stdout.split(separator: "\n").first { $0.hasPrefix("shapes") } ?? ""
        #expect(listed.tableCells.dropFirst(3).first == "reel-shapes", "the package once, by name: \(listed)")
    }

    /// `--log-format json`: every line a daemon writes is one JSON object with its time, level,
    /// logger and message; a worker logs each shard's start and end at info.
    @Test func daemonsWriteJSONLinesForLogShippers() throws {
        let farm = try ProcessFarm(coordinatorArguments: ["--log-format", "json"])
        defer { farm.stop() }
        try farm.startWorker("j1", extra: ["--log-format", "json"])
        try farm.waitForWorkers(1)
        _ = try Self.render(on: farm, ["a red circle moving left", "--frames", "8", "--steps", "1", "--scale", "1"], name: "json")
        var messages: [String: [String]] = [:]
        for log in [farm.coordinatorLog, "j1.log"] {
            let lines = farm.log(log).split(separator: "\n")
            let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(!lines.isEmpty && objects.count == lines.count, "\(log): every line JSON: \(lines.prefix(3))")
            #expect(objects.allSatisfy { object in ["time", "level", "logger", "message"].allSatisfy { object[$0] is String } })
            messages[log] = objects.compactMap { $0["message"] as? String }
        }
        #expect(messages[farm.coordinatorLog, default: []].contains { $0.hasPrefix("worker j1 joined") }, "\(messages[farm.coordinatorLog] ?? [])")
        let worker = messages["j1.log", default: []]
        #expect(worker.contains { $0.contains(") started") } && worker.contains { $0.contains(" done in ") }, "\(worker)")
    }

    @Test func aWorkerKilledMidJobLosesNothing() throws {
        let job = ["a red circle moving left", "--frames", "40", "--steps", "24", "--seed", "4", "--scale", "1"]
        let farm = try ProcessFarm(coordinatorArguments: ["--worker-timeout", "2"])
        // The doomed worker is alone until it is seen holding a shard, so the kill always takes
        // work with it; the survivor joins afterwards and must finish the requeued region.
        let doomed = try farm.startWorker("doomed")
        try farm.waitForWorkers(1)
        let submitted = try farm.client(["submit"] + job)
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // Stopped first, while it holds a shard: a shard can end between seeing the worker busy
        // and the kill, and then the kill took no work with it.
        let silent = try FaultTests.freezeWhileBusy(farm, worker: doomed, name: "doomed", job: id)
        kill(doomed.processIdentifier, SIGKILL)
        try farm.startWorker("survivor")
        _ = try farm.waitForLog("coordinator.log", containing: "requeued region", timeout: 30)
        let requeueSeconds = Date().timeIntervalSince(silent)
        let waited = try ReelCommand.run(["watch", id, "--coordinator", farm.endpoint, "--insecure"], in: farm.directory, wrapper: ["timeout", "120"])
        #expect(waited.status == 0, "the job finished on the survivor: \(waited.stderr)")
        #expect(try farm.client(["fetch", id, "-o", "farm.mp4"]).status == 0)
        let local = try ReelCommand.run(["render"] + job + ["-o", "clean.mp4"], in: farm.directory)
        #expect(local.status == 0)
        let survived = try ReelCommand.video("\(farm.directory)/farm.mp4")
        let clean = try ReelCommand.video("\(farm.directory)/clean.mp4")
        #expect(survived == clean, "same bytes as a clean run")
        print("kill -9 of a worker holding a shard: the shard requeued \(String(format: "%.1f", requeueSeconds)) s after the worker went silent (worker timeout 2 s)")
    }

    /// A job no worker has started has no rate to guess its end from: `reel status` shows no
    /// ETA (it showed 0 s) and says on stderr what the job waits for.
    @Test func aJobNoWorkerHasStartedShowsNoETA() throws {
        let farm = try ProcessFarm()
        let submitted = try farm.client(["submit", "a red circle", "--model", "reel-tiny", "--frames", "8", "--steps", "2"])
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(submitted.status == 0 && !id.isEmpty, "\(submitted.stderr)")
        let status = try farm.client(["status", id])
        let row = status.stdout.split(separator: "\n").last?.tableCells ?? []
        #expect(row.count == 7 && row[1] == "running" && row[2] == "0/2" && row[5] == "-", "\(status.stdout)")
        #expect(status.stderr.contains("no connected worker offers model 'reel-tiny'"), "\(status.stderr)")
    }

    @Test func malformedPeersAreDroppedAndLoggedWhileTheCoordinatorKeepsServing() throws {
        // Closed connections are logged at debug: every CLI call ends with one.
        let farm = try ProcessFarm(coordinatorArguments: ["--max-message-mb", "1", "--log-level", "debug"])
        let context = try ZMQContext()
        let good = try FarmClient(context: context, endpoint: farm.endpoint, timeoutSeconds: 5)
        var wrongVersion = Reel_V1_WorkerHello()
        wrongVersion.protocolVersion = Envelope.protocolVersion + 1
        var heartbeatFrames = Envelope(.heartbeat, Reel_V1_Heartbeat()).frames
        heartbeatFrames.append(Data("extra".utf8))
        var badProtobuf = Envelope(.status, Reel_V1_StatusRequest()).frames
        badProtobuf[2] = Data([0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
        // Each attack, and what the coordinator's log says once it has dealt with it.
        let attacks: [(String, [Data], String)] = [
            ("wrong protocol tag", [Data("HTTP/1.1".utf8), Data([1]), Data()], "wrong protocol tag"),
            ("wrong frame count", heartbeatFrames, "frames; it has"),
            ("malformed protobuf", badProtobuf, "not a valid reel.v1.StatusRequest"),
            ("oversized frame", [Envelope.protocolTag, Data([MessageKind.submit.rawValue]), Data(count: 2 << 20), Data()], "closed"),
        ]
        func send(_ frames: [Data], until logged: String) throws -> ZMQSocket {
            let lines = { farm.log(farm.coordinatorLog).split(separator: "\n").count(where: { $0.contains(logged) }) }
            let before = lines()
            let peer = try ZMQSocket(context, .dealer)
            try peer.setSendTimeout(milliseconds: 10_000)  // a send that cannot connect fails, never hangs
            try peer.connect(farm.endpoint)
            try peer.send(frames)
            try waitUntil("the coordinator logs '\(logged)' once more", timeout: 10) { lines() > before }
            return peer
        }
        for (name, frames, logged) in attacks {
            _ = try send(frames, until: logged)
            #expect(try good.status().isEmpty, "still serving after a \(name)")
        }
        // A well-formed hello of another version is dropped too, but first answered: the worker
        // is told why, so it can stop rather than reconnect for ever.
        let refused = try send(Envelope(.hello, wrongVersion).frames, until: "protocol version \(Envelope.protocolVersion + 1)")
        #expect(try good.status().isEmpty, "still serving after a wrong protocol version")
        try #require(try ZMQSocket.poll([refused], milliseconds: 2000) == [0], "the refused worker is told why")
        let reply = try Envelope(frames: refused.receive())
        #expect(reply.kind == .disconnect)
        let goodbye = try reply.decode(Reel_V1_Disconnect.self)
        #expect(goodbye.reason.contains("this coordinator speaks \(Envelope.protocolVersion)") && goodbye.refused)
        let log = farm.log("coordinator.log")
        let dropped = log.split(separator: "\n").filter { $0.contains("dropping peer") }
        #expect(dropped.count == 4, "\(log)")
        #expect(log.contains("wrong protocol tag") && log.contains("protocol version \(Envelope.protocolVersion + 1)") && log.contains("frames; it has")
                && log.contains("not a valid reel.v1.StatusRequest"))
        #expect(log.contains("closed"), "the oversized frame's connection was closed and logged")
    }

    /// A worker the coordinator will not take (another protocol version) stops with a non-zero
    /// status and says why, instead of reconnecting and being refused forever. The coordinator
    /// here is a bare ROUTER socket answering the worker's hello as a coordinator of another
    /// version does.
    @Test func aRefusedWorkerStopsAndSaysWhy() throws {
        let farm = try ProcessFarm()
        let context = try ZMQContext()
        let coordinator = try ZMQSocket(context, .router)
        try coordinator.bind("tcp://127.0.0.1:*")
        let worker = try farm.startWorker("old", connect: coordinator.lastEndpoint, wrapper: ["timeout", "30"])
        try #require(try ZMQSocket.poll([coordinator], milliseconds: 15_000) == [0], "the worker says hello")
        let frames = try coordinator.receive()
        #expect(try Envelope(frames: Array(frames.dropFirst())).kind == .hello)
        let refusal = Reel_V1_Disconnect.with {
            $0.reason = "protocol version \(Envelope.protocolVersion); this coordinator speaks 99: run a worker of the coordinator's build"
            $0.refused = true
        }
        try coordinator.send([frames[0]] + Envelope(.disconnect, refusal).frames)
        worker.waitUntilExit()
        let log = farm.log("old.log")
        #expect(worker.terminationStatus == 78, "stopped by the refusal with the status systemd does not restart, not by the 30 s timeout (124): \(log)")
        #expect(log.contains("reel: error: the coordinator refused this worker: protocol version"), "\(log)")
    }
}
