import Diffusion
import Foundation
import Planning
import Wire

/// Durability: checkpoints of running jobs, and rebuilding every job after a restart.
extension CoordinatorServer {
    func inputPath(_ id: String) -> String { "\(options.dataDirectory)/jobs/\(id).input" }

    /// Hands the newest state of each job with new results to the checkpoint writer, unless
    /// a write of that job is still under way or its last was under `checkpointInterval` ago
    /// (a later pass takes it).
    func checkpointProgress(force: Bool = false) {
        let now = clock.now
        for id in uncheckpointed where !checkpoints.isWriting(id) {
            guard let job = jobs[id], job.isActive else { continue }
            if !force, let last = job.checkpointedAt, (now - last).seconds < options.checkpointInterval { continue }
            checkpoints.write(id, job.run.checkpoint(), stepsDone: job.run.stepsDone)
            job.checkpointedAt = now
            uncheckpointed.remove(id)
        }
    }

    /// Writes every outstanding checkpoint and waits for the disk: a stopping coordinator
    /// leaves nothing behind that a restart would have to compute again.
    func flushCheckpoints() {
        checkpoints.flush()
        checkpointProgress(force: true)
        checkpoints.flush()
    }

    /// Rebuilds every job of the store; running ones continue from their checkpoints.
    func restoreJobs() throws {
        for stored in try store.all() {
            if !stored.idempotencyKey.isEmpty { submissions[stored.client + "\n" + stored.idempotencyKey] = stored.id }
            do {
                let job = try restore(stored)
                jobs[job.id] = job
                jobOrder.append(job.id)
            } catch {
                logger.error("cannot restore job \(stored.id): \(error)")
                try? store.finish(stored.id, state: "failed", error: "could not be restored after a restart: \(error)")
            }
        }
        sortJobOrder()
        let running = jobs.values.filter(\.isActive)
        if !jobs.isEmpty {
            logger.info("restored \(jobs.count) job(s) from \(store.path), \(running.count) still running")
        }
        for job in running where job.run.isComplete { finish(job) }
    }

    func restore(_ stored: StoredJob) throws -> FarmJob {
        let message = try Reel_V1_JobSpec(serializedBytes: stored.spec)
        let config = try model(message.model).config
        let spec = JobSpec(resolving: message, with: config)
        let state = FarmJob.State(stored: stored.state, error: stored.error)
        let input = state == .running && message.withInput
            ? try LatentCodec.decode(Data(contentsOf: URL(fileURLWithPath: inputPath(stored.id))),
                                     count: spec.frames * config.channels * spec.width * spec.height)
            : nil
        let job = FarmJob(id: stored.id, client: stored.client, spec: spec, outputScale: max(1, Int(message.outputScale)),
                          model: ModelShape(config), channels: config.channels, input: input,
                          firstAttempt: epoch << 32 | 1, submitted: Date(timeIntervalSince1970: Double(stored.submittedMs) / 1000))
        job.state = state
        job.outputPath = stored.outputPath.isEmpty ? nil : stored.outputPath
        job.latentDigest = stored.latentDigest
        job.finishedSeconds = stored.finishedSeconds
        if state != .running {
            // A job that ended before the store kept the time: its submission plus its run.
            job.finishedAt = stored.finishedMs.map { Date(timeIntervalSince1970: Double($0) / 1000) }
                ?? job.submitted.addingTimeInterval(stored.finishedSeconds ?? 0)
        }
        guard state == .running else { return job }
        let path = checkpoints.path(for: stored.id)
        if FileManager.default.fileExists(atPath: path) {
            do {
                try job.run.restore(CheckpointFile.read(path))
                logger.info("job \(job.id) resumes at \(job.run.stepsDone)/\(job.run.stepsTotal) region steps")
            } catch {
                logger.warning("job \(job.id): checkpoint unusable (\(error)); it starts again from the first step")
            }
        }
        return job
    }
}
