import Coordinator
import Diffusion
import Families
import Foundation
import InProcessFarm
import Media
import Planning
import Testing
import Wan
import Wire
import Worker

/// A latent model's job on the farm's path: its prompts encoded once, its regions denoised in
/// latent space, its final latent decoded in pieces, with the tiny parity-checked Wan model.
@Suite struct LatentJobTests {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("WanTests/Fixtures/wan-tiny").path

    /// A resolved spec for the tiny model: 64x64, `frames` frames, `steps` steps.
    static func spec(frames: Int, steps: Int = 2, sync: Int = 1) throws -> JobSpec {
        var request = Reel_V1_JobSpec()
        request.prompt = "a cat walks along a wall"
        request.model = "wan-tiny"
        request.frames = UInt32(frames)
        request.width = 64; request.height = 64
        request.steps = UInt32(steps)
        request.syncInterval = UInt32(sync)
        request.seed = 3
        return try SpecResolver(model: PlannedModel(directory: model)).resolve(request).spec
    }

    static func stages(_ spec: JobSpec) throws -> LatentStages {
        try #require(PlannedModel(directory: model).stages(for: spec))
    }

    /// Every shard, ready ones taken in an order shuffled by `seed` and finished in another.
    static func render(_ job: JobRun, renderer: LocalRenderer, shuffleSeed: UInt64, stopAfter results: Int = .max) throws {
        var generator = SplitMix(seed: shuffleSeed)
        var pending: [ShardAssignment] = []
        var done = 0
        while !job.isComplete && done < results {
            pending += job.takeReadyShards()
            pending.shuffle(using: &generator)
            #expect(job.accept(try renderer.run(pending.removeLast(), of: job)) == .accepted)
            done += 1
        }
    }

    @Test func promptsAreEncodedFirstAndPiecesDecodedLast() throws {
        let spec = try Self.spec(frames: 117)   // 30 latent frames: two chunks of 21, two pieces
        let stages = try Self.stages(spec)
        #expect(stages.prompts == [spec.prompt, WanModel.defaultNegativePrompt])
        #expect(stages.pieces.map(\.own) == [0..<21, 21..<30] && stages.pieces.map(\.frames) == [0..<81, 81..<117])
        #expect(stages.pieces[1].decoded == 0..<30 && stages.pieces[1].skipFrames == 81, "the whole reach before it: here, from the first frame")
        let job = JobRun(spec: spec, stages: stages)
        #expect(job.plan.chunks.count == 2 && job.shardsTotal == 2 * 2 + 2 + 2)
        let renderer = LocalRenderer(latentModel: try ModelFamilies.open(Self.model))

        let first = job.takeReadyShards()
        #expect(first.map { job.unit($0.region) } == [.prompt(0), .prompt(1)], "only the prompts can start")
        for assignment in first { #expect(job.accept(try renderer.run(assignment, of: job)) == .accepted) }
        var kinds: [JobRun.Unit] = []
        while !job.isDenoised {
            for assignment in job.takeReadyShards() {
                kinds.append(job.unit(assignment.region)!)
                _ = job.accept(try renderer.run(assignment, of: job))
            }
        }
        #expect(kinds.allSatisfy { if case .region = $0 { true } else { false } }, "no piece before the last step: \(kinds)")
        let last = job.takeReadyShards()
        #expect(last.map { job.unit($0.region) } == [.piece(0), .piece(1)])
        #expect(!job.isComplete)
    }

    @Test func oneWindowOnTheFarmsPathIsThePipelineBitForBit() throws {
        let spec = try Self.spec(frames: 9, steps: 3, sync: 2)
        let model = try WanModel(directory: Self.model)
        let farm = try LocalRenderer(latentModel: model).renderFrames(spec)
        let request = WanRequest(prompt: spec.prompt, width: 64, height: 64, frames: 9, steps: 3, guidance: spec.guidance,
                                 shift: Double(spec.shift), seed: spec.seed, sampler: .dpmpp2m)
        let pipeline = try WanPipeline(model: model).generate(request)
        #expect(farm.frameCount == 9 && farm.width == 64)
        #expect(farm.pixels == RGBVideo(planar: pipeline.data, frames: 9, height: 64, width: 64).pixels,
                "the reference-checked pipeline, with the farm's sampler")
    }

    /// An int8 job: its shards carry the precision, a renderer holding another refuses them,
    /// and with the model opened at int8 the farm's path is the pipeline's at int8, bit for bit.
    @Test func anInt8JobRunsAtInt8OnTheFarmsPath() throws {
        var spec = try Self.spec(frames: 9, steps: 2)
        spec.weights = "int8"
        let job = JobRun(spec: spec, stages: try Self.stages(spec))
        let first = job.takeReadyShards()[0]
        #expect(job.message(for: first, job: "j").header.spec.weights == "int8")
        #expect(throws: ShardError.self) { try LocalRenderer(latentModel: WanModel(directory: Self.model)).run(first, of: job) }

        let model = try WanModel(directory: Self.model, weights: .int8)
        let farm = try LocalRenderer(latentModel: model).renderFrames(spec)
        let request = WanRequest(prompt: spec.prompt, width: 64, height: 64, frames: 9, steps: 2, guidance: spec.guidance,
                                 shift: Double(spec.shift), seed: spec.seed, sampler: .dpmpp2m)
        let pipeline = try WanPipeline(model: model).generate(request)
        #expect(farm.pixels == RGBVideo(planar: pipeline.data, frames: 9, height: 64, width: 64).pixels)
        let stored = try WanPipeline(model: WanModel(directory: Self.model)).generate(request)
        #expect(stored.data != pipeline.data, "int8 renders other bits")
    }

    /// A worker holds one precision of a model at a time.
    @Test func aWorkerLibraryHoldsOnePrecisionOfAModel() throws {
        let library = ModelLibrary(names: [Self.model])
        weak var stored = try library.model(Self.model)
        #expect(stored?.weights == .stored)
        #expect(try library.model(Self.model) === stored)
        let int8 = try library.model(Self.model, weights: .int8)
        #expect(int8.weights == .int8 && stored == nil, "the stored copy is let go")
    }

    /// A re-render: the input encoded by a VAE shard, noised to the first step's time on the
    /// model's schedule, denoised from there; the reference-checked pipeline does the same.
    @Test func aReRenderOnTheFarmsPathIsThePipelineBitForBit() throws {
        let model = try WanModel(directory: Self.model)
        let source = try WanPipeline(model: model).generate(WanRequest(prompt: "a cat", width: 64, height: 64, frames: 9, steps: 2,
                                                                       guidance: 5, seed: 8, sampler: .euler))
        // The input as a coordinator holds it: 8-bit frames, read back as floats.
        let input = RGBVideo(planar: source.data, frames: 9, height: 64, width: 64).planar()
        var request = Reel_V1_JobSpec()
        request.prompt = "a cat in the rain"
        request.model = "wan-tiny"
        request.width = 64; request.height = 64
        request.steps = 4
        request.seed = 3
        request.withInput = true
        request.strength = 0.5
        let spec = try SpecResolver(model: PlannedModel(directory: Self.model)).resolve(request) { _, _ in 9 }.spec
        #expect(spec.frames == 9 && spec.firstStep == 2)
        let job = try LocalRenderer(latentModel: model).job(for: spec, input: input)
        #expect(job.takeReadyShards().map { job.unit($0.region) } == [.prompt(0), .prompt(1), .input], "the input is encoded beside the prompts")
        let farm = try LocalRenderer(latentModel: model).renderFrames(spec, input: input)
        let pipeline = try WanPipeline(model: model).generate(WanRequest(
            prompt: spec.prompt, width: 64, height: 64, frames: 9, steps: 4, guidance: spec.guidance, shift: Double(spec.shift),
            seed: 3, sampler: .dpmpp2m, input: Clip(frames: 9, channels: 3, height: 64, width: 64, data: input), strength: 0.5))
        #expect(farm.pixels == RGBVideo(planar: pipeline.data, frames: 9, height: 64, width: 64).pixels)
    }

    @Test func theFramesDoNotDependOnShardOrderAndSurviveARestartMidDecode() throws {
        let spec = try Self.spec(frames: 117)
        let renderer = LocalRenderer(latentModel: try ModelFamilies.open(Self.model))
        let inOrder = JobRun(spec: spec, stages: try Self.stages(spec))
        try Self.render(inOrder, renderer: renderer, shuffleSeed: 1)
        let shuffled = JobRun(spec: spec, stages: try Self.stages(spec))
        try Self.render(shuffled, renderer: renderer, shuffleSeed: 99)
        #expect(inOrder.finalFrames() == shuffled.finalFrames())

        // Stopped after every region and one piece: a new run from its checkpoint ends the same.
        let stopped = JobRun(spec: spec, stages: try Self.stages(spec))
        try Self.render(stopped, renderer: renderer, shuffleSeed: 1, stopAfter: inOrder.shardsTotal - 1)
        #expect(stopped.isDenoised && stopped.piecesDone == 1)
        let resumed = JobRun(spec: spec, stages: try Self.stages(spec))
        try resumed.restore(stopped.checkpoint())
        #expect(resumed.takeReadyShards().count == 1, "only the piece left")
        let again = JobRun(spec: spec, stages: try Self.stages(spec))
        try again.restore(CheckpointFile.decode(CheckpointFile.encode(stopped.checkpoint())))  // through the file's bytes
        try Self.render(again, renderer: renderer, shuffleSeed: 5)
        #expect(again.finalFrames() == inOrder.finalFrames())
    }

    /// The preview's colours come from the VAE itself, linearised about the zero latent: for a
    /// small uniform latent the projection gives the mean colour a decode gives, and a running
    /// job's previews are in [-1, 1].
    @Test func previewsProjectLatentChannelsToTheColoursTheVAEDecodes() throws {
        let model = try WanModel(directory: Self.model)
        let projection = try #require(try model.previewProjection())
        let channels = model.vaeConfig.zDim
        #expect(projection.count == 3 * (channels + 1) && projection.allSatisfy(\.isFinite))
        let latent: [Float] = (0..<channels).map { Float($0 % 3) * 0.05 - 0.05 }
        let decoded = try model.decode(Tensor(shape: [1, channels, 1, 2, 2], scalars: latent.flatMap { [Float](repeating: $0, count: 4) }))
        let plane = decoded.shape[2] * decoded.shape[3]
        for k in 0..<3 {
            let mean = decoded.scalars[(k * plane)..<((k + 1) * plane)].reduce(0, +) / Float(plane)
            let row = k * (channels + 1)
            let predicted = projection[row + channels] + (0..<channels).reduce(Float(0)) { $0 + projection[row + $1] * latent[$1] }
            #expect(abs(predicted - mean) < 0.02, "colour \(k): projected \(predicted), decoded \(mean)")
        }

        let spec = try Self.spec(frames: 9)
        let job = JobRun(spec: spec, stages: try Self.stages(spec))
        try Self.render(job, renderer: LocalRenderer(latentModel: model), shuffleSeed: 1, stopAfter: 3)  // prompts, one step
        let frames = job.previewFrames(projection: projection)
        #expect(frames.count == 1 && frames[0].planar.count == 3 * 8 * 8 && frames[0].planar.allSatisfy { (-1...1).contains($0) })
        #expect(frames[0].planar != job.previewFrames().first?.planar, "projected, not the first three channels")
    }

    /// A shard whose window the model cannot take (another model's channels, embeddings of the
    /// wrong width, frames the VAE cannot encode) fails with a reason instead of trapping.
    @Test func aWindowTheModelCannotTakeFailsItsShard() throws {
        let runner = ShardRunner(model: try WanModel(directory: Self.model))
        let embedding = Tensor(zeros: [512, 32])
        func denoise(_ latent: [Int], _ condition: Tensor) throws {
            _ = try runner.run(ShardWork(prompt: "a cat", sampler: .euler, scheduleSteps: 2, shift: 3, guidance: 5, place: .whole, steps: 0..<1,
                                         latent: Tensor(zeros: latent), state: Sampler.State(), conditions: (condition, condition)))
        }
        #expect(throws: ShardError.self) { try denoise([2, 3, 8, 8], embedding) }
        #expect(throws: ShardError.self) { try denoise([2, 4, 7, 8], embedding) }
        #expect(throws: ShardError.self) { try denoise([2, 4, 8, 8], Tensor(zeros: [512, 31])) }
        try denoise([2, 4, 8, 8], embedding)
        #expect(throws: ShardError.self) { try runner.run(ShardTask.decode(latent: Tensor(zeros: [2, 3, 8, 8]), skipFrames: 0)) }
        // An assignment whose embeddings claim more than one frame of one channel is refused as it is read.
        let spec = try Self.spec(frames: 9)
        let job = JobRun(spec: spec, stages: try Self.stages(spec))
        let renderer = LocalRenderer(latentModel: try ModelFamilies.open(Self.model))
        for prompt in job.takeReadyShards() { _ = job.accept(try renderer.run(prompt, of: job)) }
        let region = try #require(job.takeReadyShards().first)
        var (header, payloads) = job.message(for: region, job: "j")
        #expect(throws: Never.self) { try ShardTask(assignment: header, payloads: payloads) }
        header.conditionShape.frames = 2
        payloads[2] = payloads[2] + payloads[2]
        payloads[3] = payloads[3] + payloads[3]
        #expect(throws: WireError.self) { try ShardTask(assignment: header, payloads: payloads) }
        #expect(throws: ShardError.self) {
            try runner.run(ShardTask.encodeFrames(RGBVideo(width: 64, height: 64, pixels: [UInt8](repeating: 0, count: 4 * 64 * 64 * 3))))
        }
    }

    /// Without --parts, a worker holds what fits 85 % of its memory: the DiT first, then the
    /// VAE, then the text encoder.
    @Test func aWorkerHoldsThePartsThatFitItsMemory() throws {
        let model = try WanModel(directory: Self.model)
        let bytes = Dictionary(uniqueKeysWithValues: ModelPart.allCases.map { ($0, model.weightBytes($0)) })
        #expect(bytes.values.allSatisfy { $0 > 0 })
        func memory(for parts: [ModelPart]) -> UInt64 { UInt64((Double(parts.reduce(0) { $0 + bytes[$1]! }) / 0.85).rounded(.up)) }
        #expect(ModelPart.fitting([model], memory: memory(for: [.dit, .vae, .text])) == [.text, .dit, .vae])
        #expect(ModelPart.fitting([model], memory: memory(for: [.dit, .vae])) == [.dit, .vae])
        #expect(ModelPart.fitting([model], memory: memory(for: [.dit])) == [.dit])
        #expect(ModelPart.fitting([model], memory: 0).isEmpty)
    }

    @Test func aLatentModelsSpecIsCheckedForItsFamily() throws {
        var request = Reel_V1_JobSpec()
        request.prompt = "a cat"
        request.model = "wan-tiny"
        request.frames = 10
        request.layoutStrength = 0.5
        let resolver = SpecResolver(model: try PlannedModel(directory: Self.model))
        let error = try #require(throws: SpecError.self) { try resolver.resolve(request) }
        #expect(Set(error.problems.map(\.field)) == ["frames", "layout_strength"], "\(error)")
        #expect("\(error)".contains("1 + 4k frames"))
        request = Reel_V1_JobSpec()
        request.prompt = "a cat"
        request.model = "wan-tiny"
        request.width = 64; request.height = 64
        let resolved = try resolver.resolve(request)
        #expect(resolved.outputScale == 1 && resolved.spec.frames == 81 && resolved.spec.window == 21 && resolved.spec.sampler == "dpm++2m")
        #expect(resolved.spec.negativePrompt == WanModel.defaultNegativePrompt)
    }
}
