import Foundation

/// Timesteps of a rectified-flow sampling run, from t = 1 (pure noise) down to t = 0 (the video).
///
/// Uniform steps are warped by `shift` as t' = s·t / (1 + (s − 1)·t): a shift above 1 spends
/// more of the steps at high noise, which larger canvases need. The schedule is kept apart
/// from the samplers so any sampler runs on any schedule.
public struct FlowSchedule: Sendable, Equatable {
    public let times: [Float]

    public init(steps: Int, shift: Float = 1) {
        precondition(steps > 0 && shift > 0)
        times = (0...steps).map { i in
            let t = 1 - Double(i) / Double(steps)
            return Float(Double(shift) * t / (1 + (Double(shift) - 1) * t))
        }
    }

    /// An explicit, strictly decreasing list of times in [0, 1].
    public init(times: [Float]) {
        precondition(times.count >= 2 && zip(times, times.dropFirst()).allSatisfy { $0 > $1 }
                     && times.first! <= 1 && times.last! >= 0, "times must fall strictly within [0, 1]")
        self.times = times
    }

    public var steps: Int { times.count - 1 }
}

/// A velocity field v(x, t): what the denoiser predicts (noise − clean) for a batch at time t.
public typealias VelocityField = (Tensor, Float) -> Tensor

/// ODE samplers for the flow dx/dt = v(x, t), integrated from t = 1 to t = 0.
public enum Sampler: String, CaseIterable, Sendable, Codable {
    case euler
    case heun
    /// DPM-Solver++(2M), multistep second order on the data prediction x₀ = x − t·v.
    case dpmpp2m = "dpm++2m"

    /// Denoiser evaluations per step.
    public var evaluationsPerStep: Int { self == .heun ? 2 : 1 }

    /// What a multistep sampler carries from one step to the next. A farm ships it with a
    /// shard so the next shard continues exactly where this one stopped.
    public struct State: Sendable, Equatable {
        /// DPM-Solver++(2M): the data prediction of the previous step.
        public var previousPrediction: Tensor?
        public init(previousPrediction: Tensor? = nil) { self.previousPrediction = previousPrediction }
    }

    /// Runs steps `steps` of `schedule` from `x`, calling `onStep` after each with its index.
    public func run(_ velocity: VelocityField, _ x: Tensor, _ schedule: FlowSchedule,
                    steps: Range<Int>? = nil, state: inout State, onStep: (Int) -> Void = { _ in }) -> Tensor {
        var x = x
        for i in steps ?? 0..<schedule.steps {
            switch self {
            case .euler: x = Self.eulerStep(velocity, x, schedule, i)
            case .heun: x = Self.heunStep(velocity, x, schedule, i)
            case .dpmpp2m: x = Self.dpmSolverStep(velocity, x, schedule, i, &state)
            }
            onStep(i)
        }
        return x
    }

    public func run(_ velocity: VelocityField, _ x: Tensor, _ schedule: FlowSchedule) -> Tensor {
        var state = State()
        return run(velocity, x, schedule, state: &state)
    }

    static func eulerStep(_ v: VelocityField, _ x: Tensor, _ schedule: FlowSchedule, _ i: Int) -> Tensor {
        let (t, next) = (schedule.times[i], schedule.times[i + 1])
        return x.adding(v(x, t), scaledBy: next - t)
    }

    /// Heun's method: an Euler predictor, then the trapezoid of the two slopes.
    static func heunStep(_ v: VelocityField, _ x: Tensor, _ schedule: FlowSchedule, _ i: Int) -> Tensor {
        let (t, next) = (schedule.times[i], schedule.times[i + 1])
        let slope = v(x, t)
        let predicted = x.adding(slope, scaledBy: next - t)
        let slopeAtNext = v(predicted, next)
        return x.adding(slope.adding(slopeAtNext), scaledBy: (next - t) / 2)
    }

    /// One step of DPM-Solver++(2M) with α = 1 − t, σ = t. The exponential-integrator update
    /// x' = (σ'/σ)·x + (α' − α·σ'/σ)·D uses D = x₀ (first order) on the first and last steps,
    /// where λ = log(α/σ) is infinite, and the two-step extrapolation of x₀ in between.
    static func dpmSolverStep(_ v: VelocityField, _ x: Tensor, _ schedule: FlowSchedule, _ i: Int,
                              _ state: inout State) -> Tensor {
        let (t, next) = (Double(schedule.times[i]), Double(schedule.times[i + 1]))
        let prediction = x.adding(v(x, Float(t)), scaledBy: Float(-t))
        var direction = prediction
        if let previous = state.previousPrediction, i > 0, next > 0, schedule.times[i - 1] < 1 {
            let before = Double(schedule.times[i - 1])
            let h = lambda(next) - lambda(t), hPrevious = lambda(t) - lambda(before)
            let r = hPrevious / h
            direction = prediction.combined(Float(1 + 1 / (2 * r)), previous, Float(-1 / (2 * r)))
        }
        state.previousPrediction = prediction
        let ratio = next / t
        return x.combined(Float(ratio), direction, Float((1 - next) - (1 - t) * ratio))
    }

    /// Half log signal-to-noise ratio of time t.
    static func lambda(_ t: Double) -> Double { log((1 - t) / t) }
}
