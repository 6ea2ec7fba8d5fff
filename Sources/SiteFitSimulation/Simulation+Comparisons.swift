import SiteFitMetrics
import SiteFitReport
import SiteFitScenario
import SiteFitFederation

extension Simulation {
    /// Options of every paired comparison a run makes: 2,000 replicates at least, more until each
    /// interval bound's Monte Carlo error is at most 0.005.
    static func comparisonOptions(_ scenario: Scenario) -> PairedBootstrap.Options {
        PairedBootstrap.Options(minimumReplicates: 2000, maximumReplicates: 64_000, targetMonteCarloError: 0.005,
                                minimumGroupSize: scenario.subgroups.minimumGroupSize)
    }

    /// One seed's test patients in evaluation order, with the starting model's and every row's scores.
    static func scoredTestSet(start: [SitePredictions], startName: String, rows: [PredictionRow],
                              subgroups: Scenario.Subgroups) -> ScoredTestSet {
        let people = start.flatMap(\.personIds)
        var set = ScoredTestSet(labels: start.flatMap(\.labels),
                                sites: start.enumerated().flatMap { index, site in Array(repeating: index, count: site.labels.count) })
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
        if reference != startName { pairs.append((reference, startName)) }
        for row in rows where row != startName && row != reference { pairs.append((row, startName)) }
        let options = comparisonOptions(scenario)
        let differences = PairedBootstrap.compare(result.testSets, pairs: pairs, metrics: ComparisonMetric.standard,
                                                  seed: scenario.seed, purpose: "comparisons", options: options)
        result.metrics.comparisons = Comparisons(reference: reference, startingModel: startName, seeds: result.testSets.count,
                                                 minimumReplicates: options.minimumReplicates,
                                                 targetMonteCarloError: options.targetMonteCarloError, differences: differences)
        guard !scenario.expectations.isEmpty else { return }
        result.metrics.claims = scenario.expectations.map { check($0, scenario: scenario, result: result, options: options) }
        for claim in result.metrics.claims ?? [] { progress("\(claim.holds ? "✔" : "✘") \(claim.statement)") }
    }

    /// One claim, decided on all seeds.
    static func check(_ claim: Expectation, scenario: Scenario, result: Result, options: PairedBootstrap.Options) -> ClaimResult {
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
            // A footprint is the first seed's: bytes, FLOPs and exposure do not depend on the seed
            // unless sampling or dropout does, and then the first seed is as good as any.
            let a = value(claim.arm) ?? .nan, b = value(of) ?? .nan
            return ClaimResult(statement: claim.statement, holds: a.isFinite && b.isFinite && a <= fraction * b, armValue: a, otherValue: b)
        case .better, .worse, .notWorse, .above, .below:
            guard let metric = claim.metric else { return ClaimResult(statement: claim.statement, holds: false) }
            var sets = result.testSets
            var purpose = "comparisons"
            if !claim.sites.isEmpty {
                let ids = scenario.sites.map(\.profile.id)
                let keep = Set(claim.sites.compactMap { ids.firstIndex(of: $0) })
                sets = sets.map { $0.restricted(toSites: keep) }
                purpose += " at " + claim.sites.joined(separator: ",")
            }
            // A level claim compares the row with the all-zero "model": the difference is the metric itself.
            guard let difference = PairedBootstrap.compare(sets, pairs: [(claim.arm, claim.other)], metrics: [metric], seed: scenario.seed,
                                                           purpose: purpose, options: options).first
            else { return ClaimResult(statement: claim.statement, holds: false) }
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
