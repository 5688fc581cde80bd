import Diffusion
import Foundation
import Testing
import Wan

/// Int8 weights on the tiny parity-checked model: still within a stated distance of diffusers,
/// part by part; really quantised (the text encoder and transformer move, the VAE does not);
/// smaller; and a render stays close to the stored weights' render.
@Suite struct WanInt8Tests {
    /// What int8 may cost against the reference: 3 % of the largest value of each part. The
    /// tiny model's rows are 12 to 40 values wide, so each is one block of one scale; measured
    /// errors are 1.7 % for the text encoder and 0.5 % for the transformer.
    static let tolerance = 3e-2

    @Test func int8StaysWithinItsToleranceOfTheReferencePartByPart() throws {
        let reference = try SafeTensorsFile(path: "\(WanParityTests.fixtures)/reference.safetensors")
        let int8 = try WanReferenceCheck(model: WanModel(directory: WanParityTests.modelDirectory, weights: .int8),
                                         reference: reference, tolerance: Self.tolerance).run()
        let stored = try WanParityTests.check("reference.safetensors")
        #expect(int8.count == stored.count)
        for (quantised, exact) in zip(int8, stored) {
            #expect(quantised.passed, "\(quantised.line)")
            if quantised.part.hasPrefix("text_encoder") || quantised.part.hasPrefix("transformer") || quantised.part.hasPrefix("pipeline") {
                #expect(quantised.relativeError > 10 * exact.relativeError, "\(quantised.part) did not move: is it quantised?")
            } else {
                #expect(quantised.relativeError == exact.relativeError, "\(quantised.part) runs as stored at int8 too")
            }
        }
    }

    @Test func aRenderAtInt8StaysCloseAndItsWeightsAreSmaller() throws {
        let request = WanRequest(prompt: "a cat walks along a wall", width: 64, height: 64, frames: 9, steps: 3, guidance: 5, seed: 7)
        let report = try WanPrecisionCheck(directory: WanParityTests.modelDirectory, request: request).run()
        #expect(report.textRelativeError > 0 && report.textRelativeError < 3e-2, "text \(report.textRelativeError)")
        #expect(report.velocityRelativeError > 0 && report.velocityRelativeError < 2e-2, "velocity \(report.velocityRelativeError)")
        #expect(report.videoPSNR > 40 && report.videoPSNR.isFinite, "PSNR \(report.videoPSNR) dB")
        // The fixture stores f32: int8 and a scale per row is about a quarter.
        #expect(Double(report.linearBytesAtWeights) < 0.3 * Double(report.linearBytesStored), "\(report.linearBytesAtWeights) of \(report.linearBytesStored) bytes")
    }

    @Test func psnrIsInfiniteForEqualVideosAndFallsWithTheError() {
        let a: [UInt8] = [0, 100, 200, 255]
        #expect(WanPrecisionCheck.psnr(a, a) == .infinity)
        let off = a.map { $0 == 255 ? 254 : $0 + 1 }  // every value one step away: MSE 1
        #expect(abs(WanPrecisionCheck.psnr(a, off) - 20 * log10(255)) < 1e-9)
    }
}
