import SiteFitMetrics

// The accuracy section: the arms table and the per-site table.
extension MarkdownReport {
    /// Every arm's final test-set metrics, pooled and per site.
    static func accuracySection(_ m: RunMetrics) -> String {
        let folder = m.scenario.name
        var out = "## Accuracy\n\n"
        out += "| arm | accuracy | balanced accuracy | AUROC | AUPRC | Brier | ECE | worst-site accuracy | site spread | change since \(m.pretraining.pretrained ? "pretrained" : "initial model") |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for arm in m.arms {
            let e = arm.final
            out += "| \(arm.name) | \(Format.fixed(e.accuracy)) | \(Format.fixed(e.balancedAccuracy)) | \(Format.fixed(e.auroc)) "
            out += "| \(Format.fixed(e.auprc)) | \(Format.fixed(e.brier)) | \(Format.fixed(e.ece)) | \(Format.fixed(e.worstSiteAccuracy)) "
            out += "| \(Format.fixed(e.siteAccuracySpread)) | \(signed(e.accuracy - (arm.rounds.first?.evaluation.accuracy ?? .nan))) |\n"
        }
        out += "\nAUPRC's no-skill level is the outcome prevalence (\(Format.fixed(m.arms.first.map { 1 - $0.final.majorityClassAccuracy }))), not 0.5. "
        out += "ECE is the expected calibration error over 10 equal-width score bins; *site spread* is best minus worst site accuracy.\n\n"

        out += "### Per site (final round)\n\n![Final test accuracy per site](\(folder)/per-site-accuracy.svg)\n\n"
        out += "| site | test patients |" + m.arms.map { " \($0.name) accuracy | \($0.name) AUROC | \($0.name) AUPRC |" }.joined() + "\n"
        out += "|---|---:|" + String(repeating: "---:|---:|---:|", count: m.arms.count) + "\n"
        for s in m.sites {
            out += "| \(s.id) | \(s.testSize) |"
            for arm in m.arms {
                let e = arm.final.perSite[s.id]
                // AUROC and AUPRC condition on the classes: with fewer than 10 patients of one, "—".
                let minority = e.map { (Double($0.testSize) * (1 - $0.majorityClassAccuracy)).rounded() } ?? 0
                let enough = minority >= Double(Fairness.defaultClassMinimum)
                out += " \(Format.fixed(e?.accuracy)) | \(enough ? Format.fixed(e?.auroc) : "—") | \(enough ? Format.fixed(e?.auprc) : "—") |"
            }
            out += "\n"
        }
        out += "\nAUROC and AUPRC show — when a site's test set holds fewer than \(Fairness.defaultClassMinimum) patients of one class.\n\n"
        return out
    }
}
