import Diffusion
import Foundation
import Wire

/// A job's checkpoint on disk: little-endian binary, written to a temporary name, synced and
/// renamed, so a reader finds the previous checkpoint or the whole new one.
///
///     "REELCKP2"
///     u32 regions, then u32 progress per region
///     u32 entries, then per entry: u32 region, u32 step, u32 count, u8 has-state,
///                                  count float32 latent, count float32 state if has-state
///     u32 CRC-32 of everything before it
///
/// The checksum catches what the rename cannot: a disk or file system that returns other
/// bytes than were written. A checkpoint that fails it is not used; the job starts again.
/// Version 1 ("REELCKP1", no checksum) is still read.
public enum CheckpointFile {
    static let magic = Data("REELCKP2".utf8)
    static let uncheckedMagic = Data("REELCKP1".utf8)

    public static func encode(_ checkpoint: JobRun.Checkpoint) -> Data {
        var data = magic
        data.reserveCapacity(checkpoint.entries.reduce(64) { $0 + 16 + ($1.latent.count + ($1.state?.count ?? 0)) * 4 })
        data.appendUInt32(checkpoint.progress.count)
        for step in checkpoint.progress { data.appendUInt32(step) }
        data.appendUInt32(checkpoint.entries.count)
        for entry in checkpoint.entries {
            data.appendUInt32(entry.region)
            data.appendUInt32(entry.step)
            if let frames = entry.frames {
                // Kind 2: a decoded piece's frames, as bytes.
                data.appendUInt32(frames.count)
                data.append(2)
                data.append(contentsOf: frames)
                continue
            }
            data.appendUInt32(entry.latent.count)
            data.append(entry.state == nil ? 0 : 1)
            data.append(LatentCodec.encode(entry.latent))
            if let state = entry.state { data.append(LatentCodec.encode(state)) }
        }
        data.appendUInt32(Int(CRC32.checksum(data)))
        return data
    }

    public static func decode(_ data: Data) throws -> JobRun.Checkpoint {
        var body = data
        let head = data.prefix(magic.count)
        if head == magic {
            guard data.count >= magic.count + 4 else { throw CheckpointError(.truncated, "checkpoint ends early (truncated?)") }
            body = data.dropLast(4)
            let stored = data.suffix(4).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            guard CRC32.checksum(body) == stored else { throw CheckpointError(.checksum, "checkpoint fails its checksum (damaged on disk)") }
        } else if head != uncheckedMagic {
            throw CheckpointError(.notACheckpoint, "not a Reel checkpoint (bad magic)")
        }
        var reader = ByteReader(body)
        _ = try reader.bytes(magic.count)
        let regions = try reader.count(limit: 1 << 20)
        let progress = try (0..<regions).map { _ in try reader.count(limit: 1 << 20) }
        let entryCount = try reader.count(limit: 1 << 24)
        var entries: [JobRun.Checkpoint.Entry] = []
        for _ in 0..<entryCount {
            // A unit: a region, or a latent job's prompt or piece after them (`JobRun.restore`
            // checks it against the plan).
            let region = try reader.count(limit: 1 << 24)
            let step = try reader.count(limit: 1 << 20)
            let count = try reader.count(limit: reader.remaining)
            let kind = try reader.bytes(1).first!
            guard kind <= 2 else { throw CheckpointError(.outOfRange, "checkpoint entry of unknown kind \(kind)") }
            if kind == 2 {
                entries.append(.init(region: region, step: step, latent: [], state: nil, frames: [UInt8](try reader.bytes(count))))
                continue
            }
            let hasState = kind == 1
            let latent = try LatentCodec.decode(try reader.bytes(count * 4), count: count)
            let state = hasState ? try LatentCodec.decode(try reader.bytes(count * 4), count: count) : nil
            entries.append(.init(region: region, step: step, latent: latent, state: state))
        }
        guard reader.remaining == 0 else { throw CheckpointError(.strayBytes, "\(reader.remaining) stray bytes after the checkpoint") }
        return JobRun.Checkpoint(progress: progress, entries: entries)
    }

    static func write(_ checkpoint: JobRun.Checkpoint, to path: String) throws {
        try AtomicFile.write(encode(checkpoint), to: path)
    }

    public static func read(_ path: String) throws -> JobRun.Checkpoint {
        try decode(Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

private extension Data {
    mutating func appendUInt32(_ value: Int) {
        var little = UInt32(truncatingIfNeeded: value).littleEndian
        Swift.withUnsafeBytes(of: &little) { append(contentsOf: $0) }
    }
}

/// Reads a byte buffer front to back; every read is bounds-checked.
private struct ByteReader {
    let data: Data
    var offset: Int

    init(_ data: Data) {
        self.data = data
        offset = data.startIndex
    }

    var remaining: Int { data.endIndex - offset }

    mutating func bytes(_ count: Int) throws -> Data {
        guard count >= 0, count <= remaining else { throw CheckpointError(.truncated, "checkpoint ends early (truncated?)") }
        defer { offset += count }
        return data[offset..<offset + count]
    }

    /// A u32 that must not exceed `limit`.
    mutating func count(limit: Int) throws -> Int {
        let raw = try bytes(4)
        let value = raw.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
        guard value <= limit else { throw CheckpointError(.outOfRange, "checkpoint field \(value) out of range (at most \(limit))") }
        return value
    }
}

/// CRC-32 (IEEE 802.3, as zlib computes it), table-driven.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        (0..<8).reduce(UInt32(index)) { crc, _ in crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
    }

    static func checksum(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        data.withUnsafeBytes { bytes in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return ~crc
    }
}
