import SiteFitNN
import SiteFitTuning

/// Personalised BitFit: the weights a site trains are federated with FedAvg, while its bias terms
/// never leave the site and are evaluated there. Bias terms are few and cheap to keep, and they
/// absorb what differs between sites (prevalence, lab calibration) without pulling the shared
/// weights towards any one site.
public struct PersonalizedBitFit: FederatedStrategy {
    public init() {}

    /// How scenarios name and build it. A mode that trains only bias terms would share nothing.
    public static let descriptor = StrategyDescriptor(
        name: "personalized",
        summary: "Personalised BitFit: weights federated with FedAvg, bias terms kept and evaluated at each site (BitFit, arXiv:2106.10199).",
        modeProblem: { mode in
            [FineTuningMode.full, .bitfitHead, .head].contains(mode) ? nil
                : "personalized keeps bias terms local and shares the rest; mode '\(mode.rawValue)' trains nothing else to share (use full, bitfit+head or head)"
        },
        make: { _, _ in PersonalizedBitFit() })

    public var name: String { Self.descriptor.name }
    /// Nothing is carried between rounds.
    public var carried: [[Double]] { [] }
    public mutating func restore(carried: [[Double]]) -> Bool { carried.isEmpty }

    /// Everything trained except bias terms.
    public func shared(from trained: ParameterSelection) -> ParameterSelection {
        Self.sharedSelection(from: trained)
    }

    /// The trained tensors whose role is not a bias term, in the same order.
    public static func sharedSelection(from trained: ParameterSelection) -> ParameterSelection {
        trained.filter { !$0.role.isBiasTerm }
    }

    public mutating func nextGlobal(current: [Float], average: [Float]) -> [Float] { average }
}
