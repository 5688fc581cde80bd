import Foundation
import SwiftProtobuf

/// Bounds every socket enforces on what a peer may send.
public enum WireLimits {
    /// Largest single frame libzmq accepts (MAXMSGSIZE); a peer sending more is disconnected.
    /// A latent of a 16-frame 64×64 region is 786 kB; an MP4 of a long job some tens of MB.
    public static let maxMessageBytes: Int64 = 512 << 20
    /// Most frames one message may have on any of Reel's sockets: Reel's largest has 6 with a
    /// ROUTER's routing id, a ZAP request 7.
    public static let maxFrames = 16
    /// Largest protobuf header accepted.
    public static let maxHeaderBytes = 1 << 20
}

/// Every message kind of the protocol, with the number of payload frames it carries
/// after its header. Any other frame count is a protocol violation.
public enum MessageKind: UInt8, CaseIterable, Sendable {
    // coordinator <-> worker
    case hello = 1, ready, heartbeat, assignment, result, disconnect
    // client <-> coordinator
    case submit = 16, submitReply, status, statusReply, cancel, cancelReply, workers, workersReply, fetch, fetchReply
    case control = 26, controlReply
    case error = 31

    /// Who sends this kind to a coordinator: a worker or a client (replies go the other way).
    public var sender: PeerKind {
        switch self {
        case .hello, .ready, .heartbeat, .result, .disconnect, .assignment: return .worker
        default: return .client
        }
    }

    public var payloadFrames: Int {
        switch self {
        case .assignment: return 4              // latent, sampler state, two prompt embeddings
        case .result: return 2                  // latent (an embedding, frames), sampler state
        case .submit: return 1                  // input video
        case .fetchReply: return 1              // the MP4
        default: return 0
        }
    }
}

public enum PeerKind: String, Sendable { case worker, client }

/// A message that breaks the protocol; the peer that sent it is dropped.
public struct WireError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable {
        /// Frames that are not an envelope: count, tag, kind or header.
        case malformed
        /// A latent payload whose size is not its shape's.
        case latentSizeMismatch
        /// A kind this side never accepts, or not the reply it waited for.
        case unexpectedMessage
        /// A peer of another protocol version.
        case protocolVersion
        /// An assignment a worker cannot run as given (sampler, steps, shape).
        case invalidAssignment
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) { (self.code, self.description) = (code, description) }
}

/// One message as frames: the protocol tag, the kind, a protobuf header, then the payloads.
public struct Envelope: Sendable {
    public static let protocolTag = Data("REEL/1".utf8)
    /// Version 2 added `ShardAssignment.first_frame`: a version-1 worker would ignore it and
    /// render every chunk of a `frame_phase` model as if it opened the video, so it is refused.
    /// Version 3 has workers read the video's length (`JobSpec.frames`) into a `video_progress`
    /// model's conditioning; a version-2 worker would render each chunk as a whole video.
    /// Version 4 replaces both with the window's place in the video it draws
    /// (`place_first_frame`, `place_video_frames`), a storyboard's shot for a storyboard's chunk;
    /// a version-3 worker would read none of it.
    /// Version 5 adds `place_keyframes` for a layout window's keyframes, which a version-4
    /// worker would render to a `frame_stride` model as consecutive frames.
    /// Version 6 sends a shard's `ShardSpec` (model, prompt, sampler, steps, shift, guidance)
    /// instead of the whole job's spec, which a version-5 worker would not find.
    /// Version 7 adds shard kinds (text, encode, decode) and the parts a worker holds; a
    /// version-6 worker would take any shard for a denoising one.
    /// Version 8 adds `ShardSpec.weights`, the job's weight precision; a version-7 worker would
    /// compute an int8 job's shards with its stored weights, other bits.
    /// Version 9 adds a job's manifest options (`no_manifest`, `private_prompt`, `watermark`);
    /// a version-8 coordinator would write a private prompt into the file.
    public static let protocolVersion: UInt32 = 9

    public let kind: MessageKind
    public let header: Data
    public let payloads: [Data]

    public init<M: SwiftProtobuf.Message>(_ kind: MessageKind, _ message: M, payloads: [Data] = []) {
        precondition(payloads.count == kind.payloadFrames, "\(kind) carries \(kind.payloadFrames) payload frames")
        self.kind = kind
        header = try! message.serializedData()  // serialising a well-formed message cannot fail
        self.payloads = payloads
    }

    /// Parses frames as received (after any ROUTER identity frame), checking tag, kind and count.
    public init(frames: [Data]) throws {
        guard frames.count >= 3 else { throw WireError(.malformed, "message of \(frames.count) frames; every message has at least 3") }
        guard frames[0] == Self.protocolTag else {
            throw WireError(.malformed, "wrong protocol tag \(String(decoding: frames[0].prefix(16), as: UTF8.self).debugDescription); expected REEL/1")
        }
        guard frames[1].count == 1, let kind = MessageKind(rawValue: frames[1][frames[1].startIndex]) else {
            throw WireError(.malformed, "unknown message kind \(Array(frames[1].prefix(4)))")
        }
        guard frames.count == 3 + kind.payloadFrames else {
            throw WireError(.malformed, "\(kind) message of \(frames.count) frames; it has \(3 + kind.payloadFrames)")
        }
        guard frames[2].count <= WireLimits.maxHeaderBytes else {
            throw WireError(.malformed, "\(kind) header of \(frames[2].count) bytes; at most \(WireLimits.maxHeaderBytes)")
        }
        self.kind = kind
        header = frames[2]
        payloads = Array(frames[3...])
    }

    public var frames: [Data] { [Self.protocolTag, Data([kind.rawValue]), header] + payloads }

    /// The header as `M`; a header that does not parse is a protocol violation.
    public func decode<M: SwiftProtobuf.Message>(_ type: M.Type) throws -> M {
        do {
            return try M(serializedBytes: header)
        } catch {
            throw WireError(.malformed, "\(kind) header is not a valid \(M.protoMessageName)")
        }
    }
}

/// Latent tensors on the wire: planar float32, little-endian, beside the protobuf header.
public enum LatentCodec {
    public static func encode(_ values: [Float]) -> Data {
        #if _endian(little)
        return values.withUnsafeBytes { Data($0) }
        #else
        var data = Data(count: values.count * 4)
        data.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: index * 4, as: UInt32.self)
            }
        }
        return data
        #endif
    }

    /// Decodes exactly `count` floats; any other length is a protocol violation.
    public static func decode(_ data: Data, count: Int) throws -> [Float] {
        guard count >= 0, count <= Int.max / 4, data.count == count * 4 else {
            throw WireError(.latentSizeMismatch, "latent of \(data.count) bytes; its shape needs \(count.multipliedReportingOverflow(by: 4).partialValue)")
        }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            #if _endian(little)
            _ = data.copyBytes(to: buffer)
            #else
            data.withUnsafeBytes { raw in
                for i in 0..<count { buffer[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
            }
            #endif
            initialized = count
        }
    }
}

extension Reel_V1_LatentShape {
    public init(frames: Int, channels: Int, rows: Int, columns: Int) {
        self.init()
        self.frames = UInt32(frames); self.channels = UInt32(channels)
        self.rows = UInt32(rows); self.columns = UInt32(columns)
    }

    /// frames × channels × rows × columns; nil when the product does not fit an Int, as four
    /// numbers off the wire may ask (the shape is then refused, never computed with).
    public var count: Int? {
        var product = 1
        for factor in [frames, channels, rows, columns] {
            let (next, overflow) = product.multipliedReportingOverflow(by: Int(factor))
            if overflow { return nil }
            product = next
        }
        return product
    }
}

extension Reel_V1_ShardResult {
    /// The header of the result of `assignment`, as its worker must send it back: the same job,
    /// region, steps, attempt and shape (the coordinator checks each).
    public init(answering assignment: Reel_V1_ShardAssignment) {
        self.init()
        jobID = assignment.jobID
        region = assignment.region
        stepBegin = assignment.stepBegin
        stepEnd = assignment.stepEnd
        attempt = assignment.attempt
        kind = assignment.kind
        // What the result must hold: a region's latent, a prompt's embedding, a piece's frames.
        shape = assignment.resultShape
    }
}

/// Any generated protobuf message, so users of Wire need not import SwiftProtobuf.
public typealias SwiftProtobufMessage = SwiftProtobuf.Message
