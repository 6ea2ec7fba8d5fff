// "Privacy footprint".
extension MarkdownReport {
    /// Bytes, exposed parameters, ε and the membership-inference attack, per arm.
    static func privacySection(_ m: RunMetrics) -> String {
        var out = "## Privacy footprint\n\n![Accuracy against bytes sent up](\(m.scenario.name)/accuracy-vs-bytes.svg)\n\n"
        out += "| arm | bytes up | bytes down | per update | parameters exposed | share of model | ε at δ | MIA AUC (mean) | MIA AUC (highest site) |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
        for arm in m.arms {
            let p = arm.privacy
            let highest = arm.membershipInference.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }
            out += "| \(arm.name) | \(Format.bytes(p.bytesUp)) | \(Format.bytes(p.bytesDown)) | \(Format.bytes(p.bytesUpPerUpdate)) "
            out += "| \(Format.integer(p.parametersExposed)) | \(Format.percent(p.exposedShare)) | \(epsilonCell(p)) "
            out += "| \(Format.fixed(arm.meanMembershipInference)) | \(highest.map { "\(Format.fixed($0.value)) (\($0.key))" } ?? "n/a") |\n"
        }
        out += "\nThe membership-inference attack guesses that a patient was in a site's training data when the final model's loss "
        out += "on that patient is low; its AUC over the site's train and held-out patients is 0.5 when training left no trace.\n\n"
        if let c = m.scenario.covariates {
            let sites = c.reported.keys.sorted()
            out += "**Before training, the sites agreed the covariates.** Each site sent the server, once, how many of its cohort's "
            out += "persons have each candidate covariate, leaving out counts under \(c.minimumCount): "
            out += sites.map { "\($0) \(Format.integer(c.reported[$0] ?? 0)) covariates (\(Format.bytes(c.bytesUp[$0] ?? 0)))" }.joined(separator: ", ")
            out += ". The server kept the covariates at least \(c.minimumSites) site\(c.minimumSites == 1 ? "" : "s") reported, the "
            out += "\(Format.integer(c.maximum)) most frequent at most: \(Format.integer(c.agreed)). These counts are not in the table's bytes; "
            out += "they tell the server which concepts are common at a site, never a person's row.\n\n"
        }
        return out
    }
}
