import SiteFitMetrics

/// Renders `RunMetrics` as the Markdown report a user reads first.
public enum MarkdownReport {
    /// ε with its δ for a DP arm; "no DP" otherwise (no formal guarantee, whatever else limits exposure).
    static func epsilonCell(_ p: PrivacyFootprint) -> String {
        guard let epsilon = p.epsilon, let delta = p.delta else { return "no DP" }
        return "\(Format.fixed(epsilon, 2)) (δ \(delta))"
    }

    public static func render(_ m: RunMetrics) -> String {
        let folder = m.scenario.name
        let federated = m.arms.filter { $0.strategy != "baseline" }
        var out = "# SiteFit report: \(m.scenario.name)\n\n"
        out += m.pretraining.pretrained ? "Federated fine-tuning of a pretrained model" : "Federated training from a seeded initialisation (no pretraining)"
        out += " across \(m.sites.count) hospital sites, "
        out += "\(m.arms.count) arm\(m.arms.count == 1 ? "" : "s") compared on each site's held-out test patients. "
        out += "Task: \(m.scenario.task).\n\n"

        out += "## Summary\n\n"
        out += "| arm | mode | strategy | accuracy | mean site accuracy | worst-site accuracy | AUROC | largest bias drift | bytes up (total) | parameters exposed | ε (DP) | MIA AUC | local training per site and round | simulated time per site and round | optimiser state |\n"
        out += "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for arm in m.arms {
            out += "| \(arm.name) | \(arm.mode) | \(arm.strategy) | \(Format.fixed(arm.final.accuracy)) | \(Format.fixed(arm.final.meanSiteAccuracy)) "
            out += "| \(Format.fixed(arm.final.worstSiteAccuracy)) | \(Format.fixed(arm.final.auroc)) | \(driftCell(arm.largestBiasDrift)) "
            out += "| \(Format.bytes(arm.privacy.bytesUp))\(arm.privacy.secureAggregation ? " (masked)" : "") "
            out += "| \(Format.integer(arm.privacy.parametersExposed)) (\(Format.percent(arm.privacy.exposedShare))) | \(epsilonCell(arm.privacy)) "
            out += "| \(Format.fixed(arm.meanMembershipInference)) | \(Format.flops(arm.compute.trainingFlopsPerSiteRound)) "
            out += "| \(Format.seconds(arm.compute.simulatedSecondsPerSiteRound)) | \(Format.bytes(arm.compute.optimizerStateBytes)) |\n"
        }
        let floor = m.arms.first?.final.majorityClassAccuracy ?? .nan
        out += "\nAccuracy is at threshold 0.5, pooled over every site's test patients; always predicting the majority class "
        out += "would score \(Format.fixed(floor)) on the same patients, so read AUROC and the accuracy section's balanced accuracy beside it. "
        out += "*Mean site accuracy* weighs every hospital equally (FLamby's metric). "
        out += "*Largest bias drift* is the audited fairness gap that moved most since the \(start(m)), with its bootstrap 95 % interval. "
        out += "*MIA AUC* is the mean over sites of a loss-threshold membership-inference attack (0.5 = the attacker learns nothing). "
        out += "Rows of strategy *baseline* are references, not federations: the \(start(m)) as is, each site "
        out += "training alone on its own rows (*local*; *local <site>* is one site's model scored at every site), and pooled training "
        out += "on all sites' rows (possible only in a simulation).\n\n"
        out += "### What this shows\n\n" + narrative(m) + "\n"
        if let seeds = m.seeds, seeds.seeds.count > 1 { out += acrossSeeds(seeds) }
        if let reference = m.reference { out += referenceSection(m, reference) }

        out += "## Sites at a glance\n\n"
        out += "![Sites at a glance](\(folder)/sites.svg)\n\n"
        out += "| site | hospital | patients | train / test | outcome prevalence | majority-class test accuracy | female | mean age | aged 65+ | race mix | creatinine unit | labs missing | feature distance |\n"
        out += "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|\n"
        for s in m.sites {
            out += "| \(s.id) | \(s.name) | \(Format.integer(s.cohortSize)) | \(s.trainSize) / \(s.testSize) "
            let floor = m.arms.first?.final.perSite[s.id]?.majorityClassAccuracy
            out += "| \(Format.percent(s.outcomePrevalence)) | \(Format.fixed(floor)) | \(Format.percent(s.femaleShare)) | \(Format.fixed(s.meanAge, 1)) "
            out += "| \(Format.percent((s.ageBandShares["65-74"] ?? 0) + (s.ageBandShares["75+"] ?? 0))) | \(mix(s.raceShares)) "
            out += "| \(s.creatinineUnit) | \(Format.percent(s.labMissingShare)) | \(Format.fixed(s.featureDistance)) |\n"
        }
        let distances = m.sites.map(\.featureDistance)
        if let most = m.sites.max(by: { $0.featureDistance < $1.featureDistance }) {
            out += "\n**How different are the sites?** Mean feature distance \(Format.fixed(distances.reduce(0, +) / Double(max(distances.count, 1)))); "
            out += "the most distinct site is \(most.id) (\(Format.fixed(most.featureDistance))). The feature distance is the root-mean-square "
            out += "standardised mean difference between a site's features and the pooled cohort's, computed from per-site column sums only "
            out += "(0 = identical means; above 0.1 is commonly read as a meaningful imbalance). "
        } else {
            out += "\n"
        }
        if m.scenario.dataset == "omop" {
            out += "Creatinine in µmol/L is converted to mg/dL by `unit_concept_id` during feature extraction (÷ 88.42)."
        } else {
            out += "Each site standardises its features with its own train mean and standard deviation."
        }
        out += "\n\n"

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
        out += m.scenario.dataset == "omop" ? "\nFeatures (\(m.model.features.count)), extracted by SQL from the look-back year before each index date: "
            : "\nFeatures (\(m.model.features.count)), FLamby's preprocessing of the UCI findings, read back from each shard by SQL: "
        out += m.model.features.map { "`\($0)`" }.joined(separator: ", ") + ".\n\n"

        out += "## Accuracy\n\n"
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
                out += " \(Format.fixed(e?.accuracy)) | \(Format.fixed(e?.auroc)) | \(Format.fixed(e?.auprc)) |"
            }
            out += "\n"
        }
        out += "\nAn AUROC of n/a means the site's test set holds a single class, where AUROC is undefined.\n\n"

        out += biasSection(m)
        out += privacySection(m, federated: federated)

        out += "## Rounds\n\n![Pooled test accuracy by round](\(folder)/accuracy-by-round.svg)\n\n"
        for arm in federated {
            out += "### \(arm.name)\n\n"
            out += "| round | accuracy | AUROC |" + m.sites.map { " \($0.id) |" }.joined()
                + " parameter drift | bytes down | bytes up | updates accepted | rejected or absent |\(arm.privacy.epsilon == nil ? "" : " ε |")\n"
            out += "|---:|---:|---:|" + String(repeating: "---:|", count: m.sites.count) + "---:|---:|---:|---:|---|"
                + (arm.privacy.epsilon == nil ? "" : "---:|") + "\n"
            for r in arm.rounds {
                out += "| \(r.round) | \(Format.fixed(r.evaluation.accuracy)) | \(Format.fixed(r.evaluation.auroc)) |"
                for s in m.sites { out += " \(Format.fixed(r.evaluation.perSite[s.id]?.accuracy)) |" }
                var notes = r.rejected.map { "\($0.site): rejected, \($0.reason)" } + r.absent.map { "\($0.site): \($0.reason)" }
                if r.skipped { notes.append("**round skipped** (too few updates for the quorum; model unchanged)") }
                let rejected = notes.isEmpty ? "none" : notes.joined(separator: "; ")
                let sampled = r.sampledSites.isEmpty || r.sampledSites.count == m.sites.count ? "" : " of \(r.sampledSites.count) sampled"
                out += " \(Format.fixed(r.parameterDrift?.l2)) | \(Format.bytes(r.bytesDown)) | \(Format.bytes(r.bytesUp)) "
                out += "| \(r.acceptedSites.count)\(sampled) | \(r.round == 0 ? "" : rejected) |"
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
        out += "*Parameter drift* is the L2 distance of the shared parameters from their \(m.pretraining.pretrained ? "pretrained" : "initial") values after each round.\n\n"

        out += "## How to read this report\n\n"
        out += "- **Accuracy / AUROC**: the global model after the last round, scored on each site's held-out test split "
        out += "(stratified by outcome, seeded). Pooled numbers weigh sites by their test size; the worst site shows who is left behind.\n"
        out += "- **Bias drift**: for each audited attribute, the gap between the best- and worst-treated groups (max − min) in "
        out += "selection rate (demographic parity), true-positive rate (equal opportunity), the larger of the TPR and FPR gaps "
        out += "(equalised odds), within-group AUROC and calibration in the large; drift is the final gap minus the pretrained model's, "
        out += "and its interval comes from a seeded bootstrap over test patients. A drift whose interval excludes 0 is marked **clear**.\n"
        out += "- **Parameters exposed**: the scalars in each site's update. BitFit sends only bias terms; "
        out += "full fine-tuning sends every tensor. Bytes are counted from the serialised messages, headers included.\n"
        out += "- **Local training**: multiply-add FLOPs of forward and backward passes; a frozen weight skips its weight-gradient product. "
        out += "Simulated time is local steps × the scenario's seconds per step (a compute model, not a clock), so reports stay reproducible.\n"
        out += "- Sending fewer parameters reduces what an update reveals, but it is **not by itself a privacy guarantee**: "
        out += "bias gradients still depend on patient data. Only ε (with δ) is a formal guarantee; the MIA AUC is one attack's measured success.\n\n"

        out += "## Reproducibility\n\n"
        out += "| | |\n|---|---|\n"
        out += "| scenario | `\(m.scenario.file)` |\n| scenario hash (FNV-1a) | `\(m.scenario.fingerprint)` |\n"
        out += "| seed | \(m.scenario.seed) |\n"
        if let seeds = m.seeds, seeds.seeds.count > 1 { out += "| all seeds | \(seeds.seeds.map(String.init).joined(separator: ", ")) |\n" }
        out += "| SiteFit | \(m.scenario.sitefitVersion) |\n\n"
        out += "Every number is in `\(folder)/metrics.json`; final test-set scores are in `\(folder)/predictions.csv`. "
        out += "The same scenario and seed give a byte-identical report; `sitefit report \(folder)/metrics.json` redraws it and its charts.\n"
        return out
    }

    /// "+0.041 equalized odds (sex) [0.01, 0.07] clear" or "n/a".
    static func driftCell(_ drift: BiasDrift?) -> String {
        guard let drift else { return "n/a" }
        var cell = "\(signed(drift.drift)) \(gapName(drift.metric)) (\(drift.attribute.replacingOccurrences(of: "_", with: " ")))"
        if let low = drift.low, let high = drift.high { cell += " [\(signed(low)), \(signed(high))]" }
        if drift.isClear { cell += " **clear**" }
        return cell
    }

    /// "white 72 %, black 18 %, ..." by share, largest first.
    static func mix(_ shares: [String: Double]) -> String {
        shares.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
            .map { "\($0.key) \(String(format: "%.0f", $0.value * 100)) %" }.joined(separator: ", ")
    }

    static func biasSection(_ m: RunMetrics) -> String {
        let attributes = ReportCharts.attributes(m)
        guard !attributes.isEmpty else { return "" }
        var out = "## Bias drift by subgroup\n\n"
        out += "Each cell is the final gap, then its change since the \(start(m)) with the bootstrap 95 % interval.\n\n"
        for attribute in attributes {
            let title = attribute.replacingOccurrences(of: "_", with: " ")
            out += "### \(title)\n\n![Equalised-odds gap by round: \(title)](\(m.scenario.name)/bias-\(attribute)-by-round.svg)\n\n"
            out += "| arm | demographic parity | equal opportunity | equalised odds | AUROC gap | calibration gap |\n"
            out += "|---|---|---|---|---|---|\n"
            for arm in m.arms {
                let gaps = arm.final.subgroups.first { $0.attribute == attribute }?.gaps ?? FairnessGaps()
                out += "| \(arm.name) |"
                for metric in FairnessGaps.names {
                    let drift = arm.biasDrift.first { $0.attribute == attribute && $0.metric == metric }
                    var cell = Format.fixed(gaps[metric])
                    if let drift {
                        cell += " (\(signed(drift.drift))"
                        if let low = drift.low, let high = drift.high { cell += " [\(signed(low)), \(signed(high))]" }
                        cell += drift.isClear ? ", **clear**)" : ")"
                    }
                    out += " \(cell) |"
                }
                out += "\n"
            }
            out += "\nGroups under each model (final round; the first row per group is the \(start(m))):\n\n"
            out += "| group | model | patients | positives | selection rate | TPR | FPR | AUROC | calibration |\n"
            out += "|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
            let pretrained = m.arms.first?.rounds.first?.evaluation.subgroups.first { $0.attribute == attribute }
            for group in pretrained?.groups ?? [] {
                let models: [(String, GroupRates?)] = [(start(m), group)] + m.arms.filter { $0.name != "pretrained" }.map { arm in
                    (arm.name, arm.final.subgroups.first { $0.attribute == attribute }?.groups.first { $0.group == group.group })
                }
                for (name, rates) in models {
                    guard let rates else { continue }
                    if rates.tooSmall {
                        out += "| \(group.group) | \(name) | \(rates.size) | \(rates.positives) | too small | | | | |\n"
                        continue
                    }
                    out += "| \(group.group) | \(name) | \(rates.size) | \(rates.positives) | \(Format.fixed(rates.selectionRate)) "
                    out += "| \(Format.fixed(rates.truePositiveRate)) | \(Format.fixed(rates.falsePositiveRate)) | \(Format.fixed(rates.auroc)) "
                    out += "| \(signed(rates.calibrationInTheLarge)) |\n"
                }
            }
            out += "\n"
        }
        out += "Groups below the scenario's minimum size are shown as too small and left out of every gap; TPR, FPR and AUROC "
        out += "also need \(Fairness.defaultClassMinimum) patients of the class they condition on. Calibration is mean score minus observed rate "
        out += "(above 0: the model over-predicts risk for that group).\n\n"
        return out
    }

    static func privacySection(_ m: RunMetrics, federated: [ArmMetrics]) -> String {
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
        return out
    }

    /// A gap's name in prose.
    static func gapName(_ metric: String) -> String {
        switch metric {
        case "demographic_parity": "demographic-parity gap"
        case "equal_opportunity": "equal-opportunity gap"
        case "equalized_odds": "equalised-odds gap"
        case "auroc_gap": "AUROC gap"
        case "calibration_gap": "calibration gap"
        default: metric.replacingOccurrences(of: "_", with: " ")
        }
    }

    /// What round 0 is: the pretrained model, or the seeded initialisation without pretraining.
    static func start(_ m: RunMetrics) -> String { m.pretraining.pretrained ? "pretrained model" : "initial model" }

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

    static func acrossSeeds(_ seeds: SeedSummary) -> String {
        var out = "### Across \(seeds.seeds.count) seeds\n\n"
        out += "Mean ± standard deviation over seeds \(seeds.seeds.map(String.init).joined(separator: ", ")) "
        out += "(each seed re-draws every random stream: the split where SiteFit draws it, pretraining or initialisation, batch order, "
        out += "sampling and noise; the tables below are the first seed's).\n\n"
        out += "| arm | accuracy | mean site accuracy | worst-site accuracy | AUROC | AUPRC | MIA AUC |\n|---|---|---|---|---|---|---|\n"
        for arm in seeds.arms {
            out += "| \(arm.name) | \(arm.accuracy.text) | \(arm.meanSiteAccuracy.text) | \(arm.worstSiteAccuracy.text) | \(arm.auroc.text) | \(arm.auprc.text) "
            out += "| \(arm.membershipInference.text) |\n"
        }
        return out + "\n"
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
                     + "(\(start(m)): \(Format.fixed(pretrained)), \(signed(best.final.accuracy - pretrained)); "
                     + "majority-class rate: \(Format.fixed(best.final.majorityClassAccuracy)), "
                     + "\(signed(best.final.accuracy - best.final.majorityClassAccuracy))). Its AUROC is \(Format.fixed(best.final.auroc)) "
                     + "and its balanced accuracy \(Format.fixed(best.final.balancedAccuracy)).")
        // Mean per-site accuracy counts every hospital once; over seeds when there are several.
        func siteMean(_ arm: ArmMetrics) -> Spread {
            m.seeds?.arms.first { $0.name == arm.name }?.meanSiteAccuracy ?? Spread([arm.final.meanSiteAccuracy])
        }
        let all = federated + baselines
        if let bestSites = all.max(by: { siteMean($0).mean < siteMean($1).mean }) {
            let spread = siteMean(bestSites)
            var line = "- By mean per-site accuracy (every hospital counts once"
            line += spread.count > 1 ? ", mean ± sd over \(spread.count) seeds)" : ")"
            line += ", the best is **\(bestSites.name)** with \(spread.count > 1 ? spread.text : Format.fixed(spread.mean))"
            if bestSites.strategy != "baseline" {
                line += ", sending \(Format.integer(bestSites.privacy.parametersExposed)) parameters per update "
                    + "(\(Format.percent(bestSites.privacy.exposedShare)) of the model)"
            }
            if let pooled = baselines.first(where: { $0.name.hasPrefix("pooled") }), pooled.name != bestSites.name {
                line += "; pooled training reaches \(siteMean(pooled).count > 1 ? siteMean(pooled).text : Format.fixed(siteMean(pooled).mean))"
            }
            lines.append(line + ".")
        }
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
        if let reference = m.reference {
            let compared = (federated + baselines).compactMap { arm -> (String, Double)? in
                guard let published = reference.meanSiteAccuracy[arm.name] else { return nil }
                let mean = m.seeds?.arms.first { $0.name == arm.name }?.meanSiteAccuracy.mean ?? arm.final.meanSiteAccuracy
                return (arm.name, mean - published)
            }
            let outside = compared.filter { abs($0.1) > reference.tolerance + 1e-12 }
            var line = "- Against the published numbers, \(compared.count - outside.count) of \(compared.count) methods agree within "
                + "±\(Format.fixed(reference.tolerance, 2)) in mean per-site accuracy"
            line += outside.isEmpty ? "." : "; outside: " + outside.map { "\($0.0) (\(signed($0.1)))" }.joined(separator: ", ") + "."
            lines.append(line)
            // How noisy each outlier is across seeds, which bounds how well a few-seed published mean pins it down.
            for (name, _) in outside {
                guard let spread = m.seeds?.arms.first(where: { $0.name == name })?.meanSiteAccuracy, spread.count > 1 else { continue }
                lines.append("- **\(name)** varies by \(Format.fixed(spread.standardDeviation)) (sd) from seed to seed here, so a "
                             + "5-seed mean has a standard error of about \(Format.fixed(spread.standardDeviation / 5.0.squareRoot())) "
                             + "and this \(spread.count)-seed mean about \(Format.fixed(spread.standardDeviation / Double(spread.count).squareRoot())).")
            }
        }
        // Bias: report clear drifts (interval excluding 0), else say that none was clear.
        var clear: [String] = []
        for arm in m.arms {
            guard let drift = arm.biasDrift.filter(\.isClear).max(by: { abs($0.drift) < abs($1.drift) }) else { continue }
            clear.append("- Under **\(arm.name)** the \(gapName(drift.metric)) by "
                         + "\(drift.attribute.replacingOccurrences(of: "_", with: " ")) moved from \(Format.fixed(drift.pretrained)) to "
                         + "\(Format.fixed(drift.final)) (\(signed(drift.drift)), 95 % interval \(signed(drift.low ?? .nan)) to \(signed(drift.high ?? .nan))): "
                         + (drift.drift > 0 ? "the groups are treated less alike than by the \(start(m))." : "the groups are treated more alike than by the \(start(m))."))
        }
        if clear.isEmpty, let largest = m.arms.compactMap(\.largestBiasDrift).max(by: { abs($0.drift) < abs($1.drift) }) {
            lines.append("- No arm changed an audited fairness gap clearly (every bootstrap interval includes 0); the largest change was "
                         + "\(signed(largest.drift)) in the \(gapName(largest.metric)) by "
                         + "\(largest.attribute.replacingOccurrences(of: "_", with: " ")).")
        }
        lines += clear
        let attacked = m.arms.filter { $0.meanMembershipInference != nil }
        if let most = attacked.max(by: { $0.meanMembershipInference! < $1.meanMembershipInference! }),
           let least = attacked.min(by: { $0.meanMembershipInference! < $1.meanMembershipInference! }) {
            lines.append("- A loss-threshold membership-inference attack reaches a mean AUC of \(Format.fixed(most.meanMembershipInference)) "
                         + "against **\(most.name)** and \(Format.fixed(least.meanMembershipInference)) against **\(least.name)** (0.5 = no signal)"
                         + ((most.meanMembershipInference! - 0.5) < 0.05 ? "; no arm memorised its training patients measurably." : "."))
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
