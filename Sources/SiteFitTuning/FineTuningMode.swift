import SiteFitNN

/// Which parameters a site fine-tunes and sends.
///
/// - `full`: every tensor of the pretrained network.
/// - `bitfit`: only bias terms (Ben Zaken, Ravfogel & Goldberg, arXiv:2106.10199): every Linear
///   bias and every LayerNorm β, nothing else.
/// - `bitfit+head`: bias terms plus the task head (the paper also trains the new head).
/// - `head`: the last Linear layer only.
/// - `lora`: the LoRA factors A and B (Hu et al., arXiv:2106.09685), optionally with bias terms.
/// - `adapter`: the adapters only (Houlsby et al., arXiv:1902.00751).
public enum FineTuningMode: String, Sendable, Codable, CaseIterable, Equatable {
    case full
    case bitfit
    case bitfitHead = "bitfit+head"
    case head
    case lora
    case adapter

    /// The tensors this mode trains in `layout`. `withBiases` adds the bias terms to LoRA.
    public func selection(for layout: ParameterLayout, withBiases: Bool = false) -> ParameterSelection {
        let chosen = layout.tensors.filter { spec in
            switch self {
            case .full: !spec.isExtension
            case .bitfit: spec.role.isBiasTerm
            case .bitfitHead: spec.role.isBiasTerm || spec.role == .headWeight
            case .head: spec.role == .headWeight || spec.role == .headBias
            case .lora: spec.role == .loraA || spec.role == .loraB || (withBiases && spec.role.isBiasTerm)
            case .adapter: spec.role == .adapterWeight || spec.role == .adapterBias
            }
        }
        return ParameterSelection(layout: layout, tensorNames: chosen.map(\.name))
    }

    /// Whether the mode needs extra tensors in the model (LoRA factors or adapters).
    public var extendsModel: Bool { self == .lora || self == .adapter }

    /// The network an arm of this mode trains: `mlp` itself, or extended with the mode's units
    /// (LoRA factors, adapters); the new tensors start as the identity change.
    public func network(extending mlp: MLP, lora: LoRAConfiguration?, adapter: AdapterConfiguration?) -> MLP {
        switch self {
        case .lora: lora.map { $0.extend(mlp) } ?? mlp
        case .adapter: adapter.map { $0.extend(mlp) } ?? mlp
        default: mlp
        }
    }
}
