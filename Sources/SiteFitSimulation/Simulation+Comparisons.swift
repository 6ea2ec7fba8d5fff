import SiteFitMetrics
import SiteFitReport
import SiteFitScenario
import SiteFitFederation

extension Simulation {
    /// Options of every paired comparison a run makes: 2,000 replicates at least, more until each
    /// interval bound's Monte Carlo error is at most 0.005; subgroup gaps and rates (noisy in
    /// small groups) drive that only up to 8,000, and the report states their largest error.
    static func comparisonOptions(_ scenario: Scenario) -> PairedBootstrap.Options {
        PairedBootstrap.Options(minimumReplicates: 2000, maximumReplicates: 64_000, targetMonteCarloError: 0.005,
                                minimumGroupSize: scenario.subgroups.minimumGroupSize,
                                secondaryMaximumReplicates: subgroupMaximumReplicates, isSecondary: { $0.attribute != nil })
    }

    static let subgroupMaximumReplicates = 8000

    /// One seed's test patients in evaluation order, with the starting model's and every row's scores.
    static func scoredTestSet(start: [SitePredictions], startName: String, rows: [PredictionRow],
                              subgroups: Scenario.Subgroups) -> ScoredTestSet {
        let people = start.flatMap(\.personIds)
        var set = ScoredTestSet(labels: start.flatMap(\.labels),
                                sites: start.enumerated().flatMap { index, site in Array(repeating: index, count: site.labels.count) },
                                patients: people)
        for attribute in subgroups.attributes { set.groups[attribute.rawValue] = groupValues(start, attribute) }
        set.scores[startName] = start.flatMap(\.scores)
        var byArm: [String: [PredictionRow]] = [:]
        for row in rows { byArm[row.arm, default: []].append(row) }
        for (arm, armRows) in byArm {
            // Every row scores the same patients in the same order (site order, then each site's test order).
            precondition(armRows.map(\.personId) == people, "row '\(arm)' scored other patients than the starting model")
            set.scores[arm] = armRows.map(\.score)
        }
        return set
    }

    /// The paired comparisons of every row with the reference and the starting model, and the
    /// scenario's claims, over all seeds' test sets.
    static func compareAndCheck(_ scenario: Scenario, _ result: inout Result, progress: @Sendable (String) -> Void) {
        let rows = result.metrics.arms.map(\.name)
        let startName = ArmKind.Baseline.startingModel.armName(startsPretrained: scenario.pretraining.enabled)
        let reference = scenario.comparisonReference
        var pairs: [(arm: String, against: String)] = []
        // The starting model is compared with the reference once, as reference − starting model.
        for row in rows where row != reference && row != startName { pairs.append((row, reference)) }
        if reference != startName {
            pairs.append((reference, startName))
            for row in rows where row != startName && row != reference { pairs.append((row, startName)) }
        }
        let options = comparisonOptions(scenario)
        let gaps = ComparisonMetric.gaps(attributes: scenario.subgroups.attributes.map(\.rawValue))
        // Each group's TPR, for groups with enough patients and positives at every seed to define one.
        var groupRates: [ComparisonMetric] = []
        for attribute in scenario.subgroups.attributes.map(\.rawValue) {
            let names = Set(result.testSets.flatMap { $0.groups[attribute] ?? [] }).sorted()
            for name in names where result.testSets.allSatisfy({ set in
                let rows = set.labels.indices.filter { set.groups[attribute]?[$0] == name }
                return rows.count >= options.minimumGroupSize && rows.filter({ set.labels[$0] >= 0.5 }).count >= options.classMinimum
            }) {
                groupRates.append(.truePositiveRate(attribute: attribute, group: name))
            }
        }
        // One bootstrap for everything, so every number of the report comes from the same resamples;
        // bias drift and group rates are kept against the starting model only.
        let all = PairedBootstrap.compare(result.testSets, pairs: pairs, metrics: ComparisonMetric.standard + gaps + groupRates,
                                          seed: scenario.seed, purpose: "comparisons", options: options)
            .filter { ComparisonMetric.standard.contains($0.metric) || ($0.against == startName && $0.estimate.isFinite) }
        var comparisons = Comparisons(reference: reference, startingModel: startName, seeds: result.testSets.count,
                                      minimumReplicates: options.minimumReplicates, targetMonteCarloError: options.targetMonteCarloError,
                                      differences: all.filter { ComparisonMetric.standard.contains($0.metric) })
        comparisons.biasDrift = all.filter { $0.against == startName && gaps.contains($0.metric) }
        comparisons.groupTruePositiveRates = all.filter { $0.against == startName && groupRates.contains($0.metric) }
        result.metrics.comparisons = comparisons
        guard !scenario.expectations.isEmpty else { return }
        // Claims on the same patients share one bootstrap (one per set of sites), so they are
        // decided on the same resamples as each other; claims on all sites share the table's.
        var bySites: [[String]: [PairedDifference]] = [:]
        // A claim on all sites whose difference the table already holds takes the table's.
        let table = result.metrics.comparisons.map { $0.differences + $0.biasDrift + $0.groupTruePositiveRates } ?? []
        func inTable(_ claim: Expectation) -> PairedDifference? {
            guard claim.sites.isEmpty else { return nil }
            return table.first { $0.arm == claim.arm && $0.against == claim.other && $0.metric == claim.metric }
        }
        for sites in Set(scenario.expectations.filter { $0.metric != nil && inTable($0) == nil }.map(\.sites)) {
            let claims = scenario.expectations.filter { $0.metric != nil && $0.sites == sites && inTable($0) == nil }
            var pairs: [(arm: String, against: String)] = []
            for claim in claims where !pairs.contains(where: { $0.arm == claim.arm && $0.against == claim.other }) {
                pairs.append((claim.arm, claim.other))
            }
            var metrics: [ComparisonMetric] = []
            for claim in claims { if let m = claim.metric, !metrics.contains(m) { metrics.append(m) } }
            let ids = scenario.sites.map(\.profile.id)
            let keep = Set(sites.compactMap { ids.firstIndex(of: $0) })
            let sets = sites.isEmpty ? result.testSets : result.testSets.map { $0.restricted(toSites: keep) }
            bySites[sites] = PairedBootstrap.compare(sets, pairs: pairs, metrics: metrics, seed: scenario.seed,
                                                     purpose: sites.isEmpty ? "comparisons" : "comparisons at " + sites.joined(separator: ","),
                                                     options: options)
        }
        result.metrics.claims = scenario.expectations.map { claim in
            let difference = inTable(claim)
                ?? bySites[claim.sites]?.first { $0.arm == claim.arm && $0.against == claim.other && $0.metric == claim.metric }
            return check(claim, difference: difference, result: result)
        }
        for claim in result.metrics.claims ?? [] { progress("\(claim.holds ? "✔" : "✘") \(claim.statement)") }
    }

    /// One claim, decided on all seeds: a footprint from the arms' metrics, a comparison or level
    /// from its paired difference.
    static func check(_ claim: Expectation, difference: PairedDifference?, result: Result) -> ClaimResult {
        switch claim.relation {
        case .atMost(let fraction, let of, let quantity):
            func value(_ name: String) -> Double? {
                guard let arm = result.metrics.arms.first(where: { $0.name == name }) else { return nil }
                return switch quantity {
                case .bytesUp: Double(arm.privacy.bytesUp)
                case .trainingFlops: arm.compute.trainingFlopsPerSiteRound
                case .parametersExposed: Double(arm.privacy.parametersExposed)
                }
            }
            // Footprints are means over seeds (bytes and FLOPs vary with sampling and dropouts).
            let a = value(claim.arm) ?? .nan, b = value(of) ?? .nan
            return ClaimResult(statement: claim.statement, holds: a.isFinite && b.isFinite && a <= fraction * b, armValue: a, otherValue: b)
        case .better, .worse, .notWorse, .above, .below:
            guard let difference, difference.low.isFinite, difference.high.isFinite else {
                return ClaimResult(statement: claim.statement, holds: false, difference: difference)
            }
            let holds: Bool = switch claim.relation {
            case .better: difference.armIsBetter
            case .worse: difference.armIsWorse
            case .notWorse(_, let margin): difference.armIsNotWorse(margin: margin)
            case .above(let value): difference.low > value
            case .below(let value): difference.high < value
            case .atMost: false
            }
            return ClaimResult(statement: claim.statement, holds: holds, difference: difference)
        }
    }
}
