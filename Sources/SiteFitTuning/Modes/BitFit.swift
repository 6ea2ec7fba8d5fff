import SiteFitNN

extension FineTuningMode {
    /// Only bias terms (Ben Zaken, Ravfogel & Goldberg, arXiv:2106.10199): every Linear bias and
    /// every LayerNorm β, nothing else.
    public static let bitfit = FineTuningMode(
        name: "bitfit", summary: "every Linear bias and LayerNorm β (Ben Zaken et al., arXiv:2106.10199)",
        selects: { spec, _ in spec.role.isBiasTerm })

    /// Bias terms plus the task head's weight (the BitFit paper also trains the new head).
    public static let bitfitHead = FineTuningMode(
        name: "bitfit+head", summary: "BitFit's bias terms plus the head's weight",
        selects: { spec, _ in spec.role.isBiasTerm || spec.role == .headWeight })
}
