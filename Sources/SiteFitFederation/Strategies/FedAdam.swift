/// FedAdam: the server applies Adam to the pseudo-gradient (Reddi et al., arXiv:2003.00295),
/// with v ← β₂v + (1−β₂)Δ².
public struct FedAdam: FederatedStrategy {
    public let settings: ServerOptimizerSettings
    public private(set) var moments: AdaptiveMoments

    public init(settings: ServerOptimizerSettings, count: Int) {
        self.settings = settings
        moments = AdaptiveMoments(count: count, tau: settings.tau)
    }

    /// How scenarios name and build it: the server optimiser's `server_*` settings on the arm.
    public static let descriptor = StrategyDescriptor(
        name: "fedadam",
        summary: "FedAdam: Adam on the server's pseudo-gradient, v ← β₂v + (1−β₂)Δ² (Reddi et al., arXiv:2003.00295).",
        settings: ServerOptimizerSettings.adaptiveSettings,
        make: { values, count in FedAdam(settings: ServerOptimizerSettings(values), count: count) })

    public var name: String { Self.descriptor.name }
    public var carried: [[Double]] { moments.carried }
    public mutating func restore(carried: [[Double]]) -> Bool { moments.restore(carried) }

    /// Adam's exponential moving average of Δ².
    public static func secondMoment(_ v: Double, squaredDelta: Double, beta2: Double) -> Double {
        beta2 * v + (1 - beta2) * squaredDelta
    }

    public mutating func nextGlobal(current: [Float], average: [Float]) -> [Float] {
        let beta2 = settings.beta2
        return moments.step(current: current, average: average, settings: settings) {
            Self.secondMoment($0, squaredDelta: $1, beta2: beta2)
        }
    }
}
