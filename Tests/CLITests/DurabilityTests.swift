import Foundation
import Media
import Provenance
import TestSupport
import Testing
import Wire

/// Jobs outlive their coordinator: acknowledged jobs are in SQLite, running ones checkpointed.
@Suite(.serialized) struct DurabilityTests {
    static let job = ["a green triangle moving down", "--frames", "40", "--steps", "24", "--seed", "9", "--scale", "1"]

    /// Polls `reel status` until the job has done at least `fraction` of its steps.
    static func waitForProgress(_ farm: ProcessFarm, _ id: String, fraction: Double, timeout: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let row = try farm.client(["status", id]).stdout.split(separator: "\n").last?.tableCells ?? []
            if row.count > 2 {
                let parts = row[2].split(separator: "/").compactMap { Double($0) }
                if parts.count == 2, parts[1] > 0, parts[0] / parts[1] >= fraction { return }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("job \(id) did not reach \(Int(fraction * 100)) % within \(timeout) s")
    }

    /// With --keep-finished, a finished job is listed and fetchable until that long after it
    /// ended, then forgotten with its video, across restarts; a running job is never forgotten.
    @Test func finishedJobsAreForgottenAfterKeepFinished() throws {
        // Long enough that the "still listed" check, made at once, holds on a loaded machine.
        let keep = "8s"
        let farm = try ProcessFarm(coordinatorArguments: ["--keep-finished", keep])
        let worker = try farm.startWorker("w1")
        try farm.waitForWorkers(1)
        let short = ["a red circle moving left", "--frames", "8", "--steps", "2", "--model", "reel-tiny"]
        let finished = try farm.client(["submit"] + short).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try farm.client(["watch", finished]).status == 0)
        #expect(try farm.client(["status", finished]).stdout.contains("done"), "listed until \(keep) after it ended")
        let video = "\(farm.directory)/data/jobs/\(finished).mp4"
        #expect(FileManager.default.fileExists(atPath: video))
        worker.terminate()
        worker.waitUntilExit()
        let running = try farm.client(["submit"] + short).stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        _ = try farm.waitForLog(farm.coordinatorLog, containing: "job \(finished) forgotten", timeout: 30)
        #expect(!FileManager.default.fileExists(atPath: video), "its video went with it")
        let gone = try farm.client(["status", finished])
        #expect(gone.status != 0 && gone.stderr.contains("no job \(finished)"), "\(gone.stderr)")
        #expect(try farm.client(["status", running]).stdout.contains("running"), "a running job is never forgotten")

        try farm.restartCoordinator()
        let listed = try farm.client(["status"]).stdout
        #expect(!listed.contains(finished) && listed.contains(running), "the store forgot it too:\n\(listed)")
        let bad = try ReelCommand.run(["coordinator", "--insecure", "--keep-finished", "3x"], in: farm.directory)
        #expect(bad.status != 0 && bad.stderr.contains("--keep-finished \"3x\""), "\(bad.stderr)")
        print("--keep-finished \(keep): a finished job and its video forgotten, a running one kept, across a restart")
    }

    /// `reel pause` hands out no more of a job's shards, and the pause survives a coordinator
    /// restart; `reel resume` lets it finish with the bytes of an uninterrupted render.
    /// `reel retry` submits a cancelled job again, as a new job with those bytes too. Actions
    /// a job's state does not allow are refused with the reason.
    @Test func pauseResumeAndRetryKeepTheBytes() throws {
        let farm = try ProcessFarm()
        try farm.startWorker("w1")
        try farm.waitForWorkers(1)
        let clean = try ReelCommand.run(["render"] + Self.job + ["-o", "clean.mp4"], in: farm.directory)
        #expect(clean.status == 0, "\(clean.stderr)")
        let expected = try ReelCommand.video("\(farm.directory)/clean.mp4")
        func idle() throws -> Bool {
            try farm.client(["workers", "--json"]).stdout.split(separator: "\n")
                .compactMap { try? Reel_V1_WorkerStatus(jsonString: String($0)) }.allSatisfy { $0.jobID.isEmpty && $0.shardsHeld == 0 }
        }

        let id = try farm.client(["submit"] + Self.job).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.waitForProgress(farm, id, fraction: 0.2)
        let paused = try farm.client(["pause", id])
        #expect(paused.status == 0 && paused.stdout == "job \(id) paused\n", "\(paused.stdout)\(paused.stderr)")
        try waitUntil("the worker has finished the shard it held and takes no other") { try idle() }
        #expect(try farm.status(id).waiting.contains("paused; `reel resume \(id)`"))
        try farm.restartCoordinator()
        try farm.waitForWorkers(1)
        #expect(try farm.status(id).state == .paused, "a pause survives a restart")
        #expect(try idle())
        #expect(try farm.client(["resume", id]).stdout == "job \(id) running\n")
        #expect(try farm.client(["watch", id]).status == 0)
        #expect(try farm.client(["fetch", id, "-o", "resumed.mp4"]).status == 0)
        #expect(try ReelCommand.video("\(farm.directory)/resumed.mp4") == expected)

        let cancelled = try farm.client(["submit"] + Self.job).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.waitForProgress(farm, cancelled, fraction: 0.1)
        #expect(try farm.client(["cancel", cancelled]).status == 0)
        let retry = try farm.client(["retry", cancelled])
        let again = retry.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(retry.status == 0 && !again.isEmpty && again != cancelled, "\(retry.stderr)")
        #expect(try farm.client(["watch", again]).status == 0)
        #expect(try farm.client(["fetch", again, "-o", "retried.mp4"]).status == 0)
        #expect(try ReelCommand.video("\(farm.directory)/retried.mp4") == expected)

        for (action, job, reason) in [("pause", id, "only a running job can be paused or resumed"),
                                      ("retry", id, "only a failed or cancelled job can be retried")] {
            let refused = try farm.client([action, job])
            #expect(refused.status == 1 && refused.stderr.contains("job \(job) is done; \(reason)"), "\(refused.stderr)")
        }
    }

    /// A finished job and a cancelled one read the same after the coordinator is killed and
    /// started again: their time, steps, region map and results, from the store.
    @Test func endedJobsReadTheSameAfterARestart() throws {
        let farm = try ProcessFarm()
        try farm.startWorker("w1")
        try farm.waitForWorkers(1)
        let done = try farm.client(["submit", "a red circle moving left", "--frames", "40", "--steps", "3", "--model", "reel-tiny"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try farm.client(["watch", done]).status == 0)
        let cancelled = try farm.client(["submit"] + Self.job).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.waitForProgress(farm, cancelled, fraction: 0.2)
        // The table's steps count from the step a layout pass lets the chunks start at, so
        // 20 % can show before any result is in; the store keeps results.
        try waitUntil("a result of \(cancelled) is in", timeout: 60) { try farm.status(cancelled).resultsAccepted > 0 }
        #expect(try farm.client(["cancel", cancelled]).status == 0)
        let before = try [done, cancelled].map { try farm.status($0) }
        #expect(before[1].stepsDone > 0 && before[1].regionSteps.contains { $0 > 0 } && before[0].resultsAccepted > 0)
        try farm.restartCoordinator()
        let after = try [done, cancelled].map { try farm.status($0) }
        #expect(after == before, "before: \(before.map { try! $0.jsonString() })\nafter: \(after.map { try! $0.jsonString() })")

        // A worker's count of shards goes on from where it was when it reconnects (a coordinator
        // stopped with SIGTERM has written it; a killed one loses at most its last second).
        func completed() throws -> [String: UInt32] {
            Dictionary(uniqueKeysWithValues: try farm.client(["workers", "--json"]).stdout.split(separator: "\n")
                .compactMap { try? Reel_V1_WorkerStatus(jsonString: String($0)) }.map { ($0.workerID, $0.shardsCompleted) })
        }
        try farm.waitForWorkers(1)
        let counted = try completed()
        #expect((counted["w1"] ?? 0) > 0, "\(counted)")
        try farm.restartCoordinator(afterKill: false)
        try farm.waitForWorkers(1)
        #expect(try completed() == counted)
    }

    @Test func aCoordinatorKilledMidJobResumesFromItsCheckpointWithTheSameBytes() throws {
        let farm = try ProcessFarm()
        try farm.startWorker("w1")
        try farm.startWorker("w2")
        try farm.waitForWorkers(2)
        let first = try farm.client(["submit"] + Self.job)
        let second = try farm.client(["submit"] + Self.job.map { $0 == "9" ? "10" : $0 })
        #expect(first.status == 0 && second.status == 0, "\(first.stderr)\(second.stderr)")
        let ids = [first, second].map { $0.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        try Self.waitForProgress(farm, ids[0], fraction: 0.3)
        try waitUntil("job \(ids[0]) has a checkpoint") {
            FileManager.default.fileExists(atPath: "\(farm.directory)/data/jobs/\(ids[0]).checkpoint")
        }

        let killed = Date()
        try farm.restartCoordinator()
        let resumed = try farm.waitForLog(farm.coordinatorLog, containing: "job \(ids[0]) resumes at")
        print("coordinator kill -9 and restart: listening again \(String(format: "%.2f", Date().timeIntervalSince(killed))) s after the kill; \(resumed.split(separator: ":").last ?? "")")
        #expect(!resumed.contains("resumes at 0/"), "it continued from a checkpoint: \(resumed)")

        for (index, id) in ids.enumerated() {
            let watched = try farm.client(["watch", id])
            #expect(watched.status == 0, "\(watched.stderr)")
            #expect(try farm.client(["fetch", id, "-o", "farm-\(index).mp4"]).status == 0)
        }
        for (index, seed) in ["9", "10"].enumerated() {
            let clean = try ReelCommand.run(["render"] + Self.job.map { $0 == "9" ? seed : $0 } + ["-o", "clean-\(index).mp4"], in: farm.directory)
            #expect(clean.status == 0, "\(clean.stderr)")
            let farmed = try ReelCommand.video("\(farm.directory)/farm-\(index).mp4")
            let expected = try ReelCommand.video("\(farm.directory)/clean-\(index).mp4")
            #expect(farmed == expected, "job \(index): the same bytes as an uninterrupted run")
        }
    }

    /// `reel submit --wait` rides out a coordinator killed (kill -9) and started again: it asks
    /// again on new connections, says so, and writes the video, which has the bytes of an
    /// uninterrupted render. A coordinator that is not there is told apart from one that is
    /// silent, and the wait it reports is the one it made.
    @Test func submitWaitRidesOutACoordinatorRestart() throws {
        let farm = try ProcessFarm()
        try farm.startWorker("w1")
        try farm.waitForWorkers(1)
        let client = try farm.startClient(["submit"] + Self.job + ["--wait", "-o", "waited.mp4", "--timeout", "2"], log: "submit.log")
        try waitUntil("the job is submitted") { !(try farm.client(["status"]).stdout.contains("no jobs")) }
        let id = try #require(farm.client(["status"]).stdout.split(separator: "\n").dropFirst().first?.tableCells.first)
        try Self.waitForProgress(farm, id, fraction: 0.3)
        try farm.restartCoordinator {
            try waitUntil("submit --wait finds the coordinator gone", timeout: 30) { farm.log("submit.log").contains("asking again") }
        }
        try waitUntil("submit --wait returns", timeout: 120) { !client.isRunning }
        let log = farm.log("submit.log")
        #expect(client.terminationStatus == 0, "\(log)")
        #expect(log.contains("nothing accepts connections at \(farm.endpoint) (connection refused)"), "why it went quiet: \(log)")
        let clean = try ReelCommand.run(["render"] + Self.job + ["-o", "clean.mp4"], in: farm.directory)
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(try ReelCommand.video("\(farm.directory)/waited.mp4") == ReelCommand.video("\(farm.directory)/clean.mp4"))

        // Nothing listening on a port: refused, said so, after the attempts it made.
        let closed = try ReelCommand.run(["status", "--coordinator", "127.0.0.1:9", "--insecure", "--timeout", "1"], in: farm.directory)
        #expect(closed.status == 1 && closed.stderr.contains("nothing accepts connections at tcp://127.0.0.1:9 (connection refused)"), "\(closed.stderr)")
        // A coordinator that never answered is not waited for: watch gives up at once.
        let watched = try ReelCommand.run(["watch", id, "--coordinator", "127.0.0.1:9", "--insecure", "--timeout", "1"], in: farm.directory,
                                          wrapper: ["timeout", "30"])
        #expect(watched.status == 1 && watched.stderr.contains("(connection refused)"), "\(watched.stderr)")
        let submitted = try ReelCommand.run(["submit", "a red circle", "--coordinator", "127.0.0.1:9", "--insecure", "--timeout", "1"], in: farm.directory)
        #expect(submitted.stderr.contains("(asked 3 times, 1 s each)"), "\(submitted.stderr)")
    }

    /// Power loss, as near as a test can come: the coordinator is killed (SIGKILL, by a test
    /// hook) between writing a file and renaming it into place, or right after the rename
    /// before the job store hears of it, for a checkpoint and for the finished video.
    /// Restarted, it clears any half-written file, and the job ends once, with the bytes of an
    /// uninterrupted render.
    @Test(arguments: [("BEFORE", ".checkpoint"), ("BEFORE", ".mp4"), ("AFTER", ".checkpoint"), ("AFTER", ".mp4")])
    func aCoordinatorKilledAroundARenameEndsTheJobOnceWithTheSameBytes(moment: String, suffix: String) throws {
        let job = ["a green triangle moving down", "--frames", "8", "--steps", "6", "--seed", "9", "--scale", "1"]
        let farm = try ProcessFarm(crash: "REEL_CRASH_\(moment)_RENAME=\(suffix)")
        try farm.startWorker("w1")
        try farm.waitForWorkers(1)
        let submitted = try farm.client(["submit"] + job)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try farm.waitForCoordinatorToDie()
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(farm.directory)/data/jobs").filter { $0.contains(".partial-") }
        if moment == "BEFORE" { #expect(!left.isEmpty, "the kill left a half-written \(suffix) behind") }

        try farm.restartCoordinator()
        if moment == "BEFORE" { _ = try farm.waitForLog(farm.coordinatorLog, containing: "half-written file(s)") }
        let watched = try farm.client(["watch", id])
        #expect(watched.status == 0, "\(watched.stderr)")
        #expect(try farm.client(["fetch", id, "-o", "farm.mp4"]).status == 0)
        let clean = try ReelCommand.run(["render"] + job + ["-o", "clean.mp4"], in: farm.directory)
        #expect(clean.status == 0, "\(clean.stderr)")
        let farmed = try ReelCommand.video("\(farm.directory)/farm.mp4")
        #expect(farmed == (try ReelCommand.video("\(farm.directory)/clean.mp4")), "the same bytes as an uninterrupted run")
        // Killed with every result in, the restarted coordinator only encodes: its manifest
        // still names the kernels and weights the results came from, as the store kept them.
        let (restarted, uninterrupted) = (try Verification.check(file: "\(farm.directory)/farm.mp4", trustedKey: nil).manifest,
                                          try Verification.check(file: "\(farm.directory)/clean.mp4", trustedKey: nil).manifest)
        #expect(restarted?.blasKernels == uninterrupted?.blasKernels && restarted?.blasKernels.isEmpty == false)
        #expect(restarted?.model.weights == uninterrupted?.model.weights && restarted?.model.weights.isEmpty == false)
        let listed = try farm.client(["status"]).stdout.split(separator: "\n").filter { $0.contains(id) }
        #expect(listed.count == 1 && listed[0].contains("done"), "the job ended once: \(listed)")
        let partial = try FileManager.default.contentsOfDirectory(atPath: "\(farm.directory)/data/jobs").filter { $0.contains(".partial-") }
        #expect(partial.isEmpty, "\(partial)")
        print("killed \(moment.lowercased()) renaming a \(suffix): restarted, no half-written file left, the job done once with the clean bytes")
    }

    /// A second coordinator on a data directory in use refuses to start, saying whose it is:
    /// it would serve the same jobs twice and take the first one's files being written for a
    /// crash's leftovers. Once the first is gone (even by kill -9), the directory is free.
    @Test func aSecondCoordinatorOnTheSameDataDirectoryRefusesToStart() throws {
        let farm = try ProcessFarm()
        let second = try ReelCommand.run(["coordinator", "--insecure", "--bind", "tcp://127.0.0.1:*", "--data-dir", "data"],
                                         in: farm.directory, wrapper: ["timeout", "20"])
        #expect(second.status != 0 && second.status != 124 && second.stderr.contains("is in use by another coordinator (pid "),
                "\(second.status): \(second.stderr)")
        try farm.restartCoordinator()  // kill -9, then a new one on the same directory
        #expect(try farm.client(["status"]).status == 0)
        print("second coordinator on one data directory: refused (\(second.stderr.split(separator: "\n").last ?? ""))")
    }

    @Test func aResubmissionWithTheSameKeyFindsTheFirstJobEvenAfterARestart() throws {
        let farm = try ProcessFarm()
        let context = try ZMQContext()
        var spec = Reel_V1_JobSpec()
        spec.prompt = "a small blue circle moving up"
        spec.model = "reel-tiny"
        spec.frames = 8
        spec.steps = 2
        let key = UUID().uuidString
        let first = try FarmClient(context: context, endpoint: farm.endpoint).submit(spec, idempotencyKey: key)
        let again = try FarmClient(context: context, endpoint: farm.endpoint).submit(spec, idempotencyKey: key)
        let other = try FarmClient(context: context, endpoint: farm.endpoint).submit(spec, idempotencyKey: UUID().uuidString)
        #expect(first == again)
        #expect(first != other)
        try farm.restartCoordinator()
        let afterRestart = try FarmClient(context: context, endpoint: farm.endpoint).submit(spec, idempotencyKey: key)
        #expect(afterRestart == first)
        let listed = try farm.client(["status"]).stdout.split(separator: "\n").dropFirst()
        #expect(listed.count == 2, "two jobs, not four: \(listed)")
    }

    @Test func aSubmissionWhoseReplyIsLostIsAskedAgainAndNotDoubled() throws {
        let farm = try ProcessFarm()
        let client = try FarmClient(context: try ZMQContext(), endpoint: farm.endpoint, timeoutSeconds: 1)
        #expect(try client.status().isEmpty)  // connected before the coordinator freezes
        let coordinator = farm.coordinator!.processIdentifier
        kill(coordinator, SIGSTOP)
        // The first submission sits unread until the coordinator resumes, after the client
        // gave up on it: its reply goes to a closed connection, and the retry must find it.
        DispatchQueue.global().asyncAfter(deadline: .now() + 1.5) { kill(coordinator, SIGCONT) }
        var spec = Reel_V1_JobSpec()
        spec.prompt = "a small blue circle moving up"
        spec.model = "reel-tiny"
        spec.frames = 8
        spec.steps = 2
        let id = try client.submit(spec, attempts: 4)
        let jobs = try client.status()
        #expect(jobs.map(\.jobID) == [id], "one job, not two: \(jobs.map(\.jobID))")
    }
}
