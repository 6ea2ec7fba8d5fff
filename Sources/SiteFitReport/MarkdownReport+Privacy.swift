// "Privacy footprint".
extension MarkdownReport {
    /// Bytes, exposed parameters, ε and the membership-inference attack, per arm.
    static func privacySection(_ m: RunMetrics) -> String {
        var out = "## Privacy footprint\n\n![Accuracy against bytes sent up](\(m.scenario.name)/accuracy-vs-bytes.svg)\n\n"
        // With the reconstruction experiment, each arm's smallest batch and fewest steps join the table.
        let attacked = m.reconstruction.flatMap { r in r.rows.min { ($0.batchSize, $0.localSteps) < ($1.batchSize, $1.localSteps) } }
        let setting = attacked.map { " (batch \($0.batchSize), \($0.localSteps) step\($0.localSteps == 1 ? "" : "s"))" } ?? ""
        out += "| arm | bytes up | bytes down | per update | parameters exposed | share of model | ε at δ | MIA AUC (mean) | MIA AUC (highest site) |"
        out += attacked == nil ? "\n" : " reconstruction F1\(setting) | reconstruction error\(setting) |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---|" + (attacked == nil ? "" : "---:|---:|") + "\n"
        for arm in m.arms {
            let p = arm.privacy
            let highest = arm.membershipInference.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }
            out += "| \(arm.name) | \(Format.bytes(p.bytesUp)) | \(Format.bytes(p.bytesDown)) | \(Format.bytes(p.bytesUpPerUpdate)) "
            out += "| \(Format.integer(p.parametersExposed)) | \(Format.percent(p.exposedShare)) | \(epsilonCell(p)) "
            out += "| \(Format.fixed(arm.meanMembershipInference)) | \(highest.map { "\(Format.fixed($0.value)) (\($0.key))" } ?? "n/a") |"
            if attacked != nil {
                if let row = headlineReconstruction(m, arm: arm.name) {
                    out += row.masked ? " masked | masked |" : " \(intervalText(row.chosen?.f1)) | \(intervalText(row.chosen?.error)) |"
                } else {
                    out += " — | — |"
                }
            }
            out += "\n"
        }
        out += "\nThe membership-inference attack guesses that a patient was in a site's training data when the final model's loss "
        out += "on that patient is low; its AUC over the site's train and held-out patients is 0.5 when training left no trace.\n\n"
        if m.reconstruction != nil {
            out += "Reconstruction F1 and error are the server's attack on one site's update (analytic where it applies, optimisation otherwise) (see *What a single update reveals*); "
            out += "baselines send no update.\n\n"
        }
        out += secureAggregationParagraph(m)
        out += reconstructionSection(m)
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

    /// How secure aggregation went in each secure arm, over every seed, and what its steps cost.
    static func secureAggregationParagraph(_ m: RunMetrics) -> String {
        let secure = m.arms.compactMap { arm in arm.privacy.secureRounds.map { (arm.name, $0) } }
        guard !secure.isEmpty else { return "" }
        let seeds = m.seeds?.seeds.count ?? 1
        var out = "**Secure aggregation** (Bonawitz et al., CCS 2017, with its dropout recovery): each site masks its update with a "
        out += "self-mask and a mask per other site, and gives every other site Shamir shares of both secrets, sealed so the server "
        out += "cannot read them. Sites mask only when at least the threshold, max(2, quorum), can mask together; the server unmasks "
        out += "only with the shares of at least that many survivors, which remove the survivors' self-masks and the masks of sites "
        out += "that dropped after the key exchange. "
        for (name, t) in secure {
            out += "Over \(seeds == 1 ? "the seed" : "all \(seeds) seeds"), **\(name)** (threshold \(t.threshold)) ran \(t.rounds) rounds: "
            out += "\(t.aggregated) aggregated, \(t.abortedBeforeMasking) aborted before masking (too few sites to mask together: "
            out += "no site trained or sent anything), \(t.abortedAtUnmasking) aborted at unmasking (too few masked vectors arrived: "
            out += "nothing was unmasked); the masks of \(t.recoveredDropouts) dropped site(s) were removed with survivors' shares; "
            out += "\(t.clamped) value(s) were clamped to ±8 by quantisation. "
        }
        out += "What each step cost, summed over \(seeds == 1 ? "the seed" : "the seeds") (payload bytes; site ids and framing not counted):\n\n"
        out += "| arm | step | messages up | bytes up | messages down | bytes down |\n|---|---|---:|---:|---:|---:|\n"
        for (name, t) in secure {
            for step in t.steps {
                out += "| \(name) | \(step.step.rawValue) | \(Format.integer(step.messagesUp)) | \(Format.bytes(step.bytesUp)) "
                out += "| \(Format.integer(step.messagesDown)) | \(Format.bytes(step.bytesDown)) |\n"
            }
        }
        return out + "\n"
    }
}
