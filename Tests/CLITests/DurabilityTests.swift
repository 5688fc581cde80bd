import Foundation
import Testing
import Wire

/// Jobs outlive their coordinator: acknowledged jobs are in SQLite, running ones checkpointed.
@Suite(.serialized) struct DurabilityTests {
    static let job = ["a green triangle moving down", "--frames", "40", "--steps", "24", "--seed", "9", "--scale", "1"]

    /// Polls `reel status` until the job has done at least `fraction` of its steps.
    static func waitForProgress(_ farm: ProcessFarm, _ id: String, fraction: Double, timeout: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let row = try farm.client(["status", id]).stdout.split(separator: "\n").last?.split(separator: "\t") ?? []
            if row.count > 2 {
                let parts = row[2].split(separator: "/").compactMap { Double($0) }
                if parts.count == 2, parts[1] > 0, parts[0] / parts[1] >= fraction { return }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("job \(id) did not reach \(Int(fraction * 100)) % within \(timeout) s")
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
        Thread.sleep(forTimeInterval: 0.3)  // a checkpoint is written within moments of each result

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
            let farmed = try Data(contentsOf: URL(fileURLWithPath: "\(farm.directory)/farm-\(index).mp4"))
            let expected = try Data(contentsOf: URL(fileURLWithPath: "\(farm.directory)/clean-\(index).mp4"))
            #expect(farmed == expected, "job \(index): the same bytes as an uninterrupted run")
        }
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
