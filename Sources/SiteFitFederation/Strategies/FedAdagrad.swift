/// FedAdagrad (Reddi et al., arXiv:2003.00295): v ← v + Δ², so the server's step size only ever
/// shrinks for coordinates that keep moving.
public struct FedAdagrad: AdaptiveServerStrategy {
    public let settings: ServerOptimizerSettings
    public var moments: AdaptiveMoments

    public init(settings: ServerOptimizerSettings, count: Int) {
        self.settings = settings
        moments = AdaptiveMoments(count: count, tau: settings.tau)
    }

    /// How scenarios name and build it: the server optimiser's `server_*` settings on the arm.
    public static let descriptor = StrategyDescriptor(
        name: "fedadagrad",
        summary: "FedAdagrad: the server's v ← v + Δ², a step that only shrinks (Reddi et al., arXiv:2003.00295).",
        settings: ServerOptimizerSettings.adaptiveSettings,
        make: { values, count in FedAdagrad(settings: ServerOptimizerSettings(values), count: count) })

    /// Adagrad's running sum of Δ² (β₂ plays no part).
    public static func secondMoment(_ v: Double, squaredDelta: Double, beta2: Double) -> Double { v + squaredDelta }
}
