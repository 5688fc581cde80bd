import Foundation

/// A loaded model package: a directory holding config.json, model.safetensors and the
/// vocabulary. Everything a worker needs to denoise.
public final class Model: @unchecked Sendable {
    public let name: String
    public let directory: String
    public let config: ModelConfig
    public let textEncoder: TextEncoder
    public let denoiser: Denoiser

    public var vocabulary: Vocabulary { textEncoder.vocabulary }

    public init(name: String, directory: String, config: ModelConfig, vocabulary: Vocabulary, weights: WeightSource) throws {
        try config.validate()
        self.name = name
        self.directory = directory
        self.config = config
        textEncoder = try TextEncoder(config: config.text, vocabulary: vocabulary, weights: weights)
        denoiser = try Denoiser(config: config, weights: weights)
    }

    /// Loads the package at `directory`.
    public convenience init(directory: String) throws {
        let config = try ModelPackage.readConfig(in: directory)
        let vocabulary = try ModelPackage.readVocabulary(named: config.vocabulary, in: directory)
        let weights = try SafeTensorsFile(path: "\(directory)/\(ModelPackage.weightsFile)")
        let name = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        try self.init(name: name, directory: directory, config: config, vocabulary: vocabulary, weights: weights)
    }

    /// Loads a model by name or path (see `ModelPackage.locate`).
    public convenience init(named name: String) throws {
        try self.init(directory: try ModelPackage.locate(name))
    }
}

/// Finding, reading and writing model package directories.
public enum ModelPackage {
    public static let configFile = "config.json"
    public static let weightsFile = "model.safetensors"
    public static let defaultModel = "reel-shapes"

    /// Directories searched for a model given by name: $REEL_MODELS (colon-separated), ./models,
    /// and the models directory of an installed `reel` or of the checkout it was built in.
    public static func searchPath() -> [String] {
        var paths: [String] = []
        if let env = ProcessInfo.processInfo.environment["REEL_MODELS"] {
            paths += env.split(separator: ":").map(String.init)
        }
        paths.append(FileManager.default.currentDirectoryPath + "/models")
        // An installed binary keeps models in ../share/reel/models; one built in a checkout
        // (.build/<triple>/<configuration>/reel) finds the checkout's models/ a few levels up.
        var directory = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        paths.append(directory.appendingPathComponent("../share/reel/models").standardizedFileURL.path)
        for _ in 0..<4 {
            directory = directory.deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
                paths.append(directory.appendingPathComponent("models").path)
                break
            }
        }
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }

    /// Names of the model packages found in the search path.
    public static func available() -> [String] {
        var names = Set<String>()
        for directory in searchPath() {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where FileManager.default.fileExists(atPath: "\(directory)/\(entry)/\(configFile)") {
                names.insert(entry)
            }
        }
        return names.sorted()
    }

    /// The package directory for `name`: a path if one exists there, else `name` looked up in
    /// the search path.
    public static func locate(_ name: String) throws -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: name, isDirectory: &isDirectory), isDirectory.boolValue {
            return name
        }
        let searched = name.contains("/") ? [name] : searchPath()
        if !name.contains("/") {
            for directory in searched where FileManager.default.fileExists(atPath: "\(directory)/\(name)/\(configFile)") {
                return "\(directory)/\(name)"
            }
        }
        throw ModelPackageError.notFound(name: name, searched: searched)
    }

    public static func readConfig(in directory: String) throws -> ModelConfig {
        let path = "\(directory)/\(configFile)"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelPackageError.unreadable(path: path, reason: "cannot read the file; a model package needs \(configFile), \(weightsFile) and its vocabulary")
        }
        do {
            return try ModelConfig.decoder.decode(ModelConfig.self, from: data)
        } catch let error as DecodingError {
            throw ModelPackageError.unreadable(path: path, reason: describe(error))
        }
    }

    public static func readVocabulary(named file: String, in directory: String) throws -> Vocabulary {
        let path = "\(directory)/\(file)"
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ModelPackageError.unreadable(path: path, reason: "cannot read the vocabulary")
        }
        do { return try Vocabulary(fileContents: text) } catch {
            throw ModelPackageError.unreadable(path: path, reason: "\(error)")
        }
    }

    /// Writes model.safetensors for the package at `directory` (whose config.json and
    /// vocabulary exist) with weights from `source`, exactly the tensors the model asks for.
    @discardableResult
    public static func writeWeights(in directory: String, from source: WeightSource, metadata: [String: String] = [:]) throws -> Model {
        let config = try readConfig(in: directory)
        let vocabulary = try readVocabulary(named: config.vocabulary, in: directory)
        let recorder = RecordingWeights(source)
        let model = try Model(name: URL(fileURLWithPath: directory).lastPathComponent, directory: directory,
                              config: config, vocabulary: vocabulary, weights: recorder)
        try SafeTensorsFile.write(recorder.tensors, metadata: metadata, to: "\(directory)/\(weightsFile)")
        return model
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "missing field \(parent.isEmpty ? "" : parent + ".")\(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "field \(path(context)): \(context.debugDescription)"
        case .dataCorrupted(let context):
            return "not valid JSON: \(context.underlyingError.map { "\($0)" } ?? context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
