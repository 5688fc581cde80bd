import Diffusion
import Foundation
import Testing

/// Attention over a long sequence cuts its score matrix into blocks of query rows (Wan at
/// 832x480x81 has 32,760 tokens: a whole score matrix would be 4.3 GB per head). Each row's
/// softmax is unchanged, so blocked and whole attention agree (to the last bits OpenBLAS may
/// order differently for another M).
@Suite struct AttentionBlockTests {
    @Test func blockedAttentionMatchesWholeAttention() {
        let (length, width, heads) = (301, 16, 2)
        var generator = SystemRandomNumberGenerator()
        let qkv = (0..<(length * 3 * width)).map { _ in Float.random(in: -2...2, using: &generator) }
        func attend(budget: Int) -> [Float] {
            var out = [Float](repeating: 0, count: length * width)
            qkv.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    let layout = SelfAttention.Layout(sequences: 1, length: length, firstRow: { _ in 0 }, rowStride: 1)
                    SelfAttention.attend(queries: p.baseAddress!, queryStride: 3 * width, keys: p.baseAddress! + width,
                                         values: p.baseAddress! + 2 * width, keyStride: 3 * width, output: o.baseAddress!,
                                         outputStride: width, width: width, heads: heads, layout: layout,
                                         keyLength: { _ in length }, keyFirstRow: { _ in 0 }, keyRowStride: 1, scoreBudget: budget)
                }
            }
            return out
        }
        let whole = attend(budget: 1 << 24)
        for budget in [length * 64, length * 7, length] {      // blocks of 64, 7 and 1 query rows
            let blocked = attend(budget: budget)
            let error = zip(whole, blocked).map { abs($0 - $1) }.max()!
            #expect(error < 1e-5, "budget \(budget): differs by \(error)")
        }
    }

    /// `length` queries of each of `sequences` sequences attending to `keyCount` keys of their
    /// own (seeded noise, keys scaled up so the softmax is peaked), in tiles of `keyTile` keys.
    static func attention(queries length: Int, keys keyCount: Int, width: Int = 16, heads: Int = 2, sequences: Int = 2,
                          keyTile: Int, seed: UInt64 = 3) -> [Float] {
        let q = NoiseField(seed: seed).tensor(step: 0, frames: 0..<1, channels: 1, height: sequences * length, width: width, originY: 0, originX: 0).scalars
        let kv = NoiseField(seed: seed + 1).tensor(step: 0, frames: 0..<1, channels: 1, height: sequences * keyCount, width: 2 * width,
                                                   originY: 0, originX: 0).scalars.map { $0 * 3 }
        var out = [Float](repeating: 0, count: sequences * length * width)
        q.withUnsafeBufferPointer { qp in
            kv.withUnsafeBufferPointer { kvp in
                out.withUnsafeMutableBufferPointer { o in
                    let layout = SelfAttention.Layout(sequences: sequences, length: length, firstRow: { $0 * length }, rowStride: 1)
                    SelfAttention.attend(queries: qp.baseAddress!, queryStride: width, keys: kvp.baseAddress!,
                                         values: kvp.baseAddress! + width, keyStride: 2 * width, output: o.baseAddress!,
                                         outputStride: width, width: width, heads: heads, layout: layout,
                                         keyLength: { _ in keyCount }, keyFirstRow: { $0 * keyCount }, keyRowStride: 1, keyTile: keyTile)
                }
            }
        }
        return out
    }

    /// Keys in tiles with an online softmax give the plain attention's result, for odd lengths
    /// and tiles that do not divide them, one key per tile included, and query counts above and
    /// below a tiled block's rows.
    @Test(arguments: [(1, 1), (7, 301), (129, 300), (300, 1029)])
    func tiledAttentionMatchesPlainAttention(queries: Int, keys: Int) {
        let plain = Self.attention(queries: queries, keys: keys, keyTile: .max)
        for tile in [1, 7, 64, keys - 1] where tile >= 1 && tile < keys {
            let tiled = Self.attention(queries: queries, keys: keys, keyTile: tile)
            let error = zip(plain, tiled).map { abs($0 - $1) }.max()!
            #expect(error < 2e-5, "\(queries) queries, \(keys) keys in tiles of \(tile): differs by \(error)")
        }
    }

    /// The tiled pass runs each (sequence, head) on one thread in a fixed order of blocks: the
    /// same bits on one thread and on several.
    @Test func tiledAttentionIsBitIdenticalAcrossThreadCounts() {
        let original = ComputeThreads.count
        defer { ComputeThreads.set(original) }
        ComputeThreads.set(1)
        let one = Self.attention(queries: 257, keys: 1000, width: 32, heads: 4, sequences: 3, keyTile: 96)
        ComputeThreads.set(3)
        let three = Self.attention(queries: 257, keys: 1000, width: 32, heads: 4, sequences: 3, keyTile: 96)
        #expect(zip(one, three).allSatisfy { $0.bitPattern == $1.bitPattern })
    }
}
