import CFFmpeg

/// A media operation that failed, in words a user can act on.
public struct MediaError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable {
        /// An FFmpeg call failed (its message follows).
        case library
        case outOfMemory
        /// A file that is missing or cannot be read.
        case unreadable
        /// A container outside the accepted ones.
        case unsupportedContainer
        /// No video stream, or one no frame of which decodes.
        case noVideo
        /// A picture too large, or one whose size changes mid-stream.
        case badPictureSize
        /// An encoding option out of range (fps, scale, crf, frames, an odd size).
        case invalidOption
        case cannotWrite
        /// This FFmpeg lacks an encoder Reel needs (libx264, PNG).
        case missingCodec
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) { (self.code, self.description) = (code, description) }
}

/// Maps FFmpeg's negative return codes to `MediaError`; the one place a C code becomes an error.
enum FFmpeg {
    @discardableResult
    static func check(_ code: Int32, _ doing: @autoclosure () -> String) throws -> Int32 {
        guard code < 0 else { return code }
        throw MediaError(.library, "\(doing()): \(message(code))")
    }

    static func message(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(CFFmpeg_error_max_string_size()))
        return buffer.withUnsafeMutableBufferPointer { String(cString: CFFmpeg_error_string(code, $0.baseAddress, $0.count)) }
    }

    /// FFmpeg logs every encoder's statistics to stderr by default; Reel reports its own
    /// progress and errors (each failed call becomes a MediaError), so only fatal ones get through.
    static let quietLogging: Void = av_log_set_level(AV_LOG_FATAL)

    static let endOfFile = CFFmpeg_averror_eof()
    static let tryAgain = CFFmpeg_averror_eagain()
}

/// An AVFrame, freed with its owner.
final class Frame {
    let pointer: UnsafeMutablePointer<AVFrame>

    init() throws {
        guard let frame = av_frame_alloc() else { throw MediaError(.outOfMemory, "out of memory allocating a video frame") }
        pointer = frame
    }

    /// A frame with its own picture buffer of the given format and size.
    convenience init(format: AVPixelFormat, width: Int, height: Int) throws {
        try self.init()
        pointer.pointee.format = format.rawValue
        pointer.pointee.width = Int32(width)
        pointer.pointee.height = Int32(height)
        try FFmpeg.check(av_frame_get_buffer(pointer, 0), "allocating a \(width)x\(height) frame")
    }

    /// The frame's plane pointers and line sizes as the C arrays libswscale takes. AVFrame
    /// stores them as fixed-size C arrays, which Swift imports as tuples.
    var planes: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int32>) {
        let data = withUnsafeMutablePointer(to: &pointer.pointee.data) {
            $0.withMemoryRebound(to: UnsafeMutablePointer<UInt8>?.self, capacity: 8) { $0 }
        }
        let lines = withUnsafeMutablePointer(to: &pointer.pointee.linesize) {
            $0.withMemoryRebound(to: Int32.self, capacity: 8) { $0 }
        }
        return (data, lines)
    }

    deinit {
        var frame: UnsafeMutablePointer<AVFrame>? = pointer
        av_frame_free(&frame)
    }
}

/// An AVPacket, freed with its owner.
final class Packet {
    let pointer: UnsafeMutablePointer<AVPacket>

    init() throws {
        guard let packet = av_packet_alloc() else { throw MediaError(.outOfMemory, "out of memory allocating a packet") }
        pointer = packet
    }

    deinit {
        var packet: UnsafeMutablePointer<AVPacket>? = pointer
        av_packet_free(&packet)
    }
}

/// An opened codec context, freed with its owner.
final class CodecContext {
    let pointer: UnsafeMutablePointer<AVCodecContext>

    init(codec: UnsafePointer<AVCodec>) throws {
        guard let context = avcodec_alloc_context3(codec) else { throw MediaError(.outOfMemory, "out of memory allocating a codec") }
        pointer = context
    }

    /// The decoder of `format`'s best video stream, and that stream; `check` sees its
    /// parameters before it is opened. `name` says which file errors are about.
    static func decoder(of format: UnsafeMutablePointer<AVFormatContext>, name: String, check: (CodecContext) throws -> Void = { _ in })
        throws -> (decoder: CodecContext, index: Int32, stream: UnsafeMutablePointer<AVStream>) {
        try FFmpeg.check(avformat_find_stream_info(format, nil), "\(name): cannot find its streams")
        var codec: UnsafePointer<AVCodec>?
        let index = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0)
        guard index >= 0, let codec, let stream = format.pointee.streams[Int(index)] else {
            throw MediaError(.noVideo, "\(name) has no video stream")
        }
        let decoder = try CodecContext(codec: codec)
        try FFmpeg.check(avcodec_parameters_to_context(decoder.pointer, stream.pointee.codecpar), "\(name): reading codec parameters")
        try check(decoder)
        try FFmpeg.check(avcodec_open2(decoder.pointer, codec, nil), "\(name): opening the decoder")
        return (decoder, index, stream)
    }

    deinit {
        var context: UnsafeMutablePointer<AVCodecContext>? = pointer
        avcodec_free_context(&context)
    }
}

/// A libswscale conversion between two picture formats and sizes.
final class PictureConverter {
    let pointer: OpaquePointer

    init(from source: (AVPixelFormat, Int, Int), to target: (AVPixelFormat, Int, Int), flags: Int32 = SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP) throws {
        guard let context = sws_getContext(Int32(source.1), Int32(source.2), source.0,
                                           Int32(target.1), Int32(target.2), target.0,
                                           flags, nil, nil, nil) else {
            throw MediaError(.library, "libswscale cannot convert \(source.1)x\(source.2) to \(target.1)x\(target.2)")
        }
        pointer = context
    }

    /// Converts one packed RGB24 picture into `frame`'s planes.
    func convert(rgb: UnsafePointer<UInt8>, width: Int, height: Int, into frame: Frame) throws {
        try FFmpeg.check(av_frame_make_writable(frame.pointer), "making a frame writable")
        var sourcePlanes: [UnsafePointer<UInt8>?] = [rgb, nil, nil, nil]
        var sourceStrides: [Int32] = [Int32(width * 3), 0, 0, 0]
        let (data, lines) = frame.planes
        sws_scale(pointer, &sourcePlanes, &sourceStrides, 0, Int32(height), data, lines)
    }

    /// Converts a decoded frame into a packed RGB24 buffer of the target size.
    func convert(frame: Frame, intoRGB rgb: UnsafeMutablePointer<UInt8>, width: Int, height: Int) {
        var targetPlanes: [UnsafeMutablePointer<UInt8>?] = [rgb, nil, nil, nil]
        var targetStrides: [Int32] = [Int32(width * 3), 0, 0, 0]
        let (data, lines) = frame.planes
        data.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { source in
            _ = sws_scale(pointer, source, lines, 0, frame.pointer.pointee.height, &targetPlanes, &targetStrides)
        }
    }

    deinit { sws_freeContext(pointer) }
}
