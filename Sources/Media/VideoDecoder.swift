import CFFmpeg
import Foundation

/// A decoded video: its frames and the frame rate the file declares.
public struct DecodedVideo: Sendable {
    public let video: RGBVideo
    public let fps: Double
    public let codec: String
}

/// Bounds on a video from someone else (a job's input video on a farm): which containers may
/// be read, how large its pictures may be, and how many frames are decoded at most.
public struct UntrustedVideoLimits: Sendable {
    /// Demuxers that read one self-contained file (still pictures included). Left out on purpose:
    /// concat (ffconcat), hls, dash, image2 and the like, whose files name other files or URLs.
    public var formats = ["mov", "mp4", "matroska", "webm", "avi", "mpegts", "ivf", "flv", "gif", "png_pipe", "jpeg_pipe"]
    /// Largest width and height of the stored pictures, before scaling.
    public var maxSide = 8192
    /// Frames decoded at most; the rest of the file is not read.
    public var maxFrames: Int

    public init(maxFrames: Int) { self.maxFrames = maxFrames }
}

/// Reads any video FFmpeg can read (libavformat + libavcodec) into RGB frames, optionally
/// resized by libswscale.
public enum VideoDecoder {
    /// Reads a local file the user named: any container, protocol or demuxer FFmpeg has.
    public static func read(_ path: String, width: Int? = nil, height: Int? = nil) throws -> DecodedVideo {
        FFmpeg.quietLogging
        var format: UnsafeMutablePointer<AVFormatContext>?
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw MediaError(.unreadable, "cannot read \(path): no such file, or not readable")
        }
        try FFmpeg.check(avformat_open_input(&format, path, nil, nil), "\(path) is not a video FFmpeg can read")
        defer { avformat_close_input(&format) }
        return try decode(format!, name: path, width: width, height: height, limits: nil)
    }

    /// Reads a whole video file held in memory that someone else sent. Nothing outside `bytes`
    /// is ever opened: the demuxer reads through a custom I/O context, only `limits.formats`
    /// may demux it, and no protocol may be opened from inside it (a playlist or a concat list
    /// naming other files is refused, not followed).
    public static func read(bytes: Data, width: Int, height: Int, limits: UntrustedVideoLimits) throws -> DecodedVideo {
        FFmpeg.quietLogging
        let source = MemorySource(bytes)
        guard let buffer = av_malloc(MemorySource.bufferSize) else { throw MediaError(.outOfMemory, "out of memory reading a video") }
        guard let io = avio_alloc_context(buffer.assumingMemoryBound(to: UInt8.self), Int32(MemorySource.bufferSize), 0,
                                          Unmanaged.passUnretained(source).toOpaque(), MemorySource.read, nil, MemorySource.seek) else {
            av_free(buffer)
            throw MediaError(.outOfMemory, "out of memory reading a video")
        }
        var ioContext: UnsafeMutablePointer<AVIOContext>? = io
        defer {
            av_free(ioContext?.pointee.buffer)  // libavformat may have replaced the buffer it was given
            avio_context_free(&ioContext)
        }
        guard let format = avformat_alloc_context() else { throw MediaError(.outOfMemory, "out of memory reading a video") }
        format.pointee.pb = io
        format.pointee.flags |= CFFmpeg_avfmt_flag_custom_io()
        var options: OpaquePointer?
        defer { av_dict_free(&options) }
        av_dict_set(&options, "format_whitelist", limits.formats.joined(separator: ","), 0)
        // No protocol is named "none": anything a demuxer tries to open from inside the file fails.
        av_dict_set(&options, "protocol_whitelist", "none", 0)
        var opened: UnsafeMutablePointer<AVFormatContext>? = format
        let status = avformat_open_input(&opened, nil, nil, &options)  // frees the context on failure
        guard status >= 0, let demuxer = opened else {
            throw MediaError(.unsupportedContainer, "the input video is not a file of an accepted container (\(limits.formats.joined(separator: ", "))): \(FFmpeg.message(status))")
        }
        defer { avformat_close_input(&opened) }
        return try decode(demuxer, name: "the input video", width: width, height: height, limits: limits)
    }

    private static func decode(_ format: UnsafeMutablePointer<AVFormatContext>, name: String, width: Int?, height: Int?,
                               limits: UntrustedVideoLimits?) throws -> DecodedVideo {
        let (decoder, streamIndex, stream) = try CodecContext.decoder(of: format, name: name) { decoder in
            let (width, height) = (Int(decoder.pointer.pointee.width), Int(decoder.pointer.pointee.height))
            if let limits {
                guard (1...limits.maxSide).contains(width), (1...limits.maxSide).contains(height) else {
                    throw MediaError(.badPictureSize, "\(name) is \(width)x\(height); its width and height must be 1 to \(limits.maxSide)")
                }
            }
        }
        let sourceWidth = Int(decoder.pointer.pointee.width), sourceHeight = Int(decoder.pointer.pointee.height)

        let rate = stream.pointee.avg_frame_rate.num > 0 ? stream.pointee.avg_frame_rate : stream.pointee.r_frame_rate
        let fps = rate.den > 0 ? Double(rate.num) / Double(rate.den) : 0
        let (targetWidth, targetHeight) = (width ?? sourceWidth, height ?? sourceHeight)

        var pixels: [UInt8] = []
        var decodedFrames = 0
        var converter: (converter: PictureConverter, width: Int32, height: Int32, format: Int32)?
        let packet = try Packet(), frame = try Frame()

        /// Reads the decoder's frames; false once `limits.maxFrames` are in.
        func receiveFrames() throws -> Bool {
            while true {
                let status = avcodec_receive_frame(decoder.pointer, frame.pointer)
                if status == FFmpeg.tryAgain || status == FFmpeg.endOfFile { return true }
                try FFmpeg.check(status, "\(name): decoding")
                defer { av_frame_unref(frame.pointer) }
                let picture = frame.pointer.pointee
                if let converter {
                    // A converter reads a picture of the size and format it was made for; a stream
                    // that changes them mid-way would have it read past the picture.
                    guard converter.width == picture.width, converter.height == picture.height, converter.format == picture.format else {
                        throw MediaError(.badPictureSize, "\(name) changes its picture size or format mid-stream (\(converter.width)x\(converter.height) to \(picture.width)x\(picture.height)); re-encode it first")
                    }
                } else {
                    if let limits {
                        guard (1...limits.maxSide).contains(Int(picture.width)), (1...limits.maxSide).contains(Int(picture.height)) else {
                            throw MediaError(.badPictureSize, "\(name) has a \(picture.width)x\(picture.height) picture; its width and height must be 1 to \(limits.maxSide)")
                        }
                    }
                    converter = (try PictureConverter(from: (AVPixelFormat(rawValue: picture.format), Int(picture.width), Int(picture.height)),
                                                      to: (AV_PIX_FMT_RGB24, targetWidth, targetHeight)),
                                 picture.width, picture.height, picture.format)
                }
                let start = pixels.count
                pixels += [UInt8](repeating: 0, count: targetWidth * targetHeight * 3)
                pixels.withUnsafeMutableBufferPointer { buffer in
                    converter!.converter.convert(frame: frame, intoRGB: buffer.baseAddress! + start, width: targetWidth, height: targetHeight)
                }
                decodedFrames += 1
                if let limits, decodedFrames >= limits.maxFrames { return false }
            }
        }

        var more = true
        while more, av_read_frame(format, packet.pointer) >= 0 {
            defer { av_packet_unref(packet.pointer) }
            guard packet.pointer.pointee.stream_index == streamIndex else { continue }
            try FFmpeg.check(avcodec_send_packet(decoder.pointer, packet.pointer), "\(name): decoding")
            more = try receiveFrames()
        }
        if more {
            try FFmpeg.check(avcodec_send_packet(decoder.pointer, nil), "\(name): flushing the decoder")
            _ = try receiveFrames()
        }
        guard !pixels.isEmpty else { throw MediaError(.noVideo, "\(name) has a video stream but no frames could be decoded") }
        return DecodedVideo(video: RGBVideo(width: targetWidth, height: targetHeight, pixels: pixels),
                            fps: fps, codec: String(cString: avcodec_get_name(decoder.pointer.pointee.codec_id)))
    }
}

/// The bytes a custom AVIOContext reads, with the read and seek callbacks libavformat calls.
private final class MemorySource {
    static let bufferSize = 1 << 16
    let bytes: Data
    var offset = 0

    init(_ bytes: Data) { self.bytes = bytes }

    static let read: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt8>?, Int32) -> Int32 = { opaque, buffer, size in
        let source = Unmanaged<MemorySource>.fromOpaque(opaque!).takeUnretainedValue()
        let count = min(Int(size), source.bytes.count - source.offset)
        guard count > 0, let buffer else { return CFFmpeg_averror_eof() }
        let start = source.bytes.startIndex + source.offset
        source.bytes.copyBytes(to: buffer, from: start..<(start + count))
        source.offset += count
        return Int32(count)
    }

    static let seek: @convention(c) (UnsafeMutableRawPointer?, Int64, Int32) -> Int64 = { opaque, offset, whence in
        let source = Unmanaged<MemorySource>.fromOpaque(opaque!).takeUnretainedValue()
        let size = Int64(source.bytes.count)
        if whence & CFFmpeg_avseek_size() != 0 { return size }
        let base: Int64
        switch whence & 3 {
        case SEEK_SET: base = 0
        case SEEK_CUR: base = Int64(source.offset)
        case SEEK_END: base = size
        default: return Int64(CFFmpeg_averror(EINVAL))
        }
        let (target, overflow) = base.addingReportingOverflow(offset)
        guard !overflow, (0...size).contains(target) else { return Int64(CFFmpeg_averror(EINVAL)) }
        source.offset = Int(target)
        return target
    }
}
