import Diffusion
import Foundation
import Planning
import Wire

/// Durability: checkpoints of running jobs, and rebuilding every job after a restart.
extension CoordinatorServer {
    var jobFiles: JobFiles { JobFiles(dataDirectory: options.dataDirectory) }

    func inputPath(_ id: String) -> String { jobFiles.input(id) }

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
            table.remember(client: stored.client, key: stored.idempotencyKey, job: stored.id)
            if !readmit(stored) {
                logger.warning("job \(stored.id) waits for model '\(modelName(of: stored))', which this coordinator cannot find now; it resumes when the model is back in the model path")
            }
        }
        table.sort()
        let running = jobs.values.filter(\.isActive)
        if !jobs.isEmpty {
            logger.info("restored \(jobs.count) job(s) from \(store.path), \(running.count) still running")
        }
        for job in running where job.run.isComplete { finish(job) }
    }

    /// Rebuilds a stored job; true unless it waits for its model. A job whose model is missing
    /// (a coordinator restarted without its model path, a package being copied) is kept as it
    /// is stored, listed with the reason, and tried again every heartbeat: a missing model is
    /// an operator's to fix, not a reason to fail the job for good.
    @discardableResult
    func readmit(_ stored: StoredJob) -> Bool {
        do {
            table.add(try restore(stored))
            return true
        } catch is ModelPackageError {
            table.park(stored)
            return false
        } catch {
            table.remove(stored.id)
            logger.error("cannot restore job \(stored.id): \(error)")
            try? store.finish(stored.id, state: "failed", error: "could not be restored after a restart: \(error)")
            return true
        }
    }

    /// Tries again the jobs that wait for their models.
    func readmitParkedJobs() {
        guard !table.parked.isEmpty else { return }
        var resumed: [FarmJob] = []
        for stored in table.parked.values.sorted(by: { $0.submittedMs < $1.submittedMs }) where readmit(stored) {
            if let job = jobs[stored.id] {
                logger.info("job \(job.id) resumes: model '\(job.spec.model)' found")
                resumed.append(job)
            }
        }
        guard !resumed.isEmpty else { return }
        for job in resumed where job.isActive && job.run.isComplete { finish(job) }
    }

    func modelName(of stored: StoredJob) -> String {
        ((try? Reel_V1_JobSpec(serializedBytes: stored.spec))?.model).map { String($0.prefix(80)) } ?? "?"
    }

    /// How a job that waits for its model looks to clients: as stored, with the reason.
    func status(ofParked stored: StoredJob) -> Reel_V1_JobStatus {
        var status = Reel_V1_JobStatus()
        status.jobID = stored.id
        status.state = FarmJob.State(stored: stored.state, error: stored.error).wire
        status.error = stored.error
        status.spec = (try? Reel_V1_JobSpec(serializedBytes: stored.spec)) ?? Reel_V1_JobSpec()
        status.stepsDone = UInt32(clamping: stored.checkpointSteps)
        status.submittedUnixMs = UInt64(clamping: stored.submittedMs)
        status.latentDigest = stored.latentDigest
        status.waiting = "model '\(modelName(of: stored))' is not in this coordinator's model path ($REEL_MODELS, ./models); the job resumes once it is"
        return status
    }

    func restore(_ stored: StoredJob) throws -> FarmJob {
        let message = try Reel_V1_JobSpec(serializedBytes: stored.spec)
        let model = try model(message.model)
        let spec = JobSpec(resolving: message, with: model.defaults)
        let state = FarmJob.State(stored: stored.state, error: stored.error)
        let input = state == .running && message.withInput
            ? try LatentCodec.decode(Data(contentsOf: URL(fileURLWithPath: inputPath(stored.id))),
                                     count: spec.frames * model.inputChannels * spec.width * spec.height)
            : nil
        let job = FarmJob(id: stored.id, client: stored.client, spec: spec, output: OutputOptions(message, scale: max(1, Int(message.outputScale))),
                          model: model, maxPieceBytes: options.maxPieceBytes, input: input,
                          attemptIDs: AttemptIDs.random, clock: clock, submitted: Date(timeIntervalSince1970: Double(stored.submittedMs) / 1000))
        job.state = state
        job.outputPath = stored.outputPath.isEmpty ? nil : stored.outputPath
        job.latentDigest = stored.latentDigest
        job.finishedSeconds = stored.finishedSeconds
        job.paused = stored.paused
        // Read back as the store wrote it; a row it cannot read only loses the manifest those.
        if let renderedWith = try? JSONDecoder().decode(FarmJob.RenderedWith.self, from: stored.renderedWith) {
            job.renderedWith = renderedWith
        }
        if state != .running {
            job.endedRegionSteps = stored.regionSteps.isEmpty ? nil : stored.regionSteps
            job.resultsAccepted = stored.resultsAccepted
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
