/// FedProx (Li et al., arXiv:1812.06127): each site minimises its loss plus μ/2·‖w − w_global‖²,
/// which keeps heterogeneous sites from drifting far from the broadcast; the server averages as
/// FedAvg does.
///
/// The proximal gradient μ(w − w_global) is added inside the trainer (`TrainingConfiguration.proximalMu`),
/// where the broadcast values are at hand; `proximalGradient` is the same term as a pure function.
public struct FedProx: FederatedStrategy {
    public var mu: Double

    public init(mu: Double) { self.mu = mu }

    public var name: String { "fedprox" }
    public var proximalMu: Double { mu }

    /// ∂/∂w of μ/2·‖w − w_global‖².
    public static func proximalGradient(parameters: [Float], global: [Float], mu: Double) -> [Float] {
        precondition(parameters.count == global.count)
        return zip(parameters, global).map { Float(mu) * ($0 - $1) }
    }

    public mutating func nextGlobal(current: [Float], average: [Float]) -> [Float] { average }
}
