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
}
