import SiteFitNN

extension FineTuningMode {
    /// The last Linear layer only (the classic transfer-learning baseline).
    public static let head = FineTuningMode(
        name: "head", summary: "the last Linear layer only",
        selects: { spec, _ in spec.role == .headWeight || spec.role == .headBias })
}
