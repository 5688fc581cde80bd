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

/// A fully connected layer y = x·Wᵀ + b, with W stored [out, in] as in PyTorch.
struct Linear {
    let weight: Tensor
    let bias: [Float]
    var inputs: Int { weight.shape[1] }
    var outputs: Int { weight.shape[0] }

    init(_ source: WeightSource, _ name: String, inputs: Int, outputs: Int) throws {
        weight = try source.tensor("\(name).weight", shape: [outputs, inputs])
        bias = try source.tensor("\(name).bias", shape: [outputs]).scalars
    }

    /// Rows per sgemm call. OpenBLAS's result for a row depends on the M of the call it is in
    /// (edge tiles accumulate in another order), so rows are cut into blocks fixed by the
    /// problem, never by the thread count: 1 thread or 16 give the same bits.
    static let rowsPerBlock = 256

    /// Applies the layer to `rows` rows of `x` (row stride `inputs`), writing rows of `outputs`;
    /// the row blocks are shared out among the compute threads.
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        let blocks = (rows + Self.rowsPerBlock - 1) / Self.rowsPerBlock
        bias.withUnsafeBufferPointer { b in
            weight.withUnsafePointer { w in
                ComputeThreads.forEachSlice(of: blocks, parts: ComputeThreads.count) { slice in
                    for block in slice {
                        let first = block * Self.rowsPerBlock, count = min(Self.rowsPerBlock, rows - first)
                        // Seed each output row with the bias and accumulate the product onto it (beta = 1).
                        for row in first..<(first + count) { (y + row * outputs).update(from: b.baseAddress!, count: outputs) }
                        BLAS.gemm(transposeB: true, m: count, n: outputs, k: inputs,
                                  a: x + first * inputs, lda: inputs, b: w, ldb: inputs,
                                  beta: 1, c: y + first * outputs, ldc: outputs)
                    }
                }
            }
        }
    }

    func apply(_ x: Tensor, rows: Int) -> Tensor {
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
