import Diffusion
import Wan

/// The model families Reel knows, tried in order on a model directory. A new family is its own
/// folder (a module) and one line here.
enum ModelFamilies {
    static let all: [any ModelFamily.Type] = [
        ReelShapesFamily.self,
        WanFamily.self,
    ]

    /// The family of the model in `directory`, if any knows it.
    static func family(of directory: String) -> (any ModelFamily.Type)? {
        all.first { $0.recognises(directory) }
    }
}
