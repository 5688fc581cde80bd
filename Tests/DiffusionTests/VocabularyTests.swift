import Diffusion
import TestSupport
import Testing

@Suite struct VocabularyTests {
    let vocabulary = try! Vocabulary(words: TestModels.vocabulary)

    @Test func promptsBecomeStartTokenThenWordIds() throws {
        #expect(try vocabulary.tokenize("A red circle, moving LEFT.", maxTokens: 8) == [0, 1, 2, 4, 6, 7])
        #expect(try vocabulary.tokenize("", maxTokens: 8) == [0])
    }

    @Test func unknownWordIsNamedWithTheWordsTheModelKnows() {
        #expect(throws: VocabularyError.unknownWord("purple", known: Array(TestModels.vocabulary.dropFirst()).sorted())) {
            try vocabulary.tokenize("a purple circle", maxTokens: 8)
        }
        let message = "\(VocabularyError.unknownWord("purple", known: ["a", "red"]))"
        #expect(message.contains("'purple'") && message.contains("a red"))
    }

    @Test func overlongPromptSaysTheLimit() {
        #expect(throws: VocabularyError.promptTooLong(words: 8, maxWords: 7)) {
            try vocabulary.tokenize("a red circle a red circle a red", maxTokens: 8)
        }
    }
}
