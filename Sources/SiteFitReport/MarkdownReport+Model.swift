// The model section: what was trained, on what, and which named tensors it has.
extension MarkdownReport {
    /// The network (pretrained or from its seeded initialisation), its tensors and its features.
    static func modelSection(_ m: RunMetrics) -> String {
        if let t = m.model.transformer { return transformerSection(m, t) }
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

    /// A transformer scenario's model: the transformer, its vocabulary and pretraining, and the MLP
    /// that the `model: mlp` arms train on the same patients' features.
    static func transformerSection(_ m: RunMetrics, _ t: TransformerInfo) -> String {
        var out = m.pretraining.pretrained ? "## Pretrained model\n\n" : "## Model\n\n"
        out += "A transformer over each patient's sequence of codes (\(Format.integer(t.parameters)) parameters): \(t.layers) pre-LayerNorm "
        out += "encoder block\(t.layers == 1 ? "" : "s") of width \(t.width) with \(t.heads) attention head\(t.heads == 1 ? "" : "s") and a "
        out += "feed-forward width of \(t.feedForwardWidth), a mean over the patient's codes and a one-logit head. A sequence is the patient's "
        out += "conditions, drugs (as ingredients), procedures and measurements (low / normal / high) in the \(t.lookbackDays) days before "
        out += "the index date, oldest first, each with its time before the index date (8 buckets) and its visit; the \(t.maxLength) most "
        out += "recent are kept. On the test patients a sequence holds \(Format.fixed(t.meanCodes, 1)) codes on average, and "
        out += "\(Format.percent(t.truncatedShare)) fill all \(t.maxLength) places (cut, or exactly that long).\n\n"
        let v = t.vocabulary
        out += "**Vocabulary.** \(Format.integer(v.agreed)) codes, agreed without sharing rows: each site reported how many of its patients "
        out += "have each code, leaving out counts under \(v.minimumCount); the server kept codes at least \(v.minimumSites) sites reported, "
        out += "the most frequent first, at most \(Format.integer(v.maximum)). Any other code reads as *unknown*. "
        if !v.reported.isEmpty {
            out += "Reported: " + v.reported.keys.sorted().map { "\($0) \(Format.integer(v.reported[$0] ?? 0)) codes "
                + "(\(Format.bytes(v.bytesUp[$0] ?? 0)) up)" }.joined(separator: ", ") + "."
        }
        out += "\n\n"
        if m.pretraining.pretrained {
            out += "**Pretraining** on a synthetic source population of \(Format.integer(m.pretraining.sourcePatients)) patients "
            if let first = t.maskedLosses.first, let last = t.maskedLosses.last {
                out += "first by masked-code modelling for \(t.maskedLosses.count) epoch\(t.maskedLosses.count == 1 ? "" : "s") (BERT's "
                out += "corruption of 15 % of the codes; the cross-entropy on them went from \(Format.fixed(first)) to \(Format.fixed(last)), "
                out += "against \(Format.fixed(t.guessingLoss)) for a uniform guess), then "
            }
            out += "on the prediction task for \(m.pretraining.epochs) epochs; on held-out source patients it reached accuracy "
            out += "\(Format.fixed(m.pretraining.validationAccuracy)) and AUROC \(Format.fixed(m.pretraining.validationAuroc)).\n\n"
        } else {
            out += "Not pretrained: every transformer arm and baseline starts from the same initialisation drawn from the seed.\n\n"
        }
        out += "| tensor | shape | role |\n|---|---|---|\n"
        for tensor in t.tensors {
            out += "| `\(tensor.name)` | (\(tensor.shape.map(String.init).joined(separator: ", "))) | \(tensor.role) |\n"
        }
        out += "\n"
        if !t.mlpArms.isEmpty {
            out += "**The MLP** (\(t.mlpArms.map { "`\($0)`" }.joined(separator: ", "))): \(m.model.widths.map(String.init).joined(separator: " → ")) "
            out += "(\(Format.integer(t.mlpParameters)) parameters), "
            out += m.pretraining.pretrained ? "pretrained on the same source patients' features" : "from its own seeded initialisation"
            out += ", trained on the same sites' same patients, split the same way, and scored as it starts in the row `"
            out += ArmKind.Baseline.startingMLP.armName(startsPretrained: m.pretraining.pretrained) + "`. It sees age and sex, which the "
            out += "transformer's codes do not carry. Features (\(m.model.features.count)): "
            out += m.model.features.map { "`\($0)`" }.joined(separator: ", ") + ".\n\n"
        }
        return out
    }
}
