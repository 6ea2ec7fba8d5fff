/// FedProx (Li et al., arXiv:1812.06127): each site minimises its loss plus μ/2·‖w − w_global‖²,
/// which keeps heterogeneous sites from drifting far from the broadcast; the server averages as
/// FedAvg does.
///
/// The proximal gradient μ(w − w_global) is added inside the trainer (`TrainingConfiguration.proximalMu`),
/// where the broadcast values are at hand; `proximalGradient` is the same term as a pure function.
public struct FedProx: FederatedStrategy {
    public var mu: Double

    public init(mu: Double) { self.mu = mu }

    /// μ when an arm gives none: a light pull, in the range the FedProx paper tunes over.
    public static let muSetting = StrategySetting(
        key: "proximal_mu", range: 0...100, expected: "a number from 0 to 100", defaultValue: 0.01,
        meaning: "μ of the proximal term μ/2·‖w − w_global‖² each site adds to its local loss")

    /// How scenarios name and build it: `proximal_mu` on the arm.
    public static let descriptor = StrategyDescriptor(
        name: "fedprox",
        summary: "FedProx: FedAvg with a proximal term μ/2·‖w − w_global‖² in each site's loss (Li et al., arXiv:1812.06127).",
        settings: [muSetting],
        make: { values, _ in FedProx(mu: values[muSetting]) })

    public var name: String { Self.descriptor.name }
    /// Nothing is carried between rounds.
    public var carried: [[Double]] { [] }
    public mutating func restore(carried: [[Double]]) -> Bool { carried.isEmpty }
    public var proximalMu: Double { mu }

    /// ∂/∂w of μ/2·‖w − w_global‖².
    public static func proximalGradient(parameters: [Float], global: [Float], mu: Double) -> [Float] {
        precondition(parameters.count == global.count)
        return zip(parameters, global).map { Float(mu) * ($0 - $1) }
    }

    public mutating func nextGlobal(current: [Float], average: [Float]) -> [Float] { average }
}
