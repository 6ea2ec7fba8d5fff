// "How to read this report".
extension MarkdownReport {
    /// What each measure means and what it does not promise.
    static func howToReadSection(_ m: RunMetrics) -> String {
        var out = "## How to read this report\n\n"
        out += "- **Accuracy / AUROC**: the global model after the last round, scored on each site's held-out test patients "
        out += "(\(m.scenario.split ?? (m.scenario.dataset == .heartDisease ? "FLamby's fixed split" : "a random split stratified by outcome, drawn per seed"))). "
        out += "Pooled numbers weigh sites by their test size; the worst site shows who is left behind. With several seeds every number is a mean over them.\n"
        out += "- **Bias drift**: for each audited attribute, the gap between the best- and worst-treated groups (max − min) in "
        out += "selection rate (demographic parity), true-positive rate (equal opportunity), the larger of the TPR and FPR gaps "
        out += "(equalised odds), within-group AUROC and calibration in the large; drift is the final gap minus the \(start(m))'s, "
        out += "and its interval is the paired comparisons' (over seeds and test patients). A drift whose interval excludes 0 is marked **clear**.\n"
        out += "- **Parameters exposed**: the scalars in each site's update. BitFit sends only bias terms; "
        out += "full fine-tuning sends every tensor. Bytes are counted from the serialised messages, headers included.\n"
        out += "- **Local training**: multiply-add FLOPs of forward and backward passes; a frozen weight skips its weight-gradient product. "
        out += "Simulated time is local steps × the scenario's seconds per step (a compute model, not a clock), so reports stay reproducible.\n"
        out += "- Sending fewer parameters reduces what an update reveals, but it is **not by itself a privacy guarantee**: "
        out += "bias gradients still depend on patient data. Only ε (with δ) is a formal guarantee; the MIA AUC is one attack's measured success.\n\n"
        return out
    }
}
