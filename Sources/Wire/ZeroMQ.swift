import CZeroMQ
import Foundation

/// A ZeroMQ call that failed, with the call and libzmq's reason.
public struct ZMQError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let code: Int32
    public var description: String { "\(call): \(String(cString: zmq_strerror(code)))" }

    /// The receive or send timed out (EAGAIN).
    public var isTimeout: Bool { code == EAGAIN }
    /// The context is shutting down (ETERM): the owning thread should close its socket and stop.
    public var isTerminated: Bool { code == CZeroMQ_eterm() }
    /// A ROUTER with ROUTER_MANDATORY was asked to send to a peer it does not know.
    public var isUnreachable: Bool { code == EHOSTUNREACH }

    static func last(_ call: String) -> ZMQError { ZMQError(call: call, code: zmq_errno()) }
}

/// A ZeroMQ context: owns the I/O threads. Terminating it (on deinit) waits for sockets to close.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() throws {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        self.handle = handle
    }

    /// A context for more sockets than libzmq's default of 1023 (a process simulating a
    /// thousand workers); the limit is set before any socket exists.
    public convenience init(maxSockets: Int) throws {
        try self.init()
        guard zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, Int32(clamping: maxSockets)) == 0 else { throw ZMQError.last("zmq_ctx_set") }
    }

    /// Makes blocking calls on every socket of this context fail with ETERM, so their threads
    /// can close them; used for shutdown.
    public func shutdown() { zmq_ctx_shutdown(handle) }

    private let termination = NSLock()
    private var terminated = false

    /// Waits until every socket of this context is closed and their lingering messages are
    /// sent (a worker's goodbye), then frees the context. Once only; deinit does it otherwise.
    public func terminate() {
        termination.withLock {
            guard !terminated else { return }
            terminated = true
            zmq_ctx_term(handle)
        }
    }

    deinit { terminate() }
}

/// One ZeroMQ socket. Not thread-safe, as libzmq sockets are not: each lives on one thread.
public final class ZMQSocket {
    public enum Kind {
        case router, dealer, pair, rep
        var raw: Int32 {
            switch self {
            case .rep: return ZMQ_REP
            case .router: return ZMQ_ROUTER
            case .dealer: return ZMQ_DEALER
            case .pair: return ZMQ_PAIR
            }
        }
    }

    let handle: UnsafeMutableRawPointer
    /// Largest message, all frames together, that `receive` returns.
    let maxMessageBytes: Int
    /// Keeps the context alive while the socket is open.
    private let context: ZMQContext
    /// For a monitor's reading end: the socket whose events it reads, kept open until this
    /// end has stopped them (see `deinit`).
    private var monitoredSocket: ZMQSocket?

    /// A socket with Reel's defaults: no lingering on close, and a bound on message size.
    public init(_ context: ZMQContext, _ kind: Kind, maxMessageBytes: Int64 = WireLimits.maxMessageBytes) throws {
        guard let handle = zmq_socket(context.handle, kind.raw) else { throw ZMQError.last("zmq_socket") }
        self.handle = handle
        self.context = context
        self.maxMessageBytes = Int(maxMessageBytes)
        try setOption(ZMQ_LINGER, Int32(0))
        try setOption(ZMQ_MAXMSGSIZE, maxMessageBytes)
        if kind == .router { try setOption(ZMQ_ROUTER_MANDATORY, Int32(1)) }
    }

    deinit {
        // libzmq sends a socket's monitor events from its I/O thread with blocking sends: with
        // the reading end closed, the next event (a lingering socket reconnecting, say) would
        // block that thread, and every socket of the context with it. So the events stop first.
        if let monitoredSocket { zmq_socket_monitor(monitoredSocket.handle, nil, 0) }
        zmq_close(handle)
    }

    public func setOption<T>(_ option: Int32, _ value: T) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<T>.size) == 0 else {
            throw ZMQError.last("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, bytes: [UInt8]) throws {
        guard zmq_setsockopt(handle, option, bytes, bytes.count) == 0 else { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    /// Milliseconds a receive waits before failing with a timeout; -1 waits for ever.
    public func setReceiveTimeout(milliseconds: Int32) throws { try setOption(ZMQ_RCVTIMEO, milliseconds) }
    public func setSendTimeout(milliseconds: Int32) throws { try setOption(ZMQ_SNDTIMEO, milliseconds) }
    /// Milliseconds the context's termination waits for this socket's queued messages to leave
    /// after it is closed (Reel's sockets start at 0: nothing is kept).
    public func setLinger(milliseconds: Int32) throws { try setOption(ZMQ_LINGER, milliseconds) }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError.last("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError.last("connect \(endpoint)") }
    }

    /// The endpoint actually bound (resolves a `tcp://127.0.0.1:*` wildcard port).
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size)
        return String(cString: buffer)
    }

    /// Sends all frames as one multipart message.
    public func send(_ frames: [Data], dontWait: Bool = false) throws {
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            var sent: Int32
            repeat {
                sent = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            } while sent < 0 && zmq_errno() == EINTR  // interrupted by a signal before it was queued
            guard sent >= 0 else { throw ZMQError.last("zmq_send") }
        }
    }

    /// Receives one multipart message, all its frames. Throws a timeout error when a receive
    /// timeout is set and nothing arrived.
    public func receive(dontWait: Bool = false) throws -> [Data] {
        try receiveWithPeer(dontWait: dontWait).frames
    }

    /// Receives one multipart message with what libzmq knows of the connection it came on:
    /// the user id it was authenticated as (what the ZAP handler answered; nil on a plaintext
    /// or inproc connection) and the peer's IP address (nil on inproc and ipc).
    ///
    /// libzmq bounds each frame (MAXMSGSIZE); this bounds the whole message: past
    /// `maxMessageBytes` in all, or `WireLimits.maxFrames` frames, the rest of the message is
    /// read and discarded without being copied, and `OversizedMessage` names the peer.
    public func receiveWithPeer(dontWait: Bool = false) throws -> (frames: [Data], userID: String?, address: String?) {
        var frames: [Data] = []
        var userID: String?, address: String?
        var total = 0, parts = 0
        var oversized = false
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        repeat {
            var received: Int32
            repeat {
                received = zmq_msg_recv(&message, handle, dontWait ? ZMQ_DONTWAIT : 0)
            } while received < 0 && zmq_errno() == EINTR  // a signal arrived while waiting: wait on
            guard received >= 0 else { throw ZMQError.last("zmq_msg_recv") }
            // A ROUTER's routing-id frame is its own and carries no metadata; the peer's frames do.
            if userID == nil, let value = zmq_msg_gets(&message, "User-Id") { userID = String(cString: value) }
            if address == nil, let value = zmq_msg_gets(&message, "Peer-Address") { address = String(cString: value) }
            let size = zmq_msg_size(&message)
            total = total &+ size
            parts += 1
            if total > maxMessageBytes || parts > WireLimits.maxFrames { oversized = true }
            if !oversized || frames.isEmpty {
                frames.append(Data(bytes: zmq_msg_data(&message), count: size))
            }
        } while zmq_msg_more(&message) == 1
        if oversized {
            throw OversizedMessage(firstFrame: frames.first ?? Data(), bytes: total, frames: parts, limit: maxMessageBytes)
        }
        return (frames, userID.flatMap { $0.isEmpty ? nil : $0 }, address.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// Connection events a monitor reports by default.
    public static let loggedEvents = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
        | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH

    /// A PAIR socket receiving this socket's connection events (accepted, disconnected, and
    /// handshakes failed, by default), so closed connections can be logged. It keeps this
    /// socket open while it is, and stops the events before it closes.
    public func monitor(_ context: ZMQContext, events: Int32 = ZMQSocket.loggedEvents) throws -> ZMQSocket {
        let endpoint = "inproc://reel-monitor-\(UUID().uuidString)"
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else { throw ZMQError.last("zmq_socket_monitor") }
        let pair = try ZMQSocket(context, .pair)
        try pair.connect(endpoint)
        pair.monitoredSocket = self
        return pair
    }

    /// Waits up to `milliseconds` (-1: for ever) until one of `sockets` has a message; returns
    /// the indices of those that do.
    public static func poll(_ sockets: [ZMQSocket], milliseconds: Int) throws -> [Int] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        guard zmq_poll(&items, Int32(items.count), milliseconds) >= 0 else {
            if zmq_errno() == EINTR { return [] }  // a signal arrived: nothing to read, the caller's loop goes on
            throw ZMQError.last("zmq_poll")
        }
        return items.indices.filter { items[$0].revents & Int16(ZMQ_POLLIN) != 0 }
    }
}

/// One event from a socket monitor.
public struct SocketEvent: Sendable, CustomStringConvertible {
    public let event: Int32
    public let address: String

    /// Parses the two frames libzmq's monitor sends: (event u16, value u32), then the address.
    public init?(frames: [Data]) {
        guard frames.count == 2, frames[0].count >= 6 else { return nil }
        event = Int32(UInt16(frames[0][frames[0].startIndex]) | UInt16(frames[0][frames[0].startIndex + 1]) << 8)
        address = String(decoding: frames[1], as: UTF8.self)
    }

    /// A connection's course, for a client that must say why no answer came: connecting,
    /// connected, refused (closed and retried), and the handshake's outcome.
    public static let connectionEvents = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_DELAYED | ZMQ_EVENT_CONNECT_RETRIED
        | ZMQ_EVENT_CLOSED | ZMQ_EVENT_DISCONNECTED | handshakeEvents
    public var isConnected: Bool { event == ZMQ_EVENT_CONNECTED }
    /// A connection attempt failed and will be tried again (nothing listening: refused).
    public var isConnectRetried: Bool { event == ZMQ_EVENT_CONNECT_RETRIED }

    /// Every handshake outcome, for a monitor that waits for one.
    public static let handshakeEvents = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
        | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL

    public var isDisconnect: Bool { event == ZMQ_EVENT_DISCONNECTED }
    public var isHandshakeSuccess: Bool { event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED }
    /// The peer's ZAP handler refused this side's credentials.
    public var isAuthenticationFailure: Bool { event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH }
    /// The two sides' security mechanisms or protocols disagree (a plaintext peer against CURVE).
    public var isSecurityMismatch: Bool { event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL }
    public var isHandshakeFailure: Bool {
        [ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL].contains(event)
    }

    public var description: String {
        switch event {
        case ZMQ_EVENT_ACCEPTED: return "connection accepted from \(address)"
        case ZMQ_EVENT_DISCONNECTED: return "a connection to \(address) closed (its peer left, or sent a frame over the size limit)"
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: return "handshake succeeded with \(address)"
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: return "handshake failed with \(address): credentials refused"
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: return "handshake failed with \(address): protocol or security mechanism mismatch"
        default: return "handshake failed with \(address)"
        }
    }
}

/// A message over the socket's total size or frame count, read and thrown away. For a ROUTER,
/// `firstFrame` is the sender's routing id, so the sender can be dropped.
public struct OversizedMessage: Error, CustomStringConvertible {
    public let firstFrame: Data
    public let bytes: Int
    public let frames: Int
    public let limit: Int

    public var description: String {
        "message of \(bytes) bytes in \(frames) frames; at most \(limit) bytes in \(WireLimits.maxFrames) frames"
    }
}
