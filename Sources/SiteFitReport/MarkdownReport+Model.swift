// The model section: what was trained, on what, and which named tensors it has.
extension MarkdownReport {
    /// The network (pretrained or from its seeded initialisation), its tensors and its features.
    static func modelSection(_ m: RunMetrics) -> String {
        var out = ""
        let network = m.model.widths.count == 2 ? "A logistic regression \(m.model.widths[0]) → 1"
            : "An MLP \(m.model.widths.map(String.init).joined(separator: " → "))"
        if m.pretraining.pretrained {
            out += "## Pretrained model\n\n"
            out += "\(network) (\(Format.integer(m.model.parameters)) parameters) "
            out += "trained on \(m.pretraining.source ?? "a synthetic source population of \(Format.integer(m.pretraining.sourcePatients)) patients") for "
            out += "\(m.pretraining.epochs) epochs; on held-out source patients it reached accuracy "
            out += "\(Format.fixed(m.pretraining.validationAccuracy)) and AUROC \(Format.fixed(m.pretraining.validationAuroc)).\n\n"
        } else {
            out += "## Model\n\n"
            out += "\(network) (\(Format.integer(m.model.parameters)) parameters), not pretrained: every arm and baseline starts "
            out += "from the same initialisation drawn from the seed.\n\n"
        }
        out += "| tensor | shape | role |\n|---|---|---|\n"
        for t in m.model.tensors {
            out += "| `\(t.name)` | (\(t.shape.map(String.init).joined(separator: ", "))) | \(t.role) |\n"
        }
        out += m.scenario.covariates != nil
            ? "\nFeatures (\(m.model.features.count)): age, sex, visit count and 5-year age groups, then the automatic covariates the sites agreed "
                + "(`<table>.<concept id>.<window>d`: the concept in the window's days up to and including the index date): "
            : m.scenario.dataset == .omop ? "\nFeatures (\(m.model.features.count)), extracted by SQL from the look-back year before each index date: "
            : "\nFeatures (\(m.model.features.count)), FLamby's preprocessing of the UCI findings, read back from each shard by SQL: "
        out += m.model.features.map { "`\($0)`" }.joined(separator: ", ") + ".\n\n"
        return out
    }
}
