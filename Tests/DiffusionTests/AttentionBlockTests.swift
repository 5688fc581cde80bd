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
}
