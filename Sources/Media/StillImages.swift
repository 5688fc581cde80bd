import CFFmpeg
import Foundation

/// PNG stills through libavcodec's PNG encoder: single frames and contact sheets.
public enum StillImages {
    /// Writes one RGB picture as a PNG (atomically: temporary name, then rename).
    public static func writePNG(rgb: [UInt8], width: Int, height: Int, to path: String) throws {
        try writeAtomically(try png(rgb: rgb, width: width, height: height), to: path)
    }

    /// One RGB picture (row-major, 3 bytes a pixel) as PNG bytes.
    public static func png(rgb: [UInt8], width: Int, height: Int) throws -> Data {
        precondition(rgb.count == width * height * 3)
        guard let codec = avcodec_find_encoder(AV_CODEC_ID_PNG) else { throw MediaError(.missingCodec, "this FFmpeg has no PNG encoder") }
        let encoder = try CodecContext(codec: codec)
        encoder.pointer.pointee.width = Int32(width)
        encoder.pointer.pointee.height = Int32(height)
        encoder.pointer.pointee.pix_fmt = AV_PIX_FMT_RGB24
        encoder.pointer.pointee.time_base = AVRational(num: 1, den: 1)
        try FFmpeg.check(avcodec_open2(encoder.pointer, codec, nil), "opening the PNG encoder")

        let frame = try Frame(format: AV_PIX_FMT_RGB24, width: width, height: height)
        let stride = Int(frame.pointer.pointee.linesize.0)
        let plane = frame.pointer.pointee.data.0!
        for y in 0..<height {
            rgb.withUnsafeBufferPointer { (plane + y * stride).update(from: $0.baseAddress! + y * width * 3, count: width * 3) }
        }
        frame.pointer.pointee.pts = 0
        try FFmpeg.check(avcodec_send_frame(encoder.pointer, frame.pointer), "encoding a PNG")
        try FFmpeg.check(avcodec_send_frame(encoder.pointer, nil), "encoding a PNG")
        let packet = try Packet()
        try FFmpeg.check(avcodec_receive_packet(encoder.pointer, packet.pointer), "encoding a PNG")
        return Data(bytes: packet.pointer.pointee.data, count: Int(packet.pointer.pointee.size))
    }

    /// Writes each frame of `video` as PATTERN with %d replaced by the frame number
    /// (e.g. "frames/%d.png"); returns the paths written.
    @discardableResult
    public static func writeFrames(_ video: RGBVideo, pattern: String) throws -> [String] {
        try (0..<video.frameCount).map { index in
            let path = pattern.replacingOccurrences(of: "%d", with: String(format: "%04d", index))
            try writePNG(rgb: Array(video.frame(index)), width: video.width, height: video.height, to: path)
            return path
        }
    }

    /// A grid of frames, `columns` wide, separated by `gap` pixels of dark gray, taking every
    /// frame or, when `maxFrames` is smaller than the video, frames spread evenly over it.
    public static func contactSheet(_ video: RGBVideo, columns: Int = 8, maxFrames: Int = 32, gap: Int = 2) -> RGBVideo {
        let picked = (0..<min(maxFrames, video.frameCount)).map { i in
            min(maxFrames, video.frameCount) == video.frameCount ? i : i * (video.frameCount - 1) / (maxFrames - 1)
        }
        let cols = min(columns, picked.count), rows = (picked.count + cols - 1) / cols
        let width = cols * video.width + (cols + 1) * gap, height = rows * video.height + (rows + 1) * gap
        var sheet = [UInt8](repeating: 40, count: width * height * 3)
        for (slot, index) in picked.enumerated() {
            let frame = video.frame(index)
            let left = gap + (slot % cols) * (video.width + gap), top = gap + (slot / cols) * (video.height + gap)
            for y in 0..<video.height {
                let source = frame.startIndex + y * video.width * 3
                let target = ((top + y) * width + left) * 3
                sheet.replaceSubrange(target..<(target + video.width * 3), with: frame[source..<(source + video.width * 3)])
            }
        }
        return RGBVideo(width: width, height: height, pixels: sheet)
    }

    public static func writeContactSheet(_ video: RGBVideo, to path: String, columns: Int = 8, maxFrames: Int = 32) throws {
        let sheet = contactSheet(video, columns: columns, maxFrames: maxFrames)
        try writePNG(rgb: sheet.pixels, width: sheet.width, height: sheet.height, to: path)
    }

    private static func writeAtomically(_ data: Data, to path: String) throws {
        let temporary = VideoEncoder.temporaryPath(for: path)
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else {
                throw MediaError(.cannotWrite, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
        } catch let error as MediaError {
            unlink(temporary)
            throw error
        } catch {
            unlink(temporary)
            throw MediaError(.cannotWrite, "cannot write \(path): \(error.localizedDescription)")
        }
    }
}
