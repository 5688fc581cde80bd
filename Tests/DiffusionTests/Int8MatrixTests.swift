import Diffusion
import Foundation
import Testing

/// Int8 weights: each block of 64 inputs of an output row keeps its own scale, every weight is
/// within half a step of its value, and a quantised layer multiplies exactly as an f32 layer
/// holding the dequantised weights would, on any number of threads.
@Suite struct Int8MatrixTests {
    static func random(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return range.lowerBound + Float(state >> 40) / Float(1 << 24) * (range.upperBound - range.lowerBound)
        }
    }

    static func matrix(_ values: [Float], rows: Int, columns: Int) -> Int8Matrix {
        values.withUnsafeBufferPointer { v in
            Int8Matrix(rows: rows, columns: columns) { row, out in out.update(from: v.baseAddress! + row * columns, count: columns) }
        }
    }

    static func dequantised(_ matrix: Int8Matrix) -> [Float] {
        var out = [Float](repeating: .nan, count: matrix.rows * matrix.columns)
        out.withUnsafeMutableBufferPointer { matrix.widen(rows: 0..<matrix.rows, into: $0.baseAddress!) }
        return out
    }

    /// 100 columns: a full block of 64 and a short one of 36, each with its own scale.
    @Test func everyWeightIsWithinHalfAStepOfItsBlock() {
        let (rows, columns) = (7, 100)
        var values = Self.random(rows * columns, seed: 1)
        for c in 64..<100 { values[2 * columns + c] *= 1000 }  // a loud block beside a quiet one
        let matrix = Self.matrix(values, rows: rows, columns: columns)
        #expect(matrix.blocksPerRow == 2)
        #expect(matrix.bytes == rows * columns + rows * 2 * 4)
        let back = Self.dequantised(matrix)
        for r in 0..<rows {
            for block in [0..<64, 64..<100] {
                let largest = block.map { abs(values[r * columns + $0]) }.max()!
                let step = largest / 127
                for c in block {
                    let i = r * columns + c
                    #expect(abs(back[i] - values[i]) <= step / 2 * 1.0001, "row \(r) column \(c): \(values[i]) came back \(back[i]), step \(step)")
                }
                // The largest weight of a block is a whole step count: it comes back exactly.
                let loudest = block.max { abs(values[r * columns + $0]) < abs(values[r * columns + $1]) }!
                #expect(abs(back[r * columns + loudest] - values[r * columns + loudest]) <= largest * 1e-6)
            }
        }
        // The quiet block of the loud row keeps its own precision.
        #expect(abs(back[2 * columns] - values[2 * columns]) <= 1.0 / 254 * 1.0001)
    }

    @Test func zeroAndNonFiniteBlocksBecomeZero() {
        var values = [Float](repeating: 0, count: 2 * 64)
        values[64 + 3] = .infinity
        values[64 + 4] = 5
        let back = Self.dequantised(Self.matrix(values, rows: 2, columns: 64))
        #expect(back.allSatisfy { $0 == 0 })
    }

    /// Both paths of a product (row blocks for many rows; output blocks for a large matrix and
    /// few rows, as umT5 runs a prompt) give the bits of an f32 layer over the dequantised
    /// weights, on one thread and on three.
    @Test func aQuantisedLayerMultipliesAsItsDequantisedWeights() {
        let original = ComputeThreads.count
        defer { ComputeThreads.set(original) }
        for (rows, inputs, outputs) in [(300, 96, 80), (5, 2048, 2100)] {
            let weights = Self.random(outputs * inputs, seed: 2, range: -0.2...0.2)
            let bias = Self.random(outputs, seed: 3)
            let x = Tensor(shape: [rows, inputs], scalars: Self.random(rows * inputs, seed: 4))
            let layer = Linear(weight: .owned(Tensor(shape: [outputs, inputs], scalars: weights)), bias: bias).quantised()
            guard case .int8(let matrix) = layer.weight else { Issue.record("quantised() kept \(layer.weight)"); return }
            let plain = Linear(weight: .owned(Tensor(shape: [outputs, inputs], scalars: Self.dequantised(matrix))), bias: bias)
            #expect(layer.weightBytes < outputs * inputs * 2 * 6 / 10, "int8 takes \(layer.weightBytes) bytes")
            var results: [[Float]] = []
            for threads in [1, 3] {
                ComputeThreads.set(threads)
                results.append(layer.apply(x, rows: rows).scalars)
                results.append(plain.apply(x, rows: rows).scalars)
            }
            #expect(results.dropFirst().allSatisfy { zip($0, results[0]).allSatisfy { $0.bitPattern == $1.bitPattern } },
                    "\(rows)x\(inputs)x\(outputs): the quantised layer's products differ")
            // And it is close to the layer it was made from.
            let exact = Linear(weight: .owned(Tensor(shape: [outputs, inputs], scalars: weights)), bias: bias).apply(x, rows: rows).scalars
            let error = zip(results[0], exact).map { abs($0 - $1) }.max()! / exact.map(abs).max()!
            #expect(error > 0 && error < 5e-3, "\(rows)x\(inputs)x\(outputs): relative error \(error)")
        }
    }

    @Test func precisionsAreNamed() {
        #expect(WeightPrecision(rawValue: "int8") == .int8 && WeightPrecision.default == .stored)
        #expect(WeightPrecision.names == "stored, int8")
    }
}
