import Foundation
import SiteFitMetrics

// "Bias drift by subgroup".
extension MarkdownReport {
    /// Per audited attribute: every arm's final gaps with their drift, then each group's rates under each model.
    static func biasSection(_ m: RunMetrics) -> String {
        let attributes = ReportCharts.attributes(m)
        guard !attributes.isEmpty else { return "" }
        var out = "## Bias drift by subgroup\n\n"
        out += "Each cell is the final gap, then its change since the \(start(m)) with its 95 % interval"
        out += m.comparisons.map { $0.seeds > 1 ? " over all \($0.seeds) seeds and their test patients (the interval of *Paired comparisons*)" : " over test patients" } ?? ""
        out += "; a change whose interval excludes 0 is marked **clear**.\n\n"
        for attribute in attributes {
            let title = attribute.replacingOccurrences(of: "_", with: " ")
            out += "### \(title)\n\n![Equalised-odds gap by round: \(title)](\(m.scenario.name)/bias-\(attribute)-by-round.svg)\n\n"
            out += "| arm | demographic parity | equal opportunity | equalised odds | AUROC gap | calibration gap |\n"
            out += "|---|---|---|---|---|---|\n"
            for arm in m.arms {
                let gaps = arm.final.subgroups.first { $0.attribute == attribute }?.gaps ?? FairnessGaps()
                out += "| \(arm.name) |"
                for (kind, metric) in zip(ComparisonMetric.GapKind.allCases, FairnessGaps.names) {
                    var cell = Format.fixed(gaps[metric])
                    if let c = m.comparisons {
                        if let d = c.drift(arm.name, .gap(kind, attribute: attribute)), d.estimate.isFinite {
                            cell += " (\(signed(d.estimate)) [\(signed(d.low)), \(signed(d.high))]" + (d.isClear ? ", **clear**)" : ")")
                        }
                    } else if let drift = arm.biasDrift.first(where: { $0.attribute == attribute && $0.metric == metric }) {
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
                // The starting model is each group's first row already; a starting-model baseline
                // (named "pretrained", or "initial model" under `pretraining: none`) would repeat it.
                let models: [(String, GroupRates?)] = [(start(m), group)] + m.arms.filter { $0.kind != .baseline(.startingModel) }.map { arm in
                    (arm.name, arm.final.subgroups.first { $0.attribute == attribute }?.groups.first { $0.group == group.group })
                }
                for (name, rates) in models {
                    guard let rates else { continue }
                    // A small group shows no number at all (its counts could single patients out); a
                    // class-conditional rate needs enough patients of its class to mean anything.
                    if rates.tooSmall {
                        out += "| \(group.group) | \(name) | — | — | — | — | — | — | — |\n"
                        continue
                    }
                    let enoughPositives = rates.positives >= Fairness.defaultClassMinimum
                    let enoughNegatives = rates.size - rates.positives >= Fairness.defaultClassMinimum
                    out += "| \(group.group) | \(name) | \(rates.size) | \(rates.positives) | \(Format.fixed(rates.selectionRate)) "
                    out += "| \(enoughPositives ? Format.fixed(rates.truePositiveRate) : "—") | \(enoughNegatives ? Format.fixed(rates.falsePositiveRate) : "—") "
                    out += "| \(enoughPositives && enoughNegatives ? Format.fixed(rates.auroc) : "—") "
                    out += "| \(signed(rates.calibrationInTheLarge)) |\n"
                }
            }
            out += "\n"
        }
        out += "A group below the scenario's minimum size shows — in every cell and is left out of every gap; TPR, FPR and AUROC show — "
        out += "with fewer than \(Fairness.defaultClassMinimum) patients of the class they condition on. Calibration is mean score minus observed rate "
        out += "(above 0: the model over-predicts risk for that group).\n\n"
        return out
    }
}
