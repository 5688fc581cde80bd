import Diffusion
import Foundation

/// What holding a model's weights at another precision (int8) costs in accuracy, against the
/// weights as stored, on one request: the text encoder's embedding, the transformer's guided
/// velocity on the same inputs, and the rendered video as 8-bit frames. Each precision runs in
/// turn, the first let go before the second loads, so the peak is one model's.
public struct WanPrecisionCheck {
    public struct Report: Codable, Sendable {
        public var weights: String
        /// ‖e′ − e‖ / ‖e‖ of the prompt's embedding.
        public var textRelativeError: Double
        /// ‖v′ − v‖ / ‖v‖ of the first step's guided velocity, both from the stored embeddings
        /// (the transformer's own error).
        public var velocityRelativeError: Double
        /// max |v′ − v| / max |v| of the same.
        public var velocityMaxRelativeError: Double
        /// PSNR of the rendered frames at 8 bits, each precision with its own embeddings.
        public var videoPSNR: Double
        /// Bytes the text encoder's and transformer's linear weights take, as stored and at
        /// `weights`.
        public var linearBytesStored: Int, linearBytesAtWeights: Int
    }

    public let directory: String
    public let request: WanRequest
    public let weights: WeightPrecision

    public init(directory: String, request: WanRequest, weights: WeightPrecision = .int8) {
        self.directory = directory; self.request = request; self.weights = weights
    }

    struct Pass {
        var embedding: Tensor
        /// Both prompts' embeddings as the velocity was computed with them.
        var context: Tensor
        var velocity: Tensor
        var frames: [UInt8]
        var linearBytes: Int
    }

    /// Runs both precisions; `progress` hears which one is running.
    public func run(progress: (String) -> Void = { _ in }) throws -> Report {
        progress(WeightPrecision.stored.rawValue)
        let stored = try pass(.stored, reference: nil)
        progress(weights.rawValue)
        let other = try pass(weights, reference: stored)
        let velocity = Self.errors(other.velocity.scalars, stored.velocity.scalars)
        return Report(weights: weights.rawValue,
                      textRelativeError: Self.errors(other.embedding.scalars, stored.embedding.scalars).l2,
                      velocityRelativeError: velocity.l2, velocityMaxRelativeError: velocity.max,
                      videoPSNR: Self.psnr(other.frames, stored.frames),
                      linearBytesStored: stored.linearBytes, linearBytesAtWeights: other.linearBytes)
    }

    /// One precision: its embedding, the first step's guided velocity (with `reference`'s
    /// embeddings when given, so that only the transformer differs), and its whole render.
    func pass(_ precision: WeightPrecision, reference: Pass?) throws -> Pass {
        let model = try WanModel(directory: directory, weights: precision)
        let pipeline = WanPipeline(model: model)
        try pipeline.validate(request)
        let guided = request.guidance != 1
        let embedding = try model.encode(prompt: request.prompt)
        let context = try reference?.context ?? Tensor.stacked(guided ? [embedding, try model.encode(prompt: request.negativePrompt)] : [embedding])
        let scheduler = FlowUniPC(config: model.schedulerConfig, steps: request.steps, shift: request.shift)
        let transformer = try model.transformer()
        let velocity = transformer.guidedVelocity(pipeline.noise(request), timestep: scheduler.timesteps[0], context: context,
                                                  guidance: request.guidance)
        let video = try pipeline.generate(request)
        return Pass(embedding: embedding, context: context, velocity: velocity, frames: Self.bytes(video.data),
                    linearBytes: try model.textEncoder().linearBytes + transformer.linearBytes)
    }

    /// Relative L2 and max-magnitude errors of `actual` against `expected`.
    static func errors(_ actual: [Float], _ expected: [Float]) -> (l2: Double, max: Double) {
        var difference = 0.0, norm = 0.0, largestDifference = 0.0, largest = 0.0
        for (a, e) in zip(actual, expected) {
            let d = Double(a) - Double(e)
            difference += d * d; norm += Double(e) * Double(e)
            largestDifference = max(largestDifference, abs(d)); largest = max(largest, abs(Double(e)))
        }
        return ((difference / max(norm, 1e-300)).squareRoot(), largestDifference / max(largest, 1e-300))
    }

    /// Frames in [-1, 1] as the encoder writes them: 8-bit, rounded.
    static func bytes(_ values: [Float]) -> [UInt8] {
        values.map { UInt8(max(0, min(255, (($0 + 1) * 127.5).rounded()))) }
    }

    /// Peak signal-to-noise ratio of two 8-bit videos, in dB; infinity when they are equal.
    public static func psnr(_ a: [UInt8], _ b: [UInt8]) -> Double {
        precondition(a.count == b.count && !a.isEmpty, "PSNR needs two videos of the same size")
        var squares = 0.0
        for (x, y) in zip(a, b) { let d = Double(x) - Double(y); squares += d * d }
        let mse = squares / Double(a.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }
}
