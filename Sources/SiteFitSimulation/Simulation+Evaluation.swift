import Foundation
import GRDB
import Logging
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitMetrics
import SiteFitNN
import SiteFitReport
import SiteFitScenario
import SiteFitTuning

extension Simulation {

    /// One `predictions.csv` row per scored test patient.
    static func predictionRows(arm: String, _ predictions: [SitePredictions]) -> [PredictionRow] {
        predictions.flatMap { site in
            site.personIds.indices.map { i in
                PredictionRow(arm: arm, site: site.site, personId: site.personIds[i], label: Int(site.labels[i]),
                              score: site.scores[i], sex: site.sex[i], race: site.race[i], ageBand: site.ageBand[i])
            }
        }
    }

    static func evaluate<Network: FederatedModel>(_ sites: [any FederatedSite<Network>], broadcast: [UInt8]) async throws -> [SitePredictions] {
        try await withThrowingTaskGroup(of: (Int, SitePredictions).self) { group in
            for (index, site) in sites.enumerated() {
                group.addTask { (index, try await site.evaluate(broadcast: broadcast)) }
            }
            var collected: [(Int, SitePredictions)] = []
            for try await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// Pooled and per-site metrics of one evaluation, with the subgroup audit.
    static func evaluation(_ predictions: [SitePredictions], subgroups: Scenario.Subgroups) -> Evaluation {
        let scores = predictions.flatMap(\.scores), labels = predictions.flatMap(\.labels)
        var perSite: [String: SiteEvaluation] = [:]
        for p in predictions {
            perSite[p.site] = SiteEvaluation(
                accuracy: Metrics.accuracy(scores: p.scores, labels: p.labels),
                balancedAccuracy: Metrics.balancedAccuracy(scores: p.scores, labels: p.labels),
                majorityClassAccuracy: Metrics.majorityClassAccuracy(p.labels),
                auroc: Metrics.auroc(scores: p.scores, labels: p.labels),
                auprc: Metrics.auprc(scores: p.scores, labels: p.labels),
                brier: Metrics.brier(scores: p.scores, labels: p.labels), testSize: p.labels.count)
        }
        let audits = subgroups.attributes.map { attribute in
            let rates = Fairness.groupRates(scores: scores, labels: labels, groups: groupValues(predictions, attribute),
                                            minimumSize: subgroups.minimumGroupSize)
            return SubgroupAudit(attribute: attribute.rawValue, groups: rates, gaps: Fairness.gaps(rates))
        }
        return Evaluation(accuracy: Metrics.accuracy(scores: scores, labels: labels),
                          balancedAccuracy: Metrics.balancedAccuracy(scores: scores, labels: labels),
                          majorityClassAccuracy: Metrics.majorityClassAccuracy(labels),
                          auroc: Metrics.auroc(scores: scores, labels: labels),
                          auprc: Metrics.auprc(scores: scores, labels: labels),
                          brier: Metrics.brier(scores: scores, labels: labels),
                          ece: Metrics.expectedCalibrationError(scores: scores, labels: labels),
                          worstSiteAccuracy: perSite.values.map(\.accuracy).min() ?? .nan, perSite: perSite,
                          subgroups: audits)
    }

    /// Every test patient's group for one attribute, in prediction order.
    static func groupValues(_ predictions: [SitePredictions], _ attribute: Scenario.Subgroups.Attribute) -> [String] {
        switch attribute {
        case .sex: predictions.flatMap(\.sex)
        case .race: predictions.flatMap(\.race)
        case .ageBand: predictions.flatMap(\.ageBand)
        }
    }

    /// Each audited gap's change from `before` (the pretrained model) to `after`, on the same
    /// patients, with a bootstrap interval. The resamples come from the stream (seed, "bootstrap",
    /// attribute) and are shared by every arm of the run, so arms are compared on the same
    /// resamples and the pretrained side of each is computed once.
    static func biasDrift(before: [SitePredictions], after: [SitePredictions], subgroups: Scenario.Subgroups,
                          seed: UInt64, bootstrap: BootstrapCache) -> [BiasDrift] {
        let labels = before.flatMap(\.labels)
        let scoresBefore = before.flatMap(\.scores), scoresAfter = after.flatMap(\.scores)
        var drifts: [BiasDrift] = []
        for attribute in subgroups.attributes {
            let groups = groupValues(before, attribute)
            let gapsBefore = Fairness.gaps(Fairness.groupRates(scores: scoresBefore, labels: labels, groups: groups,
                                                               minimumSize: subgroups.minimumGroupSize))
            let gapsAfter = Fairness.gaps(Fairness.groupRates(scores: scoresAfter, labels: labels, groups: groups,
                                                              minimumSize: subgroups.minimumGroupSize))
            let reference = bootstrap.reference(attribute.rawValue, before: scoresBefore) {
                var random = RandomStream(seed: seed, "bootstrap", attribute.rawValue)
                return BootstrapReference(before: scoresBefore, labels: labels, groups: groups, minimumSize: subgroups.minimumGroupSize,
                                          replicates: subgroups.bootstrapReplicates, random: &random)
            }
            let intervals = reference.drift(after: scoresAfter)
            for metric in FairnessGaps.names {
                guard let x = gapsBefore[metric], let z = gapsAfter[metric] else { continue }
                drifts.append(BiasDrift(attribute: attribute.rawValue, metric: metric, pretrained: x, final: z,
                                        low: intervals[metric]?.low, high: intervals[metric]?.high))
            }
        }
        return drifts
    }

    /// The membership-inference AUC at every site for the model each site evaluates with.
    static func membershipInference<Network: FederatedModel>(_ sites: [any FederatedSite<Network>], broadcasts: [[UInt8]]) async throws -> [String: Double] {
        var result: [String: Double] = [:]
        for (site, blob) in zip(sites, broadcasts) {
            if let auc = try await site.membershipInferenceAUC(broadcast: blob) { result[site.id] = auc }
        }
        return result
    }

    /// Each site's RMS standardised mean difference from the pooled cohort, over feature columns,
    /// from the sites' column sums alone. Columns without spread in the pool are skipped.
    static func featureDistances(_ summaries: [SiteSummary]) -> [Double] {
        let columns = summaries.first?.featureSums.count ?? 0
        guard columns > 0 else { return summaries.map { _ in 0 } }
        var mean = [Double](repeating: 0, count: columns), sd = mean
        for c in 0..<columns {
            let n = summaries.reduce(0.0) { $0 + $1.featureCounts[c] }
            guard n > 1 else { continue }
            mean[c] = summaries.reduce(0.0) { $0 + $1.featureSums[c] } / n
            let square = summaries.reduce(0.0) { $0 + $1.featureSquares[c] } / n
            sd[c] = max(square - mean[c] * mean[c], 0).squareRoot()
        }
        let used = (0..<columns).filter { sd[$0] > 1e-9 }
        return summaries.map { s in
            let observed = used.filter { s.featureCounts[$0] > 0 }
            guard !observed.isEmpty else { return 0 }
            let squares = observed.reduce(0.0) { sum, c in
                let difference = (s.featureSums[c] / s.featureCounts[c] - mean[c]) / sd[c]
                return sum + difference * difference
            }
            return (squares / Double(observed.count)).squareRoot()
        }
    }

    /// ‖w − w₀‖ and ‖w − w₀‖/‖w₀‖ of packed shared values.
    static func parameterDrift(_ current: [Float], from start: [Float]) -> ParameterDrift {
        var change = 0.0, base = 0.0
        for (w, w0) in zip(current, start) {
            change += Double(w - w0) * Double(w - w0)
            base += Double(w0) * Double(w0)
        }
        return ParameterDrift(l2: change.squareRoot(), relative: base > 0 ? (change / base).squareRoot() : 0)
    }
}


/// One run's bootstrap resamples per audited attribute, shared by its arms and baselines.
final class BootstrapCache: @unchecked Sendable {
    // @unchecked: `references` is only touched under `lock`.
    private let lock = NSLock()
    private var references: [String: BootstrapReference] = [:]

    /// The reference for `attribute`, built by `make` the first time; rebuilt (not shared) if an
    /// arm's round-0 scores differ from the cached reference's.
    func reference(_ attribute: String, before: [Float], make: () -> BootstrapReference) -> BootstrapReference {
        lock.lock()
        defer { lock.unlock() }
        if let cached = references[attribute], cached.before == before { return cached }
        let fresh = make()
        if references[attribute] == nil { references[attribute] = fresh }
        return fresh
    }
}

enum Format3 {
    static func string(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "n/a" }
        return String(format: "%.3f", value)
    }
}
