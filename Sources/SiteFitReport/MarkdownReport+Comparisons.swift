import SiteFitMetrics

// "Paired comparisons" and "Claims": every difference the report states, with its interval.
extension MarkdownReport {
    /// A metric's short column name.
    static func metricColumn(_ metric: ComparisonMetric) -> String { metric.words }

    /// "+0.012 [−0.004, +0.027]", with **better** / **worse** when the interval excludes 0.
    static func differenceCell(_ d: PairedDifference?) -> String {
        guard let d, d.estimate.isFinite else { return "n/a" }
        var cell = "\(signed(d.estimate)) [\(bound(d.low)), \(bound(d.high))]"
        if d.armIsBetter { cell = "**\(cell) better**" } else if d.armIsWorse { cell = "**\(cell) worse**" }
        return cell
    }

    /// "−0.003 (95 % interval −0.015 to +0.008)".
    static func differenceText(_ d: PairedDifference) -> String {
        "\(signed(d.estimate)) (95 % interval \(bound(d.low)) to \(bound(d.high)))"
    }

    /// Which interval the comparisons use and why, in one paragraph.
    static func intervalExplanation(_ c: Comparisons) -> String {
        var out = "Each cell is the difference *row − \(c.reference)*"
        out += c.reference == c.startingModel ? "" : " (or *row − \(c.startingModel)*)"
        out += " on the same test patients"
        if c.seeds > 1 {
            out += ", averaged over all \(c.seeds) seeds, with a 95 % interval from a hierarchical paired bootstrap: each replicate draws the "
            out += "\(c.seeds) seeds with replacement and resamples the test patients within each site (one resample for every seed when the "
            out += "seeds test the same patients, as with a fixed or temporal split); both rows are scored on the same draw (paired). The "
            out += "seed part is widened by √(k/(k − 1))·t₀.₉₇₅,ₖ₋₁/1.96 for the few seeds, and the interval is bias-corrected (Efron's BC). "
            out += "It covers both which patients were tested and what training randomness (initialisation, batch order, sampling, noise, "
            out += "and the split where it is random) does to the result."
        } else {
            out += ", with a 95 % bias-corrected paired bootstrap interval: each replicate draws the test patients with replacement within "
            out += "each site and scores both rows on that draw. With one seed it covers which patients were tested, not training randomness; "
            out += "run more seeds (`--seeds`) to include it."
        }
        out += " A difference is called (**better** / **worse**) only when its interval excludes 0; otherwise the two rows are "
        out += "indistinguishable on this evidence, which is not evidence that they are equal. Each call is a separate 95 % statement: "
        out += "among many comparisons with no real difference, about 1 in 20 will look called by chance. "
        let replicates = c.differences.map(\.replicates).max() ?? c.minimumReplicates
        out += "Replicates: \(Format.integer(replicates)) (at least \(Format.integer(c.minimumReplicates)), doubled until every bound's "
        out += "Monte Carlo standard error is at most \(Format.fixed(c.targetMonteCarloError)); the largest here is "
        out += "\(Format.fixed(c.largestMonteCarloError, 4))"
        if !(c.biasDrift + c.groupTruePositiveRates).isEmpty {
            let subgroup = c.largestSubgroupMonteCarloError
            out += "; for the subgroup gaps and rates of *Bias drift* and the findings, doubled up to \(Format.integer(c.subgroupMaximumReplicates)) at most, it is "
            out += "\(Format.fixed(subgroup, 4))" + (subgroup > c.targetMonteCarloError
                ? ", above the target: a subgroup call whose bound lies within \(Format.fixed(2 * subgroup, 3)) of 0 could go either way" : "")
        }
        out += "). Brier score, calibration error in the large (|mean risk − event rate|, pooled over the sites' patients) "
        out += "and gaps are better when smaller.\n\n"
        return out
    }

    static func comparisonsSection(_ m: RunMetrics) -> String {
        guard let c = m.comparisons, !c.differences.isEmpty else { return "" }
        var out = "## Paired comparisons\n\n"
        out += intervalExplanation(c)
        out += "![Every paired difference with its interval](\(m.scenario.name)/comparisons.svg)\n\n"
        var columns = c.reference == c.startingModel ? [c.reference] : [c.reference, c.startingModel]
        // A transformer scenario's MLP arms are compared with the MLP they started from.
        for d in c.differences where !columns.contains(d.against) { columns.append(d.against) }
        for against in columns {
            let rows = m.arms.map(\.name).filter { name in c.differences.contains { $0.arm == name && $0.against == against } }
            guard !rows.isEmpty else { continue }
            out += "### Against \(against)\n\n"
            out += "| row |" + ComparisonMetric.standard.map { " \(metricColumn($0)) |" }.joined() + "\n"
            out += "|---|" + String(repeating: "---:|", count: ComparisonMetric.standard.count) + "\n"
            for row in rows {
                out += "| \(row) |" + ComparisonMetric.standard.map { " \(differenceCell(c.difference(row, against, $0))) |" }.joined() + "\n"
            }
            out += "\n"
        }
        return out
    }

    /// The scenario's claims, each ✔ or ✘ with the numbers that decide it.
    static func claimsSection(_ m: RunMetrics) -> String {
        guard let claims = m.claims, !claims.isEmpty else { return "" }
        let held = claims.filter(\.holds).count
        var out = "## Claims\n\n"
        out += "The scenario states its lesson as claims (`expect:`); the run checks each one over all "
        out += "\(m.comparisons?.seeds ?? 1) seed\((m.comparisons?.seeds ?? 1) == 1 ? "" : "s") with the paired interval of the comparisons. "
        out += "\(held) of \(claims.count) hold.\n\n"
        out += "| | claim | evidence |\n|---|---|---|\n"
        for claim in claims {
            out += "| \(claim.holds ? "✔" : "✘") | \(claim.statement) | \(claimEvidence(claim)) |\n"
        }
        return out + "\n"
    }

    /// The numbers behind a claim.
    public static func claimEvidence(_ claim: ClaimResult) -> String {
        if let l = claim.leakage {
            return "difference in \(l.measure.words) \(signed(l.difference.estimate)) (95 % interval \(bound(l.difference.low)) to "
                + "\(bound(l.difference.high))) over \(Format.integer(l.difference.count)) paired updates"
        }
        if let d = claim.difference {
            if d.against.isEmpty {
                return "\(Format.fixed(d.estimate)) (95 % interval \(Format.fixed(d.low)) to \(Format.fixed(d.high)))"
                    + (d.usableReplicates < d.replicates ? ", \(d.usableReplicates) of \(d.replicates) replicates defined" : "")
            }
            return "difference \(differenceText(d))" + (d.usableReplicates < d.replicates ? ", \(d.usableReplicates) of \(d.replicates) replicates defined" : "")
        }
        if let a = claim.armValue, let b = claim.otherValue {
            return "\(Format.fixed(a, 0)) against \(Format.fixed(b, 0)): \(b > 0 ? Format.fixed(a / b, 4) : "n/a") ×"
        }
        return "could not be computed"
    }
}

extension ReportCharts {
    /// The forest plot of every paired difference (nil when the run made none).
    static func forest(_ m: RunMetrics) -> String? {
        guard let c = m.comparisons, !c.differences.isEmpty else { return nil }
        func label(_ d: PairedDifference) -> String { "\(d.arm) − \(d.against)" }
        var labels: [String] = []
        for d in c.differences where !labels.contains(label(d)) { labels.append(label(d)) }
        let panels = ComparisonMetric.standard.map { metric in
            Charts.ForestPanel(title: metric == .calibrationInTheLarge ? "calibration in the large" : MarkdownReport.metricColumn(metric), higherIsBetter: metric.higherIsBetter,
                               rows: c.differences.filter { $0.metric == metric }.map {
                                   Charts.ForestRow(label: label($0), estimate: $0.estimate, low: $0.low, high: $0.high,
                                                    verdict: $0.armIsBetter ? 1 : $0.armIsWorse ? -1 : 0)
                               })
        }
        return Charts.forest(title: "Paired differences over \(c.seeds) seed\(c.seeds == 1 ? "" : "s"), with 95 % intervals",
                             labels: labels, panels: panels)
    }
}
