import Diffusion
import Planning

extension JobSpec {
    /// Reads every prompt the job's chunks are denoised with as the model will, so that a job
    /// no worker could start is refused when it is asked for rather than failing on every
    /// worker. A storyboard's own `prompt` only labels it (its shots' prompts joined) and is
    /// not read.
    public func checkPrompts(with vocabulary: Vocabulary, maxTokens: Int) throws {
        let prompts = shots.isEmpty ? [("prompt", prompt)] : shots.enumerated().map { ("shots[\($0.offset)].prompt", $0.element.prompt) }
        for (field, prompt) in prompts {
            do {
                _ = try vocabulary.tokenize(prompt, maxTokens: maxTokens)
            } catch let error as VocabularyError {
                throw SpecError(problems: [SpecProblem(field: field + ":", problem: error.reason)])
            }
        }
    }
}
