/// Weights drawn from a fixed seed, for models that have not been trained yet (reel-tiny) and
/// for benchmarks. Each tensor is a pure function of (seed, name), so the same seed always
/// makes the same model, on any machine.
///
/// The scale follows the tensor's role, read from its name: linear weights ~ N(0, 1/fan_in),
/// biases 0, norm weights 1, embeddings N(0, 1); adaLN modulation weights are small but not
/// zero (a trained model starts them at zero, but then an untrained one would be the identity).
public struct SeededWeights: WeightSource {
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let count = shape.reduce(1, *)
        if name.hasSuffix(".bias") { return Tensor(zeros: shape) }
        if name.contains("norm") && name.hasSuffix(".weight") {
            return Tensor(shape: shape, scalars: [Float](repeating: 1, count: count))
        }
        var std: Float = shape.count == 2 ? 1 / Float(shape[1]).squareRoot() : 1
        if name.contains("token_embed") { std = 1 }
        if name.contains("adaln") { std *= 0.25 }
        let noise = NoiseField(seed: seed ^ FNV1a.hash(name))
        var scalars = [Float](repeating: 0, count: count)
        for i in 0..<count {
            scalars[i] = std * noise.sample(step: 0, frame: 0, channel: 0, y: i >> 20, x: i & 0xFFFFF)
        }
        return Tensor(shape: shape, scalars: scalars)
    }

}

/// Wraps another source and remembers every tensor handed out, so a model built from it can
/// be written to a safetensors file with exactly the names and shapes it asked for.
public final class RecordingWeights: WeightSource {
    private let inner: WeightSource
    public private(set) var tensors: [String: Tensor] = [:]

    public init(_ inner: WeightSource) { self.inner = inner }

    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let tensor = try inner.tensor(name, shape: shape)
        tensors[name] = tensor
        return tensor
    }
}
