import Media
import Planning

/// Work handed to a worker: a region, a step range, and the fused latent to start from. The
/// attempt id is a fencing token: only the latest attempt's result for a shard counts.
public struct ShardAssignment: Sendable, Equatable {
    public let region: Int, steps: Range<Int>, attempt: UInt64
    /// The fused latent, and the multistep sampler state (DPM-Solver++'s previous data
    /// prediction), fused like it.
    public let latent: [Float], state: [Float]?
}

/// A worker's answer to an assignment.
public struct ShardResult: Sendable, Equatable {
    public let region: Int
    public let steps: Range<Int>
    public let attempt: UInt64
    public let latent: [Float]
    public let state: [Float]?
    /// A decode shard's frames, 8-bit RGB; empty for every other kind.
    public let pixels: [UInt8]

    public init(region: Int, steps: Range<Int>, attempt: UInt64, latent: [Float], state: [Float]?, pixels: [UInt8] = []) {
        self.region = region; self.steps = steps; self.attempt = attempt; self.latent = latent; self.state = state
        self.pixels = pixels
    }
}

/// The progress of one job: which regions reached which step, what may run next, and fusion.
///
/// A region may start its next step range once every region it is fused with (those overlapping
/// it in its own shot) has reached the step it starts from — a wavefront, not a barrier across
/// the whole video. Its input is fused from those regions' results in canonical order, so the
/// output does not depend on which worker ran what, or when. The finished video fuses every
/// region of the video. With a layout pass, the layout's regions run first, from step 0, and
/// a region of the video starts once the layout of its shots is finished.
///
/// A latent model's job has units of work besides its regions (`Unit`): its prompts, encoded
/// before any region starts (each region's shards carry the embeddings), an input video to
/// re-render, encoded before any region starts too, and pieces of the final latent, decoded
/// once every region is done. Units are numbered regions first, then prompts, the input, then
/// pieces; a shard's `region` on the wire is its unit.
public final class JobRun {
    /// The spec as planned: for a latent model's job, in latent frames and pixels.
    public let spec: JobSpec
    public let plan: RenderPlan
    /// A latent model's text and decode stages; nil for a pixel-space model.
    public let stages: LatentStages?

    /// A region's latent (and sampler state) at a step.
    struct Snapshot {
        let latent: [Float]
        let state: [Float]?
    }

    /// snapshots[region][step]; kept until every region fused with it has moved past the step.
    /// The first step's are not kept: `initialLatent` (and the finished layout) draw them
    /// again when they are needed, so a queued job holds no latents at all.
    private var snapshots: [[Int: Snapshot]]
    private let initialLatent: (Box) -> [Float]
    /// For each region of the video that keeps keyframes, those it keeps; drawn once, when the
    /// region first starts (the finished layout never changes).
    private var keptKeyframes: [Int: [KeptKeyframe]] = [:]
    /// The last step each region has a result for.
    public private(set) var progress: [Int]
    private var inFlight: [Int: (attempt: UInt64, steps: Range<Int>)] = [:]
    private let nextAttempt: () -> UInt64
    /// Units whose readiness may have changed since they were last looked at: a job with
    /// thousands of regions must not rescan them all for every result.
    private var candidates: Set<Int>
    /// A latent job's prompt embeddings and decoded pieces (8-bit RGB frames), once they arrive.
    private var embeddings: [[Float]?]
    private var decoded: [[UInt8]?]
    /// The fused final latent, kept while its pieces decode.
    private var denoised: [Float]?
    /// A latent job's input video, 8-bit RGB, until it is encoded; and its latent once it is.
    private var inputPixels: [UInt8]?
    private var encodedInput: [Float]?
    private var encodesInput: Bool { stages?.inputTime != nil }

    /// `initialLatent` gives a box's latent at the first step: the seed's noise, or for an
    /// input video its frames noised to that step's time. `attemptIDs` gives each assignment
    /// its id: a farm's are unpredictable (`AttemptIDs.random`).
    public convenience init(spec: JobSpec, model: ModelShape, channels: Int = 3, attemptIDs: @escaping () -> UInt64 = AttemptIDs.counting(),
                            initialLatent: @escaping (Box) -> [Float]) {
        self.init(planned: spec, model: model, channels: channels, stages: nil, attemptIDs: attemptIDs, initialLatent: initialLatent)
    }

    /// A latent model's job: planned over its latent, started from the seed's noise there, or
    /// from `input` (planar [frames, 3, height, width] in [-1, 1], at least the job's frames)
    /// encoded and noised to its first step.
    public convenience init(spec: JobSpec, stages: LatentStages, input: [Float]? = nil,
                            attemptIDs: @escaping () -> UInt64 = AttemptIDs.counting()) {
        // A latent job is planned in latent frames; its frames come from its pieces.
        let latent = stages.latentSpec(spec), channels = stages.parts.channels
        self.init(planned: latent, model: stages.latentShape(spec), channels: channels, stages: stages, attemptIDs: attemptIDs) {
            latent.initialNoise($0, channels: channels)
        }
        if stages.inputTime != nil, let input {
            let count = spec.frames * 3 * spec.width * spec.height
            inputPixels = RGBVideo(planar: Array(input.prefix(count)), frames: spec.frames, height: spec.height, width: spec.width).pixels
        }
    }

    private init(planned spec: JobSpec, model: ModelShape, channels: Int, stages: LatentStages?, attemptIDs: @escaping () -> UInt64,
                 initialLatent: @escaping (Box) -> [Float]) {
        self.spec = spec
        self.stages = stages
        plan = RenderPlan(spec: spec, model: model, channels: channels)
        snapshots = plan.regions.map { _ in [:] }
        progress = plan.regions.indices.map(plan.firstStep(of:))
        embeddings = (stages?.prompts ?? []).map { _ in nil }
        decoded = (stages?.pieces ?? []).map { _ in nil }
        nextAttempt = attemptIDs
        self.initialLatent = initialLatent
        candidates = []  // every stored property set, so that `unitCount` may be read
        candidates = Set(0..<unitCount)
    }

    /// A unit of a job's work, as numbered on the wire.
    public enum Unit: Equatable, Sendable {
        case region(Int)
        /// One of `stages.prompts`, to encode.
        case prompt(Int)
        /// The input video, to encode.
        case input
        /// One of `stages.pieces`, to decode.
        case piece(Int)
    }

    private var inputUnits: Int { encodesInput ? 1 : 0 }
    public var unitCount: Int { plan.regions.count + embeddings.count + inputUnits + decoded.count }

    /// What unit `index` is; nil past the job's units.
    public func unit(_ index: Int) -> Unit? {
        let regions = plan.regions.count, prompts = embeddings.count, pieces = regions + prompts + inputUnits
        switch index {
        case 0..<regions: return .region(index)
        case regions..<(regions + prompts): return .prompt(index - regions)
        case (regions + prompts)..<pieces: return .input
        case pieces..<unitCount: return .piece(index - pieces)
        default: return nil
        }
    }

    private var pieceUnits: Range<Int> { (plan.regions.count + embeddings.count + inputUnits)..<unitCount }
    /// What a region needs before its first step: the prompts' embeddings, and the input's latent.
    private var conditionsReady: Bool { embeddings.allSatisfy { $0 != nil } && inputEncoded }
    /// Every region has finished its last step.
    public var isDenoised: Bool { progress.allSatisfy { $0 == plan.steps } }
    /// Whether the job's input video, if it has one to encode, is encoded.
    public var inputEncoded: Bool { !encodesInput || encodedInput != nil }
    public var promptsDone: Int { embeddings.count(where: { $0 != nil }) }
    public var piecesDone: Int { decoded.count(where: { $0 != nil }) }

    /// Values a unit's result holds: a region's latent, an embedding, a piece's frames.
    public func resultCount(of unit: Int) -> Int? {
        switch self.unit(unit) {
        case .region(let region): return plan.regions[region].box.count(channels: plan.channels)
        case .input: return plan.wholeVideo.count(channels: plan.channels)
        case .prompt: return stages!.embeddingCount
        case .piece(let piece): return stages!.frameCount(of: stages!.pieces[piece])
        case nil: return nil
        }
    }

    public var isComplete: Bool { isDenoised && decoded.allSatisfy { $0 != nil } }
    public var stepsDone: Int { stepsDone(in: progress) }
    /// Steps done over the regions when each stands at `progress` (this run's, or the steps an
    /// ended job's regions reached, as the store kept them).
    public func stepsDone(in progress: [Int]) -> Int {
        plan.regions.indices.reduce(0) { $0 + max(0, progress[$1] - plan.firstStep(of: $1)) }
    }
    public var stepsTotal: Int { plan.regions.indices.reduce(0) { $0 + plan.steps - plan.firstStep(of: $1) } }
    public var runningCount: Int { inFlight.count }
    /// Shards of the whole job: every region runs each of its step ranges once; a latent
    /// job also encodes each prompt (and its input) and decodes each piece once.
    public var shardsTotal: Int { plan.shardCount + embeddings.count + inputUnits + decoded.count }

    /// Assignments for every region that can run now and is not already running.
    public func takeReadyShards() -> [ShardAssignment] {
        let looked = candidates.sorted()
        candidates.removeAll(keepingCapacity: true)
        return looked.compactMap { index in
            guard inFlight[index] == nil else { return nil }
            switch unit(index) {
            case .prompt(let prompt):
                guard embeddings[prompt] == nil else { return nil }
                return start(index, steps: 0..<0, latent: [], state: nil)
            case .input:
                guard encodedInput == nil else { return nil }
                return start(index, steps: 0..<0, latent: [], state: nil)
            case .piece(let piece):
                guard decoded[piece] == nil, isDenoised else { return nil }
                let frames = stages!.pieces[piece].decoded, frameSize = plan.channels * plan.height * plan.width
                return start(index, steps: 0..<0, latent: Array(denoisedLatent()[(frames.lowerBound * frameSize)..<(frames.upperBound * frameSize)]), state: nil)
            case .region(let region):
                let step = progress[region]
                guard conditionsReady, step < plan.steps,
                      plan.fusedWith[region].allSatisfy({ hasSnapshot($0, at: step) }),
                      let steps = plan.stepRange(of: region, startingAt: step) else { return nil }
                let input = fusedInput(region, at: step)
                return start(region, steps: steps, latent: input.latent, state: input.state)
            case nil:
                return nil
            }
        }
    }

    private func start(_ unit: Int, steps: Range<Int>, latent: [Float], state: [Float]?) -> ShardAssignment {
        let attempt = nextAttempt()
        inFlight[unit] = (attempt, steps)
        return ShardAssignment(region: unit, steps: steps, attempt: attempt, latent: latent, state: state)
    }

    /// A latent job's prompt embedding, once encoded: [tokens, width] values.
    public func embedding(_ prompt: Int) -> [Float]? { embeddings[prompt] }

    /// A latent job's input video as its encode shard sends it, 8-bit RGB.
    public var inputFrames: [UInt8]? { inputPixels }

    public enum Acceptance: Equatable {
        case accepted
        /// Not the current attempt of a running shard (late, duplicate or superseded): dropped.
        case stale
    }

    public func accept(_ result: ShardResult) -> Acceptance {
        guard let running = inFlight[result.region], running.attempt == result.attempt, running.steps == result.steps else {
            return .stale
        }
        precondition(max(result.latent.count, result.pixels.count) == resultCount(of: result.region), "result of the wrong size")
        inFlight[result.region] = nil
        switch unit(result.region) {
        case .prompt(let prompt):
            embeddings[prompt] = result.latent
            if conditionsReady { candidates.formUnion(plan.regions.indices) }
            return .accepted
        case .input:
            encodedInput = result.latent
            inputPixels = nil  // encoded: the frames are not needed again (the job's input file stays until it ends)
            if conditionsReady { candidates.formUnion(plan.regions.indices) }
            return .accepted
        case .piece(let piece):
            decoded[piece] = result.pixels
            return .accepted
        case .region, nil:
            break
        }
        snapshots[result.region][result.steps.upperBound] = Snapshot(latent: result.latent, state: result.state)
        progress[result.region] = result.steps.upperBound
        candidates.formUnion(plan.fusedWith[result.region])
        if plan.regions[result.region].layoutShot != nil && progress[result.region] == plan.steps {
            candidates.formUnion(plan.videoRegions)  // the video's regions wait for the layout
        }
        releaseSnapshots(around: result.region)
        // Only a latent job has pieces: a pixel job's results never scan every region here.
        if stages != nil && isDenoised { candidates.formUnion(pieceUnits) }
        return .accepted
    }

    /// The latent `region` reached at its last finished step; nil before its first result.
    public func latestLatent(of region: Int) -> [Float]? {
        progress[region] > plan.firstStep(of: region) ? snapshots[region][progress[region]]?.latent : nil
    }

    /// Whether `attempt` is the running attempt of `region`.
    public func isRunning(region: Int, attempt: UInt64) -> Bool { inFlight[region]?.attempt == attempt }

    /// Forgets the running attempt of `region` (its worker was lost or failed): it becomes
    /// ready again under a new attempt id, and the old attempt's result will be dropped.
    public func requeue(region: Int) {
        inFlight[region] = nil
        candidates.insert(region)
    }

    // MARK: checkpoints

    /// Everything a run needs to go on after a restart: each region's progress and the
    /// snapshots still held. Shards in flight are not part of it: they run again, from the same
    /// inputs, so the output is the same bits.
    public struct Checkpoint: Equatable, Sendable {
        public struct Entry: Equatable, Sendable {
            public let region: Int
            public let step: Int
            public let latent: [Float]
            public let state: [Float]?
            /// A decoded piece's frames, 8-bit RGB (its `latent` is empty).
            public let frames: [UInt8]?

            public init(region: Int, step: Int, latent: [Float], state: [Float]?, frames: [UInt8]? = nil) {
                self.region = region; self.step = step; self.latent = latent; self.state = state; self.frames = frames
            }
        }
        public var progress: [Int]
        public var entries: [Entry]

        public init(progress: [Int], entries: [Entry]) {
            self.progress = progress
            self.entries = entries
        }
    }

    public func checkpoint() -> Checkpoint {
        // A latent job's embeddings, input latent and decoded pieces are entries of their units
        // at step 0; a piece's frames stay bytes (shared with the run's, not copied).
        let input = encodesInput ? [encodedInput] : []
        var entries = zip(plan.regions.count..., embeddings + input).compactMap { unit, values in
            values.map { Checkpoint.Entry(region: unit, step: 0, latent: $0, state: nil) }
        }
        entries += zip(pieceUnits, decoded).compactMap { unit, frames in
            frames.map { Checkpoint.Entry(region: unit, step: 0, latent: [], state: nil, frames: $0) }
        }
        for region in plan.regions.indices {
            for (step, snapshot) in snapshots[region].sorted(by: { $0.key < $1.key }) where step > plan.firstStep(of: region) {
                entries.append(.init(region: region, step: step, latent: snapshot.latent, state: snapshot.state))
            }
        }
        return Checkpoint(progress: progress, entries: entries)
    }

    /// Continues from `checkpoint`, taken of a run of the same spec and plan. Nothing changes
    /// unless the whole checkpoint fits this plan.
    public func restore(_ checkpoint: Checkpoint) throws {
        guard checkpoint.progress.count == plan.regions.count,
              zip(plan.regions.indices, checkpoint.progress).allSatisfy({ (plan.firstStep(of: $0)...plan.steps).contains($1) }) else {
            throw CheckpointError(.planMismatch, "progress of \(checkpoint.progress.count) regions does not fit a plan of \(plan.regions.count)")
        }
        for entry in checkpoint.entries {
            let fits: Bool
            switch unit(entry.region) {
            case .region(let region): fits = entry.frames == nil && (plan.firstStep(of: region)...plan.steps).contains(entry.step)
                                             && (entry.state.map { $0.count == entry.latent.count } ?? true)
            case .prompt, .input: fits = entry.frames == nil && entry.step == 0 && entry.state == nil
            case .piece: fits = entry.step == 0 && entry.state == nil && entry.latent.isEmpty && entry.frames?.count == resultCount(of: entry.region)
            case nil: fits = false
            }
            guard fits, entry.frames != nil || entry.latent.count == resultCount(of: entry.region) else {
                throw CheckpointError(.planMismatch, "a snapshot of unit \(entry.region) at step \(entry.step) does not fit the plan")
            }
        }
        for region in plan.regions.indices where checkpoint.progress[region] > plan.firstStep(of: region) {
            let step = checkpoint.progress[region]
            guard checkpoint.entries.contains(where: { $0.region == region && $0.step == step }) else {
                throw CheckpointError(.planMismatch, "region \(region) reached step \(step) but its snapshot is missing")
            }
        }
        for entry in checkpoint.entries {
            switch unit(entry.region) {
            case .prompt(let prompt): embeddings[prompt] = entry.latent
            case .input:
                encodedInput = entry.latent
                inputPixels = nil
            case .piece(let piece): decoded[piece] = entry.frames
            case .region, nil: snapshots[entry.region][entry.step] = Snapshot(latent: entry.latent, state: entry.state)
            }
        }
        progress = checkpoint.progress
        inFlight.removeAll()
        denoised = nil
        candidates = Set(0..<unitCount)
    }

    /// The finished video's latent, fused over the whole canvas.
    public func finalLatent() -> [Float] {
        precondition(isComplete, "the job has not finished")
        return denoisedLatent()
    }

    /// The final latent, fused once every region is done.
    private func denoisedLatent() -> [Float] {
        if let denoised { return denoised }
        let latent = fuse(plan.wholeVideo, at: plan.steps, from: Array(plan.videoRegions)).latent
        if stages != nil { denoised = latent }
        return latent
    }

    /// A latent job's video: its decoded pieces one after another, 8-bit RGB.
    public func finalFrames() -> [UInt8] {
        precondition(isComplete && stages != nil, "the job has not finished, or has no decode stage")
        return decoded.flatMap { $0! }
    }

    private func hasSnapshot(_ region: Int, at step: Int) -> Bool {
        if step == plan.firstStep(of: region) {
            return plan.layoutSources[region].allSatisfy { progress[$0] == plan.steps }
        }
        return snapshots[region][step] != nil
    }

    private func snapshot(_ region: Int, at step: Int) -> Snapshot {
        if let held = snapshots[region][step] { return held }
        precondition(step == plan.firstStep(of: region), "snapshot of region \(region) at step \(step) was released too early")
        let box = plan.regions[region].box
        if let encodedInput, let time = stages?.inputTime {
            // SDEdit in latent space: the encoded input noised to the first step's time.
            let clean = Fusion.crop(encodedInput, from: plan.wholeVideo, to: box, channels: plan.channels)
            return Snapshot(latent: zip(clean, initialLatent(box)).map { (1 - time) * $0 + time * $1 }, state: nil)
        }
        guard let layout = plan.layout, !plan.layoutSources[region].isEmpty else { return Snapshot(latent: initialLatent(box), state: nil) }
        // SDEdit from the finished layout, stretched over this region's frames.
        let finished = finishedLayout(for: region).latent
        return Snapshot(latent: spec.noised(layout.stretched(finished, to: box, channels: plan.channels), noise: initialLatent(box)), state: nil)
    }

    /// The finished layout over the layout frames `region` is drawn from (`LayoutPass.sourceBox`).
    private func finishedLayout(for region: Int) -> (source: Box, latent: [Float]) {
        let source = plan.layout!.sourceBox(of: plan.regions[region].box)
        return (source, fuse(source, at: plan.steps, from: plan.layoutSources[region]).latent)
    }

    private func fusedInput(_ region: Int, at step: Int) -> Snapshot {
        // At the first step every region holds its own box of the starting latent: nothing to fuse.
        let input = step == plan.firstStep(of: region) ? snapshot(region, at: step)
                                                        : fuse(plan.regions[region].box, at: step, from: plan.fusedWith[region])
        return keepingKeyframes(input, of: region, at: step)
    }

    /// A keyframe a region keeps: where in its box, the finished layout's frame, and the seed's
    /// noise at that frame of the video.
    struct KeptKeyframe {
        let offset: Int
        let clean: [Float]
        let noise: [Float]
    }

    /// `input` with the frames of `region` nearest the layout's keyframes set to those keyframes
    /// noised to the step's time, (1 − t)·keyframe + t·noise, as SDEdit set them at the chunk's
    /// start: each chunk draws the frames between keyframes that every chunk shares, so a bounce
    /// keeps its phase and a growing object its size across chunks. With a multistep sampler
    /// the previous data prediction there is the keyframe itself.
    private func keepingKeyframes(_ input: Snapshot, of region: Int, at step: Int) -> Snapshot {
        let kept = keyframes(keptBy: region)
        guard let frameSize = kept.first?.clean.count else { return input }
        var latent = input.latent, state = input.state
        for keyframe in kept {
            let frame = (keyframe.offset * frameSize)..<((keyframe.offset + 1) * frameSize)
            latent.replaceSubrange(frame, with: spec.noised(keyframe.clean, noise: keyframe.noise, at: step))
            state?.replaceSubrange(frame, with: keyframe.clean)
        }
        return Snapshot(latent: latent, state: state)
    }

    private func keyframes(keptBy region: Int) -> [KeptKeyframe] {
        if let kept = keptKeyframes[region] { return kept }
        guard let layout = plan.layout, layout.keyframes, !plan.layoutSources[region].isEmpty else { return [] }
        let box = plan.regions[region].box, (source, finished) = finishedLayout(for: region)
        let frameSize = plan.channels * box.rows.count * box.columns.count
        let kept = box.frames.compactMap { frame -> KeptKeyframe? in
            guard let keyframe = layout.keyframe(atFrame: frame) else { return nil }
            let from = (keyframe - source.frames.lowerBound) * frameSize
            return KeptKeyframe(offset: frame - box.frames.lowerBound, clean: Array(finished[from..<(from + frameSize)]),
                                noise: initialLatent(Box(frames: frame..<(frame + 1), rows: box.rows, columns: box.columns)))
        }
        keptKeyframes[region] = kept
        return kept
    }

    private func fuse(_ area: Box, at step: Int, from sources: [Int]) -> Snapshot {
        let parts = sources.map { ($0, snapshot($0, at: step)) }
        let latent = Fusion.fuse(area, plan: plan, contributions: parts.map { Fusion.Contribution(region: $0.0, values: $0.1.latent) })
        let states = parts.compactMap { part in part.1.state.map { Fusion.Contribution(region: part.0, values: $0) } }
        let state = states.count == parts.count ? Fusion.fuse(area, plan: plan, contributions: states) : nil
        return Snapshot(latent: latent, state: state)
    }

    /// Drops snapshots no region can need again: a region's result at a step is needed until
    /// every region fused with it has finished the range starting there (a failed shard
    /// is retried from the same inputs).
    private func releaseSnapshots(around region: Int) {
        for neighbour in plan.fusedWith[region] {
            let slowest = plan.fusedWith[neighbour].map { progress[$0] }.min()!
            for step in snapshots[neighbour].keys where step < slowest && step < progress[neighbour] {
                snapshots[neighbour][step] = nil
            }
        }
    }
}

/// Where attempt ids come from. An id is a fencing token: only the current attempt's result for a
/// shard counts.
public enum AttemptIDs {
    /// 1, 2, 3, …: for a run whose ids no other party sees.
    public static func counting(from first: UInt64 = 1) -> () -> UInt64 {
        var next = first
        return {
            defer { next &+= 1 }
            return next
        }
    }

    /// 64 bits from the system's cryptographic generator: a worker cannot guess the id of a
    /// shard given to another, and ids of a coordinator's earlier lives do not come back.
    public static func random() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }
}

/// A checkpoint that cannot continue this run.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable {
        case truncated, checksum, notACheckpoint, strayBytes, outOfRange
        /// Well formed, but of another plan than this job's.
        case planMismatch
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) { (self.code, self.description) = (code, description) }
}
