import Diffusion
import Foundation

/// The published Wan scheduler: UniPC (a predictor-corrector multistep solver, "bh1"/"bh2"
/// variants) on flow-matching sigmas, predicting x₀ = x − σ·v. Timesteps and sigmas are made as
/// diffusers' UniPCMultistepScheduler makes them from scheduler_config.json, so the same steps
/// run at the same times.
public struct FlowUniPC: Sendable {
    /// σ of each step and a final 0 (steps + 1 values).
    public let sigmas: [Double]
    /// The transformer's timestep at each step (whole numbers, as the reference passes them).
    public let timesteps: [Float]
    let order: Int
    let lowerOrderFinal: Bool
    let bh2: Bool
    let disableCorrector: Set<Int>

    public init(config: WanSchedulerConfig, steps: Int, shift: Double? = nil) {
        precondition(steps > 0)
        let train = Double(config.numTrainTimesteps)
        let shift = shift ?? config.flowShift ?? 1
        // numpy.linspace(1, 1/train, steps + 1)[:-1], then the flow shift.
        let step = (1 / train - 1) / Double(steps)
        var sigmas = (0..<steps).map { i -> Double in
            let s = Double(i) * step + 1
            return shift * s / (1 + (shift - 1) * s)
        }
        if abs(sigmas[0] - 1) < 1e-6 { sigmas[0] -= 1e-6 }
        timesteps = sigmas.map { Float(Int64($0 * train)) }
        // The reference keeps sigmas in f32.
        self.sigmas = sigmas.map { Double(Float($0)) } + [0]
        order = config.solverOrder ?? 2
        lowerOrderFinal = config.lowerOrderFinal ?? true
        bh2 = (config.solverType ?? "bh2") == "bh2"
        disableCorrector = Set(config.disableCorrector ?? [])
    }

    public var steps: Int { timesteps.count }

    /// What carries from one step to the next (a farm ships it with a shard).
    public struct State: Sendable {
        public var predictions: [Tensor] = []     // x₀ of the latest steps, oldest first
        public var lowerOrders = 0
        public var lastSample: Tensor?
        public var lastOrder = 0
        public init() {}
    }

    /// One step: `velocity` is the (guided) model output for `sample` at step `index`.
    public func step(velocity: Tensor, index: Int, sample: Tensor, state: inout State) -> Tensor {
        let prediction = sample.adding(velocity, scaledBy: Float(-sigmas[index]))
        var sample = sample
        if index > 0, !disableCorrector.contains(index - 1), let last = state.lastSample {
            sample = corrector(prediction, index: index, last: last, this: sample, order: state.lastOrder, state: state)
        }
        state.predictions.append(prediction)
        if state.predictions.count > order { state.predictions.removeFirst() }
        var thisOrder = lowerOrderFinal ? min(order, steps - index) : order
        thisOrder = min(thisOrder, state.lowerOrders + 1)
        state.lastOrder = thisOrder
        state.lastSample = sample
        let next = predictor(index: index, sample: sample, order: thisOrder, state: state)
        state.lowerOrders = min(state.lowerOrders + 1, order)
        return next
    }

    private func lambda(_ sigma: Double) -> Double { log(1 - sigma) - log(sigma) }

    /// The b vector and the B(h) factor of UniPC's linear system.
    private func coefficients(h: Double, order: Int) -> (b: [Double], bh: Double, phi1: Double) {
        let hh = -h
        let phi1 = expm1(hh)
        var phiK = phi1 / hh - 1
        var factorial = 1.0
        let bh = bh2 ? expm1(hh) : hh
        var b: [Double] = []
        for i in 1...order {
            b.append(phiK * factorial / bh)
            factorial *= Double(i + 1)
            phiK = phiK / hh - 1 / factorial
        }
        return (b, bh, phi1)
    }

    private func predictor(index: Int, sample x: Tensor, order: Int, state: State) -> Tensor {
        let (sigmaT, sigmaS) = (sigmas[index + 1], sigmas[index])
        let alphaT = 1 - sigmaT
        let h = lambda(sigmaT) - lambda(sigmaS)
        let m0 = state.predictions.last!
        let (rks, differences) = earlier(state, order: order, h: h, lambdaS: lambda(sigmaS)) { sigmas[index - $0] }
        let (b, bh, phi1) = coefficients(h: h, order: order)
        var result = x.combined(Float(sigmaT / sigmaS), m0, Float(-alphaT * phi1))
        if !differences.isEmpty {
            let rhos: [Double] = order == 2 ? [0.5] : Self.solve(Self.powers(Array(rks.dropLast()), order - 1), Array(b.prefix(order - 1)))
            for (rho, difference) in zip(rhos, differences) {
                result = result.adding(difference, scaledBy: Float(-alphaT * bh * rho))
            }
        }
        return result
    }

    private func corrector(_ modelT: Tensor, index: Int, last x: Tensor, this: Tensor, order: Int, state: State) -> Tensor {
        let (sigmaT, sigmaS) = (sigmas[index], sigmas[index - 1])
        let alphaT = 1 - sigmaT
        let h = lambda(sigmaT) - lambda(sigmaS)
        let m0 = state.predictions.last!
        let (rks, differences) = earlier(state, order: order, h: h, lambdaS: lambda(sigmaS)) { sigmas[index - ($0 + 1)] }
        let (b, bh, phi1) = coefficients(h: h, order: order)
        let rhos: [Double] = order == 1 ? [0.5] : Self.solve(Self.powers(rks, order), b)
        var result = x.combined(Float(sigmaT / sigmaS), m0, Float(-alphaT * phi1))
        for (rho, difference) in zip(rhos.dropLast(), differences) {
            result = result.adding(difference, scaledBy: Float(-alphaT * bh * rho))
        }
        return result.adding(modelT.adding(m0, scaledBy: -1), scaledBy: Float(-alphaT * bh * rhos.last!))
    }

    /// For the `order − 1` predictions before the latest (m0): r_k, their λ distance over h, and
    /// D_k = (m_k − m0) / r_k; then r = 1 for m0 itself. `sigma(k)` is the σ of prediction k back.
    private func earlier(_ state: State, order: Int, h: Double, lambdaS: Double,
                         sigma: (Int) -> Double) -> (rks: [Double], differences: [Tensor]) {
        let m0 = state.predictions.last!
        var rks: [Double] = [], differences: [Tensor] = []
        for k in 1..<max(1, order) {
            let rk = (lambda(sigma(k)) - lambdaS) / h
            rks.append(rk)
            differences.append(state.predictions[state.predictions.count - 1 - k].combined(Float(1 / rk), m0, Float(-1 / rk)))
        }
        return (rks + [1], differences)
    }

    /// R[i][j] = rks[j]^i for i < n.
    private static func powers(_ rks: [Double], _ n: Int) -> [[Double]] {
        (0..<n).map { i in rks.prefix(n).map { pow($0, Double(i)) } }
    }

    /// Solves the small system a·x = b by Gaussian elimination with partial pivoting.
    private static func solve(_ a: [[Double]], _ b: [Double]) -> [Double] {
        var m = a, v = b
        let n = v.count
        for col in 0..<n {
            let pivot = (col..<n).max { abs(m[$0][col]) < abs(m[$1][col]) }!
            m.swapAt(col, pivot); v.swapAt(col, pivot)
            for row in (col + 1)..<n where n > col + 1 {
                let f = m[row][col] / m[col][col]
                for k in col..<n { m[row][k] -= f * m[col][k] }
                v[row] -= f * v[col]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for row in stride(from: n - 1, through: 0, by: -1) {
            var s = v[row]
            for k in (row + 1)..<n where n > row + 1 { s -= m[row][k] * x[k] }
            x[row] = s / m[row][row]
        }
        return x
    }
}
