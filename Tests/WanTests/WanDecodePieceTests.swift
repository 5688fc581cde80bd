import Diffusion
import Foundation
import Testing
import Wan

/// A long video is decoded in pieces on several workers; each piece decodes `decoderReach`
/// latent frames before its own and drops their frames. The reach is the decoder's causal
/// reach, so the stitched frames are those of one decode of the whole video, bit for bit.
@Suite struct WanDecodePieceTests {
    static func latents(frames: Int, channels: Int) -> Clip {
        let noise = NoiseField(seed: 5).tensor(step: 0, frames: 0..<frames, channels: channels, height: 2, width: 2)
        return Clip(frames: frames, channels: channels, height: 2, width: 2, data: noise.scalars)
    }

    @Test func aPieceDecodedAfterTheDecodersReachEqualsTheWholeDecode() throws {
        let model = try WanModel(directory: WanParityTests.modelDirectory)
        let vae = try model.vae(), reach = model.vaeConfig.decoderReach, t = model.vaeConfig.temporalFactor
        #expect(reach == 31, "the tiny VAE: 2 + 8 + 8 + 2 at the latent rate, 4 + 1 at twice it, 2 + 2 at four times, 0.5 for conv_out, rounded up, and one more")
        let latent = Self.latents(frames: reach + 4, channels: model.vaeConfig.zDim)
        let whole = vae.decode(latent)
        // The piece: the last three latent frames, and what one whole decode gives for them.
        let own = (latent.frames - 3)..<latent.frames
        let expected = whole.frames((1 + (own.lowerBound - 1) * t)..<whole.frames)
        func piece(context: Int) -> Clip {
            let first = own.lowerBound - context
            let decoded = vae.decode(latent.frames(first..<own.upperBound))
            return decoded.frames((1 + (own.lowerBound - first - 1) * t)..<decoded.frames)
        }
        #expect(piece(context: reach).data == expected.data, "bit for bit with the decoder's reach before it")
        #expect(piece(context: 4).data != expected.data, "four frames of context are not enough: the seam would show")
    }

    @Test func theReachOfWan21sVAEIsThirtyNineLatentFrames() throws {
        // Wan 2.1's published VAE: base 96, dim_mult [1, 2, 4, 4], two residual blocks a level.
        let json = """
        {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": [],
         "temperal_downsample": [false, true, true], "latents_mean": [], "latents_std": []}
        """
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let config = try decoder.decode(WanVAEConfig.self, from: Data(json.utf8))
        #expect(config.decoderReach == 39)
    }
}
