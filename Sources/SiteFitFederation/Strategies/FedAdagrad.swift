/// FedAdagrad (Reddi et al., arXiv:2003.00295): v ← v + Δ², so the server's step size only ever
/// shrinks for coordinates that keep moving.
public struct FedAdagrad: FederatedStrategy {
    public let settings: ServerOptimizerSettings
    public private(set) var moments: AdaptiveMoments

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

    public var name: String { Self.descriptor.name }
    public var carried: [[Double]] { moments.carried }
    public mutating func restore(carried: [[Double]]) -> Bool { moments.restore(carried) }

    /// Adagrad's running sum of Δ² (β₂ plays no part).
    public static func secondMoment(_ v: Double, squaredDelta: Double) -> Double { v + squaredDelta }

    public mutating func nextGlobal(current: [Float], average: [Float]) -> [Float] {
        moments.step(current: current, average: average, settings: settings) {
            Self.secondMoment($0, squaredDelta: $1)
        }
    }
}
