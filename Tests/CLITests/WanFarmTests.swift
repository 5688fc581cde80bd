import Coordinator
import Foundation
import Media
import TestSupport
import Testing
import Wire

/// A latent model on a farm of processes: text, denoising and decoding shards on workers holding
/// those parts, with the tiny parity-checked Wan model.
@Suite(.serialized) struct WanFarmTests {
    /// 117 frames: 30 latent frames, two chunks of the family's 21-frame window, two decode pieces.
    static let job = ["a cat walks along a wall", "--model", "wan-tiny", "--size", "64x64", "--frames", "117", "--steps", "3", "--seed", "3"]

    /// The same job rendered in-process by `reel render`: the bytes every farm must give.
    static func reference(in directory: String) throws -> VideoDigest {
        let local = try ReelCommand.run(["render"] + job + ["-o", "local.mp4"], in: directory)
        #expect(local.status == 0, "\(local.stderr)")
        return try ReelCommand.video("\(directory)/local.mp4")
    }

    /// Waits until `process` has exited.
    static func waitForExit(_ process: Process, _ name: String, timeout: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            guard Date() < deadline else { throw TestFailure("\(name) is still running after \(timeout) s") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    @Test func workersHoldingDifferentPartsRenderTheBytesOfReelRender() throws {
        let farm = try ProcessFarm()
        defer { farm.stop() }
        try farm.startWorker("text-vae", extra: ["--model", "wan-tiny", "--parts", "text,vae"])
        try farm.startWorker("dit-1", extra: ["--model", "wan-tiny", "--parts", "dit"])
        try farm.startWorker("dit-2", extra: ["--model", "wan-tiny", "--parts", "dit"])
        try farm.waitForWorkers(3)
        let three = try FarmTests.render(on: farm, Self.job, name: "three")
        let id = try #require(farm.client(["status"]).stdout.split(separator: "\n").dropFirst().first?.tableCells.first)
        let status = try farm.status(String(id))
        #expect(status.promptsTotal == 2 && status.promptsEncoded == 2 && status.piecesTotal == 2 && status.piecesDecoded == 2)
        #expect(three.regions == "2x1" && status.shardsTotal == 2 * 3 + 2 + 2 && status.resultsAccepted == status.shardsTotal)
        let row = try farm.client(["status", String(id)]).stdout.split(separator: "\n").last?.tableCells ?? []
        #expect(row.count == 7 && row[2] == "3/3", "the job's own steps, not a sum over its two chunks: \(row)")
        let shards = try farm.client(["workers"]).stdout.split(separator: "\n").dropFirst().map { row -> (String, Int) in
            let cells = row.tableCells
            return (cells.first ?? "", cells.dropFirst(6).first.flatMap { Int($0) } ?? 0)
        }
        #expect(Dictionary(uniqueKeysWithValues: shards)["text-vae"] == 4, "two prompts and two pieces: \(shards)")
        #expect(shards.allSatisfy { $0.1 > 0 }, "every worker took shards of its part: \(shards)")
        farm.stop()

        let one = try ProcessFarm()
        defer { one.stop() }
        try one.startWorker("all-parts", extra: ["--model", "wan-tiny"])
        try one.waitForWorkers(1)
        let alone = try FarmTests.render(on: one, Self.job, name: "one")
        #expect(three.digest == alone.digest && three.video == alone.video, "one worker and three give the same bytes")
        #expect(three.video == (try Self.reference(in: one.directory)), "and so does reel render in-process")
        let frames = try VideoDecoder.read("\(one.directory)/one.mp4").video
        #expect(frames.frameCount == 117 && frames.width == 64)
    }

    /// A re-render: the coordinator sends the input's frames to a VAE worker to encode, then
    /// denoises from them; the bytes are those of `reel render --input`.
    @Test func aReRenderEncodesItsInputOnAVAEWorker() throws {
        let farm = try ProcessFarm()
        defer { farm.stop() }
        let source = try ReelCommand.run(["render", "a cat walks along a wall", "--model", "wan-tiny", "--size", "64x64", "--frames", "33",
                                          "--steps", "2", "-o", "source.mp4"], in: farm.directory)
        #expect(source.status == 0, "\(source.stderr)")
        try farm.startWorker("text-vae", extra: ["--model", "wan-tiny", "--parts", "text,vae"])
        try farm.startWorker("dit", extra: ["--model", "wan-tiny", "--parts", "dit"])
        try farm.waitForWorkers(2)
        let job = ["a cat walks in the rain", "--model", "wan-tiny", "--size", "64x64", "--input", "source.mp4", "--strength", "0.5", "--steps", "4"]
        let submitted = try farm.client(["submit"] + job + ["--wait", "-o", "farm.mp4"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let id = String(submitted.stdout.split(separator: "\n").first ?? "")
        let status = try farm.status(id)
        #expect(status.shardsTotal == 2 + 1 + 2 + 1, "two prompts, the input, two steps of one region, one piece: \(status)")
        let local = try ReelCommand.run(["render"] + job + ["-o", "local.mp4"], in: farm.directory)
        #expect(local.status == 0 && local.stderr.contains("from source.mp4 at strength 0.5"), "\(local.stderr)")
        #expect(try ReelCommand.video("\(farm.directory)/farm.mp4")
                == ReelCommand.video("\(farm.directory)/local.mp4"))
    }

    @Test func aShardWaitsForAWorkerHoldingItsPartAndSaysWhich() throws {
        let farm = try ProcessFarm()
        defer { farm.stop() }
        try farm.startWorker("dit", extra: ["--model", "wan-tiny", "--parts", "dit"])
        try farm.waitForWorkers(1)
        let submitted = try farm.client(["submit"] + Self.job)
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let waiting = try farm.status(id).waiting
        #expect(waiting.contains("no connected worker holds the text encoder of 'wan-tiny'") && waiting.contains("--parts text"), "\(waiting)")
        // `reel workers --json`, reached as HOST:PORT without tcp://: one status a line, the parts held in it.
        let listed = try ReelCommand.run(["workers", "--json", "--coordinator", String(farm.endpoint.dropFirst("tcp://".count)), "--insecure"],
                                         in: farm.directory)
        #expect(listed.status == 0, "\(listed.stderr)")
        let workers = try listed.stdout.split(separator: "\n").map { try Reel_V1_WorkerStatus(jsonString: String($0)) }
        #expect(workers.map(\.workerID) == ["dit"] && workers.first?.parts == ["dit"])
        try farm.startWorker("text", extra: ["--model", "wan-tiny", "--parts", "text"])
        try waitUntil("the prompts are encoded and the job waits for a VAE", timeout: 60) {
            try farm.status(id).waiting.contains("holds the VAE of 'wan-tiny'")
        }
        try farm.startWorker("vae", extra: ["--model", "wan-tiny", "--parts", "vae"])
        let watched = try ReelCommand.run(["watch", id, "--coordinator", farm.endpoint, "--insecure"], in: farm.directory, wrapper: ["timeout", "60"])
        #expect(watched.status == 0, "\(watched.stderr)")
    }

    /// Each doomed worker is the only one holding its part and kills itself (SIGKILL) holding its
    /// first shard of that part; a healthy one joins once it is gone.
    @Test func aWorkerKilledMidShardOfEveryKindLosesNothing() throws {
        let farm = try ProcessFarm()
        defer { farm.stop() }
        var doomed: [(part: String, process: Process)] = []
        for part in ["text", "dit", "vae"] {
            doomed.append((part, try farm.startWorker("doomed-\(part)", extra: ["--model", "wan-tiny", "--parts", part],
                                                      environment: ["REEL_CRASH_MID_SHARD": part])))
        }
        try farm.waitForWorkers(3)
        let submitted = try farm.client(["submit"] + Self.job)
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        for (part, process) in doomed {
            try Self.waitForExit(process, "the doomed \(part) worker")
            try farm.startWorker("healthy-\(part)", extra: ["--model", "wan-tiny", "--parts", part])
        }
        let watched = try ReelCommand.run(["watch", id, "--coordinator", farm.endpoint, "--insecure"], in: farm.directory, wrapper: ["timeout", "120"])
        #expect(watched.status == 0, "\(watched.stderr)")
        let log = farm.log(farm.coordinatorLog)
        for part in ["text", "dit", "vae"] {
            #expect(log.contains("worker doomed-\(part) removed"), "the \(part) worker was found dead")
        }
        #expect(log.components(separatedBy: "requeued region").count - 1 >= 3, "a shard of each kind requeued")
        #expect(try farm.client(["fetch", id, "-o", "farm.mp4"]).status == 0)
        #expect(try ReelCommand.video("\(farm.directory)/farm.mp4") == (try Self.reference(in: farm.directory)))
    }

    /// The coordinator is killed (kill -9) once every region is denoised and the decoding waits
    /// for a VAE worker; after a restart it decodes from its checkpoint, without denoising again.
    @Test func aCoordinatorKilledMidDecodeResumesWithTheSameBytes() throws {
        let farm = try ProcessFarm()
        defer { farm.stop() }
        try farm.startWorker("text-dit", extra: ["--model", "wan-tiny", "--parts", "text,dit"])
        let doomed = try farm.startWorker("doomed-vae", extra: ["--model", "wan-tiny", "--parts", "vae"],
                                          environment: ["REEL_CRASH_MID_SHARD": "vae"])
        try farm.waitForWorkers(2)
        let submitted = try farm.client(["submit"] + Self.job)
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.waitForExit(doomed, "the doomed VAE worker")
        try waitUntil("the checkpoint holds every region at its last step", timeout: 30) {
            let checkpoint = try? CheckpointFile.read("\(farm.directory)/data/jobs/\(id).checkpoint")
            return checkpoint?.progress == [3, 3]
        }
        try farm.restartCoordinator()
        try farm.startWorker("vae", extra: ["--model", "wan-tiny", "--parts", "vae"])
        let watched = try ReelCommand.run(["watch", id, "--coordinator", farm.endpoint, "--insecure"], in: farm.directory, wrapper: ["timeout", "120"])
        #expect(watched.status == 0, "\(watched.stderr)")
        let resumed = farm.log(farm.coordinatorLog)
        #expect(resumed.contains("job \(id) resumes at 6/6 region steps"), "\(resumed)")
        #expect(try farm.client(["fetch", id, "-o", "farm.mp4"]).status == 0)
        #expect(try ReelCommand.video("\(farm.directory)/farm.mp4") == (try Self.reference(in: farm.directory)))
    }
}
