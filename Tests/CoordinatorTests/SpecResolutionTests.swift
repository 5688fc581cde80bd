import Coordinator
import Diffusion
import Planning
import TestSupport
import Testing
import Wire

/// What a submission that leaves fields out is rendered with.
@Suite struct SpecResolutionTests {
    @Test func anUnsetOverlapTakesTheModelsDefault() {
        var config = TestModels.smallConfig()  // a window of 4 frames
        let request = Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.frames = 12 }
        #expect(JobSpec(resolving: request, with: config).overlap == 1)  // a quarter of the window
        config.defaults.overlap = 2
        #expect(JobSpec(resolving: request, with: config).overlap == 2)
        // A job's own overlap wins, and a job's smaller window caps the default below it.
        var own = request
        own.overlap = 0
        #expect(JobSpec(resolving: own, with: config).overlap == 0)
        var shortWindow = request
        shortWindow.window = 2
        #expect(JobSpec(resolving: shortWindow, with: config).overlap == 1)
    }

    static let resolver = SpecResolver(config: TestModels.smallConfig(), vocabulary: try! Vocabulary(words: TestModels.vocabulary))

    /// The wire spec and Planning's mirror each other: a spec with no field at its default
    /// goes to the wire and back unchanged (JobSpec is Equatable over every field).
    @Test func aSpecSurvivesTheWireFieldForField() {
        var spec = JobSpec(prompt: "a red circle", model: "m", frames: 12, width: 32, height: 24, fps: 9, steps: 7,
                           sampler: "heun", guidance: 2.5, shift: 1.5, seed: 42, window: 3, overlap: 2, syncInterval: 2,
                           priority: 5, strength: 0.25)
        spec.shots = [Shot(prompt: "a red circle", frames: 5), Shot(prompt: "a blue square", frames: 7)]
        spec.layoutStrength = 0.5
        spec.weights = "int8"
        #expect(JobSpec(resolving: spec.message(), with: TestModels.smallConfig()) == spec)
    }

    /// Fields no model sets take Planning's JobDefaults, whoever resolves them.
    @Test func unsetFieldsTakeTheOneTableOfDefaults() throws {
        let resolved = try Self.resolver.resolve(Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m" })
        #expect(resolved.outputScale == JobDefaults.outputScale)
        #expect(resolved.spec.seed == JobDefaults.seed && resolved.spec.syncInterval == JobDefaults.syncInterval)
        #expect(resolved.spec.strength == 1, "no input: nothing is kept")
        let withInput = try Self.resolver.resolve(Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m"; $0.withInput = true }) { _, _ in 10 }
        #expect(withInput.spec.strength == JobDefaults.strength)
        #expect(withInput.spec.frames == 10, "a job that leaves its length out takes its input's")
        let keep = try Self.resolver.resolve(Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m"; $0.withInput = true; $0.strength = 0 }) { _, _ in 10 }
        #expect(keep.spec.strength == 0, "a strength of 0 given is kept, not taken for unset")
    }

    /// Every bad field is named at once; the input is not read for a job that cannot run.
    @Test func badFieldsAreNamedTogetherBeforeTheInputIsRead() throws {
        func fields(_ request: Reel_V1_JobSpec, inputFrames: Int = 10) -> [String] {
            do { _ = try Self.resolver.resolve(request) { _, _ in inputFrames } } catch let error as SpecError { return error.problems.map(\.field) } catch { return ["?"] }
            return []
        }
        let bad = Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m"; $0.sampler = "ddim"; $0.outputScale = 17; $0.withInput = true }
        var read = false
        #expect(throws: SpecError.self) { try Self.resolver.resolve(bad) { _, _ in read = true; return 10 } }
        #expect(!read, "an input is decoded only for a job that could run")
        #expect(fields(bad) == ["sampler", "output_scale"])
        #expect(fields(Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m"; $0.frames = 12; $0.withInput = true }, inputFrames: 8) == ["frames"])
        #expect(fields(Reel_V1_JobSpec.with { $0.prompt = "a green circle"; $0.model = "m" }) == ["prompt:"], "a word the model does not know")
        #expect(fields(Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m"; $0.weights = "int8" }) == ["weights"],
                "a pixel model runs its weights as stored")
        #expect(fields(Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m"; $0.weights = "fp4" }) == ["weights"])
        #expect(try Self.resolver.resolve(Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m" }).spec.weights == "stored")
    }

    /// The file's options: a manifest by default; a private prompt needs one; a mark must be
    /// drawable and fit the file's size; they survive the round trip through the wire form.
    @Test func manifestAndWatermarkOptionsAreResolvedAndChecked() throws {
        func fields(_ change: (inout Reel_V1_JobSpec) -> Void) -> [String] {
            var request = Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m" }
            change(&request)
            do { _ = try Self.resolver.resolve(request) } catch let error as SpecError { return error.problems.map(\.field) } catch { return ["?"] }
            return []
        }
        let plain = try Self.resolver.resolve(Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m" })
        #expect(plain.output.manifest && !plain.output.privatePrompt && plain.output.watermark == nil)
        #expect(fields { $0.noManifest = true; $0.privatePrompt = true } == ["private_prompt"])
        #expect(fields { $0.watermark = "caf\u{e9}" } == ["watermark"])
        #expect(fields { $0.watermark = String(repeating: "W", count: 12); $0.outputScale = 1 } == ["watermark"], "too wide for 32 pixels")
        #expect(fields { $0.watermark = String(repeating: "W", count: 12); $0.outputScale = 8 } == [])
        #expect(fields { $0.inputSha256 = "not hex" } == ["input_sha256"])
        let marked = try Self.resolver.resolve(Reel_V1_JobSpec.with { $0.prompt = "a red circle"; $0.model = "m"; $0.watermark = "Reel"; $0.privatePrompt = true })
        let again = try Self.resolver.resolve(marked.spec.message(output: marked.output))
        #expect(again == marked)
    }
}
