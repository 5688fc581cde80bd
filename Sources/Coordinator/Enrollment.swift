import Foundation
import Logging
import Wire

/// What an enrolled key may do: a worker key may only work; a client key may submit jobs and
/// see and cancel its own; an admin key is a client that sees and cancels every job.
public enum PeerRole: String, CaseIterable, Sendable {
    case worker, client, admin

    /// The side of the protocol its messages belong to.
    public var kind: PeerKind { self == .worker ? .worker : .client }

    /// The ZAP user id of `publicKey`, enrolled as `name` in this role, as messages carry it.
    /// The key is part of it, so a name enrolled again with another key is another peer.
    func userID(_ name: String, key publicKey: String) -> String { "\(rawValue):\(name):\(publicKey)" }

    /// The role and name in a ZAP user id (names never hold ':'; Z85 keys may).
    static func parse(_ userID: String) -> (role: PeerRole, name: String)? {
        let parts = userID.split(separator: ":", maxSplits: 2)
        guard parts.count == 3, let role = PeerRole(rawValue: String(parts[0])) else { return nil }
        return (role, String(parts[1]))
    }
}

/// The coordinator's keys under DATA-DIR/keys: its own pair (coordinator.key, made on first
/// start, and coordinator.pub to hand out) and the enrolled public keys, workers/NAME.pub and
/// clients/NAME.pub. Enrolling takes effect at the next connection, without a restart.
public struct KeyDirectory: Sendable {
    public let root: String

    public init(dataDirectory: String) { root = "\(dataDirectory)/keys" }

    public var coordinatorPublicKeyPath: String { "\(root)/coordinator.pub" }

    /// The coordinator's own pair, made the first time.
    public func coordinatorKeys() throws -> CurveKeyPair {
        let path = "\(root)/coordinator.key"
        if FileManager.default.fileExists(atPath: path) { return try KeyFile.readPair(path) }
        let keys = try CurveKeyPair.generate()
        _ = try KeyFile.create(keys, name: "coordinator", in: root)
        return keys
    }

    /// Enrolls `publicKey` as `name` in `role`; a name or key already enrolled is refused.
    public func enroll(_ publicKey: String, name: String, as role: PeerRole) throws {
        guard KeyFile.isName(name) else { throw CurveKeyError(.invalidName, "name \(name.debugDescription): use letters, digits, '.', '_' or '-'") }
        if let known = lookup(publicKey) {
            throw CurveKeyError(.alreadyEnrolled, "this key is already enrolled as \(known.role.rawValue) \(known.name)")
        }
        let directory = "\(root)/\(role.rawValue)s"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/\(name).pub"
        guard !FileManager.default.fileExists(atPath: path) else { throw CurveKeyError(.alreadyEnrolled, "a \(role.rawValue) named \(name) is already enrolled") }
        try KeyFile.writePublic(publicKey, name: name, to: path)
    }

    /// Every enrolled key: role, name and public key, sorted.
    public func enrolled() -> [(role: PeerRole, name: String, publicKey: String)] {
        PeerRole.allCases.flatMap { role -> [(role: PeerRole, name: String, publicKey: String)] in
            let directory = "\(root)/\(role.rawValue)s"
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            return files.filter { $0.hasSuffix(".pub") }.sorted().compactMap { file in
                guard let key = try? KeyFile.publicKey("\(directory)/\(file)") else { return nil }
                return (role, String(file.dropLast(4)), key)
            }
        }
    }

    /// Takes back a key enrolled as `name` in `role`; a coordinator running on this data
    /// directory closes the connections made with it within a second.
    public func revoke(_ name: String, as role: PeerRole) throws {
        let path = "\(root)/\(role.rawValue)s/\(name).pub"
        guard KeyFile.isName(name), FileManager.default.fileExists(atPath: path) else {
            throw CurveKeyError(.notEnrolled, "no \(role.rawValue) named \(name.debugDescription) is enrolled (`reel keys list` shows who is)")
        }
        try FileManager.default.removeItem(atPath: path)
    }

    /// The ZAP user ids of every enrolled key.
    func userIDs() -> Set<String> {
        Set(enrolled().map { $0.role.userID($0.name, key: $0.publicKey) })
    }

    func lookup(_ publicKey: String) -> (role: PeerRole, name: String)? {
        enrolled().first { $0.publicKey == publicKey }.map { ($0.role, $0.name) }
    }
}

/// The ZAP handler (ZeroMQ RFC 27): libzmq asks it about every CURVE handshake on the
/// coordinator's sockets, and it answers from the enrolled keys. It must be bound before the
/// coordinator's socket is, or libzmq would let connections through unasked.
final class ZAPHandler: @unchecked Sendable {
    static let endpoint = "inproc://zeromq.zap.01"

    private let socket: ZMQSocket
    private let keys: KeyDirectory
    private let logger: Logger
    private let lock = NSLock()
    private var stopRequested = false
    private var refusals = 0
    private let finished = DispatchSemaphore(value: 0)

    init(context: ZMQContext, keys: KeyDirectory, logger: Logger) throws {
        self.keys = keys
        self.logger = logger
        socket = try ZMQSocket(context, .rep)
        try socket.bind(Self.endpoint)
        let thread = Thread { [self] in serve() }
        thread.name = "reel-zap"
        thread.start()
    }

    /// Handshakes refused so far.
    var refused: Int { lock.withLock { refusals } }

    func stop() {
        lock.withLock { stopRequested = true }
        finished.wait()
    }

    private func serve() {
        defer { finished.signal() }
        while !lock.withLock({ stopRequested }) {
            guard let ready = try? ZMQSocket.poll([socket], milliseconds: 100), !ready.isEmpty,
                  let request = try? socket.receive(dontWait: true) else { continue }
            let reply = answer(request)
            try? socket.send(reply)
        }
    }

    /// Frames of a request: version, request id, domain, address, routing id, mechanism,
    /// credentials. The reply: version, request id, status code, status text, user id, metadata.
    private func answer(_ request: [Data]) -> [Data] {
        let text = { (index: Int) in index < request.count ? String(decoding: request[index], as: UTF8.self) : "" }
        let requestID = request.count > 1 ? request[1] : Data()
        func reply(_ code: String, _ status: String, user: String = "") -> [Data] {
            [Data("1.0".utf8), requestID, Data(code.utf8), Data(status.utf8), Data(user.utf8), Data()]
        }
        guard text(0) == "1.0", request.count >= 6 else { return refuse(reply, "malformed ZAP request", from: "?") }
        let address = text(3), mechanism = text(5)
        guard mechanism == "CURVE" else {
            return refuse(reply, "\(mechanism) security; this coordinator takes CURVE only", from: address)
        }
        guard request.count >= 7, let key = CurveKey.z85(request[6]) else { return refuse(reply, "no CURVE key", from: address) }
        guard let enrolled = keys.lookup(key) else {
            return refuse(reply, "key \(key) is not enrolled (`reel keys enroll` on the coordinator)", from: address)
        }
        logger.debug("ZAP: \(address) is \(enrolled.role.rawValue) \(enrolled.name)")
        return reply("200", "OK", user: enrolled.role.userID(enrolled.name, key: key))
    }

    private func refuse(_ reply: (String, String, String) -> [Data], _ reason: String, from address: String) -> [Data] {
        lock.withLock { refusals += 1 }
        logger.warning("refused a connection from \(address): \(reason)")
        return reply("400", reason, "")
    }

    /// Connects with a key nobody enrolled and checks the handshake is refused: a coordinator
    /// whose authentication lets strangers in must not start.
    static func selfTest(context: ZMQContext, endpoint: String, serverPublicKey: String, handler: ZAPHandler) throws {
        let before = handler.refused
        let probe = try ZMQSocket(context, .dealer)
        try probe.secure(.curveClient(try CurveKeyPair.generate(), serverPublicKey: serverPublicKey))
        let monitor = try probe.monitor(context, events: SocketEvent.handshakeEvents)
        try probe.connect(endpoint)
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            guard try !ZMQSocket.poll([monitor], milliseconds: 100).isEmpty,
                  let event = SocketEvent(frames: try monitor.receive()) else { continue }
            if event.isHandshakeSuccess { throw SecurityError(.zapSelfTestFailed, "ZAP self-test failed: an unknown key was let in at \(endpoint)") }
            if event.isHandshakeFailure {
                guard handler.refused > before else { throw SecurityError(.zapSelfTestFailed, "ZAP self-test failed: the handshake failed without the handler refusing it (\(event))") }
                return
            }
        }
        throw SecurityError(.zapSelfTestFailed, "ZAP self-test failed: no handshake answer from \(endpoint) within 5 s")
    }
}

/// Security that does not hold; the coordinator will not start with it.
public struct SecurityError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable {
        /// The ZAP handler did not refuse an unknown key when tried at start.
        case zapSelfTestFailed
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) { (self.code, self.description) = (code, description) }
}
