import Foundation
import Media
import Testing

/// Re-rendering an input video (SDEdit) through `reel render --input`.
@Suite struct InputVideoTests {
    /// A smooth 48-frame clip: a soft disc sliding over a gradient, 64x64 at 8 fps.
    static func writeInput(to path: String) throws {
        var pixels = [UInt8]()
        for f in 0..<48 {
            for y in 0..<64 {
                for x in 0..<64 {
                    let dx = Double(x - (8 + f)), dy = Double(y - 32)
                    let cover = min(max(9 - (dx * dx + dy * dy).squareRoot(), 0), 3) / 3
                    let background = [Double(x * 3), Double(y * 3), 60.0]
                    let disc = [230.0, 200.0, 40.0]
                    pixels += (0..<3).map { UInt8((background[$0] * (1 - cover) + disc[$0] * cover).rounded()) }
                }
            }
        }
        try VideoEncoder.writeMP4(RGBVideo(width: 64, height: 64, pixels: pixels), options: EncodeOptions(fps: 8), to: path)
    }

    func render(_ extra: [String], in directory: String, to output: String) throws -> ReelCommand.Result {
        try ReelCommand.run(["render", "a blue square moving up", "--steps", "4", "--seed", "5", "--scale", "1", "-o", output] + extra, in: directory)
    }

    @Test func strengthZeroKeepsTheInputAndStrengthOneIsTheTextOnlyRender() throws {
        let directory = try ReelCommand.scratchDirectory()
        try Self.writeInput(to: "\(directory)/in.mp4")

        #expect(try render(["--input", "in.mp4", "--strength", "0"], in: directory, to: "kept.mp4").status == 0)
        let input = try VideoDecoder.read("\(directory)/in.mp4").video
        let kept = try VideoDecoder.read("\(directory)/kept.mp4").video
        #expect(kept.frameCount == 48, "same length as the input")
        let psnr = kept.psnr(against: input)
        #expect(psnr >= 35, "strength 0 returns the input up to encoding: \(psnr) dB")

        #expect(try render(["--input", "in.mp4", "--strength", "1"], in: directory, to: "ignored.mp4").status == 0)
        #expect(try render(["--frames", "48"], in: directory, to: "text.mp4").status == 0)
        let ignored = try ReelCommand.video("\(directory)/ignored.mp4")
        let text = try ReelCommand.video("\(directory)/text.mp4")
        #expect(ignored == text, "strength 1 equals a text-only render with the same seed")

        #expect(try render(["--input", "in.mp4", "--strength", "0.5"], in: directory, to: "half.mp4").status == 0)
        let half = try VideoDecoder.read("\(directory)/half.mp4").video
        #expect(half.frameCount == 48 && half.psnr(against: input) < psnr, "strength 0.5 changes the input")
    }

    @Test func unreadableInputIsOneClearLineAndNoFile() throws {
        let directory = try ReelCommand.scratchDirectory()
        try "not a video".write(toFile: "\(directory)/notes.mp4", atomically: true, encoding: .utf8)
        let result = try render(["--input", "notes.mp4"], in: directory, to: "out.mp4")
        #expect(result.status != 0)
        #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains("not a video FFmpeg can read"))
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/out.mp4"))
        let missing = try render(["--input", "nowhere.mp4"], in: directory, to: "out.mp4")
        #expect(missing.status != 0 && missing.stderr.contains("no such file"))
        let strengthAlone = try render(["--strength", "0.3"], in: directory, to: "out.mp4")
        #expect(strengthAlone.status != 0 && strengthAlone.stderr.contains("--strength applies only with --input"), "\(strengthAlone.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/out.mp4"))
    }
}
