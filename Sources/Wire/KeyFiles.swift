import Foundation

/// Key files: a few lines of text, `NAME.key` holding both halves (mode 0600) and `NAME.pub`
/// the public half alone, which is what gets copied to a coordinator and enrolled.
///
///     # Reel CURVE key "worker-1"
///     public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
///     secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
public enum KeyFile {
    /// Writes `NAME.key` and `NAME.pub` into `directory`; refuses to overwrite a key.
    public static func create(_ keys: CurveKeyPair, name: String, in directory: String) throws -> (secret: String, public: String) {
        guard isName(name) else { throw CurveKeyError(.invalidName, "key name \(name.debugDescription): use letters, digits, '.', '_' or '-'") }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let secretPath = "\(directory)/\(name).key", publicPath = "\(directory)/\(name).pub"
        guard !FileManager.default.fileExists(atPath: secretPath) else {
            throw CurveKeyError(.exists, "\(secretPath) exists; a key is never overwritten (remove it first, or pick another name)")
        }
        let header = "# Reel CURVE key \"\(name)\"\n"
        try writePublic(keys.publicKey, name: name, to: publicPath)
        let secret = header + "public-key = \"\(keys.publicKey)\"\nsecret-key = \"\(keys.secretKey)\"\n"
        guard FileManager.default.createFile(atPath: secretPath, contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw CurveKeyError(.cannotWrite, "cannot write \(secretPath)")
        }
        return (secretPath, publicPath)
    }

    public static func writePublic(_ publicKey: String, name: String, to path: String) throws {
        let text = "# Reel CURVE key \"\(name)\" (public half)\npublic-key = \"\(publicKey)\"\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The pair in a `.key` file.
    public static func readPair(_ path: String) throws -> CurveKeyPair {
        let fields = try read(path)
        guard let secret = fields["secret-key"] else {
            throw CurveKeyError(.invalidKey, "\(path) has no secret-key; pass the .key file, not the .pub")
        }
        return try CurveKeyPair(secretKey: secret)
    }

    /// A public key given as Z85 text or as a `.pub` / `.key` file.
    public static func publicKey(_ fileOrKey: String) throws -> String {
        if CurveKey.isValid(fileOrKey) && !FileManager.default.fileExists(atPath: fileOrKey) { return fileOrKey }
        guard let key = try read(fileOrKey)["public-key"], CurveKey.isValid(key) else {
            throw CurveKeyError(.invalidKey, "\(fileOrKey) has no valid public-key line")
        }
        return key
    }

    /// Whether `path` is a key file holding a secret key (a .key, not a .pub).
    public static func holdsSecretKey(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path) && ((try? read(path))?["secret-key"] != nil)
    }

    static func read(_ path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CurveKeyError(.cannotRead, "cannot read key file \(path); make one with `reel keys new NAME`")
        }
        var fields: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            fields[parts[0]] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        for (field, value) in fields where field.hasSuffix("-key") && !CurveKey.isValid(value) {
            throw CurveKeyError(.invalidKey, "\(path): \(field) is not 40 Z85 characters")
        }
        return fields
    }

    public static func isName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && !name.hasPrefix(".")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }
}
