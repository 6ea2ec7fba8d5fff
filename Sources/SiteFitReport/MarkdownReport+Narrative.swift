import Foundation

// "What this shows": plain-language findings computed from the metrics.
extension MarkdownReport {
    /// Plain-language findings computed from the numbers above; nothing here is canned.
    static func narrative(_ m: RunMetrics) -> String {
        let federated = m.arms.filter { !$0.kind.isBaseline }
        let baselines = m.arms.filter(\.kind.isBaseline)
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
            if !bestSites.kind.isBaseline {
                line += ", sending \(Format.integer(bestSites.privacy.parametersExposed)) parameters per update "
                    + "(\(Format.percent(bestSites.privacy.exposedShare)) of the model)"
            }
            if let pooled = baselines.first(where: { $0.kind == .baseline(.pooled) }), pooled.name != bestSites.name {
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
                .joined(separator: ", ") + ". " + (baselines.contains { $0.kind == .baseline(.pooled) }
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
        let attacked = m.arms.compactMap { arm in arm.meanMembershipInference.map { (name: arm.name, auc: $0) } }
        if let most = attacked.max(by: { $0.auc < $1.auc }), let least = attacked.min(by: { $0.auc < $1.auc }) {
            lines.append("- A loss-threshold membership-inference attack reaches a mean AUC of \(Format.fixed(most.auc)) "
                         + "against **\(most.name)** and \(Format.fixed(least.auc)) against **\(least.name)** (0.5 = no signal)"
                         + ((most.auc - 0.5) < 0.05 ? "; no arm memorised its training patients measurably." : "."))
        }
        let rejected = m.arms.flatMap { $0.rounds.flatMap(\.rejected) }
        lines.append(rejected.isEmpty ? "- The server accepted every update it received." : "- The server rejected \(rejected.count) update(s); see the round tables.")
        for arm in m.arms where !arm.kind.isBaseline {
            let rounds = arm.rounds.dropFirst()
            let absent = rounds.reduce(0) { $0 + $1.absent.count }, skipped = rounds.filter(\.skipped).count
            let late = rounds.reduce(0) { $0 + $1.absent.filter(\.reason.missedTheDeadline).count }
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
