import Diffusion
import Families
import Foundation
import Media
import Planning
import Provenance
import Wire

/// Client requests: submit, status, cancel, workers, fetch.
extension CoordinatorServer {
    typealias Reply = (MessageKind, any SwiftProtobufMessage, [Data])

    func reply(to peer: Data, _ body: () throws -> Reply) {
        do {
            let (kind, message, payloads) = try body()
            send(kind, message, payloads: payloads, to: peer)
        } catch let error as WireError {
            logger.warning("dropping peer \(Self.hex(peer)): \(error)")
        } catch {
            send(.error, Reel_V1_ErrorReply.with { $0.message = "\(error)" }, to: peer)
        }
    }

    func submit(_ envelope: Envelope, from client: String) throws -> Reply {
        let request = try envelope.decode(Reel_V1_SubmitRequest.self)
        if !request.idempotencyKey.isEmpty, let known = table.submission(client: client, key: request.idempotencyKey) {
            logger.info("resubmission of \(known) (idempotency key \(request.idempotencyKey))")
            return (.submitReply, Reel_V1_SubmitReply.with { $0.jobID = known }, [])
        }
        guard request.idempotencyKey.count <= 128 else {
            throw CoordinatorError(.idempotencyKeyTooLong, "idempotency_key is \(request.idempotencyKey.count) characters; at most 128")
        }
        guard options.modelPathsAllowed || JobLimits.isPackageName(request.spec.model) else {
            throw CoordinatorError(.modelNotAPackageName, "model \(request.spec.model.prefix(80).debugDescription) is not a package name; use 1 to \(JobLimits.maxModelNameCharacters) letters, digits, '.', '_' or '-'")
        }
        let active = table.activeJobs(of: client)
        guard active < options.maxActiveJobsPerClient else {
            throw CoordinatorError(.tooManyActiveJobs, "client \(client) has \(active) unfinished jobs, the most this coordinator takes; wait for some to finish or cancel them")
        }
        let id = try create(request.spec, input: envelope.payloads[0], client: client, idempotencyKey: request.idempotencyKey)
        return (.submitReply, Reel_V1_SubmitReply.with { $0.jobID = id }, [])
    }

    /// Resolves, stores and starts a job: a submission's, or a retry's. Returns its id.
    func create(_ request: Reel_V1_JobSpec, input video: Data, client: String, idempotencyKey: String) throws -> String {
        let model = try model(request.model)
        // Every field is checked before anything is computed from it; the input video is
        // decoded only for a job that could run, and no further than the frames it asks for.
        var decoded: RGBVideo?
        let resolved = try SpecResolver(model: model).resolve(request) { spec, maxFrames in
            decoded = try InputVideo.frames(video, width: spec.width, height: spec.height, fps: spec.fps, maxFrames: maxFrames)
            return decoded!.frameCount
        }
        let spec = resolved.spec
        var output = resolved.output
        // Whatever a client said of its input's digest, the manifest gives the bytes received.
        output.inputSha256 = request.withInput ? InputRecord(of: video).sha256 : nil
        let input = decoded.map { Array($0.planar().prefix(spec.frames * 3 * spec.width * spec.height)) }
        let id = "j" + String(UInt64.random(in: 0..<(1 << 48)), radix: 16)
        let job = FarmJob(id: id, client: client, spec: spec, output: output, model: model,
                          maxPieceBytes: options.maxPieceBytes, input: input, attemptIDs: AttemptIDs.random, clock: clock)
        // Acknowledged only once it is on disk: the input first, then the row that names it.
        if let input { try AtomicFile.write(LatentCodec.encode(input), to: inputPath(id)) }
        try store.insert(StoredJob(id: id, client: client, idempotencyKey: idempotencyKey,
                                   spec: try spec.message(output: output).serializedData(), state: job.state.stored,
                                   submittedMs: Int64(job.submitted.timeIntervalSince1970 * 1000)))
        table.remember(client: client, key: idempotencyKey, job: id)
        table.add(job)
        observe(.jobSubmitted(job: id))
        logger.info("job \(id) submitted: \(spec.frames) frames \(spec.width)x\(spec.height), \(job.run.plan.regions.count) region(s), \(job.run.shardsTotal) shard(s)")
        if job.run.isComplete { finish(job) }  // strength 0: the input is the answer
        return id
    }

    /// `reel pause`, `reel resume` and `reel retry`: the job after the action, or the new job
    /// a retry made.
    func control(_ envelope: Envelope, for requester: Requester) throws -> Reply {
        let request = try envelope.decode(Reel_V1_ControlRequest.self)
        let action: JobAction
        switch request.action {
        case .pause: action = .pause
        case .resume: action = .resume
        case .retry: action = .retry
        default: throw CoordinatorError(.actionRefused, "action \(request.action.rawValue) is not pause, resume or retry")
        }
        let job = try control(try self.job(request.jobID, for: requester), action)
        return (.controlReply, Reel_V1_ControlReply.with { $0.status = status(of: job) }, [])
    }

    /// Does `action` to `job`; one place for the CLI and the dashboard. Pausing a paused job
    /// or resuming a running one changes nothing.
    func control(_ job: FarmJob, _ action: JobAction) throws -> FarmJob {
        switch action {
        case .pause, .resume:
            guard job.isActive else {
                throw CoordinatorError(.actionRefused, "job \(job.id) is \(job.state.stored); only a running job can be paused or resumed")
            }
            let paused = action == .pause
            guard job.paused != paused else { return job }
            try store.setPaused(job.id, paused)
            job.paused = paused
            logger.info("job \(job.id) \(paused ? "paused" : "resumed")")
            return job
        case .retry:
            guard job.state.endedWithoutVideo else {
                throw CoordinatorError(.actionRefused, "job \(job.id) is \(job.state.stored); only a failed or cancelled job can be retried")
            }
            return try retried(job)
        }
    }

    private func retried(_ job: FarmJob) throws -> FarmJob {
        guard job.spec.strength >= 1 else {
            throw CoordinatorError(.actionRefused, "job \(job.id) re-rendered an input video, which is not kept once a job ends; submit it again with --input")
        }
        let id = try create(job.spec.message(output: job.output), input: Data(), client: job.client, idempotencyKey: "")
        logger.info("job \(job.id) retried as job \(id)")
        return jobs[id]!
    }

    /// What planning needs of a model, read from its configs once (never its weights): jobs
    /// are planned and given defaults from it, and a pixel model's prompts are read with its
    /// vocabulary before they are accepted.
    func model(_ name: String) throws -> PlannedModel {
        if let known = knownModels[name] { return known }
        let known = try PlannedModel(directory: ModelFamilies.locate(name))
        knownModels[name] = known
        return known
    }

    /// A job `requester` may see: its own, or any for an admin. Another client's job is
    /// answered as no job at all, so ids cannot be probed.
    func job(_ id: String, for requester: Requester) throws -> FarmJob {
        guard let job = jobs[id], requester.owns(job.client) else {
            if let stored = table.parked[id], requester.owns(stored.client) {
                throw CoordinatorError(.jobWaitsForModel, "job \(id) waits: \(status(ofParked: stored).waiting)")
            }
            throw CoordinatorError(.noSuchJob, "no job \(id.prefix(40)); `reel status` lists your jobs")
        }
        return job
    }

    func status(_ envelope: Envelope, for requester: Requester) throws -> Reply {
        let request = try envelope.decode(Reel_V1_StatusRequest.self)
        let selected: [Reel_V1_JobStatus]
        if request.jobID.isEmpty {
            selected = table.order.compactMap { id in
                if let job = jobs[id] { return requester.owns(job.client) ? status(of: job) : nil }
                return table.parked[id].flatMap { requester.owns($0.client) ? status(ofParked: $0) : nil }
            }
        } else if let stored = table.parked[request.jobID], requester.owns(stored.client) {
            selected = [status(ofParked: stored)]
        } else {
            selected = [status(of: try job(request.jobID, for: requester))]
        }
        return (.statusReply, Reel_V1_StatusReply.with { $0.jobs = selected }, [])
    }

    func cancel(_ envelope: Envelope, for requester: Requester) throws -> Reply {
        let id = try envelope.decode(Reel_V1_CancelRequest.self).jobID
        if let stored = table.parked[id], requester.owns(stored.client) {
            // Waiting for its model: ended in the store as it is.
            if stored.state == "running" {
                try store.finish(id, state: "cancelled")
                table.setParkedState(id, "cancelled")
                discardFiles(of: id)
                logger.info("job \(id) cancelled while waiting for its model")
            }
            return (.cancelReply, Reel_V1_CancelReply.with { $0.status = status(ofParked: table.parked[id]!) }, [])
        }
        let job = try job(id, for: requester)
        if job.isActive {
            end(job, .cancelled)
            logger.info("job \(job.id) cancelled")
        }
        return (.cancelReply, Reel_V1_CancelReply.with { $0.status = status(of: job) }, [])
    }

    func workersReply() -> Reel_V1_WorkersReply {
        Reel_V1_WorkersReply.with { $0.workers = workers.statuses(at: clock.now, shardCap: options.maxShardsPerWorker) }
    }

    func fetch(_ envelope: Envelope, for requester: Requester) throws -> Reply {
        let job = try job(try envelope.decode(Reel_V1_FetchRequest.self).jobID, for: requester)
        let video = try job.outputPath.map { try Data(contentsOf: URL(fileURLWithPath: $0)) } ?? Data()
        return (.fetchReply, Reel_V1_FetchReply.with { $0.status = status(of: job) }, [video])
    }
}
