import Diffusion
import TestSupport
import Testing

@Suite struct GeneratorTests {
    @Test func sameSettingsRenderTheSameBitsAndSeedsDiffer() throws {
        let (_, model) = try TestModels.makePackage()
        let generator = VideoGenerator(model: model)
        var settings = RenderSettings(prompt: "a red circle moving left", frames: 4, height: 16, width: 16,
                                      steps: 3, sampler: .dpmpp2m, guidance: 3, seed: 42)
        var reported: [Int] = []
        let first = try generator.generate(settings) { reported.append($0.step) }
        let second = try generator.generate(settings)
        #expect(first == second, "same settings, same bits")
        #expect(reported == [1, 2, 3])
        #expect(first.shape == [4, 3, 16, 16])
        #expect(first.scalars.allSatisfy { $0.isFinite })
        settings.seed = 43
        #expect(try generator.generate(settings) != first)
    }

    @Test func guidanceCombinesConditionalAndUnconditionalVelocities() throws {
        let (_, model) = try TestModels.makePackage()
        let generator = VideoGenerator(model: model)
        let cond = try model.textEncoder.encode("a blue square")
        let uncond = model.textEncoder.encode(tokens: [0])
        let x = NoiseField(seed: 1).tensor(step: 0, frames: 0..<4, channels: 3, height: 16, width: 16)
        let vc = generator.guidedVelocity(conditional: cond, unconditional: uncond, guidance: 1)(x, 0.5)
        let vu = generator.guidedVelocity(conditional: uncond, unconditional: uncond, guidance: 1)(x, 0.5)
        let guided = generator.guidedVelocity(conditional: cond, unconditional: uncond, guidance: 2.5)(x, 0.5)
        let expected = vu.adding(vc.adding(vu, scaledBy: -1), scaledBy: 2.5)
        let worst = zip(guided.scalars, expected.scalars).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-4, "batched guidance equals separate evaluations (float32 summation order)")
        #expect(vc != vu, "the prompt changes the prediction")
    }

    @Test func flopCountMatchesTheArchitecture() throws {
        let (_, model) = try TestModels.makePackage()
        // Hand count for width 32, 4 frames of 4×4 tokens, batch 1, 3 text tokens, see Denoiser.flops.
        let flops = model.denoiser.flops(batch: 1, frames: 4, height: 16, width: 16, textTokens: 3)
        let d = 32.0, tokens = 64.0
        let perBlock = 2 * (tokens * (10 * d * d + 2 * 2 * d * d + 2 * 16 * d + 2 * 4 * d + 2 * 3 * d) + 3 * 16 * 2 * d + d * 9 * d)
        let expected = 2 * tokens * 48 * d + 2 * (256 * d + d * d) + 2 * perBlock + 2 * d * 2 * d + 2 * tokens * d * 48
        #expect(flops == expected)
    }
}

/// A package whose config.json breaks a rule is refused with the field and the rule.
@Suite struct ModelConfigTests {
    @Test func aLayoutStrengthOutOfRangeIsRefusedByName() throws {
        var config = TestModels.smallConfig()
        config.defaults.layoutStrength = 0.8
        #expect(throws: Never.self) { try TestModels.makePackage(config: config) }
        config.defaults.layoutStrength = 1.5
        #expect(throws: ModelPackageError.badConfig(field: "defaults.layout_strength", rule: "must be above 0 and at most 1")) {
            try TestModels.makePackage(config: config)
        }
    }

    @Test func aDefaultOverlapOutOfRangeIsRefusedByName() throws {
        var config = TestModels.smallConfig()  // a window of 4 frames
        #expect(config.defaultOverlap == 1)
        config.defaults.overlap = 3
        #expect(throws: Never.self) { try TestModels.makePackage(config: config) }
        #expect(config.defaultOverlap == 3)
        config.defaults.overlap = 4
        #expect(throws: ModelPackageError.badConfig(field: "defaults.overlap", rule: "must be 0 to window_frames - 1 (3)")) {
            try TestModels.makePackage(config: config)
        }
    }

    @Test func aFrameStrideWithoutVideoProgressIsRefusedByName() throws {
        var config = TestModels.smallConfig()
        config.frameStride = true
        config.videoProgress = false
        #expect(throws: ModelPackageError.badConfig(field: "frame_stride",
                                                    rule: "needs \"video_progress\": true (keyframes span a video whose length it tells)")) {
            try TestModels.makePackage(config: config)
        }
    }

    /// A layout window's keyframes span their whole video, as a window that is the whole video
    /// does; only their stride tells them apart (to a model with `frame_stride`).
    @Test func keyframesSpanTheirVideo() {
        let keyframes = WindowPlace(firstFrame: 0, videoFrames: 64, keyframes: true)
        #expect(keyframes.progressFeatures(window: 16) == WindowPlace.whole.progressFeatures(window: 16))
        #expect(keyframes.stride(window: 16) == 4.2 && keyframes.strideFeatures(window: 16) == [Float(1 - 1 / 4.2)])
        let chunk = WindowPlace(firstFrame: 12, videoFrames: 64)
        #expect(chunk.stride(window: 16) == 1 && chunk.strideFeatures(window: 16) == [0])
        #expect(chunk.progressFeatures(window: 16) == [Float(12.0 / 63), Float(1 - 27.0 / 63)])
    }
}

@Suite struct ThreadingTests {
    /// Splitting rows and attention heads across threads must not change a single bit: a farm
    /// worker on one thread and a local render on many must agree.
    @Test func oneThreadAndManyThreadsRenderIdenticalBits() throws {
        let config = ModelConfig(canvasHeight: 32, canvasWidth: 32, windowFrames: 8, fps: 8, patch: 4,
                                 width: 64, depth: 2, heads: 4, mlpRatio: 4,
                                 text: .init(width: 32, depth: 1, heads: 2, mlpRatio: 2, maxTokens: 8))
        let (_, model) = try TestModels.makePackage(config: config)
        let settings = RenderSettings(prompt: "a blue circle", frames: 8, height: 32, width: 32,
                                      steps: 2, sampler: .euler, guidance: 2, seed: 9)
        let original = ComputeThreads.count
        defer { ComputeThreads.set(original) }
        ComputeThreads.set(1)
        let single = try VideoGenerator(model: model).generate(settings)
        ComputeThreads.set(3)
        let several = try VideoGenerator(model: model).generate(settings)
        let differing = zip(single.scalars, several.scalars).filter { $0.0.bitPattern != $0.1.bitPattern }.count
        #expect(differing == 0, "\(differing) of \(single.count) values differ between 1 and 3 threads")
    }
}
