import SiteFitCore
import SiteFitFederation
import SiteFitMetrics
import SiteFitNN
import SiteFitReport
import SiteFitScenario

/// One attacked update, with the seed that produced it (units are paired across arms by seed, site and trial).
struct SeededTrial: Sendable, Codable {
    var seed: UInt64
    var trial: ReconstructionTrial

    var key: String { "\(seed)|\(trial.site)|\(trial.trial)" }
    /// The unit the intervals resample: one seed's site (one pretrained model, one pool of patients).
    var cluster: String { "\(seed)|\(trial.site)" }
}

/// An arm's attacked updates over every seed (none when its updates travel masked).
struct ArmReconstruction: Sendable, Codable {
    var arm: String
    var masked: Bool
    var trials: [SeededTrial]
}

extension Simulation {
    /// The reconstruction experiment for one arm, at every training site, after `begin` and
    /// before round 1: the server's attacks on updates from the broadcast model. Under secure
    /// aggregation the server never holds one site's update, so nothing is attacked.
    static func reconstruction<Network: FederatedModel>(_ arm: Scenario.Arm, scenario: Scenario, sites: [any FederatedSite<Network>],
                               sequentialSites: Bool = false) async throws -> ArmReconstruction? {
        guard let settings = scenario.reconstruction else { return nil }
        guard !arm.secureAggregation else { return ArmReconstruction(arm: arm.name, masked: true, trials: []) }
        let federation = scenario.federation
        let optimizer = OptimizerConfiguration(kind: federation.optimizer, learningRate: arm.learningRate,
                                               weightDecay: federation.weightDecay, gradientClipNorm: federation.gradientClipNorm)
        let clipNorm = arm.privacy?.clipNorm
        if sequentialSites {
            var trials: [SeededTrial] = []
            for site in sites {
                trials += try await site.reconstructionTrials(settings: settings, optimizer: optimizer, positiveWeight: Float(federation.positiveWeight),
                                                          clipNorm: clipNorm).map { SeededTrial(seed: scenario.seed, trial: $0) }
            }
            return ArmReconstruction(arm: arm.name, masked: false, trials: trials)
        }
        let perSite = try await withThrowingTaskGroup(of: (Int, [ReconstructionTrial]).self) { group in
            for (index, site) in sites.enumerated() {
                group.addTask {
                    (index, try await site.reconstructionTrials(settings: settings, optimizer: optimizer,
                                                            positiveWeight: Float(federation.positiveWeight), clipNorm: clipNorm))
                }
            }
            var out: [Int: [ReconstructionTrial]] = [:]
            for try await (index, trials) in group { out[index] = trials }
            return out
        }
        // Site order, whatever order the sites finished in.
        let trials = sites.indices.flatMap { perSite[$0] ?? [] }.map { SeededTrial(seed: scenario.seed, trial: $0) }
        return ArmReconstruction(arm: arm.name, masked: false, trials: trials)
    }

    /// The experiment's table: every arm at every setting, means with intervals over all seeds.
    static func reconstructionResults(_ arms: [ArmReconstruction], settings: ReconstructionSettings, seed: UInt64) -> ReconstructionResults {
        var rows: [ReconstructionRow] = []
        for arm in arms {
            for batchSize in settings.batchSizes {
                for steps in settings.localSteps {
                    let seeded = arm.trials.filter { $0.trial.batchSize == batchSize && $0.trial.localSteps == steps }
                    let trials = seeded.map(\.trial)
                    func interval(_ values: [Double], _ what: String, clusters: [String]? = nil) -> MeanInterval {
                        var random = RandomStream(seed: seed, "reconstruction-interval", arm.arm, String(batchSize), String(steps), what)
                        return MeanInterval.bootstrap(values, clusters: clusters ?? seeded.map(\.cluster), random: &random)
                    }
                    func summary(_ scores: [ReconstructionScore], _ attack: String) -> ReconstructionAttackSummary? {
                        guard !scores.isEmpty else { return nil }
                        return ReconstructionAttackSummary(error: interval(scores.map(\.error), attack + "-error"),
                                                           f1: interval(scores.map { $0.f1 ?? .nan }, attack + "-f1"),
                                                           identified: interval(scores.map(\.identified), attack + "-identified"))
                    }
                    let analytic = trials.compactMap(\.analytic)
                    let rated = seeded.filter { $0.trial.outcomeRateError != nil }
                    rows.append(ReconstructionRow(
                        arm: arm.arm, batchSize: batchSize, localSteps: steps, updates: trials.count, masked: arm.masked,
                        analytic: analytic.count == trials.count ? summary(analytic, "analytic") : nil,
                        optimisation: summary(trials.map(\.optimisation), "optimisation"),
                        chosen: summary(trials.map(\.chosen), "chosen"), chance: summary(trials.map(\.chance), "chance"),
                        outcomeRateError: rated.isEmpty ? nil : interval(rated.compactMap(\.trial.outcomeRateError), "outcome-rate",
                                                                         clusters: rated.map(\.cluster))))
                }
            }
        }
        return ReconstructionResults(budget: settings.budget, trials: settings.trials, rows: rows)
    }

    /// A leakage claim's paired difference: the chosen attack's `measure` on `arm` at its setting
    /// minus on `than` at its, over the updates both have (same seed, site and trial).
    static func leakageDifference(_ claim: Expectation, arms: [ArmReconstruction], seed: UInt64) -> LeakageDifference? {
        guard case .leaksMore(let than, let measure, let b, let s, let thanB, let thanS) = claim.relation,
              let mine = arms.first(where: { $0.arm == claim.arm }), let theirs = arms.first(where: { $0.arm == than }) else { return nil }
        var clusterOf: [String: String] = [:]
        func values(_ arm: ArmReconstruction, _ b: Int, _ s: Int) -> [String: Double] {
            var out: [String: Double] = [:]
            for t in arm.trials where t.trial.batchSize == b && t.trial.localSteps == s {
                clusterOf[t.key] = t.cluster
                let score = t.trial.chosen
                out[t.key] = switch measure {
                case .f1: score.f1 ?? .nan
                case .error: score.error
                case .identified: score.identified
                case .outcomeRateError: t.trial.outcomeRateError ?? .nan
                }
            }
            return out
        }
        let (a, o) = (values(mine, b, s), values(theirs, thanB, thanS))
        let paired = a.keys.sorted().compactMap { key -> (difference: Double, cluster: String)? in
            guard let x = a[key], let y = o[key], x.isFinite, y.isFinite else { return nil }
            return (x - y, clusterOf[key] ?? key)
        }
        var random = RandomStream(seed: seed, "leakage-claim", claim.arm, than, measure.rawValue, String(b), String(s), String(thanB), String(thanS))
        return LeakageDifference(arm: claim.arm, against: than, measure: measure, batchSize: b, localSteps: s, againstBatchSize: thanB,
                                 againstLocalSteps: thanS,
                                 difference: MeanInterval.bootstrap(paired.map(\.difference), clusters: paired.map(\.cluster), random: &random))
    }
}
