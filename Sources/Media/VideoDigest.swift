import CFFmpeg
import Crypto
import Foundation

/// What a video file's video stream is, as digests: of its coded bytes and of the pictures they
/// decode to. H.264 decoding is exact (every conforming decoder gives the same pictures), so
/// the pictures' digest is the same on any machine, and a re-encode or an edit changes it.
public struct VideoDigest: Sendable, Equatable, Codable {
    /// Decoded pictures, and their size.
    public var frames: Int
    public var width: Int
    public var height: Int
    // Named as JSON's snake_case reads back (`stream_sha256`), for the manifest that holds it.
    /// SHA-256 of every packet of the stream, in file order: any change to the coded video.
    public var streamSha256: String
    /// SHA-256 of the decoded pictures in display order: each plane's visible rows, no padding.
    public var framesSha256: String

    public init(frames: Int, width: Int, height: Int, streamSha256: String, framesSha256: String) {
        (self.frames, self.width, self.height) = (frames, width, height)
        (self.streamSha256, self.framesSha256) = (streamSha256, framesSha256)
    }

    /// Reads and decodes the first video stream of the MP4 at `path`, which may come from anyone
    /// (`ContainerMetadata.openMP4`). A stream that does not decode is an error saying at which
    /// picture.
    public static func of(file path: String) throws -> VideoDigest {
        var opened = try ContainerMetadata.openMP4(path)
        defer { avformat_close_input(&opened) }
        let format = opened!
        let (decoder, index, _) = try CodecContext.decoder(of: format, name: path)

        var streamHash = SHA256(), framesHash = SHA256()
        var frames = 0, size = (0, 0)
        let packet = try Packet(), frame = try Frame()
        func receive() throws {
            while true {
                let status = avcodec_receive_frame(decoder.pointer, frame.pointer)
                if status == FFmpeg.tryAgain || status == FFmpeg.endOfFile { return }
                try FFmpeg.check(status, "\(path): decoding picture \(frames + 1)")
                defer { av_frame_unref(frame.pointer) }
                size = (Int(frame.pointer.pointee.width), Int(frame.pointer.pointee.height))
                try hashPicture(frame, into: &framesHash)
                frames += 1
            }
        }
        while av_read_frame(format, packet.pointer) >= 0 {
            defer { av_packet_unref(packet.pointer) }
            guard packet.pointer.pointee.stream_index == index else { continue }
            let bytes = UnsafeRawBufferPointer(start: packet.pointer.pointee.data, count: Int(packet.pointer.pointee.size))
            streamHash.update(bufferPointer: bytes)
            try FFmpeg.check(avcodec_send_packet(decoder.pointer, packet.pointer), "\(path): decoding picture \(frames + 1)")
            try receive()
        }
        try FFmpeg.check(avcodec_send_packet(decoder.pointer, nil), "\(path): flushing the decoder")
        try receive()
        guard frames > 0 else { throw MediaError(.noVideo, "\(path) has a video stream but no picture decodes") }
        return VideoDigest(frames: frames, width: size.0, height: size.1,
                           streamSha256: Self.hex(streamHash.finalize()), framesSha256: Self.hex(framesHash.finalize()))
    }

    /// Each plane's rows, as many bytes as the picture shows (the decoder's padding is not part
    /// of the picture), after the picture's format and size.
    private static func hashPicture(_ frame: Frame, into hash: inout SHA256) throws {
        let picture = frame.pointer.pointee
        let format = AVPixelFormat(rawValue: picture.format)
        guard let descriptor = av_pix_fmt_desc_get(format) else { throw MediaError(.library, "a decoded picture of an unknown format") }
        hash.update(data: Data("\(String(cString: descriptor.pointee.name)) \(picture.width)x\(picture.height)\n".utf8))
        let (data, lines) = frame.planes
        for plane in 0..<Int(av_pix_fmt_count_planes(format)) {
            let rowBytes = Int(av_image_get_linesize(format, picture.width, Int32(plane)))
            let shift = plane == 1 || plane == 2 ? Int(descriptor.pointee.log2_chroma_h) : 0
            let rows = (Int(picture.height) + (1 << shift) - 1) >> shift
            guard rowBytes > 0, let base = data[plane] else { throw MediaError(.library, "a decoded picture without plane \(plane)") }
            for row in 0..<rows {
                hash.update(bufferPointer: UnsafeRawBufferPointer(start: base + row * Int(lines[plane]), count: rowBytes))
            }
        }
    }

    public static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
