import Foundation
import GRDB
import Wire

/// One job as the store keeps it: enough to rebuild it after a restart.
struct StoredJob: Equatable {
    /// `client`: who submitted it, the client's enrolled name under CURVE, its connection otherwise.
    var id, client, idempotencyKey: String
    /// The resolved spec, as the wire's JobSpec bytes (output scale included).
    var spec: Data
    var state: String
    var error = "", outputPath = "", latentDigest = ""
    var submittedMs: Int64
    var finishedSeconds: Double?
    /// Steps done at the last checkpoint, for status after a restart.
    var checkpointSteps: Int = 0
    /// When it ended, in Unix milliseconds; nil while it runs, and for jobs that ended before
    /// the store kept it.
    var finishedMs: Int64?
    /// For an ended job, each region's steps and the results accepted when it ended, so that
    /// its status reads the same after a restart; empty and 0 before the store kept them.
    var regionSteps: [Int] = []
    var resultsAccepted = 0
    /// A running job an operator paused.
    var paused = false
    /// The kernels and weights its accepted results were computed with (`RenderedWith`, JSON),
    /// for its manifest; empty before the store kept them.
    var renderedWith = Data()
}

/// The coordinator's durable state: a SQLite database (WAL) in its data directory. A job is
/// acknowledged only once its row is committed; its progress lives in checkpoint files the
/// rows point to (see `CheckpointWriter`).
final class JobStore: @unchecked Sendable {
    let path: String
    private let database: DatabaseQueue

    init(directory: String) throws {
        path = "\(directory)/reel.sqlite"
        var configuration = Configuration()
        configuration.label = "reel.jobs"
        // A coordinator stopping in this process may still hold the database for a moment
        // after it lets the data directory go: wait for it rather than fail at once.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // WAL keeps readers off the writer's back. FULL syncs the log at every commit: a job
            // acknowledged to its client survives a power loss, not only a killed process (NORMAL
            // could lose the last commits). Job rows change a few times a job, so it costs little.
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        database = try DatabaseQueue(path: path, configuration: configuration)
        try Self.migrator.migrate(database)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE job (
                    id TEXT PRIMARY KEY,
                    client TEXT NOT NULL,
                    idempotency_key TEXT NOT NULL,
                    spec BLOB NOT NULL,
                    state TEXT NOT NULL,
                    error TEXT NOT NULL DEFAULT '',
                    output_path TEXT NOT NULL DEFAULT '',
                    latent_digest TEXT NOT NULL DEFAULT '',
                    submitted_ms INTEGER NOT NULL,
                    finished_seconds REAL,
                    checkpoint_steps INTEGER NOT NULL DEFAULT 0
                );
                CREATE UNIQUE INDEX job_idempotency ON job(client, idempotency_key) WHERE idempotency_key != '';
                CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                """)
        }
        migrator.registerMigration("v2: when jobs ended") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN finished_ms INTEGER")
        }
        migrator.registerMigration("v3: how far ended jobs got") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN region_steps BLOB NOT NULL DEFAULT x''")
            try db.execute(sql: "ALTER TABLE job ADD COLUMN results_accepted INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v4: paused jobs") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN paused INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v5: shards each worker completed") { db in
            try db.execute(sql: "CREATE TABLE worker_shards (name TEXT PRIMARY KEY, completed INTEGER NOT NULL)")
        }
        migrator.registerMigration("v6: what each job's results were computed with") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN rendered_with BLOB NOT NULL DEFAULT x''")
        }
        return migrator
    }

    func insert(_ job: StoredJob) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO job (id, client, idempotency_key, spec, state, error, output_path, latent_digest,
                                 submitted_ms, finished_seconds, checkpoint_steps)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [job.id, job.client, job.idempotencyKey, job.spec, job.state, job.error, job.outputPath,
                                 job.latentDigest, job.submittedMs, job.finishedSeconds, job.checkpointSteps])
        }
    }

    /// Records how a job ended (or that it runs again), and how far its regions got.
    func finish(_ id: String, state: String, error: String = "", outputPath: String = "", latentDigest: String = "",
                finishedSeconds: Double? = nil, finishedAt: Date? = nil, regionSteps: [Int] = [], resultsAccepted: Int = 0) throws {
        let finishedMs = finishedAt.map { Int64($0.timeIntervalSince1970 * 1000) }
        try database.write { db in
            try db.execute(sql: """
                UPDATE job SET state = ?, error = ?, output_path = ?, latent_digest = ?, finished_seconds = ?, finished_ms = ?,
                               region_steps = ?, results_accepted = ?
                WHERE id = ?
                """, arguments: [state, error, outputPath, latentDigest, finishedSeconds, finishedMs,
                                  Self.encode(regionSteps), resultsAccepted, id])
        }
    }

    /// Region steps as little-endian UInt32s.
    static func encode(_ steps: [Int]) -> Data {
        var data = Data(capacity: steps.count * 4)
        for step in steps { withUnsafeBytes(of: UInt32(clamping: step).littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    /// The stored region steps; a blob of another length (a damaged row) reads as none.
    static func decode(_ data: Data) -> [Int] {
        guard data.count % 4 == 0 else { return [] }
        let bytes = [UInt8](data)
        return stride(from: 0, to: bytes.count, by: 4).map { i -> Int in
            var value: UInt32 = 0
            for k in (0..<4).reversed() { value = value << 8 | UInt32(bytes[i + k]) }
            return Int(value)
        }
    }

    /// Forgets a job altogether.
    func delete(_ id: String) throws {
        try database.write { db in try db.execute(sql: "DELETE FROM job WHERE id = ?", arguments: [id]) }
    }

    /// Stores a new priority inside the job's spec.
    func setPriority(_ id: String, spec: Reel_V1_JobSpec, priority: Int) throws {
        var spec = spec
        spec.priority = Int32(priority)
        let bytes = try spec.serializedData()
        try database.write { db in
            try db.execute(sql: "UPDATE job SET spec = ? WHERE id = ?", arguments: [bytes, id])
        }
    }

    func setRenderedWith(_ id: String, _ renderedWith: Data) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET rendered_with = ? WHERE id = ?", arguments: [renderedWith, id])
        }
    }

    func setPaused(_ id: String, _ paused: Bool) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET paused = ? WHERE id = ?", arguments: [paused, id])
        }
    }

    /// Shards completed by each worker name, across the coordinator's lives.
    func workerShards() throws -> [String: Int] {
        try database.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT name, completed FROM worker_shards").map {
                (($0["name"] as String), ($0["completed"] as Int))
            })
        }
    }

    func setWorkerShards(_ counts: [String: Int]) throws {
        try database.write { db in
            for (name, completed) in counts {
                try db.execute(sql: "INSERT INTO worker_shards (name, completed) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET completed = excluded.completed",
                               arguments: [name, completed])
            }
        }
    }

    func forgetWorkers(_ names: [String]) throws {
        try database.write { db in
            for name in names { try db.execute(sql: "DELETE FROM worker_shards WHERE name = ?", arguments: [name]) }
        }
    }

    func recordCheckpoint(_ id: String, stepsDone: Int) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET checkpoint_steps = ? WHERE id = ?", arguments: [stepsDone, id])
        }
    }

    /// Every job, oldest first.
    func all() throws -> [StoredJob] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM job ORDER BY submitted_ms, id").map { row in
                StoredJob(id: row["id"], client: row["client"], idempotencyKey: row["idempotency_key"], spec: row["spec"],
                          state: row["state"], error: row["error"], outputPath: row["output_path"],
                          latentDigest: row["latent_digest"], submittedMs: row["submitted_ms"],
                          finishedSeconds: row["finished_seconds"], checkpointSteps: row["checkpoint_steps"],
                          finishedMs: row["finished_ms"], regionSteps: Self.decode(row["region_steps"] ?? Data()),
                          resultsAccepted: row["results_accepted"], paused: row["paused"], renderedWith: row["rendered_with"])
            }
        }
    }
}
