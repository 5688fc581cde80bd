import Diffusion
import Foundation
import Wan

/// The model families Reel knows, tried in order on a model directory. A new family is its own
/// folder (a module) and one line here.
public enum ModelFamilies {
    public static let all: [any ModelFamily.Type] = [
        ReelShapesFamily.self,
        WanFamily.self,
    ]

    /// The family of the model in `directory`, if any knows it.
    public static func family(of directory: String) -> (any ModelFamily.Type)? {
        all.first { $0.recognises(directory) }
    }

    /// The directory of the model `name`: a directory itself, or a folder of that name in the
    /// model search path ($REEL_MODELS, ./models) that a family recognises.
    public static func locate(_ name: String) throws -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: name, isDirectory: &isDirectory), isDirectory.boolValue { return name }
        let searched = name.contains("/") ? [name] : ModelPackage.searchPath()
        if !name.contains("/") {
            for directory in searched where family(of: "\(directory)/\(name)") != nil { return "\(directory)/\(name)" }
        }
        throw ModelPackageError.notFound(name: name, searched: searched)
    }

    /// Opens the model in `directory` with its family, its weights to be held at `weights`; a
    /// latent family reads configs only.
    public static func open(_ directory: String, weights: WeightPrecision = .default) throws -> any VideoModel {
        guard let family = family(of: directory) else {
            throw ModelPackageError.unreadable(path: directory, reason: "no model family recognises it (a reel-shapes package has config.json; a Wan model in the Diffusers layout has model_index.json)")
        }
        return try family.open(directory, weights: weights)
    }
}
