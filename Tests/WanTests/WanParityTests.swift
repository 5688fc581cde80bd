import Diffusion
import Foundation
import Testing
import Wan

/// Reel's Wan 2.1 parts against diffusers 0.42.1 / transformers 5.23.0 on a tiny model built by
/// tools/wan-reference/make_fixtures.py (fixed seeds; the files are committed, no Python here).
/// Tolerance: max |reel − reference| ≤ 1e-4 · max |reference|, part by part.
@Suite struct WanParityTests {
    static let fixtures = Bundle.module.path(forResource: "Fixtures", ofType: nil)!
    static let modelDirectory = "\(fixtures)/wan-tiny"

    static func check(_ file: String, tolerance: Double = 1e-4) throws -> [WanReferenceCheck.Result] {
        let model = try WanModel(directory: modelDirectory)
        return try WanReferenceCheck(model: model, reference: try SafeTensorsFile(path: "\(fixtures)/\(file)"), tolerance: tolerance).run()
    }

    @Test func everyPartMatchesTheReference() throws {
        let results = try Self.check("reference.safetensors")
        let parts = results.map { $0.part.split(separator: " ").prefix(2).joined(separator: " ") }
        #expect(parts == ["tokenizer", "text_encoder", "transformer blocks", "transformer", "vae decode", "vae encode", "pipeline steps", "pipeline video"])
        for result in results {
            #expect(result.passed, "\(result.line)")
        }
    }

    @Test func tokenizerCleansUnicodeAndTruncatesAt512() throws {
        for file in ["reference-tokenizer-unicode.safetensors", "reference-tokenizer-long.safetensors"] {
            let results = try Self.check(file)
            #expect(results.count == 1 && results[0].maxAbsoluteError == 0, "\(file): \(results.map(\.line))")
        }
        let long = try SafeTensorsFile(path: "\(Self.fixtures)/reference-tokenizer-long.safetensors")
        #expect(try long.integers("tokenizer.ids").count == 512)
    }

    @Test func promptCleaningFollowsThePipeline() {
        #expect(WanTokenizer.clean("  a &amp;amp; b \t\n c  ") == "a & b c")
        #expect(WanTokenizer.clean("it\u{2019}s \u{201C}fine\u{201D}") == "it's \"fine\"")
        #expect(WanTokenizer.clean("caf\u{65}\u{301}") == "caf\u{E9}")
    }

    /// The same transformer stored in BF16 stays within 2e-2 of its f32 self (BF16 keeps 8 bits
    /// of mantissa), and loads without widening the file.
    @Test func bf16WeightsStayCloseToF32() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("wan-bf16-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try FileManager.default.copyItem(atPath: Self.modelDirectory, toPath: scratch)
        let weights = "\(scratch)/transformer/diffusion_pytorch_model.safetensors"
        let f32 = try SafeTensorsFile(path: weights)
        var tensors: [String: Tensor] = [:]
        for name in f32.names { tensors[name] = try f32.tensor(name) }
        try SafeTensorsFile.write(tensors, dtype: .bf16, to: weights)
        #expect(try SafeTensorsFile(path: weights).entries.values.allSatisfy { $0.dtype == "BF16" })

        let reference = try SafeTensorsFile(path: "\(Self.fixtures)/reference.safetensors")
        let x = try reference.tensor("transformer.hidden_states"), t = try reference.tensor("transformer.timestep").scalars
        let context = try reference.tensor("transformer.encoder_hidden_states")
        let full = try WanModel(directory: Self.modelDirectory).transformer().velocity(x, timesteps: t, context: context)
        let narrow = try WanModel(directory: scratch).transformer().velocity(x, timesteps: t, context: context)
        let scale = full.scalars.map(abs).max()!
        let error = zip(full.scalars, narrow.scalars).map { abs($0 - $1) }.max()! / scale
        #expect(error < 2e-2, "bf16 relative error \(error)")
        #expect(error > 0, "bf16 weights should not be bit-identical to f32")
    }

    /// Decoding a latent video in pieces on one decoder, in order, gives the whole video's bits.
    @Test func decodingInPiecesEqualsDecodingWhole() throws {
        let vae = try WanModel(directory: Self.modelDirectory).vae()
        let reference = try SafeTensorsFile(path: "\(Self.fixtures)/reference.safetensors")
        let latents = Clip(channelMajor: try reference.tensor("vae.latents"))
        let whole = vae.decode(latents)
        let again = vae.decode(latents)
        #expect(zip(again.data, whole.data).map { abs($0 - $1) }.max() == 0, "decoding twice differs")
        vae.resetDecoder()
        let first = vae.decodeNext(latents.frames(0..<1))
        let rest = vae.decodeNext(latents.frames(1..<latents.frames))
        #expect(first.frames == 1 && rest.frames == 4 * (latents.frames - 1))
        let pieces = first.appending(rest)
        let difference = zip(pieces.data, whole.data).map { abs($0 - $1) }.max() ?? 0
        #expect(pieces.frames == whole.frames && difference == 0, "pieces differ from the whole by up to \(difference)")
    }

    /// Through the family-neutral protocol the transformer computes the same velocity (flow time
    /// t in 0...1 is timestep 1000·t).
    @Test func theVideoModelProtocolReachesTheSameTransformer() throws {
        #expect(WanFamily.recognises(Self.modelDirectory) && !ReelShapesFamily.recognises(Self.modelDirectory))
        let model = try WanFamily.open(Self.modelDirectory, weights: .stored)
        #expect(model.family == "wan")
        let reference = try SafeTensorsFile(path: "\(Self.fixtures)/reference.safetensors")
        let x = try reference.tensor("transformer.hidden_states")
        let times = try reference.tensor("transformer.timestep").scalars.map { $0 / 1000 }
        let context = try reference.tensor("transformer.encoder_hidden_states")
        let conditions = (0..<x.shape[0]).map { context.slices($0..<($0 + 1)).reshaped(Array(context.shape.dropFirst())) }
        let velocity = try model.velocity(x, times: times, conditions: conditions)
        let expected = try reference.tensor("transformer.output")
        let error = zip(velocity.scalars, expected.scalars).map { abs($0 - $1) }.max()! / expected.scalars.map(abs).max()!
        #expect(error < 1e-4)
        #expect(model.latentShape(frames: 81, width: 832, height: 480) == LatentVideoShape(channels: 4, frames: 21, height: 60, width: 104))
    }

    @Test func schedulerTimestepsMatchDiffusers() throws {
        let model = try WanModel(directory: Self.modelDirectory)
        // diffusers: UniPCMultistepScheduler(flow_shift=3, use_flow_sigmas=True).set_timesteps(3).timesteps
        let scheduler = FlowUniPC(config: model.schedulerConfig, steps: 3)
        #expect(scheduler.timesteps == [999, 857, 600])
        #expect(scheduler.sigmas.last == 0)
    }
}

/// A damaged or incomplete model is refused with one line naming the file (and tensor or field).
@Suite struct WanModelErrorTests {
    static func copy() throws -> String {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("wan-bad-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: WanParityTests.modelDirectory, toPath: scratch)
        return scratch
    }

    @Test func truncatedWeightsNameTheFileAndTensor() throws {
        let dir = try Self.copy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/transformer/diffusion_pytorch_model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: path))
        let model = try WanModel(directory: dir)
        #expect(throws: SafeTensorsError.self) { try model.transformer() }
        do { _ = try model.transformer() } catch {
            let message = "\(error)"
            #expect(message.contains("diffusion_pytorch_model.safetensors") && message.contains("truncated") && message.contains("tensor '"), "\(message)")
        }
    }

    @Test func missingPartNamesTheFile() throws {
        let dir = try Self.copy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.removeItem(atPath: "\(dir)/vae/config.json")
        #expect(throws: WanModelError.missingFile(path: "\(dir)/vae/config.json",
                                                  hint: "a Wan 2.1 Diffusers folder has model_index.json, tokenizer/, text_encoder/, transformer/, vae/ and scheduler/")) {
            try WanModel(directory: dir)
        }
    }

    @Test func unknownConfigValueIsRefused() throws {
        let dir = try Self.copy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/transformer/config.json"
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "\"rms_norm_across_heads\"", with: "\"layer_norm\"")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try WanModel(directory: dir)
            Issue.record("a config with qk_norm layer_norm was accepted")
        } catch let error as WanModelError {
            #expect("\(error)".contains("transformer/config.json: field qk_norm is layer_norm"), "\(error)")
        }
    }

    @Test func shardedWeightsLoadAndAMissingShardIsNamed() throws {
        let dir = try Self.copy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Split the text encoder into two shards with an index, as the published model is.
        let part = "\(dir)/text_encoder"
        let whole = try SafeTensorsFile(path: "\(part)/model.safetensors")
        let names = whole.names
        var shards: [[String: Tensor]] = [[:], [:]]
        var map: [String: String] = [:]
        for (i, name) in names.enumerated() {
            shards[i % 2][name] = try whole.tensor(name)
            map[name] = "model-0000\(i % 2 + 1)-of-00002.safetensors"
        }
        for (i, shard) in shards.enumerated() { try SafeTensorsFile.write(shard, to: "\(part)/model-0000\(i + 1)-of-00002.safetensors") }
        try FileManager.default.removeItem(atPath: "\(part)/model.safetensors")
        let index = try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": map])
        try index.write(to: URL(fileURLWithPath: "\(part)/model.safetensors.index.json"))
        let reference = try SafeTensorsFile(path: "\(WanParityTests.fixtures)/reference.safetensors")
        let result = try WanReferenceCheck(model: try WanModel(directory: dir), reference: reference).textEncoder()
        #expect(result.passed, "\(result.line)")

        try FileManager.default.removeItem(atPath: "\(part)/model-00002-of-00002.safetensors")
        do {
            _ = try WanModel(directory: dir).textEncoder()
            Issue.record("a missing shard was not noticed")
        } catch {
            #expect("\(error)".contains("model-00002-of-00002.safetensors: missing"), "\(error)")
        }
    }
}
