import ArgumentParser
import Diffusion
import Foundation
import Wan

/// `reel model info` for a Wan model: its parts, sizes, dtypes and the memory a render needs.
struct WanModelInfo {
    let model: WanModel

    func print() throws {
        let t = model.transformerConfig, text = model.textConfig, vae = model.vaeConfig
        let parts: [(String, String, String)] = [
            ("text_encoder", "model", "umT5: \(text.numLayers) layers, width \(text.dModel), \(text.numHeads) heads, MLP \(text.dFf), vocabulary \(text.vocabSize)"),
            ("transformer", "diffusion_pytorch_model", "DiT: \(t.numLayers) blocks, width \(t.width) (\(t.numAttentionHeads) heads x \(t.attentionHeadDim)), MLP \(t.ffnDim), patch \(t.patchSize.map(String.init).joined(separator: "x")), \(t.inChannels) latent channels"),
            ("vae", "diffusion_pytorch_model", "causal 3D VAE: base width \(vae.baseDim), levels x\(vae.dimMult.map(String.init).joined(separator: "/")), \(vae.zDim) latent channels, \(vae.spatialFactor)x\(vae.spatialFactor) spatial and \(vae.temporalFactor)x temporal compression"),
        ]
        Swift.print("model \(model.name) at \(model.directory) (Wan 2.1 text-to-video)")
        var stored = 0
        var parameters = 0
        for (part, base, description) in parts {
            let summary = try PartWeights(directory: "\(model.directory)/\(part)", baseName: base).summary()
            stored += summary.bytes
            parameters += summary.parameters
            let dtypes = summary.dtypes.sorted { $0.value > $1.value }.map(\.key).joined(separator: "+")
            Swift.print("  \(part.padding(toLength: 13, withPad: " ", startingAt: 0)) \(description)")
            Swift.print("  \("".padding(toLength: 13, withPad: " ", startingAt: 0)) \(Self.count(summary.parameters)) parameters in \(dtypes), \(Self.bytes(summary.bytes))")
        }
        let s = model.schedulerConfig
        Swift.print("  scheduler     \(s.className ?? "UniPCMultistepScheduler") (\(s.solverType ?? "bh2"), order \(s.solverOrder ?? 2)), flow shift \(s.flowShift ?? 1), \(s.numTrainTimesteps) training steps")
        Swift.print("  tokenizer     SentencePiece, \(try model.tokenizer().pieces.pieceCount) pieces; prompts up to \(try model.tokenizer().maxLength) tokens")
        Swift.print("  in all        \(Self.count(parameters)) parameters, \(Self.bytes(stored)) on disk, memory-mapped as stored")
        let size = WanRequest.defaultSize
        Swift.print("  defaults      \(size.width)x\(size.height), \(WanRequest.defaultFrames) frames at \(WanRequest.defaultFPS) fps, \(WanRequest.defaultSteps) UniPC steps, guidance \(WanRequest.defaultGuidance)")
        let latent = model.latentShape(frames: WanRequest.defaultFrames, width: size.width, height: size.height)
        let tokens = latent.frames * (latent.height / t.patchSize[1]) * (latent.width / t.patchSize[2])
        // Activations of one guided step: a handful of [2·tokens, width] matrices, the MLP's
        // [2·tokens, ffn], and score blocks of bounded size per thread.
        let activations = (2 * tokens) * (8 * t.width + t.ffnDim) * 4
        Swift.print("  memory        the weights as stored (mapped) plus about \(Self.bytes(activations)) of activations per guided step at the defaults (\(tokens) tokens); the VAE's weights in f32")
    }

    static func count(_ n: Int) -> String {
        n >= 1_000_000_000 ? String(format: "%.2f B", Double(n) / 1e9) : n >= 1_000_000 ? String(format: "%.1f M", Double(n) / 1e6) : "\(n)"
    }

    static func bytes(_ n: Int) -> String {
        n >= 1 << 30 ? String(format: "%.2f GiB", Double(n) / Double(1 << 30)) : n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / Double(1 << 20))
            : String(format: "%.1f KiB", Double(n) / 1024)
    }
}

extension ModelCommand {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prove that Reel computes what the reference computes, part by part, on a model's own weights.",
            discussion: """
                REF is a safetensors file of inputs and expected outputs named after diffusers' arguments \
                (tokenizer.ids, text_encoder.*, transformer.*, vae.*, pipeline.*); \
                tools/wan-reference/make_fixtures.py --model DIR writes one from the pinned diffusers. \
                Every part present is run; each prints its max absolute error and that error relative \
                to the reference's largest value. Exits 1 when any part's relative error is past the tolerance.
                """)

        @Argument(help: "A Wan 2.1 Diffusers folder.")
        var model: String

        @Option(help: "The reference file (.safetensors).")
        var reference: String

        @Option(help: "Largest relative error that passes (default: 1e-4).")
        var tolerance: Double = 1e-4

        @Option(help: ArgumentHelp("Hold the text encoder's and transformer's weights as stored or int8, to measure what int8 costs against the reference (default: stored).", valueName: "precision"))
        var weights: String = WeightPrecision.default.rawValue

        @Option(help: "Compute threads (default: all cores).")
        var threads: Int?

        func run() throws {
            guard let precision = WeightPrecision(rawValue: weights) else { throw UserError("--weights \(weights) is not a precision; use \(WeightPrecision.names)") }
            guard tolerance >= 0, tolerance.isFinite else { throw UserError("--tolerance \(tolerance): use a number of 0 or more") }
            if let threads { ComputeThreads.set(try Render.positive(threads, "--threads")) }
            guard WanModel.recognises(model) else {
                throw UserError("\(model): not a Wan model folder (model_index.json naming WanPipeline); `reel model check` checks Wan models")
            }
            let check = WanReferenceCheck(model: try WanModel(directory: model, weights: precision), reference: try SafeTensorsFile(path: reference), tolerance: tolerance)
            for name in check.unknownNames { Swift.print("skipped \(name): not a name this check knows") }
            let results = try check.run { Swift.print($0.line) }
            guard !results.isEmpty else { throw UserError("\(reference) holds no inputs and outputs this check knows; see `reel model check --help`") }
            let failed = results.filter { !$0.passed }
            guard failed.isEmpty else {
                throw UserError("\(failed.count) of \(results.count) part(s) past the tolerance \(tolerance): \(failed.map(\.part).joined(separator: ", "))")
            }
            Swift.print("all \(results.count) part(s) within \(tolerance)")
        }
    }

    struct Synth: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a randomly initialised model in a published layout, at full size, for trying every path without the download.",
            discussion: "Presets: \(WanSynth.Preset.allCases.map(\.rawValue).joined(separator: ", ")). The weights are random: renders are noise, but the files, names, shapes, memory and speed are the real model's. The tokenizer is a small SentencePiece model trained on the spot.")

        @Argument(help: "Preset: \(WanSynth.Preset.allCases.map(\.rawValue).joined(separator: ", ")).")
        var preset: String

        @Argument(help: "New folder to write the model into.")
        var directory: String

        @Option(help: "Element type of the text encoder's and transformer's weights: bf16, f16 or f32 (default: bf16).")
        var dtype: String = "bf16"

        @Option(help: "Seed of the random weights.")
        var seed: UInt64 = 0

        func run() throws {
            guard let preset = WanSynth.Preset(rawValue: preset) else {
                throw UserError("unknown preset \(preset); use one of \(WanSynth.Preset.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let type = ["bf16": StoredTensor.DType.bf16, "f16": .f16, "f32": .f32][dtype.lowercased()] else {
                throw UserError("--dtype \(dtype): use bf16, f16 or f32")
            }
            let clock = ContinuousClock()
            let start = clock.now
            try WanSynth.write(preset, to: directory, seed: seed, dtype: type) { part in
                FileHandle.standardError.write(Data(String(format: "reel: wrote %@ (%.0f s)\n", part, (clock.now - start).seconds).utf8))
            }
            Swift.print("wrote \(preset.rawValue) with random weights (seed \(seed)) to \(directory)")
        }
    }
}
