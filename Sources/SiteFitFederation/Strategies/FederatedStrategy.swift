import SiteFitNN

/// A federated strategy: what a site shares, what it adds to local training, and how the server
/// turns the weighted average of the accepted updates into the next global model.
///
/// Each strategy lives in its own file with its maths as a pure static function; the conforming
/// value carries only the state that function threads from round to round (the adaptive moments).
/// The server applies the step after validation, DP noise and unmasking, so every strategy
/// composes with every privacy setting.
public protocol FederatedStrategy: Sendable {
    /// The name used in scenarios and reports (`fedavg`, `fedadam`, ...).
    var name: String { get }
    /// μ of the proximal term μ/2·‖w − w_global‖² each site adds to its local loss (FedProx); 0 otherwise.
    var proximalMu: Double { get }
    /// The part of a site's trained selection that leaves the site; the rest stays local.
    func shared(from trained: ParameterSelection) -> ParameterSelection
    /// The next global values of the shared tensors from the current ones and the weighted
    /// average of this round's accepted updates. Called once per aggregated round, never for a
    /// skipped one.
    mutating func nextGlobal(current: [Float], average: [Float]) -> [Float]
    /// What the strategy carries from round to round (moments, velocity): a restarted server
    /// writes it down after every round and must get the same next step from it. No default:
    /// a strategy with state that forgot it would resume wrong without a word.
    var carried: [[Double]] { get }
    /// Takes back what `carried` gave; false (and no change) when the arrays are not this strategy's shapes.
    mutating func restore(carried: [[Double]]) -> Bool
}

extension FederatedStrategy {
    public var proximalMu: Double { 0 }
    public func shared(from trained: ParameterSelection) -> ParameterSelection { trained }
}

/// Server learning rate η, momentum β₁, second-moment decay β₂ and adaptivity τ of the adaptive
/// server optimisers (Reddi et al., "Adaptive Federated Optimization", arXiv:2003.00295).
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

extension ServerOptimizerSettings {
    /// The arm settings FedAdam, FedYogi and FedAdagrad read, with the defaults scenarios have
    /// always had (β₂ = 0.999 and τ = 1e-8 as in Adam, a cautious η = 0.01), which are not this
    /// type's own defaults.
    public static let adaptiveSettings = [learningRateSetting, beta1Setting, beta2Setting, tauSetting]

    public static let learningRateSetting = StrategySetting(
        key: "server_learning_rate", range: 1e-6...100, expected: "a positive learning rate up to 100",
        defaultValue: 0.01, meaning: "η, the server's step size")
    public static let beta1Setting = StrategySetting(
        key: "server_beta1", range: 0...0.9999, expected: "a number from 0 to 0.9999",
        defaultValue: 0.9, meaning: "β₁, the momentum of the pseudo-gradient")
    public static let beta2Setting = StrategySetting(
        key: "server_beta2", range: 0...0.999999, expected: "a number from 0 to 0.999999",
        defaultValue: 0.999, meaning: "β₂, the decay of the second moment (FedAdagrad ignores it)")
    public static let tauSetting = StrategySetting(
        key: "server_tau", range: 1e-12...10, expected: "a positive number up to 10",
        defaultValue: 1e-8, meaning: "τ, the adaptivity: added to √v, and v starts at τ²")

    /// The settings an arm gave, each missing one at its default above.
    public init(_ values: StrategySettingValues) {
        self.init(learningRate: values[Self.learningRateSetting], beta1: values[Self.beta1Setting],
                  beta2: values[Self.beta2Setting], tau: values[Self.tauSetting])
    }
}

/// The moments FedAdam, FedYogi and FedAdagrad carry between rounds, and the step they share.
///
/// Algorithm 2 of Reddi et al.: the pseudo-gradient is Δ = average − w; m ← β₁m + (1−β₁)Δ;
/// v ← rule(v, Δ²); w ← w + η·m / (√v + τ). As in the paper m starts at 0 and v at τ², with no
/// bias correction. Only the second-moment rule differs between the three, so each strategy
/// file supplies that rule and nothing else.
public struct AdaptiveMoments: Sendable, Equatable {
    public var first: [Double]
    public var second: [Double]

    public init(count: Int, tau: Double) {
        first = [Double](repeating: 0, count: count)
        second = [Double](repeating: tau * tau, count: count)
    }

    /// Both moments, for a server's saved state.
    public var carried: [[Double]] { [first, second] }

    /// Takes back `carried`; false when the shapes differ.
    public mutating func restore(_ carried: [[Double]]) -> Bool {
        guard carried.count == 2, carried[0].count == first.count, carried[1].count == second.count else { return false }
        first = carried[0]
        second = carried[1]
        return true
    }

    /// One server step in Double (the moments span many rounds, so they are not kept in Float).
    public mutating func step(current: [Float], average: [Float], settings: ServerOptimizerSettings,
                              secondMoment rule: (_ v: Double, _ squaredDelta: Double) -> Double) -> [Float] {
        precondition(current.count == average.count && current.count == first.count && second.count == first.count)
        var next = current
        for i in current.indices {
            let delta = Double(average[i]) - Double(current[i])
            first[i] = settings.beta1 * first[i] + (1 - settings.beta1) * delta
            second[i] = rule(second[i], delta * delta)
            next[i] = Float(Double(current[i]) + settings.learningRate * first[i] / (second[i].squareRoot() + settings.tau))
        }
        return next
    }
}

/// FedAdam, FedYogi and FedAdagrad: a strategy that is `AdaptiveMoments` under one rule for v.
/// Its name, the state it carries and its step come from here, so the three files hold only
/// their rule and how scenarios name them.
public protocol AdaptiveServerStrategy: FederatedStrategy {
    var settings: ServerOptimizerSettings { get }
    /// Settable only so that this extension can step it; a scenario never sees it.
    var moments: AdaptiveMoments { get set }
    static var descriptor: StrategyDescriptor { get }
    /// v's next value after a round whose pseudo-gradient squared is `squaredDelta`.
    static func secondMoment(_ v: Double, squaredDelta: Double, beta2: Double) -> Double
}

extension AdaptiveServerStrategy {
    public var name: String { Self.descriptor.name }
    public var carried: [[Double]] { moments.carried }
    public mutating func restore(carried: [[Double]]) -> Bool { moments.restore(carried) }

    public mutating func nextGlobal(current: [Float], average: [Float]) -> [Float] {
        let beta2 = settings.beta2
        return moments.step(current: current, average: average, settings: settings) {
            Self.secondMoment($0, squaredDelta: $1, beta2: beta2)
        }
    }
}
