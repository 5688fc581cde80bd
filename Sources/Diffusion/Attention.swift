/// Multi-head attention over sequences laid out inside a token matrix.
///
/// A sequence is `length` rows starting at `firstRow`, `rowStride` rows apart: contiguous rows
/// for spatial attention (the tokens of one frame), rows one frame apart for temporal attention
/// (one patch position through time). Both products of each (sequence, head) are single sgemm
/// calls that read the heads straight out of the packed QKV matrix through the leading
/// dimension, so nothing is gathered or copied.
package struct SelfAttention {
    let qkv: Linear
    let out: Linear
    let heads: Int

    init(_ source: WeightSource, _ name: String, width: Int, heads: Int) throws {
        qkv = try Linear(source, "\(name).qkv", inputs: width, outputs: 3 * width)
        out = try Linear(source, "\(name).out", inputs: width, outputs: width)
        self.heads = heads
    }

    package struct Layout {
        let sequences: Int
        let length: Int
        let firstRow: (Int) -> Int
        let rowStride: Int

        package init(sequences: Int, length: Int, firstRow: @escaping (Int) -> Int, rowStride: Int) {
            self.sequences = sequences; self.length = length; self.firstRow = firstRow; self.rowStride = rowStride
        }
    }

    /// Attention of `rows` tokens of `x` (already normalised) under `layout`, into `result`.
    func apply(_ x: UnsafePointer<Float>, rows: Int, layout: Layout, into result: UnsafeMutablePointer<Float>) {
        let width = out.outputs
        var packed = Tensor.uninitialized([rows, 3 * width])
        var mixed = Tensor.uninitialized([rows, width])
        packed.withUnsafeMutablePointer { qkvp in
            qkv.apply(x, rows: rows, into: qkvp)
            mixed.withUnsafeMutablePointer { mp in
                Self.attend(queries: qkvp, queryStride: 3 * width,
                            keys: qkvp + width, values: qkvp + 2 * width, keyStride: 3 * width,
                            output: mp, outputStride: width, width: width, heads: heads, layout: layout,
                            keyLength: { _ in layout.length }, keyFirstRow: layout.firstRow, keyRowStride: layout.rowStride)
            }
        }
        mixed.withUnsafePointer { out.apply($0, rows: rows, into: result) }
    }

    /// softmax(Q·Kᵀ/√d)·V per sequence and head. Queries of sequence s are at rows
    /// `layout.firstRow(s) + i·layout.rowStride`; its keys and values at `keyFirstRow(s) + j·keyRowStride`.
    package static func attend(
        queries: UnsafePointer<Float>, queryStride: Int,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, keyStride: Int,
        output: UnsafeMutablePointer<Float>, outputStride: Int,
        width: Int, heads: Int, layout: Layout,
        keyLength: (Int) -> Int, keyFirstRow: (Int) -> Int, keyRowStride: Int,
        scoreBudget: Int = 1 << 24, keyTile: Int = 2048
    ) {
        let headWidth = width / heads
        let scale = 1 / Float(headWidth).squareRoot()
        let maxKeys = (0..<layout.sequences).map(keyLength).max() ?? 0
        let pairs = layout.sequences * heads
        let cost = layout.length * maxKeys * headWidth * 4
        // (sequence, head) pairs are independent and write disjoint output columns: one slice
        // of them per thread, each with its own score matrix.
        // A long sequence's score matrix is cut into blocks of query rows so that it stays within
        // `scoreBudget` floats; shorter ones (all of reel-shapes') run as one block, as before.
        // Sequences with more keys than `keyTile` go through key tiles with an online softmax
        // instead (`attendTiled`): scratch of a few tiles, whatever the length.
        let queryBlock = layout.length * maxKeys <= scoreBudget ? layout.length : max(1, scoreBudget / max(1, maxKeys))
        ComputeThreads.forEachSlice(of: pairs, parts: pairs * cost >= 1 << 20 ? ComputeThreads.count : 1) { slice in
            let s = UnsafeMutablePointer<Float>.allocate(capacity: max(1, min(layout.length, queryBlock) * min(maxKeys, keyTile)))
            defer { s.deallocate() }
            var tiles: TileScratch?  // made by the first long sequence of the slice
            for pair in slice {
                let (sequence, head) = pair.quotientAndRemainder(dividingBy: heads)
                let queryRow = layout.firstRow(sequence), keyRow = keyFirstRow(sequence)
                let keyCount = keyLength(sequence)
                let column = head * headWidth
                let k = keys + keyRow * keyStride + column, v = values + keyRow * keyStride + column
                let qStride = queryStride * layout.rowStride, kStride = keyStride * keyRowStride
                let oStride = outputStride * layout.rowStride
                if keyCount > keyTile {
                    let scratch = tiles ?? TileScratch(queryRows: Self.tiledQueryRows, keyTile: keyTile, width: headWidth)
                    tiles = scratch
                    attendTiled(q: queries + queryRow * queryStride + column, qStride: qStride, k: k, v: v, kStride: kStride,
                                o: output + queryRow * outputStride + column, oStride: oStride,
                                queries: layout.length, keys: keyCount, keyTile: keyTile, width: headWidth, scale: scale, scratch: scratch)
                    continue
                }
                var first = 0
                while first < layout.length {
                    let rows = min(queryBlock, layout.length - first)
                    let q = queries + queryRow * queryStride + column + first * qStride
                    let o = output + queryRow * outputStride + column + first * oStride
                    BLAS.gemm(transposeB: true, m: rows, n: keyCount, k: headWidth, alpha: scale,
                              a: q, lda: qStride, b: k, ldb: kStride, c: s, ldc: keyCount)
                    for row in 0..<rows { Kernels.softmax(s + row * keyCount, count: keyCount) }
                    BLAS.gemm(m: rows, n: headWidth, k: keyCount, a: s, lda: keyCount, b: v, ldb: kStride,
                              c: o, ldc: oStride)
                    first += rows
                }
            }
            tiles?.deallocate()
        }
    }

    /// Query rows a tiled pass takes at once: enough for sgemm to run near its peak.
    static let tiledQueryRows = 128

    /// Per-thread scratch of the tiled pass: one block of scores, the running output, and each
    /// row's running maximum and sum.
    struct TileScratch {
        let scores, accumulated, maxima, sums: UnsafeMutablePointer<Float>

        init(queryRows: Int, keyTile: Int, width: Int) {
            scores = .allocate(capacity: max(1, queryRows * keyTile))
            accumulated = .allocate(capacity: max(1, queryRows * width))
            maxima = .allocate(capacity: max(1, queryRows))
            sums = .allocate(capacity: max(1, queryRows))
        }

        func deallocate() {
            for buffer in [scores, accumulated, maxima, sums] { buffer.deallocate() }
        }
    }

    /// softmax(Q·Kᵀ·scale)·V for one (sequence, head) with keys in tiles of `keyTile`: each
    /// row keeps the largest score seen so far and the sum of exponentials under it; a new
    /// tile's larger maximum rescales both and the output accumulated so far. The same blocks
    /// in the same order whatever the thread count, so the bits do not depend on it.
    static func attendTiled(q: UnsafePointer<Float>, qStride: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>, kStride: Int,
                            o: UnsafeMutablePointer<Float>, oStride: Int, queries: Int, keys: Int, keyTile: Int, width: Int,
                            scale: Float, scratch: TileScratch) {
        let (scores, accumulated, maxima, sums) = (scratch.scores, scratch.accumulated, scratch.maxima, scratch.sums)
        var first = 0
        while first < queries {
            let rows = min(tiledQueryRows, queries - first)
            let qBlock = q + first * qStride
            for row in 0..<rows { maxima[row] = -.infinity; sums[row] = 0 }
            var key = 0
            while key < keys {
                let count = min(keyTile, keys - key)
                BLAS.gemm(transposeB: true, m: rows, n: count, k: width, alpha: scale,
                          a: qBlock, lda: qStride, b: k + key * kStride, ldb: kStride, c: scores, ldc: count)
                for row in 0..<rows {
                    let s = scores + row * count
                    let maximum = max(maxima[row], Kernels.maximum(s, count: count))
                    // exp(−∞) is 0: the first tile starts the sums rather than rescaling them.
                    let rescale = maxima[row] == -.infinity ? 0 : Kernels.scalarExp(maxima[row] - maximum)
                    sums[row] = sums[row] * rescale + Kernels.exponentiate(s, count: count, minus: maximum)
                    maxima[row] = maximum
                    if key > 0 { for j in 0..<width { accumulated[row * width + j] *= rescale } }
                }
                BLAS.gemm(m: rows, n: width, k: count, a: scores, lda: count, b: v + key * kStride, ldb: kStride,
                          beta: key == 0 ? 0 : 1, c: accumulated, ldc: width)
                key += count
            }
            let out = o + first * oStride
            for row in 0..<rows {
                let inverse = 1 / sums[row]
                for j in 0..<width { out[row * oStride + j] = accumulated[row * width + j] * inverse }
            }
            first += rows
        }
    }
}

/// Attention from video tokens to the prompt's text tokens: queries from the video, keys and
/// values projected from the text encoder's output. Each video in the batch reads its own prompt.
struct CrossAttention {
    let query: Linear
    let keyValue: Linear
    let out: Linear
    let heads: Int

    init(_ source: WeightSource, _ name: String, width: Int, textWidth: Int, heads: Int) throws {
        query = try Linear(source, "\(name).q", inputs: width, outputs: width)
        keyValue = try Linear(source, "\(name).kv", inputs: textWidth, outputs: 2 * width)
        out = try Linear(source, "\(name).out", inputs: width, outputs: width)
        self.heads = heads
    }

    /// `x` holds `contexts.count` videos of `tokensPerVideo` rows each.
    func apply(_ x: UnsafePointer<Float>, tokensPerVideo: Int, contexts: [TextEmbedding],
               into result: UnsafeMutablePointer<Float>) {
        let width = out.outputs
        let rows = tokensPerVideo * contexts.count
        var q = Tensor.uninitialized([rows, width])
        var mixed = Tensor.uninitialized([rows, width])
        // All prompts' keys and values in one matrix; video b reads rows keyStart[b]..<+count.
        let textRows = contexts.reduce(0) { $0 + $1.tokens }
        var text = [Float]()
        text.reserveCapacity(textRows * keyValue.inputs)
        var keyStart: [Int] = []
        for context in contexts { keyStart.append(text.count / keyValue.inputs); text += context.values.scalars }
        let kv = keyValue.apply(Tensor(shape: [textRows, keyValue.inputs], scalars: text), rows: textRows)

        q.withUnsafeMutablePointer { qp in
            query.apply(x, rows: rows, into: qp)
            kv.withUnsafePointer { kvp in
                mixed.withUnsafeMutablePointer { mp in
                    let layout = SelfAttention.Layout(sequences: contexts.count, length: tokensPerVideo,
                                                      firstRow: { $0 * tokensPerVideo }, rowStride: 1)
                    SelfAttention.attend(queries: qp, queryStride: width,
                                         keys: kvp, values: kvp + width, keyStride: 2 * width,
                                         output: mp, outputStride: width, width: width, heads: heads, layout: layout,
                                         keyLength: { contexts[$0].tokens }, keyFirstRow: { keyStart[$0] }, keyRowStride: 1)
                }
            }
        }
        mixed.withUnsafePointer { out.apply($0, rows: rows, into: result) }
    }
}

/// Two linear layers with a GELU between them.
struct FeedForward {
    let up: Linear
    let down: Linear

    init(_ source: WeightSource, _ name: String, width: Int, ratio: Int) throws {
        up = try Linear(source, "\(name).fc1", inputs: width, outputs: width * ratio)
        down = try Linear(source, "\(name).fc2", inputs: width * ratio, outputs: width)
    }

    func apply(_ x: UnsafePointer<Float>, rows: Int, into result: UnsafeMutablePointer<Float>) {
        var hidden = Tensor.uninitialized([rows, up.outputs])
        hidden.withUnsafeMutablePointer { hp in
            up.apply(x, rows: rows, into: hp)
            Kernels.gelu(hp, count: rows * up.outputs)
            down.apply(hp, rows: rows, into: result)
        }
    }
}
