import Foundation
import Testing

/// Scheduling across jobs on one worker: priorities first, then fair share between clients.
@Suite(.serialized) struct SchedulingTests {
    /// One region of 6 one-step shards: each job takes several turns of the worker.
    static func job(_ seed: Int, priority: Int = 0) -> [String] {
        ["a small red circle moving left", "--frames", "8", "--steps", "6", "--seed", "\(seed)", "--scale", "1",
         "--priority", "\(priority)"]
    }

    /// When each job finished, in seconds since the epoch.
    /// `credentials`: each job's owner's (a client sees only its own jobs).
    static func finishTimes(_ farm: ProcessFarm, _ ids: [String], credentials: [String: [String]]) throws -> [String: Double] {
        var finished: [String: Double] = [:]
        for id in ids {
            let watched = try farm.client(["watch", id] + credentials[id, default: []], insecure: false)
            #expect(watched.status == 0, "\(watched.stderr)")
        }
        let lines = farm.log(farm.coordinatorLog).split(separator: "\n")
        for id in ids {
            guard let index = lines.firstIndex(where: { $0.contains("job \(id) done") }) else { continue }
            finished[id] = Double(index)  // log order is finishing order
        }
        return finished
    }

    @Test func twoClientsShareTheWorkerAndAHighPriorityJobOvertakesQueuedWork() throws {
        let (farm, coordinatorKey) = try SecurityTests.securedFarm()
        #expect(try ReelCommand.run(["keys", "new", "bob"], in: farm.directory).status == 0)
        #expect(try ReelCommand.run(["keys", "enroll", "client", "bob.pub", "--data-dir", "\(farm.directory)/data"], in: farm.directory).status == 0)
        let alice = ["--key", "alice.key", "--coordinator-key", coordinatorKey]
        let bob = ["--key", "bob.key", "--coordinator-key", coordinatorKey]
        func submit(_ job: [String], as credentials: [String]) throws -> String {
            let result = try farm.client(["submit"] + job + credentials, insecure: false)
            #expect(result.status == 0, "\(result.stderr)")
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // Everything is queued before the worker joins, so the order is the scheduler's alone.
        let aliceJobs = try (1...3).map { try submit(Self.job($0), as: alice) }
        let bobJob = try submit(Self.job(9), as: bob)
        let urgent = try submit(Self.job(7, priority: 5), as: alice)
        try farm.startWorker("w1", extra: ["--key", "w1.key", "--coordinator-key", coordinatorKey])
        var owners = Dictionary(uniqueKeysWithValues: (aliceJobs + [urgent]).map { ($0, alice) })
        owners[bobJob] = bob
        let order = try Self.finishTimes(farm, aliceJobs + [bobJob, urgent], credentials: owners)
        #expect(order[urgent]! < order.values.filter { $0 != order[urgent]! }.min()!, "the priority-5 job finished first")
        #expect(order[bobJob]! < order[aliceJobs[2]]!, "bob's one job did not wait behind all of alice's")
        let finishing = order.sorted { $0.value < $1.value }.map { id in
            id.key == urgent ? "alice-urgent" : id.key == bobJob ? "bob" : "alice-\(aliceJobs.firstIndex(of: id.key)! + 1)"
        }
        print("scheduling, one worker, submitted alice-1..3, bob, alice-urgent (priority 5): finished \(finishing.joined(separator: ", "))")
    }

    /// Without keys, a client is the machine it connects from: two machines' jobs count apart
    /// (here two loopback addresses, the second given as the connection's source address).
    @Test func plaintextClientsOnTwoMachinesCountApart() throws {
        let farm = try ProcessFarm(coordinatorArguments: ["--max-jobs-per-client", "1"])
        defer { farm.stop() }
        let otherMachine = "tcp://127.0.0.2:0;" + farm.endpoint.dropFirst("tcp://".count)
        let first = try farm.client(["submit"] + Self.job(1))
        #expect(first.status == 0, "\(first.stderr)")
        let second = try farm.client(["submit"] + Self.job(2), endpoint: otherMachine)
        #expect(second.status == 0, "the other machine's first job is its own: \(second.stderr)")
        let third = try farm.client(["submit"] + Self.job(3), endpoint: otherMachine)
        #expect(third.status != 0 && third.stderr.contains("client anonymous@127.0.0.2 has 1 unfinished jobs"), "\(third.stderr)")
    }
}
