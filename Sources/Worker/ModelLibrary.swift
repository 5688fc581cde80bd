import Diffusion
import Families
import Foundation
import Provenance

/// Models loaded once per process and shared by its workers: weights are read-only.
public final class ModelLibrary: @unchecked Sendable {
    private let lock = NSLock()
    /// By the names it was asked for; one precision of each.
    private var loaded: [String: any VideoModel] = [:]
    /// The model names this process offers.
    public let names: [String]
    /// The parts of latent models this process holds; every part unless told.
    public let parts: [ModelPart]

    /// Offers `names` (default: every package in the search path); `preloaded` models are
    /// used as they are instead of being read again.
    public init(names: [String]? = nil, preloaded: [any VideoModel] = [], parts: [ModelPart] = ModelPart.allCases) {
        var offered = names ?? ModelPackage.available()
        for model in preloaded {
            // Also under the directory it was read from: a job given `--model DIR` names it so.
            loaded[model.name] = model
            loaded[model.directory] = model
            for name in [model.name, model.directory] where !offered.contains(name) { offered.append(name) }
        }
        self.names = offered
        self.parts = parts
    }

    /// The weight files of each model it offers that it can find, with their SHA-256: what its
    /// hello announces. Each file is read whole the first time (`WeightDigests` keeps the
    /// digests), so a worker's first start with a large model takes a while longer.
    public func weightFiles() -> [(model: String, files: [WeightFile])] {
        names.compactMap { name in
            let directory = lock.withLock { loaded[name]?.directory } ?? (try? ModelFamilies.locate(name))
            guard let directory, let files = try? WeightDigests.shared.weights(in: directory) else { return nil }
            return (name, files)
        }
    }

    /// Preview projections of the latent models loaded here, under each name they are offered
    /// by, when this process holds their VAE; each made once.
    public func previewProjections() -> [(model: String, weights: [Float])] {
        guard parts.contains(.vae) else { return [] }
        return lock.withLock {
            loaded.sorted { $0.key < $1.key }.compactMap { name, model in
                guard model.latentParts != nil else { return nil }
                if projections[model.directory] == nil { projections[model.directory] = (try? model.previewProjection()) ?? nil }
                return projections[model.directory].map { (name, $0) }
            }
        }
    }
    private var projections: [String: [Float]] = [:]

    /// The model `name` with its weights held at `weights`. A worker holds one precision of a
    /// model at a time: opening another lets the first go, so that a farm mixing int8 and
    /// stored jobs costs reloads, never both copies' memory.
    public func model(_ name: String, weights: WeightPrecision = .default) throws -> any VideoModel {
        try lock.withLock {
            if let model = loaded[name], model.weights == weights { return model }
            guard names.contains(name) else {
                throw ModelPackageError.notFound(name: name, searched: ["this worker's models: \(names.joined(separator: ", "))"])
            }
            let model = try ModelFamilies.open(ModelFamilies.locate(name), weights: weights)
            for (other, held) in loaded where held.directory == model.directory { loaded[other] = nil }
            loaded[name] = model
            return model
        }
    }
}
