import CFFmpeg
import Foundation

/// A file's container-level tags (what `ffprobe -show_format` lists), read and written.
public enum ContainerMetadata {
    /// The tags of the MP4 at `path`, which may come from anyone (`openMP4`).
    public static func read(_ path: String) throws -> [String: String] {
        var opened = try openMP4(path)
        defer { avformat_close_input(&opened) }
        var tags: [String: String] = [:]
        var entry: UnsafeMutablePointer<AVDictionaryEntry>?
        while let next = av_dict_get(opened!.pointee.metadata, "", entry, AV_DICT_IGNORE_SUFFIX) {
            tags[String(cString: next.pointee.key)] = String(cString: next.pointee.value)
            entry = next
        }
        return tags
    }

    /// Opens an MP4 (or QuickTime) file that may come from anyone: only the MP4 demuxer may read
    /// it, and it may open no other file or URL (a file claiming to be a playlist is refused).
    static func openMP4(_ path: String) throws -> UnsafeMutablePointer<AVFormatContext>? {
        FFmpeg.quietLogging
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw MediaError(.unreadable, "cannot read \(path): no such file, or not readable")
        }
        var options: OpaquePointer?
        defer { av_dict_free(&options) }
        av_dict_set(&options, "format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2", 0)
        av_dict_set(&options, "protocol_whitelist", "file", 0)
        var opened: UnsafeMutablePointer<AVFormatContext>?
        let status = avformat_open_input(&opened, path, nil, &options)
        guard status >= 0, opened != nil else {
            throw MediaError(.unsupportedContainer, "\(path) is not an MP4 file: \(FFmpeg.message(status))")
        }
        return opened
    }

    /// Writes `source`'s streams into a new MP4 at `target`, packet for packet, with `tags` as
    /// its container tags (stored under their own names, so any key can be read back).
    public static func copy(_ source: String, to target: String, tags: [String: String]) throws {
        FFmpeg.quietLogging
        var opened: UnsafeMutablePointer<AVFormatContext>?
        try FFmpeg.check(avformat_open_input(&opened, source, nil, nil), "\(source) is not a video FFmpeg can read")
        defer { avformat_close_input(&opened) }
        let input = opened!
        try FFmpeg.check(avformat_find_stream_info(input, nil), "\(source): cannot find its streams")
        let muxer = try Muxer(path: target)
        for index in 0..<Int(input.pointee.nb_streams) {
            guard let from = input.pointee.streams[index], let to = avformat_new_stream(muxer.context, nil) else {
                throw MediaError(.library, "cannot copy the streams of \(source)")
            }
            try FFmpeg.check(avcodec_parameters_copy(to.pointee.codecpar, from.pointee.codecpar), "copying the streams of \(source)")
            to.pointee.codecpar.pointee.codec_tag = 0
            to.pointee.time_base = from.pointee.time_base
            to.pointee.avg_frame_rate = from.pointee.avg_frame_rate
        }
        for (key, value) in tags.sorted(by: { $0.key < $1.key }) {
            try FFmpeg.check(av_dict_set(&muxer.context.pointee.metadata, key, value, 0), "setting the tag \(key)")
        }
        try muxer.start(flags: "+faststart+use_metadata_tags")
        let packet = try Packet()
        while av_read_frame(input, packet.pointer) >= 0 {
            defer { av_packet_unref(packet.pointer) }
            let index = Int(packet.pointer.pointee.stream_index)
            guard let from = input.pointee.streams[index], let to = muxer.context.pointee.streams[index] else { continue }
            av_packet_rescale_ts(packet.pointer, from.pointee.time_base, to.pointee.time_base)
            packet.pointer.pointee.pos = -1
            try FFmpeg.check(av_interleaved_write_frame(muxer.context, packet.pointer), "copying a packet of \(source)")
        }
        try muxer.finish()
    }
}
