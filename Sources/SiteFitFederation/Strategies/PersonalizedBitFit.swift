import SiteFitNN

/// Personalised BitFit: the weights a site trains are federated with FedAvg, while its bias terms
/// never leave the site and are evaluated there. Bias terms are few and cheap to keep, and they
/// absorb what differs between sites (prevalence, lab calibration) without pulling the shared
/// weights towards any one site.
public struct PersonalizedBitFit: FederatedStrategy {
    public init() {}

    public var name: String { "personalized" }

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
