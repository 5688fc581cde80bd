import Coordinator
import Diffusion
import Foundation
import InProcessFarm
import Planning
import TestSupport
import Testing
import Worker

/// Jobs driven through `JobRun` with the real shard runner on a small seeded model.
@Suite struct JobRunTests {
    static let modelConfig = ModelConfig(canvasHeight: 16, canvasWidth: 16, windowFrames: 6, fps: 8, patch: 4,
                                         width: 32, depth: 1, heads: 2, mlpRatio: 2,
                                         text: .init(width: 16, depth: 1, heads: 2, mlpRatio: 2, maxTokens: 8))

    static func spec(frames: Int, width: Int = 16, steps: Int = 4, sampler: String = "euler", sync: Int = 1) -> JobSpec {
        JobSpec(prompt: "a red circle moving left", model: "test", frames: frames, width: width, height: 16, fps: 8,
                steps: steps, sampler: sampler, guidance: 2, shift: 1, seed: 5, window: 6, overlap: 2, syncInterval: sync)
    }

    static func makeJob(_ spec: JobSpec) -> JobRun {
        JobRun(spec: spec, model: ModelShape(modelConfig)) { spec.initialNoise($0, channels: 3) }
    }

    /// Runs every shard, taking ready ones in an order shuffled by `seed` and finishing them in
    /// another shuffled order, so completion order varies widely.
    static func render(_ spec: JobSpec, renderer: LocalRenderer, shuffleSeed: UInt64) throws -> [Float] {
        let job = makeJob(spec)
        var generator = SplitMix(seed: shuffleSeed)
        var pending: [ShardAssignment] = []
        while !job.isComplete {
            pending += job.takeReadyShards()
            pending.shuffle(using: &generator)
            let result = try renderer.run(pending.removeLast(), of: job)
            #expect(job.accept(result) == .accepted)
        }
        return job.finalLatent()
    }

    @Test(arguments: ["euler", "heun", "dpm++2m"])
    func oneRegionEqualsTheOnePieceGenerator(sampler: String) throws {
        let (_, model) = try TestModels.makePackage(config: Self.modelConfig)
        for sync in [1, 3] {
            let spec = Self.spec(frames: 6, sampler: sampler, sync: sync)
            let farm = try LocalRenderer(model: model).render(spec)
            let settings = RenderSettings(prompt: spec.prompt, frames: 6, height: 16, width: 16, steps: spec.steps,
                                          sampler: Sampler(rawValue: sampler)!, guidance: spec.guidance, seed: spec.seed)
            let direct = try VideoGenerator(model: model).generate(settings)
            #expect(farm.scalars == direct.scalars, "\(sampler), sync \(sync)")
        }
    }

    /// A model with `frame_phase` is told where its window starts in the whole video: the same
    /// latent denoised as a window one period later gives the same bits, half a period later
    /// other bits.
    @Test func aPhaseModelReadsWhereItsWindowStarts() throws {
        var config = Self.modelConfig
        config.framePhase = .init(period: 8, harmonics: 2)
        let (_, model) = try TestModels.makePackage(config: config)
        let runner = ShardRunner(model: model)
        let latent = NoiseField(seed: 3).tensor(step: 0, frames: 0..<6, channels: 3, height: 16, width: 16)
        func denoise(from firstFrame: Int) throws -> [Float] {
            try Self.denoise(latent, with: runner, at: WindowPlace(firstFrame: firstFrame, videoFrames: 40))
        }
        #expect(try denoise(from: 3) == denoise(from: 11))
        #expect(try denoise(from: 3) != denoise(from: 7))
    }

    /// A model with `video_progress` is told how far through the video its window lies: one
    /// phase at another stretch of the video gives other bits, a one-window video is the whole
    /// video; and each chunk of a render is told its own first frame and the video's length.
    @Test func aProgressModelReadsHowFarThroughTheVideoItsWindowLies() throws {
        var config = Self.modelConfig
        config.framePhase = .init(period: 8, harmonics: 2)
        config.videoProgress = true
        let (_, model) = try TestModels.makePackage(config: config)
        let runner = ShardRunner(model: model)
        let latent = NoiseField(seed: 3).tensor(step: 0, frames: 0..<6, channels: 3, height: 16, width: 16)
        func denoise(_ place: WindowPlace) throws -> [Float] { try Self.denoise(latent, with: runner, at: place) }
        #expect(try denoise(WindowPlace(firstFrame: 8, videoFrames: 40)) != denoise(WindowPlace(firstFrame: 16, videoFrames: 40)),
                "one phase, another stretch of the video")
        #expect(try denoise(.whole) == denoise(WindowPlace(firstFrame: 0, videoFrames: 6)), "a one-window video is the whole video")

        let spec = Self.spec(frames: 14, steps: 2)
        let job = JobRun(spec: spec, model: ModelShape(config)) { spec.initialNoise($0, channels: 3) }
        let renderer = LocalRenderer(model: model)
        let second = try #require(job.takeReadyShards().first { job.plan.regions[$0.region].box.frames.lowerBound % 8 != 0 })
        let start = job.plan.regions[second.region].box.frames.lowerBound
        let shape = [6, 3, 16, 16]
        let alone = try ShardRunner(model: model).run(ShardWork(
            prompt: spec.prompt, sampler: .euler, scheduleSteps: 2, shift: 1, guidance: spec.guidance,
            place: WindowPlace(firstFrame: start, videoFrames: 14), steps: second.steps,
            latent: Tensor(shape: shape, scalars: second.latent), state: Sampler.State()))
        #expect(try renderer.run(second, of: job).latent == alone.latent.scalars,
                "the chunk from frame \(start) is told it starts there, in a video of 14 frames")
    }

    /// In a storyboard each chunk is placed in its shot, not the whole video: the chunk that
    /// opens the second shot, starting a frame before it, is told so, in a video the shot's length.
    @Test func aStoryboardsChunkIsToldItsPlaceInItsShot() throws {
        var config = Self.modelConfig
        config.framePhase = .init(period: 8, harmonics: 2)
        config.videoProgress = true
        let (_, model) = try TestModels.makePackage(config: config)
        var spec = Self.spec(frames: 14, steps: 2)  // chunks 0..<6, 4..<10, 8..<14
        spec.shots = [Shot(prompt: "a red circle moving left", frames: 5), Shot(prompt: "a blue square moving right", frames: 9)]
        let job = JobRun(spec: spec, model: ModelShape(config)) { spec.initialNoise($0, channels: 3) }
        let opening = try #require(job.takeReadyShards().first { job.plan.regions[$0.region].box.frames == 4..<10 })
        let alone = try ShardRunner(model: model).run(ShardWork(
            prompt: "a blue square moving right", sampler: .euler, scheduleSteps: 2, shift: 1, guidance: spec.guidance,
            place: WindowPlace(firstFrame: -1, videoFrames: 9), steps: opening.steps,
            latent: Tensor(shape: [6, 3, 16, 16], scalars: opening.latent), state: Sampler.State()))
        #expect(try LocalRenderer(model: model).run(opening, of: job).latent == alone.latent.scalars)
    }

    /// The shots of a storyboard are denoised apart and cross-faded where their chunks share
    /// frames: the frames only the first shot's chunks cover are the same bits whatever the
    /// second shot asks for, and only the shared frames mix the two.
    @Test func aShotsOwnFramesDoNotDependOnTheNextShot() throws {
        let (_, model) = try TestModels.makePackage(config: Self.modelConfig)
        let renderer = LocalRenderer(model: model)
        func render(secondShot: String) throws -> [Float] {
            var spec = Self.spec(frames: 16, steps: 3)  // chunks 0..<6, 4..<10 | 8..<14, 10..<16
            spec.shots = [Shot(prompt: "a red circle moving left", frames: 8), Shot(prompt: secondShot, frames: 8)]
            return try renderer.render(spec).scalars
        }
        let one = try render(secondShot: "a blue square moving right")
        let other = try render(secondShot: "a red square moving left")
        let frame = 3 * 16 * 16
        let ownFramesAgree = one[..<(8 * frame)] == other[..<(8 * frame)]
        let sharedFramesAgree = one[(8 * frame)..<(10 * frame)] == other[(8 * frame)..<(10 * frame)]
        #expect(ownFramesAgree, "frames 0-7 are the first shot's alone")
        #expect(!sharedFramesAgree, "frames 8-9 mix in the second shot")
    }

    static func denoise(_ latent: Tensor, with runner: ShardRunner, at place: WindowPlace) throws -> [Float] {
        let work = ShardWork(prompt: "a red circle moving left", sampler: .euler, scheduleSteps: 3, shift: 1,
                             guidance: 2, place: place, steps: 0..<3, latent: latent, state: Sampler.State())
        return try runner.run(work).latent.scalars
    }

    /// A renderer of the test model, and a job of 3 chunks x 2 tiles with `sampler` and
    /// `layoutStrength` (below 1: a layout pass first).
    static func chunkedJob(sampler: String, layoutStrength: Float) throws -> (LocalRenderer, JobSpec) {
        let (_, model) = try TestModels.makePackage(config: modelConfig)
        var spec = spec(frames: 14, width: 28, steps: 3, sampler: sampler)
        spec.layoutStrength = layoutStrength
        return (LocalRenderer(model: model), spec)
    }

    /// With and without a layout pass (whose two tiles are fused like the video's).
    @Test(arguments: ["euler", "dpm++2m"], [Float(1), 0.5])
    func chunksAndTilesGiveTheSameBitsInAnyCompletionOrder(sampler: String, layoutStrength: Float) throws {
        let (renderer, spec) = try Self.chunkedJob(sampler: sampler, layoutStrength: layoutStrength)
        let plan = RenderPlan(spec: spec, model: ModelShape(Self.modelConfig))
        #expect(plan.chunks.count == 3 && plan.tileColumns.count == 2 && plan.regions.count == (layoutStrength < 1 ? 8 : 6))
        let inOrder = try renderer.render(spec).scalars
        for seed: UInt64 in [1, 2, 3] {
            let shuffled = try Self.render(spec, renderer: renderer, shuffleSeed: seed)
            #expect(shuffled == inOrder, "shuffle \(seed)")
        }
        #expect(inOrder.allSatisfy { $0.isFinite })
    }

    /// With a layout pass the layout's window runs first, alone; each chunk then starts from the
    /// finished layout stretched over its frames and noised to the chunks' first step.
    @Test func aLongVideosChunksStartFromItsLayout() throws {
        let (_, model) = try TestModels.makePackage(config: Self.modelConfig)
        let renderer = LocalRenderer(model: model)
        var spec = Self.spec(frames: 14, steps: 4)  // chunks 0..<6, 4..<10, 8..<14; layout window 14..<20
        spec.layoutStrength = 0.5
        let job = Self.makeJob(spec)
        var layout: [Float] = []
        for _ in 0..<spec.steps {
            let shards = job.takeReadyShards()
            #expect(shards.map(\.region) == [3], "the chunks wait for the layout")
            let result = try renderer.run(try #require(shards.first), of: job)
            #expect(job.accept(result) == .accepted)
            layout = result.latent
        }
        let chunks = job.takeReadyShards()
        #expect(chunks.map(\.region) == [0, 1, 2] && chunks.allSatisfy { $0.steps == 2..<3 })
        // The video's first frame lies on the layout's first: (1 − t)·layout + t·noise.
        let t = FlowSchedule(steps: 4, shift: 1).times[2]
        let noise = spec.initialNoise(job.plan.regions[0].box, channels: 3)
        let frame = 3 * 16 * 16
        let first = try #require(chunks.first).latent.prefix(frame)
        #expect(zip(first, (0..<frame).map { (1 - t) * layout[$0] + t * noise[$0] }).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    /// A model with `frame_stride` draws its layout as keyframes, frames of the video: every input
    /// a chunk gets holds the frames nearest them at the keyframe noised to that step's time
    /// (with the seed's noise, as the chunk started), and the frames between as denoised.
    @Test(arguments: ["euler", "dpm++2m"])
    func chunksKeepTheLayoutsKeyframesAtEveryStep(sampler: String) throws {
        var config = Self.modelConfig
        config.videoProgress = true
        config.frameStride = true
        let (_, model) = try TestModels.makePackage(config: config)
        let renderer = LocalRenderer(model: model)
        var spec = Self.spec(frames: 14, steps: 4, sampler: sampler)  // chunks 0..<6, 4..<10, 8..<14
        spec.layoutStrength = 0.75
        let job = JobRun(spec: spec, model: ModelShape(config)) { spec.initialNoise($0, channels: 3) }
        let layoutFrames = job.plan.layout!.frames(ofShot: 0)  // keyframe k lies 13k/5 = 2.6k frames in
        let kept = [0, 3, 5, 8, 10, 13]
        #expect((0..<14).filter { job.plan.layout!.keyframe(atFrame: $0) != nil } == kept)
        let frame = 3 * 16 * 16, schedule = FlowSchedule(steps: 4, shift: 1)
        var layout: [Float] = [], inputs = 0
        while !job.isComplete {
            for shard in job.takeReadyShards() {
                let box = job.plan.regions[shard.region].box
                if box.frames == layoutFrames {
                    let result = try renderer.run(shard, of: job)
                    layout = result.latent
                    #expect(job.accept(result) == .accepted)
                    continue
                }
                let t = schedule.times[shard.steps.lowerBound]
                for video in kept where box.frames.contains(video) {
                    let keyframe = job.plan.layout!.keyframe(atFrame: video)! - layoutFrames.lowerBound
                    let noise = spec.initialNoise(Box(frames: video..<(video + 1), rows: box.rows, columns: box.columns), channels: 3)
                    let held = shard.latent[((video - box.frames.lowerBound) * frame)...].prefix(frame)
                    let expected = (0..<frame).map { (1 - t) * layout[keyframe * frame + $0] + t * noise[$0] }
                    #expect(zip(held, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "frame \(video) of region \(shard.region) at step \(shard.steps.lowerBound)")
                    inputs += 1
                }
                #expect(job.accept(try renderer.run(shard, of: job)) == .accepted)
            }
        }
        #expect(inputs == 3 * (3 + 2 + 3), "three steps of chunks keeping 3, 2 and 3 keyframes (5 and 8 lie in two)")
        #expect(job.finalLatent().allSatisfy { $0.isFinite })
    }

    @Test func aChunkAdvancesAsSoonAsItsNeighboursHaveWithoutAGlobalBarrier() throws {
        let (_, model) = try TestModels.makePackage(config: Self.modelConfig)
        let renderer = LocalRenderer(model: model)
        let job = Self.makeJob(Self.spec(frames: 14, steps: 3))  // chunks 0..<6, 4..<10, 8..<14
        let first = job.takeReadyShards()
        #expect(first.map(\.region) == [0, 1, 2])
        // Chunks 0 and 1 finish step 0; chunk 2 is still running.
        for assignment in first.prefix(2) { _ = job.accept(try renderer.run(assignment, of: job)) }
        #expect(job.takeReadyShards().map(\.region) == [0], "chunk 0 needs only itself and chunk 1; chunk 1 waits for chunk 2")
    }

    @Test func staleAndSupersededResultsAreDropped() throws {
        let (_, model) = try TestModels.makePackage(config: Self.modelConfig)
        let renderer = LocalRenderer(model: model)
        let spec = Self.spec(frames: 6, steps: 2)
        let job = Self.makeJob(spec)
        let original = try #require(job.takeReadyShards().first)
        let lateResult = try renderer.run(original, of: job)
        job.requeue(region: original.region)  // its worker was presumed dead
        let retry = try #require(job.takeReadyShards().first)
        #expect(retry.attempt != original.attempt && retry.latent == original.latent)
        #expect(job.accept(lateResult) == .stale, "the presumed-dead worker's late result does not count")
        let retried = try renderer.run(retry, of: job)
        #expect(job.accept(retried) == .accepted)
        #expect(job.accept(retried) == .stale, "a duplicate does not count twice")
        while !job.isComplete {
            for assignment in job.takeReadyShards() { _ = job.accept(try renderer.run(assignment, of: job)) }
        }
        #expect(job.finalLatent() == (try renderer.render(spec)).scalars)
    }
}

/// A small seeded generator for reproducible shuffles.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A run checkpointed at any point and restored into a new run (a restarted coordinator, with
/// new attempt ids) finishes with the same bits as a run never interrupted.
@Suite struct CheckpointTests {
    @Test(arguments: ["euler", "dpm++2m"], [Float(1), 0.5])
    func aRestoredRunFinishesWithTheSameBits(sampler: String, layoutStrength: Float) throws {
        let (renderer, spec) = try JobRunTests.chunkedJob(sampler: sampler, layoutStrength: layoutStrength)
        let uninterrupted = try renderer.render(spec).scalars
        for restartAfter in [1, 4, 9] {
            var job = JobRunTests.makeJob(spec)
            var accepted = 0, restarts = 0
            var generator = SplitMix(seed: UInt64(restartAfter))
            var pending: [ShardAssignment] = []
            while !job.isComplete {
                pending += job.takeReadyShards()
                pending.shuffle(using: &generator)
                #expect(job.accept(try renderer.run(pending.removeLast(), of: job)) == .accepted)
                accepted += 1
                if accepted % restartAfter == 0 {
                    // Through the file format, as a restart reads it. Shards in flight are lost.
                    let saved = try CheckpointFile.decode(CheckpointFile.encode(job.checkpoint()))
                    #expect(saved == job.checkpoint())
                    restarts += 1
                    job = JobRun(spec: spec, model: ModelShape(JobRunTests.modelConfig), attemptIDs: AttemptIDs.counting(from: UInt64(restarts) << 32 | 1)) {
                        spec.initialNoise($0, channels: 3)
                    }
                    try job.restore(saved)
                    pending.removeAll()
                }
            }
            #expect(restarts > 0)
            #expect(job.finalLatent() == uninterrupted, "restored every \(restartAfter) results")
        }
    }

    @Test func damagedCheckpointsAreRefusedWithAReason() throws {
        let spec = JobRunTests.spec(frames: 14, width: 28, steps: 3)
        let job = JobRunTests.makeJob(spec)
        let (_, model) = try TestModels.makePackage(config: JobRunTests.modelConfig)
        let renderer = LocalRenderer(model: model)
        for assignment in job.takeReadyShards() { _ = job.accept(try renderer.run(assignment, of: job)) }
        let bytes = CheckpointFile.encode(job.checkpoint())
        func code(_ body: () throws -> Any) -> CheckpointError.Code? {
            do { _ = try body() } catch { return (error as? CheckpointError)?.code }
            return nil
        }
        // Cut short or lengthened, the checksum no longer holds; a stranger's file has no magic.
        #expect(code { try CheckpointFile.decode(bytes.dropLast(3)) } == .checksum)
        #expect(code { try CheckpointFile.decode(bytes + Data([0])) } == .checksum)
        #expect(code { try CheckpointFile.decode(Data("not a checkpoint".utf8)) } == .notACheckpoint)
        // A float changed on disk, the length right: only the checksum can tell.
        var flipped = bytes
        flipped[flipped.count / 2] ^= 0x40
        #expect(code { try CheckpointFile.decode(flipped) } == .checksum)
        #expect(try CheckpointFile.decode(bytes) == job.checkpoint())
        // One that decodes but belongs to another plan changes nothing.
        let other = JobRunTests.makeJob(JobRunTests.spec(frames: 6, width: 16, steps: 3))
        #expect(code { try other.restore(job.checkpoint()) } == .planMismatch)
        #expect(other.stepsDone == 0)
    }
}
