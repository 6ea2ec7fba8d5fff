/// Renders `RunMetrics` as the Markdown report a user reads first.
public enum MarkdownReport {
    /// ε with its δ for a DP arm; "no DP" otherwise (no formal guarantee, whatever else limits exposure).
    static func epsilonCell(_ p: PrivacyFootprint) -> String {
        guard let epsilon = p.epsilon, let delta = p.delta else { return "no DP" }
        return "\(Format.fixed(epsilon, 2)) (δ \(delta))"
    }

    public static func render(_ m: RunMetrics, chartPath: String) -> String {
        var out = "# SiteFit report: \(m.scenario.name)\n\n"
        out += "Federated fine-tuning of a pretrained model across \(m.sites.count) hospital sites, "
        out += "\(m.arms.count) arm\(m.arms.count == 1 ? "" : "s") compared on each site's held-out test patients. "
        out += "Task: 1-year incident heart failure from a year of EHR history (OMOP CDM shards).\n\n"

        out += "## Summary\n\n"
        out += "| arm | mode | strategy | accuracy | balanced accuracy | AUROC | worst-site accuracy | change since pretrained | parameters sent per update | share of model | bytes up (total) | ε (DP) | local training per site and round | optimiser state |\n"
        out += "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for arm in m.arms {
            let start = arm.rounds.first?.evaluation.accuracy ?? .nan
            out += "| \(arm.name) | \(arm.mode) | \(arm.strategy) | \(Format.fixed(arm.final.accuracy)) | \(Format.fixed(arm.final.balancedAccuracy)) "
            out += "| \(Format.fixed(arm.final.auroc)) "
            out += "| \(Format.fixed(arm.final.worstSiteAccuracy)) | \(signed(arm.final.accuracy - start)) "
            out += "| \(Format.integer(arm.privacy.parametersExposed)) | \(Format.percent(arm.privacy.exposedShare)) "
            out += "| \(Format.bytes(arm.privacy.bytesUp))\(arm.privacy.secureAggregation ? " (masked)" : "") | \(epsilonCell(arm.privacy)) "
            out += "| \(Format.flops(arm.compute.trainingFlopsPerSiteRound)) "
            out += "| \(Format.bytes(arm.compute.optimizerStateBytes)) |\n"
        }
        let floor = m.arms.first?.final.majorityClassAccuracy ?? .nan
        out += "\nAccuracy is at threshold 0.5, pooled over every site's test patients; always predicting the majority class "
        out += "would score \(Format.fixed(floor)) on the same patients, so read balanced accuracy (0.5 = no skill) and AUROC beside it. "
        out += "\"Change since pretrained\" compares with round 0, the source model before any site trained it. "
        out += "Rows of strategy *baseline* are references, not federations: the pretrained model as is, each site "
        out += "training alone on its own rows, and pooled training on all sites' rows (possible only in a simulation).\n\n"
        out += "### What this shows\n\n" + narrative(m) + "\n"

        out += "## Sites at a glance\n\n"
        out += "| site | hospital | patients | train / test | outcome prevalence | majority-class test accuracy | female | mean age | creatinine unit | labs missing |\n"
        out += "|---|---|---:|---:|---:|---:|---:|---:|---|---:|\n"
        for s in m.sites {
            out += "| \(s.id) | \(s.name) | \(Format.integer(s.cohortSize)) | \(s.trainSize) / \(s.testSize) "
            let floor = m.arms.first?.final.perSite[s.id]?.majorityClassAccuracy
            out += "| \(Format.percent(s.outcomePrevalence)) | \(Format.fixed(floor)) | \(Format.percent(s.femaleShare)) | \(Format.fixed(s.meanAge, 1)) "
            out += "| \(s.creatinineUnit) | \(Format.percent(s.labMissingShare)) |\n"
        }
        out += "\nCreatinine in µmol/L is converted to mg/dL by `unit_concept_id` during feature extraction (÷ 88.42).\n\n"

        out += "## Pretrained model\n\n"
        out += "An MLP \(m.model.widths.map(String.init).joined(separator: " → ")) (\(Format.integer(m.model.parameters)) parameters) "
        out += "trained on a synthetic source population of \(Format.integer(m.pretraining.sourcePatients)) patients for "
        out += "\(m.pretraining.epochs) epochs; on held-out source patients it reached accuracy "
        out += "\(Format.fixed(m.pretraining.validationAccuracy)) and AUROC \(Format.fixed(m.pretraining.validationAuroc)).\n\n"
        out += "| tensor | shape | role |\n|---|---|---|\n"
        for t in m.model.tensors {
            out += "| `\(t.name)` | (\(t.shape.map(String.init).joined(separator: ", "))) | \(t.role) |\n"
        }
        out += "\nFeatures (\(m.model.features.count)), extracted by SQL from the look-back year before each index date: "
        out += m.model.features.map { "`\($0)`" }.joined(separator: ", ") + ".\n\n"

        out += "## Per-site results (final round)\n\n"
        out += "| site | test patients |" + m.arms.map { " \($0.name) accuracy | \($0.name) balanced accuracy | \($0.name) AUROC |" }.joined() + "\n"
        out += "|---|---:|" + String(repeating: "---:|---:|---:|", count: m.arms.count) + "\n"
        for s in m.sites {
            out += "| \(s.id) | \(s.testSize) |"
            for arm in m.arms {
                let e = arm.final.perSite[s.id]
                out += " \(Format.fixed(e?.accuracy)) | \(Format.fixed(e?.balancedAccuracy)) | \(Format.fixed(e?.auroc)) |"
            }
            out += "\n"
        }
        out += "\nAn AUROC of n/a means the site's test set holds a single class, where AUROC is undefined.\n\n"

        out += "## Rounds\n\n![Pooled test accuracy by round](\(chartPath))\n\n"
        for arm in m.arms where arm.strategy != "baseline" {
            out += "### \(arm.name)\n\n"
            out += "| round | accuracy | AUROC |" + m.sites.map { " \($0.id) |" }.joined()
                + " bytes down | bytes up | updates accepted | rejected or absent |\(arm.privacy.epsilon == nil ? "" : " ε |")\n"
            out += "|---:|---:|---:|" + String(repeating: "---:|", count: m.sites.count) + "---:|---:|---:|---|"
                + (arm.privacy.epsilon == nil ? "" : "---:|") + "\n"
            for r in arm.rounds {
                out += "| \(r.round) | \(Format.fixed(r.evaluation.accuracy)) | \(Format.fixed(r.evaluation.auroc)) |"
                for s in m.sites { out += " \(Format.fixed(r.evaluation.perSite[s.id]?.accuracy)) |" }
                var notes = r.rejected.map { "\($0.site): rejected, \($0.reason)" } + r.absent.map { "\($0.site): \($0.reason)" }
                if r.skipped { notes.append("**round skipped** (too few updates for the quorum; model unchanged)") }
                let rejected = notes.isEmpty ? "none" : notes.joined(separator: "; ")
                let sampled = r.sampledSites.isEmpty || r.sampledSites.count == m.sites.count ? "" : " of \(r.sampledSites.count) sampled"
                out += " \(Format.bytes(r.bytesDown)) | \(Format.bytes(r.bytesUp)) | \(r.acceptedSites.count)\(sampled) | \(r.round == 0 ? "" : rejected) |"
                if arm.privacy.epsilon != nil { out += " \(r.round == 0 ? "0" : Format.fixed(r.epsilon, 2)) |" }
                out += "\n"
            }
            out += "\nExposed tensors: " + arm.privacy.tensorsExposed.map { "`\($0)`" }.joined(separator: ", ")
            out += ". Each update is a safetensors blob of \(Format.bytes(arm.privacy.bytesUpPerUpdate))"
            if arm.privacy.secureAggregation {
                out += ", sent pairwise-masked (X25519 key agreement, values quantised mod 2^32): the server only held masked vectors and their sum"
            }
            if let epsilon = arm.privacy.epsilon, let delta = arm.privacy.delta {
                out += ". Site-level DP-FedAvg: updates clipped to L2 norm \(Format.fixed(arm.privacy.clipNorm, 3)), Gaussian noise σ = "
                    + "\(Format.fixed(arm.privacy.noiseMultiplier, 2))·C on the sum; ε = \(Format.fixed(epsilon, 2)) at δ = \(delta) (RDP accountant)"
                if let stop = arm.privacy.stoppedByBudgetAfterRound { out += "; training stopped after round \(stop) to stay within the ε budget" }
            }
            out += ".\n\n"
        }

        out += "## How to read this report\n\n"
        out += "- **Accuracy / AUROC**: the global model after the last round, scored on each site's held-out test split "
        out += "(stratified by outcome, seeded). Pooled numbers weigh sites by their test size; the worst site shows who is left behind.\n"
        out += "- **Parameters sent per update**: the scalars in each site's update. BitFit sends only bias terms; "
        out += "full fine-tuning sends every tensor. Bytes are counted from the serialised messages, headers included.\n"
        out += "- **Local training**: multiply-add FLOPs of forward and backward passes; a frozen weight skips its weight-gradient product.\n"
        out += "- Sending fewer parameters reduces what an update reveals, but it is **not by itself a privacy guarantee**: "
        out += "bias gradients still depend on patient data.\n\n"

        out += "## Reproducibility\n\n"
        out += "| | |\n|---|---|\n"
        out += "| scenario | `\(m.scenario.file)` |\n| scenario hash (FNV-1a) | `\(m.scenario.fingerprint)` |\n"
        out += "| seed | \(m.scenario.seed) |\n| SiteFit | \(m.scenario.sitefitVersion) |\n\n"
        out += "Every number is in `\(m.scenario.name)/metrics.json`; final test-set scores are in `\(m.scenario.name)/predictions.csv`. "
        out += "The same scenario and seed give a byte-identical report.\n"
        return out
    }

    static func signed(_ value: Double) -> String {
        guard value.isFinite else { return "n/a" }
        return (value >= 0 ? "+" : "−") + Format.fixed(abs(value))
    }

    /// Plain-language findings computed from the numbers above; nothing here is canned.
    static func narrative(_ m: RunMetrics) -> String {
        let federated = m.arms.filter { $0.strategy != "baseline" }
        let baselines = m.arms.filter { $0.strategy == "baseline" }
        var m = m
        m.arms = federated
        guard let best = federated.max(by: { $0.final.accuracy < $1.final.accuracy }) else { return "No arm ran.\n" }
        var lines: [String] = []
        let pretrained = best.rounds.first?.evaluation.accuracy ?? .nan
        lines.append("- **\(best.name)** ends with the highest pooled accuracy, \(Format.fixed(best.final.accuracy)) "
                     + "(pretrained model: \(Format.fixed(pretrained)), \(signed(best.final.accuracy - pretrained)); "
                     + "majority-class rate: \(Format.fixed(best.final.majorityClassAccuracy)), "
                     + "\(signed(best.final.accuracy - best.final.majorityClassAccuracy))). Its AUROC is \(Format.fixed(best.final.auroc)) "
                     + "and its balanced accuracy \(Format.fixed(best.final.balancedAccuracy)).")
        for arm in m.arms where arm.name != best.name {
            let gap = best.final.accuracy - arm.final.accuracy
            let ratio = Double(best.privacy.bytesUp) / Double(max(arm.privacy.bytesUp, 1))
            var line = "- **\(arm.name)** reaches \(Format.fixed(arm.final.accuracy)), \(Format.fixed(gap)) below \(best.name)"
            if ratio > 1.05 {
                line += ", while sending \(Format.fixed(ratio, 1))× fewer bytes up (\(Format.bytes(arm.privacy.bytesUp)) vs \(Format.bytes(best.privacy.bytesUp)))"
            } else if ratio < 0.95 {
                line += ", and sends \(Format.fixed(1 / ratio, 1))× more bytes up"
            }
            lines.append(line + ".")
        }
        if let smallest = m.arms.min(by: { $0.privacy.parametersExposed < $1.privacy.parametersExposed }),
           let largest = m.arms.max(by: { $0.privacy.parametersExposed < $1.privacy.parametersExposed }),
           smallest.name != largest.name {
            lines.append("- **\(smallest.name)** exposes \(Format.integer(smallest.privacy.parametersExposed)) parameters per update "
                         + "(\(Format.percent(smallest.privacy.exposedShare)) of the model) against \(Format.integer(largest.privacy.parametersExposed)) for **\(largest.name)**.")
        }
        for arm in m.arms {
            if let worst = arm.final.perSite.min(by: { $0.value.accuracy < $1.value.accuracy || ($0.value.accuracy == $1.value.accuracy && $0.key < $1.key) }),
               let bestSite = arm.final.perSite.max(by: { $0.value.accuracy < $1.value.accuracy || ($0.value.accuracy == $1.value.accuracy && $0.key > $1.key) }),
               worst.key != bestSite.key {
                lines.append("- Under **\(arm.name)** the sites range from \(Format.fixed(worst.value.accuracy)) (\(worst.key)) "
                             + "to \(Format.fixed(bestSite.value.accuracy)) (\(bestSite.key)).")
            }
        }
        if !baselines.isEmpty {
            lines.append("- Baselines: " + baselines.map { "\($0.name) \(Format.fixed($0.final.accuracy)) (AUROC \(Format.fixed($0.final.auroc)))" }
                .joined(separator: ", ") + ". " + (baselines.contains { $0.name.hasPrefix("pooled") }
                    ? "Pooled training needs every site's patient rows in one place, which a federation exists to avoid." : ""))
        }
        let rejected = m.arms.flatMap { $0.rounds.flatMap(\.rejected) }
        lines.append(rejected.isEmpty ? "- The server accepted every update it received." : "- The server rejected \(rejected.count) update(s); see the round tables.")
        for arm in m.arms where arm.strategy != "baseline" {
            let rounds = arm.rounds.dropFirst()
            let absent = rounds.reduce(0) { $0 + $1.absent.count }, skipped = rounds.filter(\.skipped).count
            let late = rounds.reduce(0) { $0 + $1.absent.filter { $0.reason.hasPrefix("missed") }.count }
            var parts: [String] = []
            if absent > 0 { parts.append("\(absent) sampled site-round(s) sent nothing usable (\(late) missed the deadline, \(absent - late) dropped out)") }
            if skipped > 0 { parts.append("\(skipped) of \(rounds.count) rounds were skipped for lack of a quorum") }
            if let epsilon = arm.privacy.epsilon, let delta = arm.privacy.delta {
                var text = "its differential-privacy guarantee is ε = \(Format.fixed(epsilon, 2)) at δ = \(delta)"
                if let stop = arm.privacy.stoppedByBudgetAfterRound { text += ", reached after \(stop) rounds, when the ε budget stopped training" }
                parts.append(text)
            }
            if !parts.isEmpty { lines.append("- In **\(arm.name)**, " + parts.joined(separator: "; ") + ".") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
