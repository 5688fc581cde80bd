import CZeroMQ
import Foundation

/// A CurveZMQ key pair as Z85 text (40 characters each), the form ZeroMQ takes and people copy.
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: String
    public let secretKey: String

    /// A new random pair.
    public static func generate() throws -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41), secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else {
            throw ZMQError.last("zmq_curve_keypair (is libzmq built with CURVE?)")
        }
        return CurveKeyPair(publicKey: String(cString: publicKey), secretKey: String(cString: secretKey))
    }

    /// The pair of `secretKey`, its public half derived.
    public init(secretKey: String) throws {
        guard CurveKey.isValid(secretKey) else { throw CurveKeyError(.invalidKey, "a secret key is 40 Z85 characters; got \(secretKey.count)") }
        var publicKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicKey, secretKey) == 0 else { throw CurveKeyError(.invalidKey, "\(secretKey.prefix(4))… is not a valid Z85 secret key") }
        self.init(publicKey: String(cString: publicKey), secretKey: secretKey)
    }

    init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

/// A key that is missing, malformed or of the wrong kind, in words for the user.
public struct CurveKeyError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable {
        /// A key or key name that is not well formed, or a file without the key asked for.
        case invalidKey, invalidName
        /// A key file that is never overwritten, or a key enrolled already.
        case exists, alreadyEnrolled
        case notEnrolled
        case cannotRead, cannotWrite
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) { (self.code, self.description) = (code, description) }
}

public enum CurveKey {
    static let z85Alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")

    /// Whether `key` is a 32-byte key in Z85 (40 characters of its alphabet).
    public static func isValid(_ key: String) -> Bool { key.count == 40 && key.allSatisfy(z85Alphabet.contains) }

    /// The Z85 text of a 32-byte binary key, as a ZAP request carries it.
    public static func z85(_ binary: Data) -> String? {
        guard binary.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        let encoded = binary.withUnsafeBytes { zmq_z85_encode(&text, $0.bindMemory(to: UInt8.self).baseAddress, 32) }
        return encoded == nil ? nil : String(cString: text)
    }

    /// Whether this libzmq can do CURVE (it needs libsodium).
    public static var isAvailable: Bool { zmq_has("curve") == 1 }
}

/// How a socket secures its connections.
public enum SocketSecurity: Sendable {
    /// NULL mechanism: plaintext, anyone may connect. Only with an explicit `--insecure`.
    case plaintext
    /// The coordinator: CURVE server with its secret key; a ZAP handler decides who may connect.
    case curveServer(CurveKeyPair)
    /// A worker or client: its own pair, and the coordinator's public key to trust.
    case curveClient(CurveKeyPair, serverPublicKey: String)
}

extension ZMQSocket {
    /// The ZAP domain every Reel server socket authenticates in.
    public static let zapDomain = "reel"

    /// Applies `security`; call before bind or connect.
    public func secure(_ security: SocketSecurity) throws {
        switch security {
        case .plaintext:
            break
        case .curveServer(let keys):
            try setOption(ZMQ_CURVE_SERVER, Int32(1))
            try setOption(ZMQ_CURVE_SECRETKEY, text: keys.secretKey)
            try setOption(ZMQ_ZAP_DOMAIN, text: Self.zapDomain)
        case .curveClient(let keys, let server):
            guard CurveKey.isValid(server) else { throw CurveKeyError(.invalidKey, "the coordinator's public key must be 40 Z85 characters") }
            try setOption(ZMQ_CURVE_SERVERKEY, text: server)
            try setOption(ZMQ_CURVE_PUBLICKEY, text: keys.publicKey)
            try setOption(ZMQ_CURVE_SECRETKEY, text: keys.secretKey)
        }
    }

    func setOption(_ option: Int32, text: String) throws {
        try setOption(option, bytes: Array(text.utf8))
    }
}
