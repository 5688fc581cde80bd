import Diffusion
import Testing

@Suite struct PhiloxTests {
    // Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
    @Test func knownAnswers() {
        let zero = Philox4x32(seed: 0).block((0, 0, 0, 0))
        #expect([zero.0, zero.1, zero.2, zero.3] == [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let ones = Philox4x32(seed: .max).block((.max, .max, .max, .max))
        #expect([ones.0, ones.1, ones.2, ones.3] == [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        let pi = Philox4x32(seed: 0x299f_31d0_a409_3822).block((0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344))
        #expect([pi.0, pi.1, pi.2, pi.3] == [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    @Test func framesGeneratedAloneEqualTheSameFramesOfTheWhole() {
        let field = NoiseField(seed: 1234)
        let whole = field.tensor(step: 0, frames: 0..<32, channels: 3, height: 8, width: 8)
        let part = field.tensor(step: 0, frames: 8..<24, channels: 3, height: 8, width: 8)
        #expect(part == whole.slices(8..<24))
    }

    @Test func aSpatialTileEqualsTheSameRegionOfTheWholeCanvas() {
        let field = NoiseField(seed: 99)
        let whole = field.tensor(step: 3, frames: 0..<2, channels: 3, height: 12, width: 16)
        let tile = field.tensor(step: 3, frames: 0..<2, channels: 3, height: 4, width: 8, originY: 5, originX: 6)
        for f in 0..<2 { for c in 0..<3 { for y in 0..<4 { for x in 0..<8 {
            #expect(tile.scalars[((f * 3 + c) * 4 + y) * 8 + x] == whole.scalars[((f * 3 + c) * 12 + y + 5) * 16 + x + 6])
        } } } }
    }

    @Test func noiseIsStandardNormalAndKeyedBySeedAndStep() {
        let field = NoiseField(seed: 7)
        let sample = field.tensor(step: 0, frames: 0..<4, channels: 3, height: 64, width: 64).scalars
        let mean = sample.reduce(0, +) / Float(sample.count)
        let variance = sample.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(sample.count)
        // 49,152 samples: the standard error of the mean is 0.0045, of the variance 0.0064.
        #expect(abs(mean) < 0.02)
        #expect(abs(variance - 1) < 0.03)
        #expect(field.sample(step: 1, frame: 0, channel: 0, y: 0, x: 0) != field.sample(step: 0, frame: 0, channel: 0, y: 0, x: 0))
        #expect(NoiseField(seed: 8).sample(step: 0, frame: 0, channel: 0, y: 0, x: 0) != field.sample(step: 0, frame: 0, channel: 0, y: 0, x: 0))
    }
}
