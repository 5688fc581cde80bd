import CSentencePiece
import Foundation

/// A SentencePiece model (spiece.model), run by Debian's libsentencepiece.
public final class SentencePiece: @unchecked Sendable {
    private let model: OpaquePointer
    public let path: String

    public init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WanModelError.missingFile(path: path, hint: "the tokenizer folder needs the SentencePiece model spiece.model")
        }
        var error = [CChar](repeating: 0, count: 512)
        let loaded = data.withUnsafeBytes { bytes in
            reel_spm_load(bytes.baseAddress, bytes.count, &error, error.count)
        }
        guard let loaded else {
            let reason = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw WanModelError.unreadable(path: path, reason: "not a SentencePiece model (\(reason))")
        }
        model = loaded
    }

    deinit { reel_spm_free(model) }

    public var pieceCount: Int { Int(reel_spm_piece_count(model)) }
    public var eosID: Int { Int(reel_spm_eos_id(model)) }
    public var padID: Int { Int(reel_spm_pad_id(model)) }

    /// The ids of `text` (no special tokens added).
    public func encode(_ text: String) -> [Int] {
        var capacity = max(16, text.utf8.count + 8)
        while true {
            var ids = [Int32](repeating: 0, count: capacity)
            let count = text.withCString { reel_spm_encode(model, $0, &ids, capacity) }
            if count < 0 { return [] }
            if count <= capacity { return ids.prefix(Int(count)).map(Int.init) }
            capacity = Int(count)
        }
    }
}

/// Wan's prompt handling: the pipeline's cleaning, SentencePiece ids, an end-of-sequence id,
/// and at most `maxLength` ids in all (the reference pads to it; the padding's embeddings are
/// zeros, so Reel keeps only the real ids and pads the embedding).
public struct WanTokenizer: Sendable {
    public let pieces: SentencePiece
    public let maxLength: Int

    /// The length the pipeline pads every prompt to.
    public static let defaultMaxLength = 512

    public init(directory: String, maxLength: Int = defaultMaxLength) throws {
        pieces = try SentencePiece(path: "\(directory)/spiece.model")
        self.maxLength = maxLength
    }

    public func ids(_ prompt: String) -> [Int] {
        Array(pieces.encode(Self.clean(prompt)).prefix(maxLength - 1)) + [pieces.eosID]
    }

    /// The pipeline's prompt_clean: HTML entities decoded twice, whitespace runs collapsed to one
    /// space, ends trimmed; and of ftfy's fixes the ones that change ids here: NFC, curly quotes
    /// made straight, control characters dropped. (ftfy's mojibake repair is not done; text that
    /// needs it is already broken before Reel sees it.)
    public static func clean(_ text: String) -> String {
        var text = text.precomposedStringWithCanonicalMapping
        text = String(String.UnicodeScalarView(text.unicodeScalars.compactMap { scalar -> Unicode.Scalar? in
            switch scalar {
            case "\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}": return "'"
            case "\u{201C}", "\u{201D}", "\u{201E}", "\u{201F}": return "\""
            case "\t", "\n", "\r": return scalar
            default:
                if scalar.properties.generalCategory == .control { return nil }
                return scalar
            }
        }))
        text = HTMLEntities.decode(HTMLEntities.decode(text))
        return text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }
}

/// Decoding of HTML character references: numeric ones and the named ones prompts carry.
enum HTMLEntities {
    static let named: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}", "ndash": "\u{2013}",
        "mdash": "\u{2014}", "hellip": "\u{2026}", "lsquo": "\u{2018}", "rsquo": "\u{2019}", "ldquo": "\u{201C}",
        "rdquo": "\u{201D}", "copy": "\u{A9}", "reg": "\u{AE}", "trade": "\u{2122}", "deg": "\u{B0}", "eacute": "\u{E9}",
        "egrave": "\u{E8}", "agrave": "\u{E0}", "ccedil": "\u{E7}", "uuml": "\u{FC}", "ouml": "\u{F6}", "auml": "\u{E4}",
        "szlig": "\u{DF}", "times": "\u{D7}", "middot": "\u{B7}", "laquo": "\u{AB}", "raquo": "\u{BB}",
    ]

    static func decode(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            let after = rest[rest.index(after: amp)...]
            if let semi = after.prefix(32).firstIndex(of: ";") {
                let name = after[..<semi]
                if let value = reference(String(name)) {
                    out += value
                    rest = after[after.index(after: semi)...]
                    continue
                }
            }
            out += "&"
            rest = after
        }
        return out + rest
    }

    private static func reference(_ name: String) -> String? {
        if name.hasPrefix("#x") || name.hasPrefix("#X") {
            return UInt32(name.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String($0) }
        }
        if name.hasPrefix("#") {
            return UInt32(name.dropFirst()).flatMap(Unicode.Scalar.init).map { String($0) }
        }
        return named[name]
    }
}
