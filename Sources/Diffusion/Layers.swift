/// Where a model's tensors come from: a safetensors file, or a seeded initialiser. Layers ask
/// by name and expected shape, so a missing or misshapen tensor is reported by name.
public protocol WeightSource {
    func tensor(_ name: String, shape: [Int]) throws -> Tensor
}

extension SafeTensorsFile: WeightSource {
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        try tensor(name, shape: Optional(shape))
    }
}

/// A weight matrix held either as f32 in memory or as stored in a mapped file (F16/BF16 are
/// widened for the duration of one product, so a narrow model never exists whole in f32).
package enum MatrixWeight: @unchecked Sendable {
    case owned(Tensor)
    case stored(StoredTensor)

    var shape: [Int] {
        switch self {
        case .owned(let tensor): tensor.shape
        case .stored(let stored): stored.shape
        }
    }

    func withFloats<R>(_ body: (UnsafePointer<Float>) -> R) -> R {
        switch self {
        case .owned(let tensor): tensor.withUnsafePointer(body)
        case .stored(let stored): stored.withFloats(body)
        }
    }
}

/// A fully connected layer y = x·Wᵀ + b, with W stored [out, in] as in PyTorch.
package struct Linear {
    let weight: MatrixWeight
    let bias: [Float]?
    package var inputs: Int { weight.shape[1] }
    package var outputs: Int { weight.shape[0] }

    init(_ source: WeightSource, _ name: String, inputs: Int, outputs: Int) throws {
        weight = .owned(try source.tensor("\(name).weight", shape: [outputs, inputs]))
        bias = try source.tensor("\(name).bias", shape: [outputs]).scalars
    }

    /// A layer over `weight` [outputs, inputs], with an optional bias of `outputs` values.
    package init(weight: MatrixWeight, bias: [Float]?) {
        precondition(weight.shape.count == 2 && (bias == nil || bias!.count == weight.shape[0]), "Linear needs [out, in] and out biases")
        self.weight = weight
        self.bias = bias
    }

    /// Rows per sgemm call. OpenBLAS's result for a row depends on the M of the call it is in
    /// (edge tiles accumulate in another order), so rows are cut into blocks fixed by the
    /// problem, never by the thread count: 1 thread or 16 give the same bits.
    static let rowsPerBlock = 256

    /// Applies the layer to `rows` rows of `x` (row stride `inputs`), writing rows of `outputs`;
    /// the row blocks are shared out among the compute threads.
    package func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        let blocks = (rows + Self.rowsPerBlock - 1) / Self.rowsPerBlock
        let (inputs, outputs) = (inputs, outputs)
        weight.withFloats { w in
            ComputeThreads.forEachSlice(of: blocks, parts: ComputeThreads.count) { slice in
                for block in slice {
                    let first = block * Self.rowsPerBlock, count = min(Self.rowsPerBlock, rows - first)
                    if let bias {
                        // Seed each output row with the bias and accumulate the product onto it (beta = 1).
                        bias.withUnsafeBufferPointer { b in
                            for row in first..<(first + count) { (y + row * outputs).update(from: b.baseAddress!, count: outputs) }
                        }
                    }
                    BLAS.gemm(transposeB: true, m: count, n: outputs, k: inputs,
                              a: x + first * inputs, lda: inputs, b: w, ldb: inputs,
                              beta: bias == nil ? 0 : 1, c: y + first * outputs, ldc: outputs)
                }
            }
        }
    }

    package func apply(_ x: Tensor, rows: Int) -> Tensor {
        var y = Tensor.uninitialized([rows, outputs])
        x.withUnsafePointer { xp in y.withUnsafeMutablePointer { apply(xp, rows: rows, into: $0) } }
        return y
    }
}

/// Learned layer-norm scale and offset.
struct LayerNormWeights {
    let weight: [Float]
    let bias: [Float]

    init(_ source: WeightSource, _ name: String, width: Int) throws {
        weight = try source.tensor("\(name).weight", shape: [width]).scalars
        bias = try source.tensor("\(name).bias", shape: [width]).scalars
    }

    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        weight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                Kernels.layerNorm(x, into: y, rows: rows, width: weight.count,
                                  affine: .weightBias(w.baseAddress!, b.baseAddress!))
            }
        }
    }
}
