/// How the server turns the averaged update into the next global model.
///
/// - `fedAvg`: w ← Σ_k p_k·w_k (McMahan et al., arXiv:1602.05629).
/// - `fedAdam`, `fedYogi`, `fedAdagrad`: adaptive server optimisers (Reddi et al., "Adaptive
///   Federated Optimization", arXiv:2003.00295, Algorithm 2). The pseudo-gradient is
///   Δ = Σ_k p_k·w_k − w; then m ← β₁m + (1−β₁)Δ and
///   v ← β₂v + (1−β₂)Δ² (Adam), v ← v − (1−β₂)Δ²·sign(v − Δ²) (Yogi), v ← v + Δ² (Adagrad),
///   and w ← w + η·m / (√v + τ). As in the paper, m starts at 0 and v at τ², with no bias correction.
public enum ServerOptimizer: Sendable, Equatable {
    case fedAvg
    case fedAdam(ServerOptimizerSettings)
    case fedYogi(ServerOptimizerSettings)
    case fedAdagrad(ServerOptimizerSettings)
}

/// Server learning rate η, momentum β₁, second-moment decay β₂ and adaptivity τ.
public struct ServerOptimizerSettings: Sendable, Equatable {
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var tau: Double

    public init(learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.99, tau: Double = 1e-3) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.tau = tau
    }
}

/// The server optimiser's state and its pure update rule.
public struct ServerOptimizerState: Sendable, Equatable {
    public var firstMoment: [Double]
    public var secondMoment: [Double]

    public init(count: Int, optimizer: ServerOptimizer) {
        let tau: Double
        switch optimizer {
        case .fedAvg: tau = 0
        case .fedAdam(let s), .fedYogi(let s), .fedAdagrad(let s): tau = s.tau
        }
        firstMoment = [Double](repeating: 0, count: count)
        secondMoment = [Double](repeating: tau * tau, count: count)
    }

    /// The next global values from the current ones and the weighted average of the accepted updates.
    public mutating func step(global: [Float], average: [Float], optimizer: ServerOptimizer) -> [Float] {
        precondition(global.count == average.count && global.count == firstMoment.count)
        let settings: ServerOptimizerSettings
        switch optimizer {
        case .fedAvg: return average
        case .fedAdam(let s), .fedYogi(let s), .fedAdagrad(let s): settings = s
        }
        var next = global
        for i in global.indices {
            let delta = Double(average[i]) - Double(global[i])
            firstMoment[i] = settings.beta1 * firstMoment[i] + (1 - settings.beta1) * delta
            let square = delta * delta
            switch optimizer {
            case .fedAdam: secondMoment[i] = settings.beta2 * secondMoment[i] + (1 - settings.beta2) * square
            case .fedYogi:
                let sign: Double = secondMoment[i] > square ? 1 : (secondMoment[i] < square ? -1 : 0)
                secondMoment[i] -= (1 - settings.beta2) * square * sign
            case .fedAdagrad: secondMoment[i] += square
            case .fedAvg: break
            }
            next[i] = Float(Double(global[i]) + settings.learningRate * firstMoment[i] / (secondMoment[i].squareRoot() + settings.tau))
        }
        return next
    }
}
