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

/// A weight matrix held as f32 in memory, as stored in a mapped file (F16/BF16 are widened for
/// the duration of one product, so a narrow model never exists whole in f32), or quantised to
/// int8 (dequantised the same way).
package enum MatrixWeight: @unchecked Sendable {
    case owned(Tensor)
    case stored(StoredTensor)
    case int8(Int8Matrix)

    var shape: [Int] {
        switch self {
        case .owned(let tensor): tensor.shape
        case .stored(let stored): stored.shape
        case .int8(let matrix): [matrix.rows, matrix.columns]
        }
    }

    func withFloats<R>(_ body: (UnsafePointer<Float>) -> R) -> R {
        switch self {
        case .owned(let tensor): tensor.withUnsafePointer(body)
        case .stored(let stored): stored.withFloats(body)
        case .int8(let matrix): matrix.withFloats(body)
        }
    }

    /// Whether products must widen the weight: it is not f32 in memory.
    var needsWidening: Bool {
        switch self {
        case .owned: false
        case .stored(let stored): stored.float32Pointer == nil
        case .int8: true
        }
    }

    /// Writes rows `range` as f32 to `out` (room for their values).
    func widen(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let columns = shape[1]
        switch self {
        case .owned(let tensor):
            tensor.withUnsafePointer { out.update(from: $0 + range.lowerBound * columns, count: range.count * columns) }
        case .stored(let stored): stored.widen(into: out, range: (range.lowerBound * columns)..<(range.upperBound * columns))
        case .int8(let matrix): matrix.widen(rows: range, into: out)
        }
    }
}

/// A fully connected layer y = x·Wᵀ + b, with W stored [out, in] as in PyTorch.
package struct Linear {
    package let weight: MatrixWeight
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

    /// Bytes its weight takes as held (a stored one, in its file's element type).
    package var weightBytes: Int {
        switch weight {
        case .owned(let tensor): tensor.count * MemoryLayout<Float>.size
        case .stored(let stored): stored.count * stored.dtype.size
        case .int8(let matrix): matrix.bytes
        }
    }

    /// The same layer with its weight quantised to int8 (`Int8Matrix`), widened a row at a time.
    package func quantised() -> Linear {
        let weight = weight
        return Linear(weight: .int8(Int8Matrix(rows: outputs, columns: inputs) { row, out in weight.widen(rows: row..<(row + 1), into: out) }),
                      bias: bias)
    }

    /// Rows per sgemm call. OpenBLAS's result for a row depends on the M of the call it is in
    /// (edge tiles accumulate in another order), so rows are cut into blocks fixed by the
    /// problem, never by the thread count: 1 thread or 16 give the same bits.
    static let rowsPerBlock = 256

    /// Outputs per sgemm call when a large matrix meets few rows (a prompt's tokens): the
    /// outputs, not the rows, are then shared among the threads, each widening and multiplying
    /// its own slice of the weight. Fixed, like `rowsPerBlock`, so the bits do not depend on
    /// the thread count.
    static let outputsPerBlock = 256
    /// Below this many weights a matrix is always cut by rows (every reel-shapes layer is).
    static let largeMatrix = 1 << 22

    /// Applies the layer to `rows` rows of `x` (row stride `inputs`), writing rows of `outputs`;
    /// the row blocks (or, for a large matrix and few rows, the output blocks) are shared out
    /// among the compute threads.
    package func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        let blocks = (rows + Self.rowsPerBlock - 1) / Self.rowsPerBlock
        let (inputs, outputs) = (inputs, outputs)
        if blocks < 2 * ComputeThreads.count, inputs * outputs >= Self.largeMatrix {
            return applyByOutputs(x, rows: rows, into: y)
        }
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

    private func applyByOutputs(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        let (inputs, outputs) = (inputs, outputs)
        let blocks = (outputs + Self.outputsPerBlock - 1) / Self.outputsPerBlock
        func multiply(_ first: Int, _ count: Int, _ w: UnsafePointer<Float>) {
            if let bias {
                bias.withUnsafeBufferPointer { b in
                    for row in 0..<rows { (y + row * outputs + first).update(from: b.baseAddress! + first, count: count) }
                }
            }
            BLAS.gemm(transposeB: true, m: rows, n: count, k: inputs, a: x, lda: inputs, b: w, ldb: inputs,
                      beta: bias == nil ? 0 : 1, c: y + first, ldc: outputs)
        }
        guard weight.needsWidening else {
            // f32 in memory: each block reads its rows in place.
            weight.withFloats { w in
                ComputeThreads.forEachSlice(of: blocks, parts: ComputeThreads.count) { slice in
                    for block in slice {
                        let first = block * Self.outputsPerBlock
                        multiply(first, min(Self.outputsPerBlock, outputs - first), w + first * inputs)
                    }
                }
            }
            return
        }
        // Narrow or quantised weights: each thread widens only its blocks' rows.
        ComputeThreads.forEachSlice(of: blocks, parts: ComputeThreads.count) { slice in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Self.outputsPerBlock * inputs)
            defer { scratch.deallocate() }
            for block in slice {
                let first = block * Self.outputsPerBlock, count = min(Self.outputsPerBlock, outputs - first)
                weight.widen(rows: first..<(first + count), into: scratch)
                multiply(first, count, scratch)
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
