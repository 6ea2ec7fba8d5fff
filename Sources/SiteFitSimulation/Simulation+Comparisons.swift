import SiteFitMetrics
import SiteFitReport
import SiteFitScenario
import SiteFitFederation

extension Simulation {
    /// Options of every paired comparison a run makes: 2,000 replicates at least, more until each
    /// interval bound's Monte Carlo error is at most 0.005; subgroup gaps and rates (noisy in
    /// small groups) double only up to `subgroupMaximumReplicates`, and the report states their
    /// largest error.
    static func comparisonOptions(_ scenario: Scenario) -> PairedBootstrap.Options {
        PairedBootstrap.Options(minimumReplicates: 2000, maximumReplicates: 64_000, targetMonteCarloError: 0.005,
                                minimumGroupSize: scenario.subgroups.minimumGroupSize)
    }

    static let subgroupMaximumReplicates = 4000

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
        if let settings = scenario.reconstruction {
            result.metrics.reconstruction = reconstructionResults(result.reconstruction, settings: settings, seed: scenario.seed)
        }
        let rows = result.metrics.arms.map(\.name)
        let startName = ArmKind.Baseline.startingModel.armName(startsPretrained: scenario.pretraining.enabled)
        let reference = scenario.comparisonReference
        var pairs: [(arm: String, against: String)] = []
        // A transformer scenario's MLP arms start from the MLP: that is what they moved from.
        let mlpStart = ArmKind.Baseline.startingMLP.armName(startsPretrained: scenario.pretraining.enabled)
        let mlpRows = rows.contains(mlpStart) ? Set(scenario.arms.filter(\.onMLP).map(\.name)) : []
        func start(of row: String) -> String { mlpRows.contains(row) ? mlpStart : startName }
        // The starting model is compared with the reference once, as reference − starting model.
        for row in rows where row != reference && row != startName { pairs.append((row, reference)) }
        if reference != startName {
            pairs.append((reference, start(of: reference)))
            for row in rows where row != startName && row != reference && row != mlpStart { pairs.append((row, start(of: row))) }
            if rows.contains(mlpStart) && reference != mlpStart { pairs.append((mlpStart, startName)) }
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
        // Two calls on the same resamples (same seed and purpose): the headline metrics, which double
        // until every bound meets the target, through the fast pass without subgroup tallies; and the
        // subgroup gaps and rates against the starting model, capped (small groups are noisy enough
        // to need many times the replicates), their largest error stated in the report.
        let headline = PairedBootstrap.compare(result.testSets, pairs: pairs, metrics: ComparisonMetric.standard,
                                               seed: scenario.seed, purpose: "comparisons", options: options)
        var subgroupOptions = options
        subgroupOptions.maximumReplicates = subgroupMaximumReplicates
        // Drift is a row's change from its own starting model; one starting model against the other is no drift.
        let startPairs = pairs.filter { ($0.against == startName || $0.against == mlpStart) && $0.arm != mlpStart }
        let subgroups = PairedBootstrap.compare(result.testSets, pairs: startPairs, metrics: gaps + groupRates,
                                                seed: scenario.seed, purpose: "comparisons", options: subgroupOptions)
            .filter { $0.estimate.isFinite }
        var comparisons = Comparisons(reference: reference, startingModel: startName, seeds: result.testSets.count,
                                      minimumReplicates: options.minimumReplicates, targetMonteCarloError: options.targetMonteCarloError,
                                      differences: headline)
        comparisons.biasDrift = subgroups.filter { gaps.contains($0.metric) }
        comparisons.groupTruePositiveRates = subgroups.filter { groupRates.contains($0.metric) }
        comparisons.subgroupMaximumReplicates = subgroupMaximumReplicates
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

    /// One claim, decided on all seeds: a footprint from the arms' metrics (means over seeds), a
    /// comparison or level from its paired difference (`Expectation.holds`).
    static func check(_ claim: Expectation, difference: PairedDifference?, result: Result) -> ClaimResult {
        if case .leaksMore = claim.relation {
            let leakage = leakageDifference(claim, arms: result.reconstruction, seed: result.metrics.scenario.seed)
            return ClaimResult(statement: claim.statement, holds: leakage.map { claim.holds(leakage: $0.difference) } ?? false, leakage: leakage)
        }
        guard case .atMost(_, let of, let quantity) = claim.relation else {
            return ClaimResult(statement: claim.statement, holds: difference.map(claim.holds) ?? false, difference: difference)
        }
        func value(_ name: String) -> Double {
            guard let arm = result.metrics.arms.first(where: { $0.name == name }) else { return .nan }
            return switch quantity {
            case .bytesUp: Double(arm.privacy.bytesUp)
            case .trainingFlops: arm.compute.trainingFlopsPerSiteRound
            case .parametersExposed: Double(arm.privacy.parametersExposed)
            }
        }
        let (a, b) = (value(claim.arm), value(of))
        return ClaimResult(statement: claim.statement, holds: claim.holds(armValue: a, otherValue: b), armValue: a, otherValue: b)
    }
}
