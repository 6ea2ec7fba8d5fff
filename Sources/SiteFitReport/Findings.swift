import Foundation
import SiteFitMetrics

/// The report's plain-language findings, computed from the metrics alone (a pure function, tested
/// line by line). Every difference it states comes with its interval over all seeds, and it says
/// as plainly what got worse as what got better:
/// - each row against the reference: what is better, what is worse, what is indistinguishable;
/// - rows that did not move from the starting model, and rows at the majority-class rate;
/// - drops in balanced accuracy or in a group's true-positive rate;
/// - ε above 10 as a weak guarantee; the membership-inference AUC with its interval against 0.5;
/// - one fairness metric, the equalised-odds gap, for every row (as in the summary and the charts).
public enum Findings {
    /// ε above this is a weak guarantee in practice (the attacker's odds may grow by e^ε).
    public static let weakEpsilon = 10.0
    /// The fairness metric of the summary, the findings and the bias charts.
    public static let fairnessGap = ComparisonMetric.GapKind.equalizedOdds

    /// The findings in reading order, one Markdown bullet each (without the leading "- ").
    public static func lines(_ m: RunMetrics) -> [String] {
        var lines: [String] = []
        let rows = m.arms
        guard !rows.isEmpty else { return ["No arm ran."] }
        let seeds = m.comparisons?.seeds ?? m.seeds?.seeds.count ?? 1
        if let c = m.comparisons {
            lines.append((seeds > 1
                ? "Every difference below is a mean over \(seeds) seeds with its 95 % interval in brackets (see *Paired comparisons*)."
                : "Every difference below is from one seed, with its 95 % interval over test patients in brackets; run several seeds to include training randomness.")
                + " *Indistinguishable* means the interval includes 0: no difference was shown, which is not evidence of none.")
            // Each row against the reference, as one sentence.
            for row in rows where row.name != c.reference {
                guard let line = comparisonLine(row.name, against: c.reference, c, m) else { continue }
                lines.append(line)
            }
            // Rows on another model than the starting model's (a transformer scenario's MLP and its
            // own starting point) are read against their own start in the comparisons' tables.
            let otherModel = Set((m.model.transformer?.mlpArms ?? []) + m.arms.filter { $0.kind == .baseline(.startingMLP) }.map(\.name))
            for row in rows where row.name != c.startingModel && !otherModel.contains(row.name) {
                let against = ComparisonMetric.standard.compactMap { c.difference(row.name, c.startingModel, $0) }
                let moved = against.filter(\.isClear)
                if !against.isEmpty && moved.isEmpty {
                    lines.append("**\(row.name)** did not measurably move from the \(c.startingModel) model in any of the five headline metrics: "
                                 + "no difference in AUROC, balanced accuracy, Brier score, calibration or worst-site accuracy excludes 0.")
                }
                if let drop = c.difference(row.name, c.startingModel, .balancedAccuracy), drop.armIsWorse,
                   let start = startEvaluation(m)?.balancedAccuracy, let now = row.final.balancedAccuracy {
                    lines.append("**\(row.name)** lowers balanced accuracy from \(Format.fixed(start)) to \(Format.fixed(now)) "
                                 + "(\(compact(drop))): at the 0.5 threshold it catches fewer cases or raises more false alarms.")
                }
                let drops = c.groupTruePositiveRates.filter { $0.arm == row.name && $0.armIsWorse }.compactMap { drop -> String? in
                    guard case .truePositiveRate(let attribute, let group) = drop.metric else { return nil }
                    let before = groupRate(startEvaluation(m), attribute, group), after = groupRate(row.final, attribute, group)
                    return "\(groupWords(attribute, group)) \(Format.fixed(before)) → \(Format.fixed(after)) (\(compact(drop)))"
                }
                if !drops.isEmpty {
                    lines.append("**\(row.name)** lowers the true-positive rate (the share of cases it catches) for "
                                 + drops.joined(separator: ", ") + ".")
                }
            }
        }
        for row in rows where atMajorityRate(row.final) {
            lines.append("**\(row.name)** is at the majority-class rate: its accuracy \(Format.fixed(row.final.accuracy)) is what always "
                         + "predicting the commoner outcome scores (\(Format.fixed(row.final.majorityClassAccuracy))), and its balanced "
                         + "accuracy is \(Format.fixed(row.final.balancedAccuracy)).")
        }
        if let reference = m.comparisons?.reference, let base = rows.first(where: { $0.name == reference }), base.privacy.bytesUp > 0 {
            for row in rows where row.name != reference && !row.kind.isBaseline && row.privacy.bytesUp > 0 {
                let ratio = Double(base.privacy.bytesUp) / Double(row.privacy.bytesUp)
                guard abs(ratio - 1) > 0.05 else { continue }
                lines.append("**\(row.name)** sends \(ratio > 1 ? "\(Format.fixed(ratio, 1))× fewer" : "\(Format.fixed(1 / ratio, 1))× more") bytes up than "
                             + "**\(reference)** (\(Format.bytes(row.privacy.bytesUp)) against \(Format.bytes(base.privacy.bytesUp))) and exposes "
                             + "\(Format.integer(row.privacy.parametersExposed)) parameters per update (\(Format.percent(row.privacy.exposedShare)) of the model).")
            }
        }
        // Drift from a random initialisation says nothing about fairness: only a pretrained start has gaps worth tracking.
        for row in rows where m.pretraining.pretrained {
            guard let drift = fairnessDrift(row.name, m) else { continue }
            let words = drift.metric.words
            if drift.isClear {
                lines.append("Under **\(row.name)** the \(words) \(drift.estimate > 0 ? "widened" : "narrowed") since the \(MarkdownReport.start(m)) "
                             + "(\(compact(drift))): the groups are treated \(drift.estimate > 0 ? "less" : "more") alike.")
            }
        }
        let unclear = m.pretraining.pretrained ? rows.compactMap { fairnessDrift($0.name, m) }.filter { !$0.isClear } : []
        if !unclear.isEmpty {
            lines.append("The \(fairnessGapWords) of " + unclear.map { "**\($0.arm)** (by \($0.metric.attribute?.replacingOccurrences(of: "_", with: " ") ?? ""))" }
                            .joined(separator: ", ") + " did not change measurably: each interval includes 0.")
        }
        for row in rows {
            guard let epsilon = row.privacy.epsilon, let delta = row.privacy.delta else { continue }
            if epsilon > weakEpsilon {
                lines.append("**\(row.name)**'s differential-privacy guarantee is ε = \(Format.fixed(epsilon, 2)) at δ = \(delta): above \(Format.fixed(weakEpsilon, 0)), "
                             + "a weak guarantee in practice (it bounds the attacker's odds only by a factor of e^ε).")
            } else {
                lines.append("**\(row.name)**'s differential-privacy guarantee is ε = \(Format.fixed(epsilon, 2)) at δ = \(delta)"
                             + (row.privacy.stoppedByBudgetAfterRound.map { ", reached after \($0) rounds, when the ε budget stopped training" } ?? "") + ".")
            }
        }
        lines += membershipLines(m)
        lines += referenceLines(m)
        let rejected = rows.flatMap { $0.rounds.flatMap(\.rejected) }
        lines.append(rejected.isEmpty ? "The server accepted every update it received." : "The server rejected \(rejected.count) update(s); see the round tables.")
        for row in rows where !row.kind.isBaseline {
            let rounds = row.rounds.dropFirst()
            let absent = rounds.reduce(0) { $0 + $1.absent.count }, skipped = rounds.filter(\.skipped).count
            let late = rounds.reduce(0) { $0 + $1.absent.filter(\.reason.missedTheDeadline).count }
            var parts: [String] = []
            if absent > 0 { parts.append("\(absent) sampled site-round(s) sent nothing usable (\(late) missed the deadline, \(absent - late) dropped out)") }
            if skipped > 0 { parts.append("\(skipped) of \(rounds.count) rounds were skipped for lack of a quorum") }
            if !parts.isEmpty {
                lines.append("In **\(row.name)**\(seeds > 1 ? " (seed \(m.scenario.seed))" : ""), " + parts.joined(separator: "; ") + ".")
            }
        }
        return lines
    }

    /// "−0.043 [−0.069, −0.018]": a difference with its 95 % interval, for lists.
    static func compact(_ d: PairedDifference) -> String {
        "\(MarkdownReport.signed(d.estimate)) [\(MarkdownReport.bound(d.low)), \(MarkdownReport.bound(d.high))]"
    }

    /// "female patients", "patients aged 65-74", "Black patients".
    static func groupWords(_ attribute: String, _ group: String) -> String {
        switch attribute {
        case "age_band": "patients aged \(group)"
        case "sex", "race": "\(group) patients"
        default: "\(attribute.replacingOccurrences(of: "_", with: " ")) \(group)"
        }
    }

    static var fairnessGapWords: String { ComparisonMetric.gap(fairnessGap, attribute: "").words.replacingOccurrences(of: " by ", with: "") }

    /// "**bitfit** against **full**: better in …; worse in …; indistinguishable in …".
    static func comparisonLine(_ arm: String, against: String, _ c: Comparisons, _ m: RunMetrics) -> String? {
        let differences = ComparisonMetric.standard.compactMap { c.difference(arm, against, $0) }.filter { $0.estimate.isFinite }
        guard !differences.isEmpty else { return nil }
        let better = differences.filter(\.armIsBetter), worse = differences.filter(\.armIsWorse)
        let same = differences.filter { !$0.isClear }
        var parts: [String] = []
        if !better.isEmpty { parts.append("better in " + better.map { "\($0.metric.words) \(compact($0))" }.joined(separator: ", ")) }
        if !worse.isEmpty { parts.append("worse in " + worse.map { "\($0.metric.words) \(compact($0))" }.joined(separator: ", ")) }
        if !same.isEmpty {
            parts.append("indistinguishable in " + same.map { "\($0.metric.words) \(compact($0))" }.joined(separator: ", "))
        }
        return "**\(arm)** against **\(against)**: " + parts.joined(separator: "; ") + "."
    }

    /// The starting model's evaluation (round 0 of the first row that has one).
    static func startEvaluation(_ m: RunMetrics) -> Evaluation? { m.arms.first?.rounds.first?.evaluation }

    static func groupRate(_ e: Evaluation?, _ attribute: String, _ group: String) -> Double? {
        e?.subgroups.first { $0.attribute == attribute }?.groups.first { $0.group == group }?.truePositiveRate
    }

    /// Always (or almost always) predicting one class: balanced accuracy at 0.5 and accuracy at the majority rate.
    static func atMajorityRate(_ e: Evaluation) -> Bool {
        guard let balanced = e.balancedAccuracy else { return false }
        return balanced < 0.52 && abs(e.accuracy - e.majorityClassAccuracy) < 0.01
    }

    /// A row's drift in the report's one fairness gap, for the attribute where it moved most.
    public static func fairnessDrift(_ arm: String, _ m: RunMetrics) -> PairedDifference? {
        m.comparisons?.biasDrift.filter { d in
            d.arm == arm && d.estimate.isFinite && { if case .gap(fairnessGap, _) = d.metric { true } else { false } }()
        }.max { abs($0.estimate) < abs($1.estimate) }
    }

    /// The membership-inference AUC per row, against 0.5, with a t-interval over seeds.
    static func membershipLines(_ m: RunMetrics) -> [String] {
        var out: [String] = []
        var quiet: [String] = []
        for row in m.arms {
            guard let auc = row.meanMembershipInference else { continue }
            let spread = m.seeds?.arms.first { $0.name == row.name }?.membershipInference
            if let spread, spread.count > 1 {
                let half = studentT975(degrees: spread.count - 1) * spread.standardDeviation / Double(spread.count).squareRoot()
                let (low, high) = (spread.mean - half, spread.mean + half)
                if low > 0.5 {
                    out.append("A loss-threshold membership-inference attack tells **\(row.name)**'s training patients from held-out ones "
                               + "better than chance: AUC \(Format.fixed(spread.mean)) (95 % interval \(Format.fixed(low)) to \(Format.fixed(high)) "
                               + "over \(spread.count) seeds; 0.5 = no signal).")
                } else {
                    quiet.append("**\(row.name)** \(Format.fixed(spread.mean)) [\(Format.fixed(low)), \(Format.fixed(high))]")
                }
            } else {
                quiet.append("**\(row.name)** \(Format.fixed(auc)) (one seed, no interval)")
            }
        }
        if !quiet.isEmpty {
            out.append("The membership-inference attack's AUC is not measurably above 0.5 (no signal) for " + quiet.joined(separator: ", ") + ".")
        }
        return out
    }

    /// Agreement with published numbers, and how noisy each disagreeing row is across seeds.
    static func referenceLines(_ m: RunMetrics) -> [String] {
        guard let reference = m.reference else { return [] }
        var lines: [String] = []
        let compared = m.arms.compactMap { arm -> (String, Double)? in
            guard let published = reference.meanSiteAccuracy[arm.name] else { return nil }
            let mean = m.seeds?.arms.first { $0.name == arm.name }?.meanSiteAccuracy.mean ?? arm.final.meanSiteAccuracy
            return (arm.name, mean - published)
        }
        let outside = compared.filter { abs($0.1) > reference.tolerance + 1e-12 }
        var line = "Against the published numbers, \(compared.count - outside.count) of \(compared.count) methods agree within "
            + "±\(Format.fixed(reference.tolerance, 2)) in mean per-site accuracy"
        line += outside.isEmpty ? "." : "; outside: " + outside.map { "\($0.0) (\(MarkdownReport.signed($0.1)))" }.joined(separator: ", ") + "."
        lines.append(line)
        for (name, _) in outside {
            guard let spread = m.seeds?.arms.first(where: { $0.name == name })?.meanSiteAccuracy, spread.count > 1 else { continue }
            lines.append("**\(name)** varies by \(Format.fixed(spread.standardDeviation)) (sd) from seed to seed here, so a "
                         + "5-seed mean has a standard error of about \(Format.fixed(spread.standardDeviation / 5.0.squareRoot())) "
                         + "and this \(spread.count)-seed mean about \(Format.fixed(spread.standardDeviation / Double(spread.count).squareRoot())).")
        }
        return lines
    }

    /// The 97.5th percentile of Student's t (see `PairedBootstrap.studentT975`).
    public static func studentT975(degrees: Int) -> Double { PairedBootstrap.studentT975(degrees: degrees) }
}
