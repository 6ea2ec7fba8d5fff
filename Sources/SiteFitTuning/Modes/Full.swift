import SiteFitNN

extension FineTuningMode {
    /// Every tensor of the pretrained network.
    public static let full = FineTuningMode(
        name: "full", summary: "every tensor of the pretrained network",
        selects: { spec, _ in !spec.isExtension })
}
