import CFFmpeg
import Foundation

/// How a video file is written.
public struct EncodeOptions: Sendable {
    /// Frames per second of the file.
    public var fps: Int
    /// Each frame is enlarged by this factor (libswscale, bicubic) on the way to the encoder.
    public var scale: Int = 1
    /// x264 constant rate factor: 0 is lossless, 18 visually lossless, 23 x264's default.
    public var crf: Int = 18
    public var preset: String = "medium"
    /// A visible mark drawn into every picture at the file's size, after the enlargement.
    public var watermark: Watermark?

    public init(fps: Int, scale: Int = 1, crf: Int = 18, preset: String = "medium", watermark: Watermark? = nil) {
        self.fps = fps; self.scale = scale; self.crf = crf; self.preset = preset; self.watermark = watermark
    }

    public static let maximumFPS = 240

    /// Checks the options against the video; errors name the field and the fix.
    public func validate(width: Int, height: Int, frames: Int) throws {
        guard fps >= 1 && fps <= Self.maximumFPS else {
            throw MediaError(.invalidOption, "fps \(fps) is out of range; use a whole number from 1 to \(Self.maximumFPS)")
        }
        guard scale >= 1 && scale <= 16 else {
            throw MediaError(.invalidOption, "scale \(scale) is out of range; use a whole number from 1 to 16")
        }
        guard crf >= 0 && crf <= 51 else { throw MediaError(.invalidOption, "crf \(crf) is out of range; use 0 to 51") }
        guard frames > 0 else { throw MediaError(.invalidOption, "a video needs at least one frame") }
        let (w, h) = (width * scale, height * scale)
        guard w % 2 == 0 && h % 2 == 0 else {
            throw MediaError(.invalidOption, "size \(w)x\(h) is odd; H.264 in yuv420p needs even width and height (pick an even size or an even --scale)")
        }
        if let problem = watermark?.problem(width: w, height: h) { throw MediaError(.invalidOption, "watermark \(problem)") }
    }
}

/// Writes H.264 (libx264, yuv420p) in MP4 through libavcodec and libavformat.
///
/// The file appears only when complete: it is written under a temporary name beside the target
/// and renamed at the end, so a failed or interrupted encode never leaves a file that looks done.
public enum VideoEncoder {
    /// `tags`, when given, makes the container tags from what was encoded: the encoded file is
    /// read back (its digest) and copied, packet for packet, into the file with those tags.
    public static func writeMP4(_ video: RGBVideo, options: EncodeOptions, to path: String,
                                tags: ((VideoDigest) throws -> [String: String])? = nil) throws {
        try options.validate(width: video.width, height: video.height, frames: video.frameCount)
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard access(directory.isEmpty ? "." : directory, W_OK) == 0 else {
            throw MediaError(.cannotWrite, "cannot write \(path): directory \(directory) does not exist or is not writable")
        }
        let temporary = Self.temporaryPath(for: path)
        do {
            try encode(video, options: options, to: temporary)
            if let tags {
                let tagged = Self.temporaryPath(for: path)
                defer { unlink(temporary) }
                do {
                    try ContainerMetadata.copy(temporary, to: tagged, tags: try tags(try VideoDigest.of(file: temporary)))
                } catch {
                    unlink(tagged)
                    throw error
                }
                guard rename(tagged, path) == 0 else {
                    unlink(tagged)
                    throw MediaError(.cannotWrite, "cannot move the finished video to \(path): \(String(cString: strerror(errno)))")
                }
                return
            }
            guard rename(temporary, path) == 0 else {
                throw MediaError(.cannotWrite, "cannot move the finished video to \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// The encoder and its settings, as a manifest records them.
    public static func settings(_ options: EncodeOptions) -> String {
        let version = avcodec_version()
        var text = "H.264 yuv420p by libx264 (libavcodec \(version >> 16).\((version >> 8) & 0xFF).\(version & 0xFF)), crf \(options.crf), preset \(options.preset), one thread, mbtree off, scale \(options.scale)"
        if let watermark = options.watermark { text += ", watermark \(watermark.text.debugDescription)" }
        return text
    }

    /// A hidden name beside `path` that keeps its extension (FFmpeg picks formats by it).
    static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let token = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let ext = url.pathExtension.isEmpty ? "" : ".\(url.pathExtension)"
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.deletingPathExtension().lastPathComponent).partial-\(token)\(ext)").path
    }

    private static func encode(_ video: RGBVideo, options: EncodeOptions, to path: String) throws {
        FFmpeg.quietLogging
        let muxer = try Muxer(path: path)
        let (width, height) = (video.width * options.scale, video.height * options.scale)
        guard let codec = avcodec_find_encoder_by_name("libx264") else {
            throw MediaError(.missingCodec, "this FFmpeg has no libx264 encoder; install Debian's libavcodec with x264 (libavcodec-extra or libavcodec59)")
        }
        let encoder = try CodecContext(codec: codec)
        let context = encoder.pointer
        context.pointee.width = Int32(width)
        context.pointee.height = Int32(height)
        context.pointee.pix_fmt = AV_PIX_FMT_YUV420P
        context.pointee.time_base = AVRational(num: 1, den: Int32(options.fps))
        context.pointee.framerate = AVRational(num: Int32(options.fps), den: 1)
        context.pointee.gop_size = Int32(options.fps * 2)
        if muxer.needsGlobalHeader { context.pointee.flags |= CFFmpeg_codec_flag_global_header() }
        av_opt_set(context.pointee.priv_data, "crf", "\(options.crf)", 0)
        av_opt_set(context.pointee.priv_data, "preset", options.preset, 0)
        // The same frames must give the same bytes on any machine. x264's output depends on
        // its thread count (auto: the core count), so it gets one. On AVX-512 machines its
        // macroblock-tree pass lets leftover heap bytes change 64x64 encodes, so that pass is
        // off, at some cost in compression.
        context.pointee.thread_count = 1
        av_opt_set(context.pointee.priv_data, "mbtree", "0", 0)
        try FFmpeg.check(avcodec_open2(context, codec, nil), "opening the H.264 encoder for \(width)x\(height)")

        let stream = try muxer.addStream(from: encoder, fps: options.fps)
        try muxer.start()

        let converter = try PictureConverter(from: (AV_PIX_FMT_RGB24, video.width, video.height),
                                             to: (AV_PIX_FMT_YUV420P, width, height))
        let frame = try Frame(format: AV_PIX_FMT_YUV420P, width: width, height: height)
        let packet = try Packet()
        try video.pixels.withUnsafeBufferPointer { pixels in
            for index in 0..<video.frameCount {
                try converter.convert(rgb: pixels.baseAddress! + index * video.frameBytes,
                                      width: video.width, height: video.height, into: frame)
                if let watermark = options.watermark {
                    let (data, lines) = frame.planes
                    watermark.draw(luma: data[0]!, lumaStride: Int(lines[0]), cb: data[1]!, cr: data[2]!,
                                   chromaStride: Int(lines[1]), width: width, height: height)
                }
                frame.pointer.pointee.pts = Int64(index)
                try FFmpeg.check(avcodec_send_frame(context, frame.pointer), "encoding frame \(index)")
                try drain(encoder, packet: packet, into: muxer, stream: stream)
            }
        }
        try FFmpeg.check(avcodec_send_frame(context, nil), "flushing the encoder")
        try drain(encoder, packet: packet, into: muxer, stream: stream)
        try muxer.finish()
    }

    /// Moves every packet the encoder has ready into the file, with timestamps in the stream's
    /// time base and one frame of duration each (so the file's duration is frames / fps).
    private static func drain(_ encoder: CodecContext, packet: Packet, into muxer: Muxer,
                              stream: UnsafeMutablePointer<AVStream>) throws {
        while true {
            let status = avcodec_receive_packet(encoder.pointer, packet.pointer)
            if status == FFmpeg.tryAgain || status == FFmpeg.endOfFile { return }
            try FFmpeg.check(status, "encoding")
            if packet.pointer.pointee.duration == 0 { packet.pointer.pointee.duration = 1 }
            av_packet_rescale_ts(packet.pointer, encoder.pointer.pointee.time_base, stream.pointee.time_base)
            packet.pointer.pointee.stream_index = stream.pointee.index
            try FFmpeg.check(av_interleaved_write_frame(muxer.context, packet.pointer), "writing a packet")
        }
    }
}

/// An MP4 output file: the format context and its I/O, closed and freed with the owner.
final class Muxer {
    let context: UnsafeMutablePointer<AVFormatContext>
    let path: String
    private var opened = false

    init(path: String) throws {
        var context: UnsafeMutablePointer<AVFormatContext>?
        try FFmpeg.check(avformat_alloc_output_context2(&context, nil, "mp4", path), "preparing \(path)")
        guard let context else { throw MediaError(.library, "cannot prepare an MP4 muxer for \(path)") }
        self.context = context
        self.path = path
    }

    var needsGlobalHeader: Bool {
        (context.pointee.oformat.pointee.flags & CFFmpeg_avfmt_globalheader()) != 0
    }

    func addStream(from encoder: CodecContext, fps: Int) throws -> UnsafeMutablePointer<AVStream> {
        guard let stream = avformat_new_stream(context, nil) else { throw MediaError(.library, "cannot add a video stream") }
        try FFmpeg.check(avcodec_parameters_from_context(stream.pointee.codecpar, encoder.pointer), "configuring the video stream")
        stream.pointee.time_base = encoder.pointer.pointee.time_base
        stream.pointee.avg_frame_rate = AVRational(num: Int32(fps), den: 1)
        return stream
    }

    /// `flags`: the MP4 muxer's movflags; faststart puts the index first, so browsers can start
    /// playing at once.
    func start(flags: String = "+faststart") throws {
        try FFmpeg.check(avio_open(&context.pointee.pb, path, CFFmpeg_avio_flag_write()), "opening \(path) for writing")
        opened = true
        var options: OpaquePointer?
        av_dict_set(&options, "movflags", flags, 0)
        defer { av_dict_free(&options) }
        try FFmpeg.check(avformat_write_header(context, &options), "writing the MP4 header")
    }

    func finish() throws {
        try FFmpeg.check(av_write_trailer(context), "finishing \(path)")
    }

    deinit {
        if opened { avio_closep(&context.pointee.pb) }
        avformat_free_context(context)
    }
}
