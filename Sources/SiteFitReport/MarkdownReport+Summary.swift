import Foundation

// The report's opening and summary: one row per arm, then the findings, seeds and published numbers.
extension MarkdownReport {
    /// The title and the paragraph that says what was compared, on which task.
    static func opening(_ m: RunMetrics) -> String {
        var out = "# SiteFit report: \(m.scenario.name)\n\n"
        out += m.pretraining.pretrained ? "Federated fine-tuning of a pretrained model" : "Federated training from a seeded initialisation (no pretraining)"
        out += " across \(m.sites.count) hospital sites, "
        // Baselines are counted apart: "5 arms" for two federations and three references overstated what was federated.
        let baselines = m.arms.filter(\.kind.isBaseline).count, federated = m.arms.count - baselines
        var counted: [String] = []
        if federated > 0 { counted.append("\(federated) federated arm\(federated == 1 ? "" : "s")") }
        if baselines > 0 { counted.append("\(baselines) baseline\(baselines == 1 ? "" : "s")") }
        out += "\(counted.isEmpty ? "no arms" : counted.joined(separator: " and ")) compared on each site's held-out test patients. "
        out += "Task: \(m.scenario.taskLine).\n\n"
        if let split = m.scenario.split { out += "Test patients: \(split).\n\n" }
        return out
    }

    /// One line on what is predicted from what (also written into metrics.json, see `ScenarioInfo`).
    static func task(_ dataset: ScenarioInfo.Dataset) -> String {
        switch dataset {
        case .omop: "1-year incident heart failure from a year of EHR history (OMOP CDM shards)"
        case .heartDisease:
            "heart disease (num > 0) from 13 clinical findings, FLamby's Fed-Heart-Disease protocol on the UCI data of four real hospitals"
        }
    }

    /// The summary's strategy column: the federation's strategy, or "baseline" for every reference.
    static func strategyCell(_ kind: ArmKind) -> String {
        switch kind {
        case .federated(let strategy): strategy
        case .baseline: "baseline"
        }
    }

    /// The summary table, its legend, what the numbers show, and (when there are any) the seeds and published numbers.
    static func summarySection(_ m: RunMetrics) -> String {
        var out = "## Summary\n\n"
        out += "| arm | mode | strategy | accuracy | mean site accuracy | worst-site accuracy | AUROC | equalised-odds drift | bytes up (total) | parameters exposed | ε (DP) | MIA AUC | local training per site and round | simulated time per site and round | optimiser state |\n"
        out += "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for arm in m.arms {
            out += "| \(arm.name) | \(arm.mode) | \(strategyCell(arm.kind)) | \(Format.fixed(arm.final.accuracy)) | \(Format.fixed(arm.final.meanSiteAccuracy)) "
            out += "| \(Format.fixed(arm.final.worstSiteAccuracy)) | \(Format.fixed(arm.final.auroc)) | \(fairnessCell(arm, m)) "
            out += "| \(Format.bytes(arm.privacy.bytesUp))\(arm.privacy.secureAggregation ? " (masked)" : "") "
            out += "| \(Format.integer(arm.privacy.parametersExposed)) (\(Format.percent(arm.privacy.exposedShare))) | \(epsilonCell(arm.privacy)) "
            out += "| \(Format.fixed(arm.meanMembershipInference)) | \(Format.flops(arm.compute.trainingFlopsPerSiteRound)) "
            out += "| \(Format.seconds(arm.compute.simulatedSecondsPerSiteRound)) | \(Format.bytes(arm.compute.optimizerStateBytes)) |\n"
        }
        let floor = m.arms.first?.final.majorityClassAccuracy ?? .nan
        out += "\nAccuracy is at threshold 0.5, pooled over every site's test patients; always predicting the majority class "
        out += "would score \(Format.fixed(floor)) on the same patients, so read AUROC and the accuracy section's balanced accuracy beside it. "
        out += "*Mean site accuracy* weighs every hospital equally (FLamby's metric). "
        out += "*Equalised-odds drift* is the change since the \(start(m)) of the larger of the TPR and FPR gaps between groups, for the "
        out += "attribute where it moved most, with its 95 % interval (the fairness metric of the findings and the bias charts too). "
        out += "*MIA AUC* is the mean over sites of a loss-threshold membership-inference attack (0.5 = the attacker learns nothing). "
        out += "Rows of strategy *baseline* are references, not federations: the \(start(m)) as is, each site "
        out += "training alone on its own rows (*local*; *local <site>* is one site's model scored at every site), and pooled training "
        out += "on all sites' rows (possible only in a simulation).\n\n"
        out += "### What this shows\n\n" + narrative(m) + "\n"
        if let seeds = m.seeds, seeds.seeds.count > 1 { out += acrossSeeds(seeds) }
        if let reference = m.reference { out += referenceSection(m, reference) }
        return out
    }

    /// The arm's equalised-odds drift over all seeds ("+0.041 (sex) [+0.010, +0.070] **clear**"); a
    /// metrics.json without comparisons gives the per-seed drift instead.
    static func fairnessCell(_ arm: ArmMetrics, _ m: RunMetrics) -> String {
        if m.comparisons != nil {
            guard let d = Findings.fairnessDrift(arm.name, m) else { return "n/a" }
            let attribute = d.metric.attribute?.replacingOccurrences(of: "_", with: " ") ?? ""
            return "\(signed(d.estimate)) (\(attribute)) [\(signed(d.low)), \(signed(d.high))]" + (d.isClear ? " **clear**" : "")
        }
        return driftCell(arm.biasDrift.filter { $0.metric == "equalized_odds" }.max { abs($0.drift) < abs($1.drift) })
    }

    /// "+0.041 equalized odds (sex) [0.01, 0.07] clear" or "n/a".
    static func driftCell(_ drift: BiasDrift?) -> String {
        guard let drift else { return "n/a" }
        var cell = "\(signed(drift.drift)) \(gapName(drift.metric)) (\(drift.attribute.replacingOccurrences(of: "_", with: " ")))"
        if let low = drift.low, let high = drift.high { cell += " [\(signed(low)), \(signed(high))]" }
        if drift.isClear { cell += " **clear**" }
        return cell
    }

    /// Every arm's headline numbers as mean ± standard deviation over the scenario's seeds.
    static func acrossSeeds(_ seeds: SeedSummary) -> String {
        var out = "### Across \(seeds.seeds.count) seeds\n\n"
        out += "Mean ± standard deviation over seeds \(seeds.seeds.map(String.init).joined(separator: ", ")) "
        out += "(each seed re-draws every random stream: the split where SiteFit draws it, pretraining or initialisation, batch order, "
        out += "sampling and noise). Every other table and chart of this report shows the mean over these seeds; the round tables' "
        out += "lists of sampled, accepted and absent sites are seed \(seeds.seeds.first.map(String.init) ?? "")'s.\n\n"
        out += "| arm | accuracy | mean site accuracy | worst-site accuracy | AUROC | AUPRC | MIA AUC |\n|---|---|---|---|---|---|---|\n"
        for arm in seeds.arms {
            out += "| \(arm.name) | \(arm.accuracy.text) | \(arm.meanSiteAccuracy.text) | \(arm.worstSiteAccuracy.text) | \(arm.auroc.text) | \(arm.auprc.text) "
            out += "| \(arm.membershipInference.text) |\n"
        }
        return out + "\n"
    }

    /// SiteFit's mean per-site accuracy (over seeds) beside each published value.
    static func referenceSection(_ m: RunMetrics, _ reference: ReferenceValues) -> String {
        let seedCount = m.seeds?.seeds.count ?? 1
        var out = "### Against the published numbers\n\n"
        out += "Source: \(reference.source). SiteFit's figure is the mean per-site test accuracy (threshold 0.5), "
        out += "averaged over \(seedCount) seed\(seedCount == 1 ? "" : "s") (± one standard deviation over seeds"
        out += seedCount > 1 ? "; the standard error of the mean is that divided by √\(seedCount))" : ")"
        out += ". Agreement means within ±\(Format.fixed(reference.tolerance, 2)).\n\n"
        out += "| arm | SiteFit | published | difference | agrees |\n|---|---|---:|---:|---|\n"
        for arm in m.arms {
            guard let published = reference.meanSiteAccuracy[arm.name] else { continue }
            let spread = m.seeds?.arms.first { $0.name == arm.name }?.meanSiteAccuracy ?? Spread([arm.final.meanSiteAccuracy])
            let difference = spread.mean - published
            out += "| \(arm.name) | \(spread.text) | \(Format.fixed(published)) | \(signed(difference)) "
            out += "| \(abs(difference) <= reference.tolerance + 1e-12 ? "yes" : "**no**") |\n"
        }
        return out + "\n"
    }
}
