import SiteFitCore
import SiteFitNN
import SiteFitScenario
import SiteFitTransformer
import SiteFitTuning

/// A network the simulation federates: the MLP over hand-picked features or the transformer over
/// code sequences. Everything after pretraining (arms, baselines, evaluation) is written once over it.
public protocol FederatedModel: NeuralModel, Equatable {
    /// The network `arm` trains: this one, or extended with the mode's tensors (LoRA, adapters, (IA)³).
    func network(for arm: Scenario.Arm) -> Self
    /// Values for this (extended) network from `baseModel`'s: shared tensors copied, new ones initialised.
    func parameters(extending base: [Float], of baseModel: Self, random: inout RandomStream) -> [Float]
}

extension MLP: FederatedModel {
    public func network(for arm: Scenario.Arm) -> MLP { arm.mode.network(extending: self, settings: arm.modeSettings) }
}

extension Transformer: FederatedModel {
    public func network(for arm: Scenario.Arm) -> Transformer { arm.mode.transformer(extending: self, settings: arm.modeSettings) }
}
