/// The jobs a coordinator holds: running and ended ones, stored jobs parked until their model
/// can be found, the order they are listed and served in, and which submission made which
/// (a resubmission with the same idempotency key finds the first job).
struct JobTable {
    private(set) var jobs: [String: FarmJob] = [:]
    /// Stored jobs whose model cannot be found now, kept as stored until it can.
    private(set) var parked: [String: StoredJob] = [:]
    /// Jobs in the order they are listed and served: by priority, then as submitted (parked
    /// ones keep their place).
    private(set) var order: [String] = []
    /// (client, idempotency key) → job id.
    private var submissions: [String: String] = [:]

    /// A job made or restored; it takes its place by priority.
    mutating func add(_ job: FarmJob) {
        parked[job.id] = nil
        jobs[job.id] = job
        if !order.contains(job.id) { order.append(job.id) }
        sort()
    }

    /// A stored job that waits for its model.
    mutating func park(_ stored: StoredJob) {
        parked[stored.id] = stored
        if !order.contains(stored.id) { order.append(stored.id) }
    }

    /// A parked job's stored state changed (cancelled while it waited).
    mutating func setParkedState(_ id: String, _ state: String) { parked[id]?.state = state }

    /// Forgets a job everywhere: listing, order and idempotency keys.
    mutating func remove(_ id: String) {
        jobs[id] = nil
        parked[id] = nil
        order.removeAll { $0 == id }
        submissions = submissions.filter { $0.value != id }
    }

    mutating func sort() {
        order.sort { (jobs[$0]?.priority ?? 0, 0) > (jobs[$1]?.priority ?? 0, 1) }
    }

    func submission(client: String, key: String) -> String? { submissions[client + "\n" + key] }

    mutating func remember(client: String, key: String, job: String) {
        guard !key.isEmpty else { return }
        submissions[client + "\n" + key] = job
    }

    func activeJobs(of client: String) -> Int { jobs.values.count { $0.client == client && $0.isActive } }
}
