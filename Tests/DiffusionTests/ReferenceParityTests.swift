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
}
