import Foundation
import Media
import TestSupport
import Testing

/// A moving colour gradient with a soft-edged disc sliding across it, like a render: smooth
/// enough for 4:2:0 chroma to keep (a hard-edged saturated shape costs about 3 dB in the colour
/// conversion alone), varied enough that a broken frame order or colour conversion shows.
func syntheticVideo(width: Int = 64, height: Int = 48, frames: Int = 24) -> RGBVideo {
    var pixels = [UInt8]()
    pixels.reserveCapacity(width * height * 3 * frames)
    for f in 0..<frames {
        for y in 0..<height {
            for x in 0..<width {
                let background = [Double(x * 255) / Double(width), Double(y * 255) / Double(height), Double(f * 255) / Double(frames)]
                let dx = Double(x - (8 + f * 2)), dy = Double(y - height / 2)
                let cover = min(max(7 - (dx * dx + dy * dy).squareRoot(), 0), 2) / 2  // 2-pixel ramp at the edge
                let disc: [Double] = [230, 230, 40]
                pixels += (0..<3).map { UInt8((background[$0] * (1 - cover) + disc[$0] * cover).rounded()) }
            }
        }
    }
    return RGBVideo(width: width, height: height, pixels: pixels)
}

func temporaryPath(_ name: String) -> String { ScratchFiles.path(name, prefix: "reel-media") }

/// Runs ffprobe on a file and returns its first video stream's fields.
func probe(_ path: String) throws -> [String: String] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
                         "-show_entries", "stream=codec_name,width,height,r_frame_rate,nb_read_frames,pix_fmt:format=duration,format_name",
                         "-of", "default=noprint_wrappers=1", path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    var fields: [String: String] = [:]
    for line in output.split(separator: "\n") {
        let parts = line.split(separator: "=", maxSplits: 1)
        if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
    }
    return fields
}

@Suite struct VideoFileTests {
    @Test func mp4RoundTripKeepsFrameCountSizeFpsAndPicture() throws {
        let video = syntheticVideo()
        let path = temporaryPath("round.mp4")
        try VideoEncoder.writeMP4(video, options: EncodeOptions(fps: 12), to: path)
        let fields = try probe(path)
        #expect(fields["codec_name"] == "h264")
        #expect(fields["pix_fmt"] == "yuv420p")
        #expect(fields["width"] == "64" && fields["height"] == "48")
        #expect(fields["r_frame_rate"] == "12/1")
        #expect(fields["nb_read_frames"] == "24")
        #expect(abs(Double(fields["duration"] ?? "0")! - 2.0) < 0.01, "24 frames at 12 fps last 2 s")

        let decoded = try VideoDecoder.read(path)
        #expect(decoded.video.frameCount == 24)
        #expect(decoded.fps == 12)
        #expect(decoded.codec == "h264")
        let psnr = decoded.video.psnr(against: video)
        #expect(psnr >= 35, "PSNR \(psnr) dB")
    }

    @Test func scaleEnlargesFramesInTheFile() throws {
        let path = temporaryPath("scaled.mp4")
        try VideoEncoder.writeMP4(syntheticVideo(frames: 4), options: EncodeOptions(fps: 8, scale: 3), to: path)
        let fields = try probe(path)
        #expect(fields["width"] == "192" && fields["height"] == "144")
        let decoded = try VideoDecoder.read(path, width: 64, height: 48)
        #expect(decoded.video.width == 64 && decoded.video.frameCount == 4)
    }

    @Test(arguments: [(0, 1, "fps 0"), (300, 1, "fps 300"), (8, 0, "scale 0")])
    func invalidOptionsAreClearErrorsAndWriteNothing(fps: Int, scale: Int, field: String) throws {
        let path = temporaryPath("bad.mp4")
        let error = #expect(throws: MediaError.self) {
            try VideoEncoder.writeMP4(syntheticVideo(frames: 2), options: EncodeOptions(fps: fps, scale: scale), to: path)
        }
        #expect(error?.code == .invalidOption && error?.description.hasPrefix(field) == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func oddSizeIsAClearError() throws {
        let path = temporaryPath("odd.mp4")
        let odd = RGBVideo(width: 15, height: 8, pixels: [UInt8](repeating: 100, count: 15 * 8 * 3))
        let error = #expect(throws: MediaError.self) { try VideoEncoder.writeMP4(odd, options: EncodeOptions(fps: 8), to: path) }
        #expect(error?.code == .invalidOption && error?.description.contains("odd") == true)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func unwritableDirectoryIsAClearErrorAndLeavesNoTemporaryFile() throws {
        let error = #expect(throws: MediaError.self) {
            try VideoEncoder.writeMP4(syntheticVideo(frames: 2), options: EncodeOptions(fps: 8), to: "/nonexistent-dir/out.mp4")
        }
        #expect(error?.code == .cannotWrite && error?.description.contains("/nonexistent-dir") == true)
    }

    @Test func unreadableInputIsAClearError() throws {
        let path = temporaryPath("not-a-video.mp4")
        try "plain text".write(toFile: path, atomically: true, encoding: .utf8)
        let error = #expect(throws: MediaError.self) { try VideoDecoder.read(path) }
        #expect(error?.description.contains("not a video FFmpeg can read") == true)
        #expect { try VideoDecoder.read(temporaryPath("missing.mp4")) } throws: { ($0 as? MediaError)?.code == .unreadable }
    }
}

/// glibc's `mallopt(M_PERTURB, byte)`: every allocation is filled with a byte derived from
/// `byte` (0: left as it is). `<malloc.h>` is not in Swift's Glibc module, so it is looked up.
enum MallocPerturbation {
    /// Whether glibc took the setting.
    @discardableResult
    static func set(_ byte: Int32) -> Bool {
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "mallopt") else { return false }
        let perturb: Int32 = -6  // M_PERTURB
        return unsafeBitCast(symbol, to: Mallopt.self)(perturb, byte) == 1
    }
}

/// The farm's promise that a job's MP4 is the same bytes however it was rendered holds only if
/// the encoder is a function of the frames alone.
@Suite(.serialized) struct EncoderDeterminismTests {
    /// On AVX-512 machines x264's macroblock-tree pass let leftover heap bytes steer a 64×64
    /// encode: a coordinator encoding job after job wrote different files for equal frames.
    /// glibc's malloc perturbation fills each allocation with a different byte, run to run.
    @Test func theSameFramesEncodeToTheSameBytesWhateverTheHeapHeld() throws {
        let video = syntheticVideo(width: 64, height: 64, frames: 64)
        var files: Set<Data> = []
        defer { MallocPerturbation.set(0) }
        for filler: Int32 in [0, 0x01, 0x55, 0xAA] {
            try #require(MallocPerturbation.set(filler), "glibc's mallopt(M_PERTURB)")
            let path = temporaryPath("same-\(filler).mp4")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try VideoEncoder.writeMP4(video, options: EncodeOptions(fps: 8), to: path)
            files.insert(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        #expect(files.count == 1, "\(files.count) different files from the same frames")
    }

    /// x264 writes its settings into the stream. One encoding thread, whatever the machine's
    /// core count: frame-threaded x264 output differs with the number of threads.
    @Test func theEncoderSettingsDoNotDependOnTheMachine() throws {
        let path = temporaryPath("settings.mp4")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try VideoEncoder.writeMP4(syntheticVideo(frames: 4), options: EncodeOptions(fps: 8), to: path)
        let file = String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
        let settings = file.components(separatedBy: "options: ").dropFirst().first.map { String($0.prefix { $0 != "\0" }) } ?? ""
        #expect(settings.contains(" threads=1 "), "\(settings)")
        #expect(settings.contains(" mbtree=0 "), "\(settings)")
    }
}

@Suite struct StillImageTests {
    @Test func pngFramesDecodeToTheExactPixels() throws {
        let video = syntheticVideo(frames: 2)
        let directory = temporaryPath("frames")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let paths = try StillImages.writeFrames(video, pattern: "\(directory)/frame-%d.png")
        #expect(paths.count == 2 && paths[1].hasSuffix("frame-0001.png"))
        let decoded = try VideoDecoder.read(paths[1])
        #expect(decoded.video.pixels == Array(video.frame(1)), "PNG is lossless")
    }

    @Test func contactSheetLaysFramesOutInAGrid() throws {
        let video = syntheticVideo(width: 10, height: 6, frames: 5)
        let sheet = StillImages.contactSheet(video, columns: 3, gap: 2)
        #expect(sheet.width == 3 * 10 + 4 * 2 && sheet.height == 2 * 6 + 3 * 2)
        // Frame 4 sits in row 1, column 1; compare its first pixel.
        let offset = ((2 + 6 + 2) * sheet.width + (2 + 10 + 2)) * 3
        #expect(Array(sheet.pixels[offset..<(offset + 3)]) == Array(video.frame(4).prefix(3)))
        let path = temporaryPath("sheet.png")
        try StillImages.writeContactSheet(video, to: path, columns: 3)
        #expect(try VideoDecoder.read(path).video.width == sheet.width)
    }

    /// A video from someone else is read from memory by a whitelist of containers: a file of
    /// another container, or one that names other files (ffconcat, an HLS playlist), is refused
    /// before anything is opened; a picture past the size limit is refused before scaling.
    @Test func untrustedVideosAreReadFromMemoryByAWhitelistOnly() throws {
        let directory = try ScratchFiles.directory(prefix: "reel-untrusted")
        let path = "\(directory)/clip.mp4"
        try VideoEncoder.writeMP4(syntheticVideo(width: 32, height: 32, frames: 6), options: EncodeOptions(fps: 12), to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let read = try VideoDecoder.read(bytes: bytes, width: 16, height: 16, limits: UntrustedVideoLimits(maxFrames: 100))
        #expect(read.video.frameCount == 6 && read.video.width == 16 && abs(read.fps - 12) < 1e-9)
        let capped = try VideoDecoder.read(bytes: bytes, width: 16, height: 16, limits: UntrustedVideoLimits(maxFrames: 2))
        #expect(capped.video.frameCount == 2, "decoding stops at the frame limit")

        var small = UntrustedVideoLimits(maxFrames: 100)
        small.maxSide = 31
        #expect { try VideoDecoder.read(bytes: bytes, width: 16, height: 16, limits: small) } throws: { "\($0)".contains("is 32x32") }
        let hostile = [
            "ffconcat": Data("ffconcat version 1.0\nfile '\(path)'\n".utf8),
            "HLS": Data("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n\(path)\n#EXT-X-ENDLIST\n".utf8),
            "image2 pattern": Data("\(directory)/clip-%03d.png".utf8),
        ]
        let still = try StillImages.png(rgb: [UInt8](repeating: 9, count: 16 * 16 * 3), width: 16, height: 16)
        #expect(try VideoDecoder.read(bytes: still, width: 16, height: 16, limits: UntrustedVideoLimits(maxFrames: 100)).video.frameCount == 1,
                "a still picture is a video of one frame")
        for (name, data) in hostile {
            #expect(throws: MediaError.self, "\(name) is refused") {
                try VideoDecoder.read(bytes: data, width: 16, height: 16, limits: UntrustedVideoLimits(maxFrames: 100))
            }
        }
    }
}

/// Container tags, stream and frame digests, and the visible mark.
@Suite struct VideoProvenanceTests {
    @Test func tagsAreCopiedInWithoutChangingTheStreamAndItsDigests() throws {
        let (plain, tagged) = (temporaryPath("plain.mp4"), temporaryPath("tagged.mp4"))
        try VideoEncoder.writeMP4(syntheticVideo(), options: EncodeOptions(fps: 8), to: plain)
        let tags = ["reel.manifest": "{\"a\":\"ünïcode and \\\"quotes\\\"\"}", "reel.signature": "c2lnbmF0dXJl"]
        try ContainerMetadata.copy(plain, to: tagged, tags: tags)
        let read = try ContainerMetadata.read(tagged)
        #expect(read["reel.manifest"] == tags["reel.manifest"] && read["reel.signature"] == tags["reel.signature"])
        let (before, after) = (try VideoDigest.of(file: plain), try VideoDigest.of(file: tagged))
        #expect(before == after && before.frames == 24 && before.width == 64 && before.height == 48)
        #expect(before.streamSha256.count == 64 && before.framesSha256 != before.streamSha256)

        // The same frames encoded at another quality: other bytes, other pictures.
        let other = temporaryPath("other.mp4")
        try VideoEncoder.writeMP4(syntheticVideo(), options: EncodeOptions(fps: 8, crf: 30), to: other)
        let changed = try VideoDigest.of(file: other)
        #expect(changed.frames == 24 && changed.streamSha256 != before.streamSha256 && changed.framesSha256 != before.framesSha256)
    }

    @Test func writingWithTagsMakesThemFromTheEncodedFile() throws {
        let path = temporaryPath("made.mp4")
        var seen: VideoDigest?
        try VideoEncoder.writeMP4(syntheticVideo(), options: EncodeOptions(fps: 8), to: path) { digest in
            seen = digest
            return ["reel.manifest": digest.framesSha256]
        }
        #expect(try ContainerMetadata.read(path)["reel.manifest"] == seen?.framesSha256)
        #expect(try VideoDigest.of(file: path) == seen)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
        #expect(!leftovers.contains { $0.contains(".made.partial") }, "no temporary file is left: \(leftovers)")
    }

    /// A file from someone else is read by the MP4 demuxer alone: a playlist naming another
    /// file is refused, not followed.
    @Test func onlyMP4IsReadForTagsAndDigests() throws {
        let secret = temporaryPath("secret.mp4")
        try VideoEncoder.writeMP4(syntheticVideo(), options: EncodeOptions(fps: 8), to: secret)
        let playlist = temporaryPath("playlist.mp4")
        try Data("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n\(secret)\n#EXT-X-ENDLIST\n".utf8).write(to: URL(fileURLWithPath: playlist))
        #expect(throws: MediaError.self) { try VideoDigest.of(file: playlist) }
        #expect(throws: MediaError.self) { try ContainerMetadata.read(playlist) }
    }

    @Test func aWatermarkIsDrawnInTheBottomRightCornerAndMustFit() throws {
        let mark = try Watermark("Reel")
        #expect(mark.layout(width: 256, height: 256) == Watermark.Layout(dot: 3, x: 256 - 9 - 23 * 3, y: 256 - 9 - 21))
        #expect(mark.layout(width: 20, height: 20) == nil && mark.problem(width: 20, height: 20)?.contains("does not fit a 20x20 video") == true)
        #expect(Watermark.problem(with: "naïve")?.contains("cannot draw \"ï\" (character 3)") == true)
        #expect(Watermark.problem(with: "") != nil && Watermark.problem(with: String(repeating: "a", count: 65)) != nil)
        #expect(throws: MediaError.self) { try EncodeOptions(fps: 8, watermark: try Watermark("much too long a mark")).validate(width: 64, height: 48, frames: 1) }

        let (width, height) = (64, 48)
        var luma = [UInt8](repeating: 100, count: width * height), cb = [UInt8](repeating: 90, count: width * height / 4)
        var cr = cb
        try Watermark("A").draw(luma: &luma, lumaStride: width, cb: &cb, cr: &cr, chromaStride: width / 2, width: width, height: height)
        // One dot to a font pixel at this height: "A" is 5x7 pixels, 3 pixels in from the corner.
        let (left, top) = (width - 3 - 5, height - 3 - 7)
        #expect(luma[top * width + left + 2] == 235, "the apex of the A is white")
        #expect(luma[(top + 1) * width + left + 2] == 16, "under the apex is the outline's dark")
        #expect(luma[top * width + left - 2] == 100, "two pixels left of the letter is untouched")
        #expect(luma[0] == 100 && cb[0] == 90 && cb[(top / 2) * (width / 2) + (left + 2) / 2] == 128)
    }
}
