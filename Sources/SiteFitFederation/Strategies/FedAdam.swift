/// FedAdam: the server applies Adam to the pseudo-gradient (Reddi et al., arXiv:2003.00295),
/// with v ← β₂v + (1−β₂)Δ².
public struct FedAdam: AdaptiveServerStrategy {
    public let settings: ServerOptimizerSettings
    public var moments: AdaptiveMoments

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

    /// Adam's exponential moving average of Δ².
    public static func secondMoment(_ v: Double, squaredDelta: Double, beta2: Double) -> Double {
        beta2 * v + (1 - beta2) * squaredDelta
    }
}
