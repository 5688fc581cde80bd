import Crypto
import Foundation
import Media
import Provenance
import Testing

/// `reel verify` on real files: the manifest `reel render` and a farm write, what tampering it
/// finds, and re-rendering a job to compare its frames bit for bit.
@Suite struct ProvenanceTests {
    static let prompt = "a large red circle moving right on a black background"
    /// A short reel-shapes job: a second or two to render.
    static let job = [prompt, "--frames", "8", "--steps", "6", "--seed", "7"]

    static func render(_ extra: [String] = [], name: String, in directory: String) throws -> String {
        let result = try ReelCommand.run(["render"] + job + extra + ["-o", name], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        return "\(directory)/\(name)"
    }

    /// The manifest as ffprobe prints it: anyone can read it without Reel.
    static func probedManifest(_ path: String) throws -> Manifest {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ffprobe")
        process.arguments = ["-v", "error", "-show_entries", "format_tags", "-of", "json", path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let tags = (json?["format"] as? [String: Any])?["tags"] as? [String: String]
        let text = try #require(tags?[Manifest.manifestTag], "ffprobe lists reel.manifest: \(String(decoding: data, as: UTF8.self))")
        #expect(tags?[Manifest.signatureTag] != nil)
        return try Manifest.decode(Data(text.utf8))
    }

    static func verify(_ arguments: [String], in directory: String) throws -> ReelCommand.Result {
        try ReelCommand.run(["verify"] + arguments, in: directory)
    }

    /// The file with one byte changed at `offset`: to `value`, else its bits flipped.
    static func flipping(_ path: String, at offset: Int, into value: UInt8? = nil, to copy: String) throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[offset] = value ?? bytes[offset] ^ 0x55
        try bytes.write(to: URL(fileURLWithPath: copy))
    }

    /// Where an MP4's top-level box of `type` starts and ends.
    static func box(_ type: String, in bytes: Data) -> Range<Int>? {
        var offset = 0
        while offset + 8 <= bytes.count {
            let size = Int(bytes[offset..<offset + 4].reduce(0 as UInt32) { $0 << 8 | UInt32($1) })
            let name = String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self)
            guard size >= 8 else { return nil }
            if name == type { return offset..<min(bytes.count, offset + size) }
            offset += size
        }
        return nil
    }

    @Test func aRenderCarriesASignedManifestThatVerifiesAndTamperingIsNamed() throws {
        let directory = try ReelCommand.scratchDirectory()
        let path = try Self.render(name: "a.mp4", in: directory)
        let manifest = try Self.probedManifest(path)
        #expect(manifest.model.name == "reel-shapes" && manifest.model.weights.map(\.path) == ["model.safetensors"])
        #expect(manifest.model.weights[0].sha256.count == 64)
        #expect(manifest.job.spec.prompt == Self.prompt && manifest.job.spec.seed == 7 && manifest.job.spec.steps == 6 && manifest.job.spec.frames == 8)
        #expect(manifest.job.pipeline == "farm" && manifest.job.outputScale == 4 && manifest.input == nil)
        #expect(!manifest.blasKernels.isEmpty && manifest.generator.hasPrefix("reel "))
        #expect(manifest.video.decoded.frames == 8 && manifest.video.decoded.width == 256)

        let exported = try ReelCommand.run(["keys", "export-signing", "--local"], in: directory)
        let key = exported.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(exported.status == 0 && key == manifest.signer, "\(exported.stdout)\(exported.stderr)")
        let good = try Self.verify([path, "--key", key], in: directory)
        #expect(good.status == 0 && good.stdout.contains("ok   signature") && good.stdout.contains("ok   frames") && good.stdout.hasSuffix("verified\n"), "\(good.stdout)\(good.stderr)")
        let stranger = try Self.verify([path, "--key", SigningKey.text(Curve25519.Signing.PrivateKey().publicKey)], in: directory)
        #expect(stranger.status == 1 && stranger.stdout.contains("FAIL signer"), "\(stranger.stdout)")

        // One byte of the manifest: the seed it claims.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let seed = try #require(bytes.range(of: Data("\"seed\":7".utf8)))
        try Self.flipping(path, at: seed.upperBound - 1, into: UInt8(ascii: "8"), to: "\(directory)/manifest-edited.mp4")
        let edited = try Self.verify(["manifest-edited.mp4"], in: directory)
        #expect(edited.status == 1 && edited.stdout.contains("FAIL signature: does not match: the manifest was changed"), "\(edited.stdout)\(edited.stderr)")
        #expect(edited.stdout.contains("ok   frames"), "the frames are still the signed ones: \(edited.stdout)")

        // One byte of the video stream.
        let mdat = try #require(Self.box("mdat", in: bytes))
        try Self.flipping(path, at: (mdat.lowerBound + mdat.upperBound) / 2, to: "\(directory)/stream-edited.mp4")
        let damaged = try Self.verify(["stream-edited.mp4"], in: directory)
        #expect(damaged.status == 1 && damaged.stdout.contains("ok   signature") && damaged.stdout.contains("FAIL stream"), "\(damaged.stdout)\(damaged.stderr)")

        // A re-encode that keeps the tags.
        let ffmpeg = Process()
        ffmpeg.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        ffmpeg.arguments = ["-v", "error", "-y", "-i", path, "-c:v", "libx264", "-crf", "23", "-map_metadata", "0",
                            "-movflags", "+use_metadata_tags", "\(directory)/reencoded.mp4"]
        try ffmpeg.run()
        ffmpeg.waitUntilExit()
        #expect(ffmpeg.terminationStatus == 0)
        let reencoded = try Self.verify(["reencoded.mp4"], in: directory)
        #expect(reencoded.status == 1 && reencoded.stdout.contains("ok   signature")
                && reencoded.stdout.contains("FAIL frames: the decoded frames differ from the signed ones: the video was re-encoded or edited"),
                "\(reencoded.stdout)\(reencoded.stderr)")

        let bare = try Self.render(["--no-manifest"], name: "bare.mp4", in: directory)
        #expect(try ContainerMetadata.read(bare)[Manifest.manifestTag] == nil)
        let none = try Self.verify(["bare.mp4"], in: directory)
        #expect(none.status == 1 && none.stdout.contains("carries no Reel manifest"), "\(none.stdout)")
        let (bareVideo, signedVideo) = (try ReelCommand.video(bare), try ReelCommand.video(path))
        #expect(bareVideo == signedVideo, "the manifest changes no frame")
    }

    @Test func aRerenderIsIdenticalAndAForgedSeedIsDifferent() throws {
        let directory = try ReelCommand.scratchDirectory()
        let path = try Self.render(name: "a.mp4", in: directory)
        let again = try Self.verify([path, "--rerender"], in: directory)
        #expect(again.status == 0 && again.stdout.contains("ok   rerender: identical"), "\(again.stdout)\(again.stderr)")
        let json = try Self.verify([path, "--rerender", "--json"], in: directory)
        let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let checks = (report?["findings"] as? [[String: Any]])?.compactMap { $0["check"] as? String } ?? []
        #expect(json.status == 0 && report?["verified"] as? Bool == true && (report?["manifest"] as? [String: Any])?["signer"] != nil, "\(json.stdout)")
        #expect(checks == ["signature", "stream", "frames", "model", "rerender", "rerender"], "\(checks)")

        // The same file, its manifest claiming seed 8 and signed by a forger's own key.
        var forged = try Self.probedManifest(path)
        forged.job.spec.seed = 8
        let forger = SigningKey(Curve25519.Signing.PrivateKey())
        forged.signer = forger.publicText
        try ContainerMetadata.copy(path, to: "\(directory)/forged.mp4", tags: try SignedVideo.tags(forged, key: forger))
        let plain = try Self.verify(["forged.mp4"], in: directory)
        #expect(plain.status == 0, "a forger's signature is good by the forger's key: only a trusted --key or a re-render tells: \(plain.stdout)")
        let rerendered = try Self.verify(["forged.mp4", "--rerender"], in: directory)
        #expect(rerendered.status == 1 && rerendered.stdout.contains("FAIL rerender: different"), "\(rerendered.stdout)\(rerendered.stderr)")

        // A manifest naming a folder that holds no model: nothing under it is read.
        forged.model.name = "/"
        try ContainerMetadata.copy(path, to: "\(directory)/elsewhere.mp4", tags: try SignedVideo.tags(forged, key: forger))
        let elsewhere = try Self.verify(["elsewhere.mp4", "--rerender"], in: directory)
        #expect(elsewhere.status != 0 && elsewhere.stderr.contains("/ is not a model folder"), "\(elsewhere.stderr)")
    }

    /// A farm's file is signed by the farm's key, and renders again on the farm identically.
    @Test func aFarmsFileVerifiesByItsKeyAndRendersAgainOnTheFarm() throws {
        let farm = try ProcessFarm()
        defer { farm.stop() }
        try farm.startWorker("w1")
        try farm.waitForWorkers(1)
        let submitted = try farm.client(["submit"] + Self.job + ["--wait", "-o", "farm.mp4"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let key = try ReelCommand.run(["keys", "export-signing", "--data-dir", "\(farm.directory)/data"], in: farm.directory)
        #expect(key.status == 0 && FileManager.default.fileExists(atPath: "\(farm.directory)/data/keys/signing.key"), "made on the coordinator's first start")
        let checked = try farm.client(["verify", "farm.mp4", "--key", key.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "--rerender", "--farm"])
        #expect(checked.status == 0 && checked.stdout.contains("ok   signer") && checked.stdout.contains("rerender: identical"), "\(checked.stdout)\(checked.stderr)")
    }

    /// The reference pipeline's render (Wan, `--sampler unipc`) and a re-render of an input
    /// video render again identically too; the input must be the one rendered from.
    @Test func referencePipelineAndInputVideoRendersRenderAgainIdentically() throws {
        let directory = try ReelCommand.scratchDirectory()
        // A prompt that reads like an option stays the prompt when the job is rendered again.
        let wan = try ReelCommand.run(["render", "--model", ReelCommand.packageRoot + "/Tests/WanTests/Fixtures/wan-tiny", "--sampler", "unipc", "--size", "48x32",
                                       "--frames", "5", "--steps", "2", "--seed", "4", "-o", "wan.mp4", "--", "--seed=9 a red fox running through snow"], in: directory)
        #expect(wan.status == 0, "\(wan.stderr)")
        let manifest = try Self.probedManifest("\(directory)/wan.mp4")
        #expect(manifest.job.pipeline == "reference" && manifest.model.family == "wan" && manifest.job.spec.sampler == "unipc")
        #expect(manifest.job.spec.prompt == "--seed=9 a red fox running through snow" && manifest.job.spec.seed == 4)
        #expect(manifest.model.weights.count >= 3 && manifest.job.spec.negativePrompt != nil, "the text encoder's, transformer's and VAE's files")
        let wanAgain = try Self.verify(["wan.mp4", "--rerender"], in: directory)
        #expect(wanAgain.status == 0 && wanAgain.stdout.contains("rerender: identical"), "\(wanAgain.stdout)\(wanAgain.stderr)")

        let source = try Self.render(name: "source.mp4", in: directory)
        let sourceBytes = try Data(contentsOf: URL(fileURLWithPath: source))
        let edit = try Self.render(["--input", "source.mp4", "--strength", "0.5"], name: "edit.mp4", in: directory)
        let edited = try Self.probedManifest(edit)
        #expect(edited.input == InputRecord(of: sourceBytes) && edited.job.spec.strength == 0.5)
        let without = try Self.verify(["edit.mp4", "--rerender"], in: directory)
        #expect(without.status != 0 && without.stderr.contains("--input FILE"), "\(without.stderr)")
        let other = try Self.verify(["edit.mp4", "--rerender", "--input", "wan.mp4"], in: directory)
        #expect(other.status != 0 && other.stderr.contains("not the video rendered from"), "\(other.stderr)")
        let again = try Self.verify(["edit.mp4", "--rerender", "--input", "source.mp4"], in: directory)
        #expect(again.status == 0 && again.stdout.contains("rerender: identical"), "\(again.stdout)\(again.stderr)")
    }

    /// A job file sets the same options; each is checked, naming its line.
    @Test func aJobFileSetsTheManifestOptions() throws {
        let directory = try ReelCommand.scratchDirectory()
        try "prompt: \(Self.prompt)\nframes: 8\nsteps: 6\nprivate_prompt: true\nwatermark: JOB FILE\n"
            .write(toFile: "\(directory)/job.yaml", atomically: true, encoding: .utf8)
        let rendered = try ReelCommand.run(["render", "job.yaml", "-o", "job.mp4"], in: directory)
        #expect(rendered.status == 0, "\(rendered.stderr)")
        let manifest = try Self.probedManifest("\(directory)/job.mp4")
        #expect(manifest.job.privatePrompt != nil && manifest.job.watermark == "JOB FILE")
        try "prompt: \(Self.prompt)\nmanifest: maybe\n".write(toFile: "\(directory)/bad.yaml", atomically: true, encoding: .utf8)
        let bad = try ReelCommand.run(["render", "bad.yaml", "-o", "bad.mp4"], in: directory)
        #expect(bad.status != 0 && bad.stderr.contains("bad.yaml:2: manifest must be true or false"), "\(bad.stderr)")
        try "prompt: \(Self.prompt)\nmanifest: false\nprivate_prompt: true\n".write(toFile: "\(directory)/both.yaml", atomically: true, encoding: .utf8)
        let both = try ReelCommand.run(["render", "both.yaml", "-o", "both.mp4"], in: directory)
        #expect(both.status != 0 && both.stderr.contains("private_prompt applies to the manifest"), "\(both.stderr)")
    }

    @Test func aPrivatePromptIsNowhereInTheFileAndARerenderNeedsIt() throws {
        let directory = try ReelCommand.scratchDirectory()
        let path = try Self.render(["--private-prompt"], name: "private.mp4", in: directory)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.range(of: Data(Self.prompt.utf8)) == nil)
        for word in Self.prompt.split(separator: " ") where word.count >= 5 {
            #expect(bytes.range(of: Data(word.utf8)) == nil, "\(word) is in the file")
        }
        let manifest = try Self.probedManifest(path)
        #expect(manifest.job.spec.prompt.isEmpty && manifest.job.privatePrompt?.matches([Self.prompt]) == true)

        let without = try Self.verify([path, "--rerender"], in: directory)
        #expect(without.status != 0 && without.stderr.contains("--prompt"), "\(without.stdout)\(without.stderr)")
        let wrong = try Self.verify([path, "--rerender", "--prompt", "a small blue square"], in: directory)
        #expect(wrong.status != 0 && wrong.stderr.contains("salted hash differs"), "\(wrong.stderr)")
        let right = try Self.verify([path, "--rerender", "--prompt", Self.prompt], in: directory)
        #expect(right.status == 0 && right.stdout.contains("identical"), "\(right.stdout)\(right.stderr)")
    }

    @Test func aWatermarkIsDrawnInTheCornerAndOnlyThere() throws {
        let directory = try ReelCommand.scratchDirectory()
        let plain = try VideoDecoder.read(try Self.render(name: "plain.mp4", in: directory)).video
        let marked = try VideoDecoder.read(try Self.render(["--watermark", "Reel 2026"], name: "marked.mp4", in: directory)).video
        #expect(plain.width == 256 && marked.width == 256 && marked.frameCount == 8)
        // The mark's box at 256x256: 3 pixels to a font dot, 9 characters, a 9-pixel margin.
        let (left, top) = (256 - 9 - (9 * 6 - 1) * 3, 256 - 9 - 7 * 3)
        var white = 0, far = 0.0, farCount = 0
        for frame in 0..<marked.frameCount {
            for y in 0..<256 {
                for x in 0..<256 {
                    let at = frame * marked.frameBytes + (y * 256 + x) * 3
                    if x >= left && y >= top {
                        if (0..<3).allSatisfy({ marked.pixels[at + $0] > 200 }) { white += 1 }
                    } else if x < 128 && y < 128 {
                        far += abs(Double(marked.pixels[at]) - Double(plain.pixels[at]))
                        farCount += 1
                    }
                }
            }
        }
        #expect(white > 8 * 100, "the letters are white in the corner: \(white) pixels")
        #expect(far / Double(farCount) < 3, "the frames away from the corner are unchanged: mean difference \(far / Double(farCount))")
        let manifest = try Self.probedManifest("\(directory)/marked.mp4")
        let unmarked = try Self.probedManifest("\(directory)/plain.mp4")
        #expect(manifest.job.watermark == "Reel 2026" && manifest.video.renderedSha256 == unmarked.video.renderedSha256,
                "the mark is drawn after the frames are rendered")

        let long = try ReelCommand.run(["render"] + Self.job + ["--scale", "1", "--watermark", String(repeating: "W", count: 20), "-o", "long.mp4"], in: directory)
        #expect(long.status != 0 && long.stderr.contains("watermark") && long.stderr.contains("does not fit a 64x64 video"), "\(long.stderr)")
        let odd = try ReelCommand.run(["render"] + Self.job + ["--watermark", "café", "-o", "odd.mp4"], in: directory)
        #expect(odd.status != 0 && odd.stderr.contains("--watermark cannot draw \"é\""), "\(odd.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/long.mp4") && !FileManager.default.fileExists(atPath: "\(directory)/odd.mp4"))
    }
}
