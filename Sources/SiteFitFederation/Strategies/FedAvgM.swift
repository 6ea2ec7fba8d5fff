/// FedAvgM: federated averaging with server momentum (Hsu, Qi & Brown, "Measuring the Effects of
/// Non-Identical Data Distribution for Federated Visual Classification", arXiv:1909.06335, §3).
///
/// As in the paper, the round's update is Δ = w − average, the step FedAvg takes as w ← w − Δ.
/// FedAvgM keeps a velocity v ← β·v + Δ and steps w ← w − η·v, so the direction of past rounds
/// carries through rounds whose sites pull different ways (the paper's non-IID setting); the
/// effective step is η/(1 − β), so a larger β usually wants a smaller η. With η = 1 and β = 0
/// the step is FedAvg's: computed in Double, w − (w − average) is the average to the last bit
/// whenever neither of the two Floats exceeds the other by more than 2²⁸.
public struct FedAvgM: FederatedStrategy {
    /// η, the server's step along the velocity.
    public let learningRate: Double
    /// β, the share of last round's velocity kept.
    public let momentum: Double
    /// v, one per shared value, in Double because it sums over many rounds; it starts at 0.
    public private(set) var velocity: [Double]

    public init(learningRate: Double, momentum: Double, count: Int) {
        self.learningRate = learningRate
        self.momentum = momentum
        velocity = [Double](repeating: 0, count: count)
    }

    /// One server step: v ← β·v + (w − average); w ← w − η·v.
    public static func step(current: [Float], average: [Float], velocity: inout [Double],
                            learningRate: Double, momentum: Double) -> [Float] {
        precondition(current.count == average.count && current.count == velocity.count)
        var next = current
        for i in current.indices {
            let w = Double(current[i])
            velocity[i] = momentum * velocity[i] + (w - Double(average[i]))
            next[i] = Float(w - learningRate * velocity[i])
        }
        return next
    }

    public var carried: [[Double]] { [velocity] }

    public mutating func restore(carried: [[Double]]) -> Bool {
        guard carried.count == 1, carried[0].count == velocity.count else { return false }
        velocity = carried[0]
        return true
    }

    public mutating func nextGlobal(current: [Float], average: [Float]) -> [Float] {
        Self.step(current: current, average: average, velocity: &velocity, learningRate: learningRate, momentum: momentum)
    }

    public var name: String { Self.descriptor.name }

    /// η = 1 is the paper's update, which has no server learning rate (w ← w − v). Same key and
    /// range as the adaptive optimisers' η; their default (0.01) suits their normalised step, not this one.
    public static let learningRateSetting = StrategySetting(
        key: "server_learning_rate", range: 1e-6...100, expected: "a positive learning rate up to 100",
        defaultValue: 1, meaning: "η, the server's step along the velocity")
    /// β = 0.9, the usual momentum; β = 1 would never forget a round, hence the open upper bound.
    public static let momentumSetting = StrategySetting(
        key: "server_momentum", range: 0...(1.0).nextDown, expected: "a number from 0 to below 1",
        defaultValue: 0.9, meaning: "β, the share of last round's velocity kept")

    /// How scenarios name and build it: `server_learning_rate` and `server_momentum` on the arm.
    public static let descriptor = StrategyDescriptor(
        name: "fedavgm",
        summary: "FedAvgM: FedAvg with server momentum, v ← βv + (w − average), w ← w − ηv (Hsu et al., arXiv:1909.06335).",
        settings: [learningRateSetting, momentumSetting],
        make: { values, count in FedAvgM(learningRate: values[learningRateSetting], momentum: values[momentumSetting], count: count) })
}
