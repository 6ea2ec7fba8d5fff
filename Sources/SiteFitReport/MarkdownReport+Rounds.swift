import Foundation
import SiteFitCore

// "Rounds": each federated arm round by round.
extension MarkdownReport {
    /// One table per federated arm: every round's accuracy, traffic, participants and (DP) ε.
    static func roundsSection(_ m: RunMetrics) -> String {
        let folder = m.scenario.name
        let federated = m.arms.filter { !$0.kind.isBaseline }
        var out = "## Rounds\n\n![Pooled test accuracy by round](\(folder)/accuracy-by-round.svg)\n\n"
        for arm in federated {
            out += "### \(arm.name)\n\n"
            out += "| round | accuracy | AUROC |" + m.sites.map { " \($0.id) |" }.joined()
                + " parameter drift | bytes down | bytes up | updates accepted | rejected or absent |\(arm.privacy.epsilon == nil ? "" : " ε |")\n"
            out += "|---:|---:|---:|" + String(repeating: "---:|", count: m.sites.count) + "---:|---:|---:|---:|---|"
                + (arm.privacy.epsilon == nil ? "" : "---:|") + "\n"
            for r in arm.rounds {
                out += "| \(r.round) | \(Format.fixed(r.evaluation.accuracy)) | \(Format.fixed(r.evaluation.auroc)) |"
                for s in m.sites { out += " \(Format.fixed(r.evaluation.perSite[s.id]?.accuracy)) |" }
                var notes = r.rejected.map { "\($0.site): rejected, \($0.reason)" } + r.absent.map { "\($0.site): \(absenceNote($0.reason))" }
                if let secure = r.secureAggregation, secure.result != .aggregated {
                    notes.append(secureAbortNote(secure))
                } else if r.skipped {
                    notes.append("**round skipped** (too few updates for the quorum; model unchanged)")
                }
                if let secure = r.secureAggregation, secure.recoveredDropouts > 0 {
                    notes.append("masks of \(secure.recoveredDropouts) dropped site(s) removed with \(secure.survivors) survivors' shares")
                }
                if let clamped = r.secureAggregation?.clamped, clamped > 0 { notes.append("\(clamped) value(s) clamped to ±8") }
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
                out += ", sent masked by secure aggregation (Bonawitz et al. 2017: pairwise and self masks over values quantised mod 2^32, "
                    + "Shamir shares of each site's secrets for dropout recovery): the server only held masked vectors and their sum, "
                    + "and only for rounds with at least \(arm.rounds.compactMap(\.secureAggregation?.threshold).max() ?? 2) sites"
            }
            if let epsilon = arm.privacy.epsilon, let delta = arm.privacy.delta {
                out += ". Site-level DP-FedAvg: updates clipped to L2 norm \(Format.fixed(arm.privacy.clipNorm, 3)), Gaussian noise σ = "
                    + "\(Format.fixed(arm.privacy.noiseMultiplier, 2))·C on the sum; ε = \(Format.fixed(epsilon, 2)) at δ = \(delta) (RDP accountant)"
                if let stop = arm.privacy.stoppedByBudgetAfterRound { out += "; training stopped after round \(stop) to stay within the ε budget" }
            }
            out += ".\n\n"
        }
        out += "*Parameter drift* is the L2 distance of the shared parameters from their \(m.pretraining.pretrained ? "pretrained" : "initial") values after each round.\n\n"
        return out
    }

    /// Why a site is missing from a round, in words.
    static func absenceNote(_ reason: AbsenceReason) -> String {
        switch reason {
        case .notSampled: "not sampled"
        case .droppedOut(let scheduled): scheduled ? "dropped out (scheduled)" : "dropped out"
        case .missedDeadline(let seconds, let deadline):
            String(format: "missed the deadline (%.3g s > %.3g s)", seconds, deadline)
        case .lost(let reason): "site process lost (\(SafeText.label(reason)))"
        }
    }

    /// Why a secure round installed nothing, in words.
    static func secureAbortNote(_ secure: SecureAggregationRound) -> String {
        switch secure.result {
        case .aggregated: ""
        case .abortedBeforeMasking:
            "**round aborted before masking** (\(secure.maskingSet) site(s) to mask together, below secure aggregation's threshold of "
                + "\(secure.threshold): no site trained or sent anything; model unchanged)"
        case .abortedAtUnmasking:
            "**round aborted at unmasking** (\(secure.survivors) masked vector(s) arrived, below the threshold of \(secure.threshold): "
                + "the server unmasked nothing; model unchanged)"
        }
    }
}
