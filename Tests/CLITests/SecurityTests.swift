import Foundation
import Testing
import Wire

/// CURVE by default: enrolled keys only, each in its own role.
@Suite(.serialized) struct SecurityTests {
    /// A secured farm: coordinator keys made on first start, a worker and a client enrolled.
    static func securedFarm(coordinatorArguments: [String] = []) throws -> (farm: ProcessFarm, coordinatorKey: String) {
        let farm = try ProcessFarm(coordinatorArguments: coordinatorArguments, secure: true)
        let data = "\(farm.directory)/data"
        for (role, name) in [("worker", "w1"), ("client", "alice")] {
            #expect(try ReelCommand.run(["keys", "new", name], in: farm.directory).status == 0)
            let enrolled = try ReelCommand.run(["keys", "enroll", role, "\(name).pub", "--data-dir", data], in: farm.directory)
            #expect(enrolled.status == 0, "\(enrolled.stderr)")
        }
        return (farm, "\(data)/keys/coordinator.pub")
    }

    @Test func enrolledKeysRenderAndStrangersAreRefused() throws {
        // At debug, so that a handshake libzmq ends without detail is logged (below).
        let (farm, coordinatorKey) = try Self.securedFarm(coordinatorArguments: ["--log-level", "debug"])
        #expect(farm.log(farm.coordinatorLog).contains("ZAP self-test passed"))
        let keys = ["--coordinator-key", coordinatorKey]
        try farm.startWorker("w1", extra: ["--key", "w1.key"] + keys)
        let alice = ["--key", "alice.key"] + keys
        try farm.waitForWorkers(1, credentials: alice)
        let rendered = try farm.client(["submit", "a red circle moving left", "--frames", "8", "--steps", "2", "--wait", "-o", "secure.mp4"] + alice,
                                       insecure: false)
        #expect(rendered.status == 0, "\(rendered.stderr)")

        // A key nobody enrolled: refused at the handshake, so the request goes unanswered.
        #expect(try ReelCommand.run(["keys", "new", "mallory"], in: farm.directory).status == 0)
        let stranger = try farm.client(["status", "--timeout", "2", "--key", "mallory.key"] + keys, insecure: false)
        #expect(stranger.status != 0 && stranger.stderr.contains("no answer"), "\(stranger.stderr)")
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "is not enrolled")

        // A plaintext peer: its NULL mechanism does not match, and it hears nothing. libzmq
        // reports the failed handshake as a mechanism mismatch (a warning) or without detail
        // (debug, as a TCP probe's is).
        let failedHandshakes = { farm.log(farm.coordinatorLog).components(separatedBy: "handshake failed with").count }
        let before = failedHandshakes()
        let plaintext = try farm.client(["status", "--timeout", "2"], insecure: true)
        #expect(plaintext.status != 0, "\(plaintext.stdout)")
        #expect(failedHandshakes() > before, "the plaintext attempt is logged")

        // The worker's key cannot submit; the client's key cannot register as a worker.
        let workerSubmits = try farm.client(["submit", "a red circle moving left", "--key", "w1.key"] + keys, insecure: false)
        #expect(workerSubmits.status != 0 && workerSubmits.stderr.contains("worker key cannot submit"), "\(workerSubmits.stderr)")
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "refused submit from worker w1")
        try farm.startWorker("impostor", extra: ["--key", "alice.key"] + keys)
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "refused hello from client alice")
        let listed = try farm.client(["workers"] + alice, insecure: false).stdout
        #expect(!listed.contains("impostor"), "\(listed)")
        print("CURVE: unknown key, plaintext peer, worker key submitting and client key working all refused")
    }

    /// A key revoked while its connection is open: the worker is told to go and cannot come
    /// back; a client already connected gets an error at its next request.
    @Test func revokingAKeyClosesItsOpenConnections() throws {
        let (farm, coordinatorKey) = try Self.securedFarm()
        let keys = ["--coordinator-key", coordinatorKey], alice = ["--key", "alice.key"] + keys
        let data = "\(farm.directory)/data"
        try farm.startWorker("w1", extra: ["--key", "w1.key"] + keys)
        try farm.waitForWorkers(1, credentials: alice)

        let revoked = try ReelCommand.run(["keys", "revoke", "worker", "w1", "--data-dir", data], in: farm.directory)
        #expect(revoked.status == 0, "\(revoked.stderr)")
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "worker w1 removed: the key of worker w1 was revoked", timeout: 10)
        _ = try farm.waitForLog("w1.log", containing: "coordinator says: the key of worker w1 was revoked", timeout: 10)
        // Reconnecting, the worker's handshake is refused: it never joins again, and says why.
        _ = try farm.waitForLog(farm.coordinatorLog, containing: "is not enrolled", timeout: 20)
        _ = try farm.waitForLog("w1.log", containing: "refused this worker's key", timeout: 20)
        let listed = try farm.client(["workers"] + alice, insecure: false)
        #expect(listed.status == 0 && !listed.stdout.contains("w1"), "\(listed.stdout)\(listed.stderr)")

        // A client following a job over one connection: its next poll after the revocation fails.
        let submitted = try farm.client(["submit", "a red circle moving left", "--frames", "8", "--steps", "2"] + alice, insecure: false)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let watch = try farm.startClient(["watch", id] + alice, log: "watch.log")
        _ = try farm.waitForLog("watch.log", containing: "\(id) waits:")  // connected, and answered once
        #expect(watch.isRunning, "watch ended before the revocation: \(farm.log("watch.log"))")
        #expect(try ReelCommand.run(["keys", "revoke", "client", "alice", "--data-dir", data], in: farm.directory).status == 0)
        let deadline = Date().addingTimeInterval(10)
        while watch.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!watch.isRunning && watch.terminationStatus != 0, "watch went on after its key was revoked")
        #expect(farm.log("watch.log").contains("the key of client alice was revoked"), "\(farm.log("watch.log"))")

        let unknown = try ReelCommand.run(["keys", "revoke", "worker", "nobody", "--data-dir", data], in: farm.directory)
        #expect(unknown.status != 0 && unknown.stderr.contains("no worker named \"nobody\" is enrolled"), "\(unknown.stderr)")
        print("revoked keys: worker w1 dropped and refused on reconnecting; client alice's open watch ended with an error")
    }

    @Test func plaintextNeedsToBeAskedForAndKeysAreNeverOverwritten() throws {
        let directory = try ReelCommand.scratchDirectory()
        let worker = try ReelCommand.run(["worker", "--connect", "tcp://127.0.0.1:1"], in: directory)
        #expect(worker.status != 0 && worker.stderr.contains("--key"), "\(worker.stderr)")
        let client = try ReelCommand.run(["status"], in: directory)
        #expect(client.status != 0 && client.stderr.contains("--insecure"), "\(client.stderr)")
        #expect(try ReelCommand.run(["keys", "new", "k"], in: directory).status == 0)
        let again = try ReelCommand.run(["keys", "new", "k"], in: directory)
        #expect(again.status != 0 && again.stderr.contains("never overwritten"), "\(again.stderr)")
        let mode = try FileManager.default.attributesOfItem(atPath: "\(directory)/k.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let bad = try ReelCommand.run(["keys", "enroll", "boss", "k.pub", "--data-dir", "data"], in: directory)
        #expect(bad.status != 0 && bad.stderr.contains("use worker, client or admin"), "\(bad.stderr)")
        let secret = try ReelCommand.run(["keys", "enroll", "worker", "k.key", "--data-dir", "data"], in: directory)
        #expect(secret.status != 0 && secret.stderr.contains("k.key holds a secret key: enroll its .pub"), "\(secret.stderr)")
        // No coordinator has run on ./data: a key enrolled there would let nobody in.
        let nowhere = try ReelCommand.run(["keys", "enroll", "worker", "k.pub"], in: directory)
        #expect(nowhere.status != 0 && nowhere.stderr.contains("--data-dir reel-data holds no coordinator key"), "\(nowhere.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/reel-data"))
        let unwritable = try ReelCommand.run(["coordinator", "--data-dir", "/proc/reel-data", "--insecure", "--bind", "tcp://127.0.0.1:*"],
                                             in: directory, wrapper: ["timeout", "20"])
        #expect(unwritable.status == 1 && unwritable.stderr.contains("cannot create /proc/reel-data") && !unwritable.stderr.contains("NSCocoaErrorDomain"),
                "\(unwritable.stderr)")
    }

    /// A worker the coordinator refuses at the handshake (its key not enrolled, or the other
    /// security mode) says why and exits with the status systemd does not restart, instead of
    /// hanging; and SIGTERM stops a worker at once even while no coordinator answers it.
    @Test func aWorkerRefusedAtTheHandshakeSaysWhyAndExits() throws {
        let (farm, coordinatorKey) = try Self.securedFarm()
        let started = Date()
        let plaintext = try farm.startWorker("plain", wrapper: ["timeout", "30"])
        plaintext.waitUntilExit()
        let plaintextSeconds = Date().timeIntervalSince(started)
        #expect(plaintext.terminationStatus == 78, "refused, not timed out: \(farm.log("plain.log"))")
        #expect(farm.log("plain.log").contains("different security modes"), "\(farm.log("plain.log"))")
        #expect(plaintextSeconds < 10, "it gave up in \(plaintextSeconds) s")

        #expect(try ReelCommand.run(["keys", "new", "stranger"], in: farm.directory).status == 0)
        let stranger = try farm.startWorker("stranger", wrapper: ["timeout", "30"], extra: ["--key", "stranger.key", "--coordinator-key", coordinatorKey])
        stranger.waitUntilExit()
        #expect(stranger.terminationStatus == 78 && farm.log("stranger.log").contains("refused this worker's key"), "\(farm.log("stranger.log"))")

        // A coordinator that cannot be reached at all: no handshake is ever refused, the worker
        // retries with backoff, and SIGTERM must still end it promptly.
        // (No `timeout` wrapper here: it would take the signal itself.)
        let stopped = try farm.startWorker("stopped", connect: "tcp://127.0.0.1:1")
        _ = try farm.waitForLog("stopped.log", containing: "silent; reconnecting", timeout: 20)
        let signalled = Date()
        kill(stopped.processIdentifier, SIGTERM)
        while stopped.isRunning && Date().timeIntervalSince(signalled) < 10 { Thread.sleep(forTimeInterval: 0.02) }
        if stopped.isRunning { kill(stopped.processIdentifier, SIGKILL) }
        stopped.waitUntilExit()
        #expect(stopped.terminationStatus == 0 && Date().timeIntervalSince(signalled) < 2,
                "SIGTERM honoured while no coordinator answers: status \(stopped.terminationStatus), \(farm.log("stopped.log"))")
        print("refused workers: plaintext against CURVE exited 78 after \(String(format: "%.1f", plaintextSeconds)) s; an unenrolled key likewise; SIGTERM took \(String(format: "%.2f", Date().timeIntervalSince(signalled))) s")
    }
}
