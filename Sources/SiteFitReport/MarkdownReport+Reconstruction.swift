import SiteFitMetrics

// "What a single update reveals": the reconstruction experiment's table and what it assumes.
extension MarkdownReport {
    /// The row the footprint table quotes for an arm: its smallest batch and fewest local steps,
    /// where an update says the most about the fewest patients.
    static func headlineReconstruction(_ m: RunMetrics, arm: String) -> ReconstructionRow? {
        guard let r = m.reconstruction else { return nil }
        let rows = r.rows.filter { $0.arm == arm }
        return rows.min { ($0.batchSize, $0.localSteps) < ($1.batchSize, $1.localSteps) }
    }

    /// "0.93 [0.88, 0.97]", or "n/a".
    static func intervalText(_ i: MeanInterval?) -> String {
        guard let i, i.estimate.isFinite else { return "n/a" }
        return "\(Format.fixed(i.estimate, 2)) [\(Format.fixed(i.low, 2)), \(Format.fixed(i.high, 2))]"
    }

    /// The experiment: which attacks, on what, and the table per arm and setting.
    static func reconstructionSection(_ m: RunMetrics) -> String {
        guard let r = m.reconstruction, !r.rows.isEmpty else { return "" }
        let seeds = m.seeds?.seeds.count ?? 1
        var out = "### What a single update reveals\n\n"
        out += "An honest-but-curious server attacked single sites' updates from the broadcast model: for each arm, batch size and "
        out += "number of local steps, each site trained on \(r.trials) random batch\(r.trials == 1 ? "" : "es") of its own patients "
        out += "(every local step on the whole batch, the arm's learning rate and optimiser) and sent what the arm sends; the server "
        out += "saw only that update, the model and the training settings. The same patients and starting guesses serve every arm, "
        out += "so arms are compared on the same updates, over \(seeds == 1 ? "one seed" : "all \(seeds) seeds") and every site.\n\n"
        out += "- **Analytic** (Phong et al. 2017; Geiping et al. 2020): for an input layer whose weight and bias both travel, "
        out += "each row's weight change divided by its bias change is the patient's feature vector, exactly for one patient and one "
        out += "step, a mixture of patients for a batch. It does not apply to updates without such a layer (BitFit, LoRA, adapters, head).\n"
        out += "- **Optimisation** (Deep Leakage from Gradients, Zhu et al. 2019, with Inverting Gradients' objective): dummy patients "
        out += "and labels fitted for \(Format.integer(r.budget)) iterations so that their gradient matches the update; the label of a "
        out += "single patient is read from the head bias (iDLG).\n"
        out += "- **Outcome rate**: under plain SGD the head bias's change is the batch's outcome rate minus its mean predicted risk; "
        out += "the server estimates the rate from it and its own dummy patients (not estimated where the head bias does not travel, or under Adam, momentum or clipping, "
        out += "where the change is not the gradient).\n\n"
        out += "Error is the mean absolute difference per feature, in standard deviations, between each patient and their "
        out += "reconstruction; F1 is over the patients' binary features (present when above the standardised 0.5); *identified* is "
        out += "the share of patients whose matched reconstruction is nearer to them than to any held-out patient of the site. Each "
        out += "patient is matched to a different reconstruction, closest pairs first, and each attack gives as many reconstructions "
        out += "as the batch has patients. *Identified*, the footprint table and the claims use the attack the server would pick "
        out += "without seeing any patient: the analytic one where it applies, the optimisation otherwise. "
        out += "*Chance* scores the fit's starting guesses (draws from the source population's N(0, 1)) the same way: with many "
        out += "guesses, one of them lands near each patient by luck, so a batch of 32 scores well above 0 without any attack; an "
        out += "attack reveals what it scores above chance. Each cell is a mean over attacked updates with its 95 % bootstrap interval.\n\n"
        out += "| arm | batch | local steps | updates | analytic F1 | analytic error | optimisation F1 | optimisation error | chance F1 | chance error | identified (server's attack) | outcome-rate error |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for row in r.rows {
            out += "| \(row.arm) | \(row.batchSize) | \(row.localSteps) "
            if row.masked {
                out += "| 0 | masked | masked | masked | masked | — | — | masked | masked |\n"
                continue
            }
            out += "| \(Format.integer(row.updates)) "
            out += "| \(row.analytic.map { intervalText($0.f1) } ?? "does not apply") | \(row.analytic.map { intervalText($0.error) } ?? "does not apply") "
            out += "| \(intervalText(row.optimisation?.f1)) | \(intervalText(row.optimisation?.error)) "
            out += "| \(intervalText(row.chance?.f1)) | \(intervalText(row.chance?.error)) "
            out += "| \(intervalText(row.chosen?.identified)) | \(row.outcomeRateError.map { intervalText($0) } ?? "not estimated") |\n"
        }
        if r.rows.contains(where: \.masked) {
            out += "\n*Masked*: under secure aggregation an honest-but-curious server holds only masked vectors and their sum, never one "
            out += "site's update (at least two sites in every sum).\n"
        }
        out += "\n**What this does and does not show.** The attacks assume the server knows the model it broadcast, the learning "
        out += "rate, the batch size and the number of local steps, and attacks one update from the broadcast model. The optimisation "
        out += "attack treats several local steps as one averaged gradient, and under Adam it fits the update's direction only, so "
        out += "its numbers there are a lower bound on what a stronger attacker (unrolled steps, better priors, more iterations) "
        out += "recovers. A low score is evidence that these attacks fail on these updates, not a guarantee that none succeeds. "
        out += "Differential privacy bounds what any attack learns from the released model; SiteFit's DP adds its noise on the server, "
        out += "so the server itself still sees each clipped update, and the experiment attacks exactly that.\n\n"
        return out
    }
}
