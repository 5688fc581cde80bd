/// The words a model understands, one token each; token 0 is the start token every prompt
/// begins with (an empty prompt is just the start token, which is also the unconditional input
/// for classifier-free guidance).
public struct Vocabulary: Sendable, Equatable {
    public static let startToken = "<start>"
    public let words: [String]
    private let ids: [String: Int]

    public init(words: [String]) throws {
        guard words.first == Self.startToken else {
            throw VocabularyError.missingStartToken
        }
        self.words = words
        var ids: [String: Int] = [:]
        for (id, word) in words.enumerated() { ids[word] = id }
        self.ids = ids
    }

    /// Parses a vocabulary file: one word a line, blank lines ignored.
    public init(fileContents: String) throws {
        let words = fileContents.split(whereSeparator: \.isNewline).map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        try self.init(words: words)
    }

    public var count: Int { words.count }

    /// The words of a prompt as the tokenizer sees them: lower case, split on anything that is
    /// not a letter, digit or apostrophe.
    public static func words(of prompt: String) -> [String] {
        prompt.lowercased()
            .split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "'") })
            .map(String.init)
    }

    /// Token ids for `prompt`, starting with the start token.
    public func tokenize(_ prompt: String, maxTokens: Int) throws -> [Int] {
        let words = Self.words(of: prompt)
        var tokens = [0]
        for word in words {
            guard let id = ids[word], id != 0 else {
                throw VocabularyError.unknownWord(word, known: self.words.dropFirst().sorted())
            }
            tokens.append(id)
        }
        guard tokens.count <= maxTokens else {
            throw VocabularyError.promptTooLong(words: words.count, maxWords: maxTokens - 1)
        }
        return tokens
    }
}

public enum VocabularyError: Error, CustomStringConvertible, Equatable {
    case missingStartToken
    case unknownWord(String, known: [String])
    case promptTooLong(words: Int, maxWords: Int)

    public var description: String {
        switch self {
        case .missingStartToken: "vocabulary: \(reason)"
        case .unknownWord, .promptTooLong: "prompt: \(reason)"
        }
    }

    /// What is wrong, without the field it is wrong in.
    public var reason: String {
        switch self {
        case .missingStartToken:
            "the first line must be \(Vocabulary.startToken)"
        case .unknownWord(let word, let known):
            "the model does not know the word '\(word)'; it understands: \(known.joined(separator: " "))"
        case .promptTooLong(let words, let maxWords):
            "\(words) words is too long; this model reads at most \(maxWords)"
        }
    }
}

import Foundation
