import CFFmpeg
import Foundation

/// A decoded video: its frames and the frame rate the file declares.
public struct DecodedVideo: Sendable {
    public let video: RGBVideo
    public let fps: Double
    public let codec: String
}

/// Reads any video FFmpeg can read (libavformat + libavcodec) into RGB frames, optionally
/// resized by libswscale.
public enum VideoDecoder {
    public static func read(_ path: String, width: Int? = nil, height: Int? = nil) throws -> DecodedVideo {
        FFmpeg.quietLogging
        var format: UnsafeMutablePointer<AVFormatContext>?
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw MediaError("cannot read \(path): no such file, or not readable")
        }
        try FFmpeg.check(avformat_open_input(&format, path, nil, nil), "\(path) is not a video FFmpeg can read")
        defer { avformat_close_input(&format) }
        try FFmpeg.check(avformat_find_stream_info(format, nil), "\(path): cannot find its streams")

        var codec: UnsafePointer<AVCodec>?
        let streamIndex = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0)
        guard streamIndex >= 0, let codec, let stream = format!.pointee.streams[Int(streamIndex)] else {
            throw MediaError("\(path) has no video stream")
        }
        let decoder = try CodecContext(codec: codec)
        try FFmpeg.check(avcodec_parameters_to_context(decoder.pointer, stream.pointee.codecpar), "\(path): reading codec parameters")
        try FFmpeg.check(avcodec_open2(decoder.pointer, codec, nil), "\(path): opening the decoder")

        let rate = stream.pointee.avg_frame_rate.num > 0 ? stream.pointee.avg_frame_rate : stream.pointee.r_frame_rate
        let fps = rate.den > 0 ? Double(rate.num) / Double(rate.den) : 0
        let sourceWidth = Int(decoder.pointer.pointee.width), sourceHeight = Int(decoder.pointer.pointee.height)
        let (targetWidth, targetHeight) = (width ?? sourceWidth, height ?? sourceHeight)

        var pixels: [UInt8] = []
        var converter: PictureConverter?
        let packet = try Packet(), frame = try Frame()

        func receiveFrames() throws {
            while true {
                let status = avcodec_receive_frame(decoder.pointer, frame.pointer)
                if status == FFmpeg.tryAgain || status == FFmpeg.endOfFile { return }
                try FFmpeg.check(status, "\(path): decoding")
                if converter == nil {
                    converter = try PictureConverter(
                        from: (AVPixelFormat(rawValue: frame.pointer.pointee.format), Int(frame.pointer.pointee.width), Int(frame.pointer.pointee.height)),
                        to: (AV_PIX_FMT_RGB24, targetWidth, targetHeight))
                }
                let start = pixels.count
                pixels += [UInt8](repeating: 0, count: targetWidth * targetHeight * 3)
                pixels.withUnsafeMutableBufferPointer { buffer in
                    converter!.convert(frame: frame, intoRGB: buffer.baseAddress! + start, width: targetWidth, height: targetHeight)
                }
                av_frame_unref(frame.pointer)
            }
        }

        while av_read_frame(format, packet.pointer) >= 0 {
            defer { av_packet_unref(packet.pointer) }
            guard packet.pointer.pointee.stream_index == streamIndex else { continue }
            try FFmpeg.check(avcodec_send_packet(decoder.pointer, packet.pointer), "\(path): decoding")
            try receiveFrames()
        }
        try FFmpeg.check(avcodec_send_packet(decoder.pointer, nil), "\(path): flushing the decoder")
        try receiveFrames()
        guard !pixels.isEmpty else { throw MediaError("\(path) has a video stream but no frames could be decoded") }
        return DecodedVideo(video: RGBVideo(width: targetWidth, height: targetHeight, pixels: pixels),
                            fps: fps, codec: String(cString: avcodec_get_name(decoder.pointer.pointee.codec_id)))
    }
}
