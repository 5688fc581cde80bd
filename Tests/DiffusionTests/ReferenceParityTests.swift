import Diffusion
import TestSupport
import Foundation
import Testing

/// The Swift forward pass against an independent NumPy implementation (Reference/dit_reference.py)
/// on the same seeded weights and inputs. Tolerance: max |swift − numpy| ≤ 1e-4 · max |numpy|.
@Suite struct ReferenceParityTests {
    static func pythonWithNumPy() -> String? {
        var candidates = ["python3", "/usr/bin/python3"]
        if let chosen = ProcessInfo.processInfo.environment["REEL_PYTHON"] { candidates.insert(chosen, at: 0) }
        return candidates.first { run($0, ["-c", "import numpy"]) == 0 }
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        process.standardOutput = FileHandle.standardError
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    static func relativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
        let scale = expected.scalars.map(abs).max()!
        return zip(actual.scalars, expected.scalars).map { abs($0 - $1) }.max()! / scale
    }

    @Test func swiftForwardMatchesNumPyReference() throws {
        let python = try #require(Self.pythonWithNumPy(), "needs python3 with numpy (make test installs python3-numpy)")
        let (directory, model) = try TestModels.makePackage()
        let tokens = [[0, 1, 2, 4, 6, 7], [0]]
        let x = NoiseField(seed: 5).tensor(step: 0, frames: 0..<(2 * 4), channels: 3, height: 16, width: 16)
            .reshaped([2, 4, 3, 16, 16])
        let t: [Float] = [0.73, 0.21]

        let texts = tokens.map { model.textEncoder.encode(tokens: $0) }
        let velocity = model.denoiser.velocity(x, t: t, contexts: texts)

        var inputs = ["x": x, "t": Tensor(shape: [2], scalars: t)]
        for (b, ids) in tokens.enumerated() { inputs["tokens_\(b)"] = Tensor(shape: [ids.count], scalars: ids.map(Float.init)) }
        let inputsPath = TestModels.temporaryPath("inputs.safetensors"), outputPath = TestModels.temporaryPath("outputs.safetensors")
        try SafeTensorsFile.write(inputs, to: inputsPath)
        let script = try #require(Bundle.module.path(forResource: "dit_reference", ofType: "py", inDirectory: "Reference"))
        #expect(Self.run(python, [script, directory, inputsPath, outputPath]) == 0)

        let reference = try SafeTensorsFile(path: outputPath)
        let expected = try reference.tensor("velocity", shape: x.shape)
        #expect(Self.relativeError(velocity, expected) <= 1e-4)
        #expect(expected.scalars.map(abs).max()! > 0.1, "the reference output is not trivially small")
        for b in 0..<2 {
            let text = try reference.tensor("text_\(b)", shape: texts[b].values.shape)
            #expect(Self.relativeError(texts[b].values, text) <= 1e-4)
        }
    }

    /// The trainer's own forward pass (PyTorch, float64) on a tiny package with perturbed
    /// weights, committed as a fixture by train/make_fixture.py: exported weights must render
    /// in Swift what they rendered in training. Tolerance as above.
    @Test func swiftForwardMatchesTheTrainersForward() throws {
        let directory = try #require(Bundle.module.path(forResource: "trainer-parity", ofType: nil, inDirectory: "Fixtures"))
        let model = try Model(directory: directory)
        let inputs = try SafeTensorsFile(path: "\(directory)/inputs.safetensors")
        let outputs = try SafeTensorsFile(path: "\(directory)/outputs.safetensors")
        let x = try inputs.tensor("x")
        let t = try inputs.tensor("t").scalars
        let texts = try (0..<2).map { b in
            model.textEncoder.encode(tokens: try inputs.tensor("tokens_\(b)").scalars.map { Int($0) })
        }
        for (b, text) in texts.enumerated() {
            #expect(Self.relativeError(text.values, try outputs.tensor("text_\(b)")) <= 1e-4, "text \(b)")
        }
        let expected = try outputs.tensor("velocity")
        let place = WindowPlace(firstFrame: Int(try inputs.tensor("first_frame").scalars[0]),
                                videoFrames: Int(try inputs.tensor("video_frames").scalars[0]))
        #expect(model.config.framePhase != nil && place.firstFrame > 0, "the fixture covers the window-phase path")
        #expect(model.config.videoProgress && !place.progressFeatures(window: model.config.windowFrames).contains(0),
                "the fixture covers the video-progress path, away from the video's ends")
        let velocity = model.denoiser.velocity(x, t: t, contexts: texts, place: place)
        #expect(expected.scalars.map(abs).max()! > 0.1, "the fixture's output is not trivially small")
        #expect(Self.relativeError(velocity, expected) <= 1e-4)

        var keyframes = place
        keyframes.keyframes = true
        #expect(model.config.frameStride && keyframes.strideFeatures(window: model.config.windowFrames)[0] > 0.9,
                "the fixture covers the frame-stride path")
        let strided = try outputs.tensor("velocity_keyframes")
        #expect(Self.relativeError(strided, expected) > 1e-2, "keyframes render differently")
        #expect(Self.relativeError(model.denoiser.velocity(x, t: t, contexts: texts, place: keyframes), strided) <= 1e-4)
    }
}
