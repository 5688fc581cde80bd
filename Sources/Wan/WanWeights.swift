import Diffusion
import Foundation

/// The weights of one part (text_encoder/, transformer/, vae/): one safetensors file or several
/// shards listed by a `*.safetensors.index.json`, all memory-mapped. Tensors are handed out as
/// stored; layers widen narrow ones (F16, BF16) as they use them, or hold their matrices in
/// int8 when `precision` says so.
public final class PartWeights: @unchecked Sendable {
    public let directory: String
    public let precision: WeightPrecision
    let files: [SafeTensorsFile]
    private let fileOf: [String: Int]

    /// Opens the weights in `directory`, preferring `baseName`'s index when there is one.
    public init(directory: String, baseName: String, precision: WeightPrecision = .stored) throws {
        self.directory = directory
        self.precision = precision
        let fm = FileManager.default
        let index = "\(directory)/\(baseName).safetensors.index.json"
        let single = "\(directory)/\(baseName).safetensors"
        var files: [SafeTensorsFile] = []
        var fileOf: [String: Int] = [:]
        if fm.fileExists(atPath: index) {
            guard let data = fm.contents(atPath: index),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = json["weight_map"] as? [String: String]
            else {
                throw WanModelError.unreadable(path: index, reason: "not a safetensors index (needs a weight_map object of tensor -> file)")
            }
            var opened: [String: Int] = [:]
            for (name, file) in map.sorted(by: { $0.key < $1.key }) {
                guard !file.contains("/"), file.hasSuffix(".safetensors") else {
                    throw WanModelError.unreadable(path: index, reason: "weight_map names '\(file)' for tensor '\(name)'; shards must be .safetensors files in the same folder")
                }
                if opened[file] == nil {
                    let path = "\(directory)/\(file)"
                    guard fm.fileExists(atPath: path) else {
                        throw WanModelError.missingFile(path: path, hint: "\(index) lists it for tensor '\(name)'; the download is incomplete")
                    }
                    opened[file] = files.count
                    files.append(try SafeTensorsFile(path: path))
                }
                guard files[opened[file]!].entries[name] != nil else {
                    throw WanModelError.weights("\(directory)/\(file): missing tensor '\(name)' that \(index) places there; the shard is truncated or from another model")
                }
                fileOf[name] = opened[file]!
            }
        } else if fm.fileExists(atPath: single) {
            files = [try SafeTensorsFile(path: single)]
            for name in files[0].entries.keys { fileOf[name] = 0 }
        } else {
            throw WanModelError.missingFile(path: single, hint: "\(directory) needs \(baseName).safetensors or \(baseName).safetensors.index.json with its shards")
        }
        self.files = files
        self.fileOf = fileOf
    }

    public var names: [String] { fileOf.keys.sorted() }

    public func has(_ name: String) -> Bool { fileOf[name] != nil }

    private func file(for name: String) throws -> SafeTensorsFile {
        guard let index = fileOf[name] else {
            throw WanModelError.weights("\(directory): missing tensor '\(name)'; the weights do not match config.json")
        }
        return files[index]
    }

    /// The tensor as stored, checked against `shape`.
    public func stored(_ name: String, shape: [Int]) throws -> StoredTensor {
        try file(for: name).stored(name, shape: shape)
    }

    /// A small tensor (a bias, a norm's scale) in f32, checked by element count: the same vector
    /// is stored [C], [C, 1, 1] or [1, C] by different modules.
    public func vector(_ name: String, count: Int) throws -> [Float] {
        let file = try file(for: name)
        guard let entry = file.entries[name], entry.count == count else {
            throw WanModelError.weights("\(file.path): tensor '\(name)' has shape \(file.entries[name]?.shape ?? []), expected \(count) values from config.json")
        }
        return try file.stored(name, shape: entry.shape).floats()
    }

    /// A linear layer `name` ([outputs, inputs] weight, optional bias), its weight kept as
    /// stored or, at int8 precision, quantised now and its stored pages let go.
    package func linear(_ name: String, inputs: Int, outputs: Int, bias: Bool = true) throws -> Linear {
        let weight = try stored("\(name).weight", shape: [outputs, inputs])
        var layer = Linear(weight: .stored(weight), bias: bias ? try vector("\(name).bias", count: outputs) : nil)
        if precision == .int8 {
            layer = layer.quantised()
            weight.releasePages()
        }
        linearBytes += layer.weightBytes
        return layer
    }

    /// Bytes of the linear layers' weights handed out so far, as they are held.
    public private(set) var linearBytes = 0

    /// Parameters and bytes per dtype.
    public func summary() -> (parameters: Int, bytes: Int, dtypes: [String: Int]) {
        var parameters = 0, bytes = 0
        var dtypes: [String: Int] = [:]
        for file in files {
            for entry in file.entries.values {
                parameters += entry.count
                bytes += entry.offsets.count
                dtypes[entry.dtype, default: 0] += entry.count
            }
        }
        return (parameters, bytes, dtypes)
    }
}
