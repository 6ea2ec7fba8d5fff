/// FedYogi (Reddi et al., arXiv:2003.00295): v ← v − (1−β₂)Δ²·sign(v − Δ²). Unlike Adam, v
/// grows or shrinks additively, so one large round cannot wipe out the memory of small ones.
public struct FedYogi: AdaptiveServerStrategy {
    public let settings: ServerOptimizerSettings
    public var moments: AdaptiveMoments

    public init(settings: ServerOptimizerSettings, count: Int) {
        self.settings = settings
        moments = AdaptiveMoments(count: count, tau: settings.tau)
    }

    /// How scenarios name and build it: the server optimiser's `server_*` settings on the arm.
    public static let descriptor = StrategyDescriptor(
        name: "fedyogi",
        summary: "FedYogi: the server's v ← v − (1−β₂)Δ²·sign(v − Δ²) (Reddi et al., arXiv:2003.00295).",
        settings: ServerOptimizerSettings.adaptiveSettings,
        make: { values, count in FedYogi(settings: ServerOptimizerSettings(values), count: count) })

    /// Yogi's sign-controlled additive update of v.
    public static func secondMoment(_ v: Double, squaredDelta: Double, beta2: Double) -> Double {
        let sign: Double = v > squaredDelta ? 1 : (v < squaredDelta ? -1 : 0)
        return v - (1 - beta2) * squaredDelta * sign
    }
}
