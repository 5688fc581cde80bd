import Foundation
import Media
import Testing

/// `reel model check`, `reel model synth`, `reel model info` and `reel render` on Wan models, as a
/// user runs them, on the tiny parity fixtures (Tests/WanTests/Fixtures).
@Suite struct WanCommandTests {
    static let fixtures = ReelCommand.packageRoot + "/Tests/WanTests/Fixtures"

    /// Each part is timed in a process of its own and reported with its figures.
    @Test func engineBenchTimesEachPartOfAWanModel() throws {
        let result = try ReelCommand.run(["bench", "engine", "--model", "\(Self.fixtures)/wan-tiny", "--size", "64x64", "--frames", "9",
                                          "--seconds", "0.1", "--rounds", "1", "--json"], in: try ReelCommand.scratchDirectory())
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(report["tokens"] as? Int == 48, "3 latent frames of 8x8 in 2x2 patches")
        #expect(report["weights"] as? String == "stored")
        for key in ["text_encoder_seconds", "guided_step_seconds", "guided_step_gflop", "vae_decode_seconds_per_frame", "sgemm_gflops"] {
            #expect((report[key] as? Double ?? 0) > 0, "\(key) in \(result.stdout)")
        }
        for key in ["text_encoder_peak_rss_bytes", "denoiser_peak_rss_bytes", "vae_peak_rss_bytes"] {
            #expect((report[key] as? Int ?? 0) > 1 << 20, "\(key) in \(result.stdout)")
        }
        let bad = try ReelCommand.run(["bench", "engine", "--model", "\(Self.fixtures)/wan-tiny", "--frames", "10"], in: try ReelCommand.scratchDirectory())
        #expect(bad.status != 0 && bad.stderr.contains("--frames 10"), "\(bad.stderr)")
    }

    @Test func checkPassesOnTheFixturesAndFailsPastATighterTolerance() throws {
        let directory = try ReelCommand.scratchDirectory()
        let model = "\(Self.fixtures)/wan-tiny", reference = "\(Self.fixtures)/reference.safetensors"
        let passed = try ReelCommand.run(["model", "check", model, "--reference", reference], in: directory)
        #expect(passed.status == 0, "\(passed.stderr)")
        for part in ["tokenizer:", "text_encoder:", "transformer blocks (2):", "transformer:", "vae decode:", "vae encode:", "pipeline steps (3):", "pipeline video:"] {
            #expect(passed.stdout.contains(part), "\(part) missing from \(passed.stdout)")
        }
        #expect(passed.stdout.contains("all 8 part(s) within 0.0001"))

        let failed = try ReelCommand.run(["model", "check", model, "--reference", reference, "--tolerance", "1e-12"], in: directory)
        #expect(failed.status == 1)
        #expect(failed.stderr.hasPrefix("reel: error: ") && failed.stderr.contains("past the tolerance"), "\(failed.stderr)")
        #expect(failed.stderr.split(separator: "\n").count == 1)

        let int8 = try ReelCommand.run(["model", "check", model, "--reference", reference, "--weights", "int8", "--tolerance", "3e-2"], in: directory)
        #expect(int8.status == 0 && int8.stdout.contains("all 8 part(s) within 0.03"), "\(int8.stdout)\(int8.stderr)")
    }

    @Test func precisionBenchComparesInt8WithStored() throws {
        let result = try ReelCommand.run(["bench", "precision", "--model", "\(Self.fixtures)/wan-tiny", "--size", "64x64", "--frames", "5",
                                          "--steps", "2", "--json"], in: try ReelCommand.scratchDirectory())
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(report["weights"] as? String == "int8")
        for key in ["text_relative_error", "velocity_relative_error", "velocity_max_relative_error"] {
            #expect((0.0001..<0.05).contains(report[key] as? Double ?? -1), "\(key) in \(result.stdout)")
        }
        #expect((report["video_psnr"] as? Double ?? 0) > 35, "\(result.stdout)")
        let stored = try ReelCommand.run(["bench", "precision", "--model", "\(Self.fixtures)/wan-tiny", "--weights", "stored"], in: try ReelCommand.scratchDirectory())
        #expect(stored.status == 1 && stored.stderr.contains("give a precision to compare with stored (int8)"), "\(stored.stderr)")
    }

    @Test func synthesisedTinyModelRendersTheSameBytesTwice() throws {
        let directory = try ReelCommand.scratchDirectory()
        let synth = try ReelCommand.run(["model", "synth", "wan2.1-tiny", "wan"], in: directory)
        #expect(synth.status == 0, "\(synth.stderr)")
        // The synthesised files hold exactly the fixture's tensors and shapes: the published layout.
        for (part, file) in [("text_encoder", "model"), ("transformer", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model")] {
            let ours = try SafeTensorsHeader.read("\(directory)/wan/\(part)/\(file).safetensors")
            let reference = try SafeTensorsHeader.read("\(Self.fixtures)/wan-tiny/\(part)/\(file).safetensors")
            #expect(ours == reference, "\(part) tensors differ from the published layout")
        }
        let info = try ReelCommand.run(["model", "info", "wan"], in: directory)
        #expect(info.status == 0 && info.stdout.contains("Wan 2.1 text-to-video") && info.stdout.contains("BF16"), "\(info.stdout)\(info.stderr)")

        var videos: [VideoDigest] = []
        for name in ["a.mp4", "b.mp4"] {
            let render = try ReelCommand.run(["render", "a red fox running through snow", "--model", "wan", "--size", "48x32",
                                              "--frames", "5", "--steps", "2", "--seed", "4", "-o", name], in: directory)
            #expect(render.status == 0, "\(render.stderr)")
            #expect(render.stderr.contains("step 2/2"))
            videos.append(try ReelCommand.video("\(directory)/\(name)"))
        }
        #expect(videos[0] == videos[1], "the same job renders the same bytes")
        let int8 = try ReelCommand.run(["render", "a red fox running through snow", "--model", "wan", "--size", "48x32",
                                        "--frames", "5", "--steps", "2", "--seed", "4", "--weights", "int8", "-o", "int8.mp4"], in: directory)
        #expect(int8.status == 0, "\(int8.stderr)")
        #expect(try ReelCommand.video("\(directory)/int8.mp4") != videos[0], "int8 weights render other bits")
        let decoded = try VideoDecoder.read("\(directory)/a.mp4")
        #expect(decoded.video.frameCount == 5 && decoded.video.width == 48 && decoded.video.height == 32 && decoded.fps == 16)

        // Another sampler on the same sigmas, and a re-render of that video through the VAE encoder.
        let euler = try ReelCommand.run(["render", "a red fox", "--model", "wan", "--size", "48x32", "--frames", "5", "--steps", "2",
                                         "--sampler", "euler", "-o", "euler.mp4"], in: directory)
        #expect(euler.status == 0 && euler.stderr.contains("2 euler steps"), "\(euler.stderr)")
        let again = try ReelCommand.run(["render", "a red fox in the rain", "--model", "wan", "--size", "48x32", "--input", "a.mp4",
                                         "--strength", "0.5", "--steps", "4", "-o", "again.mp4"], in: directory)
        #expect(again.status == 0 && again.stderr.contains("from a.mp4 at strength 0.5") && again.stderr.contains("step 2/2"), "\(again.stderr)")
        #expect(try VideoDecoder.read("\(directory)/again.mp4").video.frameCount == 5)
    }

    @Test func badWanOptionsAreOneLineErrorsAndWriteNothing() throws {
        let directory = try ReelCommand.scratchDirectory()
        let model = "\(Self.fixtures)/wan-tiny"
        for (arguments, expected) in [(["--size", "50x32"], "width 50 is not a multiple of the model's patch (16)"),
                                      (["--frames", "10"], "frames 10: this model takes 1 + 4k frames"),
                                      (["--window", "22"], "window 22 is out of range; use 1 to the model's window (21)"),
                                      (["--sampler", "bogus"], "sampler bogus is unknown"),
                                      (["--negative-prompt", String(repeating: "x", count: 2001)], "negative_prompt is 2001 characters"),
                                      (["--strength", "0.5"], "--strength applies only with --input"),
                                      (["--input", "missing.mp4"], "--input missing.mp4"),
                                      (["--weights", "fp4"], "--weights fp4 is not a precision; use stored, int8")] {
            let result = try ReelCommand.run(["render", "a fox", "--model", model, "-o", "x.mp4"] + arguments, in: directory)
            #expect(result.status == 1 && result.stderr.contains(expected) && result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
        let worker = try ReelCommand.run(["worker", "--model", model, "--parts", "text,unet", "--connect", "tcp://127.0.0.1:9", "--insecure"],
                                         in: directory, wrapper: ["timeout", "30"])
        #expect(worker.status == 1 && worker.stderr.contains("--parts text,unet: 'unet' is not a part; use text, dit and vae"), "\(worker.stderr)")
        let shapes = try ReelCommand.run(["render", "a red circle", "--negative-prompt", "blue", "-o", "x.mp4"], in: directory)
        #expect(shapes.status == 1 && shapes.stderr.contains("negative_prompt is not read by this model"), "\(shapes.stderr)")
        let shapesInt8 = try ReelCommand.run(["render", "a red circle", "--weights", "int8", "-o", "x.mp4"], in: directory)
        #expect(shapesInt8.status == 1 && shapesInt8.stderr.contains("weights int8 is not offered by this model, which runs stored"), "\(shapesInt8.stderr)")
        let broken = try ReelCommand.run(["model", "info", "\(directory)/nothing"], in: directory)
        #expect(broken.status == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }
}

/// The names, dtypes-free shapes of a safetensors file's tensors, read from its header.
enum SafeTensorsHeader {
    static func read(_ path: String) throws -> [String: [Int]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let length = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as! [String: Any]
        var shapes: [String: [Int]] = [:]
        for (name, value) in header where name != "__metadata__" {
            shapes[name] = (value as! [String: Any])["shape"] as? [Int]
        }
        return shapes
    }
}
