import Foundation

/// Retention: with `keepFinished`, a job that ended that long ago is forgotten, its row and
/// its video both, so a farm that runs for months does not fill its disk.
extension CoordinatorServer {
    /// Forgets every finished job past `keepFinished`; the loop calls it once a heartbeat.
    func forgetExpiredJobs() {
        let now = clock.date
        guard let keep = options.keepFinished else { return }
        let expired = jobs.values.compactMap { job in job.finishedAt.map { (job: job, age: now.timeIntervalSince($0)) } }
            .filter { $0.age > keep }
        for (job, age) in expired.sorted(by: { $0.job.id < $1.job.id }) { forget(job, endedAgo: age) }
    }

    /// The row goes first: a crash between the two leaves a video nobody lists, never a
    /// listed job whose video is gone.
    private func forget(_ job: FarmJob, endedAgo age: Double) {
        do {
            try store.delete(job.id)
        } catch {
            // Retried every heartbeat (the disk may be freed); said once, not once a second.
            if unforgettable.insert(job.id).inserted {
                logger.error("cannot forget job \(job.id): \(error); retrying every heartbeat, logged once")
            }
            return
        }
        unforgettable.remove(job.id)
        observe(.jobForgotten(job: job.id))
        table.remove(job.id)
        scheduler.forget(job.id)
        if let path = job.outputPath { try? FileManager.default.removeItem(atPath: path) }
        logger.info("job \(job.id) forgotten, \(String(format: "%.0f s", age)) after it ended (--keep-finished)\(job.outputPath.map { "; removed \($0)" } ?? "")")
    }
}
