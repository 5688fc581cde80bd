import Crypto
import Foundation

/// An Ed25519 key that signs manifests: a farm's (DATA-DIR/keys/signing.key, made on the
/// coordinator's first start) or this user's own for `reel render` (`SigningKey.localPath`,
/// made on first use). Its file holds both halves, mode 0600; the public half is published.
///
///     # Reel signing key (Ed25519)
///     public-key = "base64 of 32 bytes"
///     secret-key = "base64 of 32 bytes"
// Unchecked: swift-crypto's key is an immutable value that it does not mark Sendable.
public struct SigningKey: @unchecked Sendable {
    public let privateKey: Curve25519.Signing.PrivateKey

    public init(_ privateKey: Curve25519.Signing.PrivateKey) { self.privateKey = privateKey }

    /// The public half as text: what `reel keys export-signing` prints and `--key` takes.
    public var publicText: String { Self.text(privateKey.publicKey) }

    public static func text(_ key: Curve25519.Signing.PublicKey) -> String { key.rawRepresentation.base64EncodedString() }

    /// Where `reel render` keeps its key: beside the client config (`$XDG_CONFIG_HOME/reel`,
    /// else ~/.config/reel), or `$REEL_SIGNING_KEY`.
    public static var localPath: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["REEL_SIGNING_KEY"], !path.isEmpty { return path }
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.config"
        return base + "/reel/signing.key"
    }

    /// A farm's key, in its data directory's keys folder beside the CURVE keys.
    public static func farmPath(dataDirectory: String) -> String { "\(dataDirectory)/keys/signing.key" }

    /// The key in `path`, made there (with its folders) the first time.
    public static func loadOrCreate(_ path: String) throws -> SigningKey {
        if FileManager.default.fileExists(atPath: path) { return try load(path) }
        let key = SigningKey(Curve25519.Signing.PrivateKey())
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw ProvenanceError("cannot make \(folder) for the signing key: \(error.localizedDescription)")
        }
        let text = "# Reel signing key (Ed25519): signs the manifests of the videos made here\n"
            + "public-key = \"\(key.publicText)\"\nsecret-key = \"\(key.privateKey.rawRepresentation.base64EncodedString())\"\n"
        // Written under a temporary name with its final mode and linked into place, so a
        // concurrent first use never reads half a key, and of two racing makers one key wins.
        let temporary = "\(path).partial-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ProvenanceError("cannot write the signing key \(path): is \(folder) writable?")
        }
        defer { unlink(temporary) }
        if link(temporary, path) != 0 && errno != EEXIST {
            throw ProvenanceError("cannot write the signing key \(path): \(String(cString: strerror(errno)))")
        }
        return try load(path)
    }

    public static func load(_ path: String) throws -> SigningKey {
        let fields = try fields(of: path)
        guard let secret = fields["secret-key"] else { throw ProvenanceError("\(path) has no secret-key; it is not a signing key file") }
        guard let bytes = Data(base64Encoded: secret), bytes.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: bytes) else {
            throw ProvenanceError("\(path): secret-key is not 32 bytes of base64")
        }
        return SigningKey(key)
    }

    /// A public key given as its text, or as a file holding a public-key line (a signing key
    /// file, or one written from `reel keys export-signing`).
    public static func publicKey(_ fileOrText: String) throws -> Curve25519.Signing.PublicKey {
        let text: String
        if FileManager.default.fileExists(atPath: fileOrText) {
            let fields = try fields(of: fileOrText)
            if let line = fields["public-key"] {
                text = line
            } else {
                // A file holding the bare key, as `reel keys export-signing > farm.pub` writes it.
                text = String(decoding: FileManager.default.contents(atPath: fileOrText) ?? Data(), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
        } else {
            text = fileOrText
        }
        guard let bytes = Data(base64Encoded: text), bytes.count == 32,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes) else {
            throw ProvenanceError("--key \(fileOrText.prefix(80)): not a signing public key (44 characters of base64, as `reel keys export-signing` prints) nor a file holding one")
        }
        return key
    }

    private static func fields(of path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ProvenanceError("cannot read \(path)") }
        var fields: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            fields[parts[0]] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return fields
    }
}

/// Something about provenance that failed, in words a user can act on.
public struct ProvenanceError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
