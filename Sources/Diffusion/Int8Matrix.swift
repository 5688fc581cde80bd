/// How a model's linear layers hold their weight matrices.
public enum WeightPrecision: String, Sendable, CaseIterable, Codable {
    /// As the files store them (F32, F16 or BF16), widened to f32 a product at a time.
    case stored
    /// Int8 with one f32 scale per block of `Int8Matrix.blockSize` inputs of an output row,
    /// made from the stored weights when the part loads: half of BF16's bytes, so a model
    /// twice as large fits a machine. Products still run in f32; only the weights are rounded.
    case int8

    /// The value a spec leaves unset takes.
    public static let `default` = WeightPrecision.stored

    /// The accepted values, for errors and `--help`.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// A weight matrix [rows, columns] (PyTorch's [out, in]) quantised to int8, symmetric, with one
/// scale per block of `blockSize` consecutive columns of a row: w ≈ q · scale, q in −127...127,
/// scale = max |w| of the block / 127. A block's scale follows its own largest weight, so an
/// outlier costs the precision of 64 weights rather than of its whole row.
package final class Int8Matrix: @unchecked Sendable {
    package static let blockSize = 64

    package let rows: Int, columns: Int
    /// Scales per row: ⌈columns / blockSize⌉.
    package let blocksPerRow: Int
    private let values: UnsafeMutablePointer<Int8>
    private let scales: UnsafeMutablePointer<Float>

    /// Quantises a matrix whose rows `row(r, into:)` writes as f32, `columns` at a time; rows
    /// are shared among the compute threads, each quantised alone, so the result does not
    /// depend on the thread count.
    package init(rows: Int, columns: Int, row: (Int, UnsafeMutablePointer<Float>) -> Void) {
        precondition(rows > 0 && columns > 0, "Int8Matrix needs a non-empty matrix")
        self.rows = rows
        self.columns = columns
        blocksPerRow = (columns + Self.blockSize - 1) / Self.blockSize
        values = .allocate(capacity: rows * columns)
        scales = .allocate(capacity: rows * blocksPerRow)
        let (values, scales, blocksPerRow) = (values, scales, blocksPerRow)
        ComputeThreads.forEachSlice(of: rows, parts: ComputeThreads.count) { slice in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: columns)
            defer { scratch.deallocate() }
            for r in slice {
                row(r, scratch)
                for b in 0..<blocksPerRow {
                    let start = b * Self.blockSize, end = min(columns, start + Self.blockSize)
                    // The largest magnitude, compared as bits: for floats of one sign their
                    // order is the integers' (so the loop vectorises), and inf and NaN lie above
                    // every finite value.
                    var largestBits: UInt32 = 0
                    for c in start..<end { largestBits = max(largestBits, scratch[c].bitPattern & 0x7FFF_FFFF) }
                    let largest = Float(bitPattern: largestBits)
                    let q = values + r * columns, inverse = 127 / largest
                    guard largest.isFinite, inverse.isFinite else {
                        // An all-zero block (or one below 1e-37) stays zero; a block holding inf
                        // or NaN has no scale that represents it, and zero is the one value
                        // that cannot spread.
                        scales[r * blocksPerRow + b] = 0
                        for c in start..<end { q[c] = 0 }
                        continue
                    }
                    scales[r * blocksPerRow + b] = largest / 127
                    // |w| · 127 / largest is at most 127. Adding 1.5 · 2²³ rounds it to the
                    // nearest integer, ties to even, into the low bits of the sum: its low byte
                    // is the int8, without a conversion that checks its range.
                    for c in start..<end {
                        q[c] = Int8(truncatingIfNeeded: (scratch[c] * inverse + 12_582_912).bitPattern)
                    }
                }
            }
        }
    }

    deinit {
        values.deallocate()
        scales.deallocate()
    }

    /// Bytes held: the int8 values and their scales.
    package var bytes: Int { rows * columns + rows * blocksPerRow * MemoryLayout<Float>.size }

    /// Writes rows `range` dequantised, as f32 row-major, to `out`.
    package func widen(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        var o = out
        for r in range {
            let q = values + r * columns, s = scales + r * blocksPerRow
            for b in 0..<blocksPerRow {
                let start = b * Self.blockSize, end = min(columns, start + Self.blockSize)
                let scale = s[b]
                for c in start..<end { o[c] = Float(q[c]) * scale }
            }
            o += columns
        }
    }

    /// Runs `body` on the whole matrix dequantised, in scratch widened by all the compute
    /// threads that lives only for the call.
    package func withFloats<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: rows * columns)
        defer { scratch.deallocate() }
        let columns = columns
        ComputeThreads.forEachSlice(of: rows, parts: ComputeThreads.count) { slice in
            widen(rows: slice, into: scratch + slice.lowerBound * columns)
        }
        return try body(scratch)
    }
}
