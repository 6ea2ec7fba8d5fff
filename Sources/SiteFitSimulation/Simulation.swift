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

/// Runs a scenario end to end: shards → pretraining → one federation per arm → metrics.
public enum Simulation {
    /// The arm key with which baselines begin every site: the pretrained network, every tensor trained.
    public static let baselineArm = "baseline"
    /// The training-stream name of the local-only baselines (each site alone; not federated rounds).
    public static let localBaselineArm = "baseline-local"

    /// The result of a run, ready for `ReportWriter`.
    public struct Result: Sendable {
        public var metrics: RunMetrics
        public var predictions: [PredictionRow]
        /// The pretrained model as a safetensors checkpoint (written next to the report).
        public var checkpoint: [UInt8]
        /// Every seed's test patients scored by every row, for the paired comparisons.
        public var testSets: [ScoredTestSet] = []
        /// Every arm's attacked updates over all seeds (the reconstruction experiment).
        var reconstruction: [ArmReconstruction] = []
    }

    /// Runs every arm of `scenario`; `progress` receives one line per step worth telling a user.
    /// `sequentialSites` trains one site at a time (a check that results do not depend on scheduling).
    /// With several seeds the whole scenario runs once per seed; each arm's metrics are then its
    /// means over the seeds, `metrics.seeds` holds every seed's headline numbers and
    /// `metrics.comparisons` the paired differences over all seeds with their intervals.
    public static func run(
        _ scenario: Scenario, fleet: any SiteFleet = LocalFleet(), logger: Logger = Logger(label: "sitefit.simulation"),
        cacheDirectory: URL? = nil, sequentialSites: Bool = false, journal: RunJournal? = nil,
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> Result {
        var scenario = scenario
        let agreement = try await agreeCovariates(&scenario, fleet: fleet, logger: logger, progress: progress)
        let vocabulary = try await agreeVocabulary(&scenario, fleet: fleet, logger: logger, progress: progress)
        var result = try await runSeed(scenario, fleet: fleet, logger: logger, cacheDirectory: cacheDirectory,
                                       sequentialSites: sequentialSites, journal: journal, progress: progress)
        await fleet.close(seed: scenario.seed)
        result.metrics.scenario.covariates = agreement
        if let vocabulary { result.metrics.model.transformer?.vocabulary = vocabulary }
        guard !scenario.extraSeeds.isEmpty else {
            compareAndCheck(scenario, &result, progress: progress)
            return result
        }
        var runs = [result.metrics.arms]
        // The other seeds are independent runs: they go concurrently, a few at a time (each holds
        // its own sites' rows), and are put back in seed order. The first seed ran alone, so every
        // shard it built or imported exists before the others start.
        let seeds = scenario.extraSeeds
        let width = max(1, ProcessInfo.processInfo.activeProcessorCount)
        var finished: [Int: Result] = [:]
        try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            var next = 0
            func start(_ index: Int) {
                // One seed of several: the scenario as `--seed` would run it (its source population follows).
                let reseeded = scenario.reseeded([seeds[index]])
                let seed = seeds[index]
                progress("seed \(seed) (\(index + 2) of \(seeds.count + 1))")
                // Seeds run side by side, so each line says whose it is.
                let seedProgress: @Sendable (String) -> Void = { line in progress("seed \(seed) \(line)") }
                group.addTask {
                    let run = try await runSeed(reseeded, fleet: fleet, logger: logger, cacheDirectory: cacheDirectory,
                                                sequentialSites: sequentialSites, journal: journal, progress: seedProgress)
                    await fleet.close(seed: reseeded.seed)
                    return (index, run)
                }
            }
            while next < min(width, seeds.count) { start(next); next += 1 }
            for try await (index, run) in group {
                finished[index] = run
                if next < seeds.count { start(next); next += 1 }
            }
        }
        for index in seeds.indices {
            guard let run = finished[index] else { preconditionFailure("seed \(seeds[index]) finished without a result") }
            runs.append(run.metrics.arms)
            result.predictions += run.predictions
            result.testSets += run.testSets
            for (index, arm) in run.reconstruction.enumerated() where index < result.reconstruction.count {
                result.reconstruction[index].trials += arm.trials
            }
        }
        result.metrics.seeds = SeedSummary(seeds: [scenario.seed] + scenario.extraSeeds, runs: runs)
        // Every table and chart shows all seeds: each arm's numbers are its means over them.
        result.metrics.arms = result.metrics.arms.indices.map { index in ArmMetrics.averaged(runs.map { $0[index] }) }
        compareAndCheck(scenario, &result, progress: progress)
        return result
    }

    /// Automatic covariates: each site reports its persons per covariate (small cells left out),
    /// the server keeps what enough sites report, and the model's input follows the agreed list.
    static func agreeCovariates(_ scenario: inout Scenario, fleet: any SiteFleet, logger: Logger,
                                progress: @escaping @Sendable (String) -> Void) async throws -> CovariateAgreement? {
        guard scenario.dataset == .omop, scenario.task.automatic else { return nil }
        let counted = try await fleet.covariateCounts(scenario, logger: logger, progress: progress)
        let reports = counted.map(\.counts)
        let settings = scenario.task.covariateSettings
        let agreed = AutomaticCovariates.agree(reports, settings: settings)
        scenario.task.automaticCovariates = agreed
        scenario.model.inputSize = scenario.task.columnNames.count
        progress("covariates: \(agreed.count) agreed from \(reports.map { String($0.count) }.joined(separator: ", ")) reported by the sites")
        return CovariateAgreement(
            agreed: agreed.count, minimumCount: settings.minimumCount, minimumSites: settings.minimumSites, maximum: settings.maximum,
            reported: Dictionary(uniqueKeysWithValues: zip(counted.map(\.site), reports.map(\.count))),
            bytesUp: Dictionary(uniqueKeysWithValues: zip(counted.map(\.site), reports.map(AutomaticCovariates.reportBytes))))
    }

    static func runSeed(
        _ scenario: Scenario, fleet: any SiteFleet, logger: Logger, cacheDirectory: URL?,
        sequentialSites: Bool, journal: RunJournal? = nil, progress: @escaping @Sendable (String) -> Void
    ) async throws -> Result {
        let spec = scenario.task
        try await fleet.prepare(scenario, logger: logger, progress: progress)
        if !scenario.pretraining.enabled {
            progress("no pretraining: every arm starts from the seeded initialisation (seed \(scenario.seed))")
        } else if !scenario.pretraining.heartDiseaseShards.isEmpty {
            progress("pretraining on the train patients of " + scenario.pretraining.heartDiseaseShards.map { $0.deletingPathExtension().lastPathComponent }
                .joined(separator: ", "))
        } else if let checkpoint = scenario.pretraining.checkpoint {
            progress("using the pretrained checkpoint \(checkpoint.relativePath)")
        } else {
            progress("pretraining on \(scenario.pretraining.source.patients) source patients (up to \(scenario.pretraining.epochs) epochs)")
        }
        if scenario.transformer != nil {
            return try await runTransformerSeed(scenario, fleet: fleet, logger: logger, cacheDirectory: cacheDirectory,
                                                sequentialSites: sequentialSites, journal: journal, progress: progress)
        }
        let (model, pretrainingInfo) = try pretrain(scenario, spec: spec, cacheDirectory: cacheDirectory)
        if pretrainingInfo.pretrained {
            progress("pretrained model: validation accuracy \(Format3.string(pretrainingInfo.validationAccuracy)), "
                     + "AUROC \(Format3.string(pretrainingInfo.validationAuroc))")
        }
        let sites = try await fleet.mlpSites(scenario, model: model, logger: logger, progress: progress)
        let modelInfo = ModelInfo(widths: model.network.configuration.widths, parameters: model.network.layout.count,
                                  tensors: model.network.layout.tensors.map { TensorInfo(name: $0.name, shape: $0.shape, role: $0.role.rawValue) },
                                  features: model.columns)
        return try await federate(scenario, model: model, sites: sites, mlp: nil, described: sites.map(DescribedSite.init),
                                  modelInfo: modelInfo, pretrainingInfo: pretrainingInfo,
                                  checkpoint: Checkpoint.encode(model, notes: checkpointNotes(pretrainingInfo)),
                                  logger: logger, sequentialSites: sequentialSites, journal: journal, progress: progress)
    }

    /// What the report says about a site's cohort: its summary and split sizes (from the MLP's
    /// feature rows, which a transformer scenario also extracts).
    struct DescribedSite {
        var summary: SiteSummary
        var trainSize: Int
        var testSize: Int

        init(_ site: any FederatedSite) {
            summary = site.summary
            trainSize = site.trainSize
            testSize = site.testSize
        }
    }

    /// Every arm and baseline of one seed from the starting `model` at `sites`; arms with
    /// `model: mlp` run on `mlp` instead (the same patients, as feature rows).
    static func federate<Network: FederatedModel>(
        _ scenario: Scenario, model: PretrainedModel<Network>, sites: [any FederatedSite<Network>],
        mlp: (model: PretrainedModel<MLP>, sites: [any FederatedSite<MLP>])?, described: [DescribedSite],
        modelInfo: ModelInfo, pretrainingInfo: PretrainingInfo, checkpoint: [UInt8], logger: Logger,
        sequentialSites: Bool, journal: RunJournal? = nil, progress: @escaping @Sendable (String) -> Void
    ) async throws -> Result {
        var arms: [ArmMetrics] = []
        var predictions: [PredictionRow] = []
        let bootstrap = BootstrapCache()
        // The starting model's scores, which every arm is compared with, whether or not the
        // scenario lists it as a baseline.
        let startBlob = try await beginBaseline(scenario, model: model, sites: sites).blob
        let startPredictions = try await evaluate(sites, broadcast: startBlob)
        var reconstruction: [ArmReconstruction] = []
        try journal?.checkStart(seed: scenario.seed, checkpoint: checkpoint)
        // A restarted server takes every unit a previous one finished from its state folder.
        func unit(_ key: String, _ body: () async throws -> RunJournal.Finished) async throws {
            let done: RunJournal.Finished
            if let kept = try journal?.finished(key, seed: scenario.seed) {
                progress("[\(kept.metrics.name)] finished before the server restarted: taken from its state")
                done = kept
            } else {
                done = try await body()
                try journal?.finish(key, seed: scenario.seed, done)
            }
            arms.append(done.metrics)
            predictions += done.rows
            if let attacked = done.attacked { reconstruction.append(attacked) }
        }
        for (index, arm) in scenario.arms.enumerated() {
            let key = "arm-\(index)"
            try await unit(key) {
                let (metrics, rows, attacked) = if arm.onMLP, let mlp {
                    try await runArm(arm, scenario: scenario, model: mlp.model, sites: mlp.sites, logger: logger,
                                     sequentialSites: sequentialSites, bootstrap: bootstrap, journal: journal.map { ($0, key) }, progress: progress)
                } else {
                    try await runArm(arm, scenario: scenario, model: model, sites: sites, logger: logger,
                                     sequentialSites: sequentialSites, bootstrap: bootstrap, journal: journal.map { ($0, key) }, progress: progress)
                }
                return RunJournal.Finished(metrics: metrics, rows: rows, attacked: attacked)
            }
        }
        for (position, baseline) in scenario.baselines.enumerated() {
            if baseline == .localEach {
                for index in sites.indices {
                    try await unit("baseline-\(position)-site-\(index)") {
                        let (metrics, rows) = try await runLocalEach(index, scenario: scenario, model: model, sites: sites,
                                                                     bootstrap: bootstrap, progress: progress)
                        return RunJournal.Finished(metrics: metrics, rows: rows)
                    }
                }
                continue
            }
            try await unit("baseline-\(position)") {
                let (metrics, rows) = try await runBaseline(baseline, scenario: scenario, model: model, sites: sites,
                                                            bootstrap: bootstrap, progress: progress)
                return RunJournal.Finished(metrics: metrics, rows: rows)
            }
        }
        if let mlp, scenario.arms.contains(where: \.onMLP) {
            // The MLP's own starting point, so its arms' gains can be read against what they started from.
            try await unit("baseline-mlp-start") {
                let (metrics, rows) = try await runBaseline(.pretrained, scenario: scenario, model: mlp.model, sites: mlp.sites,
                                                            bootstrap: bootstrap, progress: progress)
                return RunJournal.Finished(metrics: metrics, rows: rows)
            }
        }
        var siteInfos: [SiteInfo] = []
        let distances = featureDistances(described.map(\.summary))
        for ((reference, site), distance) in zip(zip(scenario.sites, described), distances) {
            let summary = site.summary
            var info = SiteInfo(
                id: reference.profile.id, name: reference.profile.name, shard: reference.shardFile.relativePath,
                cohortSize: summary.cohortSize, trainSize: site.trainSize, testSize: site.testSize,
                outcomePrevalence: summary.outcomePrevalence, femaleShare: summary.femaleShare, meanAge: summary.meanAge,
                creatinineUnit: reference.omopDatabase ? nil : reference.profile.creatinineUnit.rawValue,
                labMissingShare: scenario.task.measurements.isEmpty ? nil : summary.labMissingShare)
            info.raceShares = summary.raceShares
            info.ageBandShares = summary.ageBandShares
            info.featureDistance = distance
            info.attrition = summary.attrition
            info.unmatchedConcepts = summary.unmatchedConcepts.isEmpty ? nil : summary.unmatchedConcepts
            info.dataQuality = summary.dataQuality.isEmpty ? nil : summary.dataQuality
            if !summary.unmatchedConcepts.isEmpty {
                logger.warning("concept ids of the task match no event at this site", metadata: [
                    "site": "\(reference.profile.id)", "concepts": "\(summary.unmatchedConcepts.map(String.init).joined(separator: ", "))"])
            }
            siteInfos.append(info)
        }
        var info = ScenarioInfo(name: scenario.name, file: scenario.file, fingerprint: scenario.fingerprint,
                                seed: scenario.seed, sitefitVersion: siteFitVersion)
        if let temporal = scenario.temporalSplit {
            info.split = "by index date: every site trains on its patients indexed "
                + (temporal.trainFrom.map { "from \($0) " } ?? "") + "before \(temporal.testFrom) and is tested on those indexed from \(temporal.testFrom) on"
        }
        if scenario.dataset == .omop { info.task = scenario.task.description }
        info.dataset = switch scenario.dataset {
        case .omop: .omop
        case .heartDisease: .heartDisease
        }
        var metrics = RunMetrics(
            scenario: info,
            sites: siteInfos,
            model: modelInfo,
            pretraining: pretrainingInfo, arms: arms)
        metrics.reference = scenario.reference.map {
            ReferenceValues(source: $0.source, tolerance: $0.tolerance, meanSiteAccuracy: $0.meanSiteAccuracy)
        }
        let startName = ArmKind.Baseline.startingModel.armName(startsPretrained: scenario.pretraining.enabled)
        let testSet = scoredTestSet(start: startPredictions, startName: startName, rows: predictions, subgroups: scenario.subgroups)
        // Every row names the seed that produced it, a single-seed run's too.
        return Result(metrics: metrics, predictions: predictions.map { var row = $0; row.seed = scenario.seed; return row },
                      checkpoint: checkpoint, testSets: [testSet],
                      reconstruction: reconstruction)
    }
}

