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
    /// The result of a run, ready for `ReportWriter`.
    public struct Result: Sendable {
        public var metrics: RunMetrics
        public var predictions: [PredictionRow]
    }

    /// Makes sure every site's shard exists and matches its profile; builds missing ones.
    /// An existing shard is never rewritten by a run: a stale one is an error with the fix.
    public static func provisionShards(
        _ scenario: Scenario, logger: Logger, progress: @Sendable (String) -> Void
    ) throws -> [SiteShard] {
        try scenario.sites.map { site in
            let file = site.shardFile
            if !FileManager.default.fileExists(atPath: file.path) {
                progress("building shard for site '\(site.profile.id)' → \(file.relativePath)")
                try ShardBuilder.build(profile: site.profile, to: file, logger: logger)
            }
            let shard = try SiteShard(site: site.profile.id, url: file)
            let fingerprint = try shard.profileFingerprint()
            guard fingerprint == site.profile.fingerprint else {
                throw ShardError(site: site.profile.id, file: file.relativePath, problem:
                    "the shard was built from a different profile than \(site.profileFile.relativePath); "
                    + "rebuild it with `sitefit sites build \(site.profileFile.relativePath)`")
            }
            return shard
        }
    }

    /// Trains the MLP on a synthetic source population held in an in-memory database, with the
    /// same OMOP tables and feature SQL as the sites. Streams: (seed, "pretraining", ...).
    public static func pretrain(_ scenario: Scenario, spec: FeatureSpec) throws -> (PretrainedModel, PretrainingInfo) {
        let source = scenario.pretraining.source
        let database = try DatabaseQueue()
        let extract = try database.write { db -> CohortExtract in
            try ShardGenerator.populate(db, profile: source)
            return try CohortExtraction.extract(db, spec: spec, site: "source", file: ":memory:")
        }
        var random = RandomStream(seed: scenario.seed, "pretraining", "split")
        var order = Array(0..<extract.rows)
        random.shuffle(&order)
        let validationCount = extract.rows / 5
        let validationRows = Array(order.prefix(validationCount)).sorted()
        let trainRows = Array(order.dropFirst(validationCount)).sorted()
        let columns = extract.columns.count
        let standardizer = Standardizer(fitting: extract.features, columns: columns, rows: trainRows)
        let train = Dataset(features: standardizer.transform(extract.features, columns: columns, rows: trainRows),
                            labels: trainRows.map { extract.labels[$0] }, columns: columns)
        let validation = Dataset(features: standardizer.transform(extract.features, columns: columns, rows: validationRows),
                                 labels: validationRows.map { extract.labels[$0] }, columns: columns)
        let mlp = MLP(MLPConfiguration(inputSize: columns, hiddenSizes: scenario.model.hiddenSizes))
        var initRandom = RandomStream(seed: scenario.seed, "pretraining", "init")
        var parameters = mlp.initialParameters(random: &initRandom)
        var trainer = Trainer(mlp: mlp, maxBatch: max(scenario.pretraining.batchSize, 256))
        var shuffle = RandomStream(seed: scenario.seed, "pretraining", "shuffle")
        _ = trainer.train(
            parameters: &parameters, data: train, selection: FineTuningMode.full.selection(for: mlp.layout),
            configuration: TrainingConfiguration(
                optimizer: OptimizerConfiguration(kind: .adam, learningRate: scenario.pretraining.learningRate),
                epochs: scenario.pretraining.epochs, batchSize: scenario.pretraining.batchSize),
            random: &shuffle)
        let scores = trainer.predict(parameters: parameters, data: validation)
        let info = PretrainingInfo(
            sourcePatients: source.patients, epochs: scenario.pretraining.epochs,
            validationAccuracy: Metrics.accuracy(scores: scores, labels: validation.labels),
            validationAuroc: Metrics.auroc(scores: scores, labels: validation.labels))
        return (PretrainedModel(mlp: mlp, parameters: parameters, standardizer: standardizer, columns: extract.columns), info)
    }

    /// Runs every arm of `scenario`; `progress` receives one line per step worth telling a user.
    public static func run(
        _ scenario: Scenario, logger: Logger = Logger(label: "sitefit.simulation"),
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> Result {
        let spec = scenario.task
        let shards = try provisionShards(scenario, logger: logger, progress: progress)
        progress("pretraining on \(scenario.pretraining.source.patients) source patients (\(scenario.pretraining.epochs) epochs)")
        let (model, pretrainingInfo) = try pretrain(scenario, spec: spec)
        progress("pretrained model: validation accuracy \(Format3.string(pretrainingInfo.validationAccuracy)), "
                 + "AUROC \(Format3.string(pretrainingInfo.validationAuroc))")
        let maxBatch = max(scenario.federation.batchSize, 256)
        let sites = try shards.map {
            try SiteActor(shard: $0, spec: spec, model: model, seed: scenario.seed, testFraction: scenario.testFraction,
                          maxBatch: maxBatch, logger: logger)
        }
        var arms: [ArmMetrics] = []
        var predictions: [PredictionRow] = []
        for arm in scenario.arms {
            let (metrics, rows) = try await runArm(arm, scenario: scenario, model: model, sites: sites, logger: logger,
                                                   progress: progress)
            arms.append(metrics)
            predictions += rows
        }
        var siteInfos: [SiteInfo] = []
        for (reference, site) in zip(scenario.sites, sites) {
            let summary = site.summary
            siteInfos.append(SiteInfo(
                id: reference.profile.id, name: reference.profile.name, shard: reference.shardFile.relativePath,
                cohortSize: summary.cohortSize, trainSize: site.trainSize, testSize: site.testSize,
                outcomePrevalence: summary.outcomePrevalence, femaleShare: summary.femaleShare, meanAge: summary.meanAge,
                creatinineUnit: reference.profile.creatinineUnit.rawValue, labMissingShare: summary.labMissingShare))
        }
        let metrics = RunMetrics(
            scenario: ScenarioInfo(name: scenario.name, file: scenario.file, fingerprint: scenario.fingerprint,
                                   seed: scenario.seed, sitefitVersion: siteFitVersion),
            sites: siteInfos,
            model: ModelInfo(widths: model.mlp.configuration.widths, parameters: model.mlp.layout.count,
                             tensors: model.mlp.layout.tensors.map { TensorInfo(name: $0.name, shape: $0.shape, role: $0.role.rawValue) },
                             features: model.columns),
            pretraining: pretrainingInfo, arms: arms)
        return Result(metrics: metrics, predictions: predictions)
    }

    static func runArm(
        _ arm: Scenario.Arm, scenario: Scenario, model: PretrainedModel, sites: [SiteActor], logger: Logger,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> (ArmMetrics, [PredictionRow]) {
        let selection = arm.mode.selection(for: model.mlp.layout)
        let server = FederatedServer(pretrained: model.parameters, selection: selection, logger: logger)
        for site in sites { await site.begin(pretrained: model.parameters, selection: selection) }
        let configuration = TrainingConfiguration(
            optimizer: OptimizerConfiguration(kind: scenario.federation.optimizer, learningRate: arm.learningRate),
            epochs: arm.localEpochs, batchSize: scenario.federation.batchSize)

        var rounds: [RoundMetrics] = []
        var broadcast = await server.broadcast(round: 0)
        var predictions = try await evaluate(sites, broadcast: broadcast)
        rounds.append(RoundMetrics(round: 0, evaluation: evaluation(predictions), bytesUp: 0, bytesDown: 0,
                                   acceptedSites: [], rejected: [], meanLocalLoss: nil))
        var totalSteps = 0, totalExamples = 0, stateBytes = 0, updateBytes = 0
        for round in 1...scenario.federation.rounds {
            broadcast = await server.broadcast(round: round)
            let message = broadcast
            // Sites train concurrently; results are put back in site order before aggregation so
            // the average (and everything after it) does not depend on which site finished first.
            let updates = try await withThrowingTaskGroup(of: (Int, LocalUpdate).self) { group in
                for (index, site) in sites.enumerated() {
                    group.addTask {
                        (index, try await site.localUpdate(arm: arm.name, round: round, broadcast: message,
                                                           configuration: configuration))
                    }
                }
                var collected: [(Int, LocalUpdate)] = []
                for try await result in group { collected.append(result) }
                return collected.sorted { $0.0 < $1.0 }.map(\.1)
            }
            let outcome = await server.aggregate(round: round, updates: updates.map { ($0.site, $0.blob) })
            for (site, update) in zip(sites, updates) {
                totalSteps += update.steps
                totalExamples += site.trainSize * arm.localEpochs
                stateBytes = max(stateBytes, update.optimizerStateBytes)
                updateBytes = max(updateBytes, update.blob.count)
            }
            let after = await server.broadcast(round: round)
            predictions = try await evaluate(sites, broadcast: after)
            let evaluation = evaluation(predictions)
            let bytesUp = updates.reduce(0) { $0 + $1.blob.count }
            rounds.append(RoundMetrics(
                round: round, evaluation: evaluation, bytesUp: bytesUp, bytesDown: message.count * sites.count,
                acceptedSites: outcome.acceptedSites,
                rejected: outcome.rejected.map { Rejection(site: $0.site, reason: $0.reason) },
                meanLocalLoss: updates.reduce(0) { $0 + $1.loss } / Double(updates.count)))
            progress("[\(arm.name)] round \(round)/\(scenario.federation.rounds): accuracy \(Format3.string(evaluation.accuracy)), "
                     + "AUROC \(Format3.string(evaluation.auroc)), \(outcome.acceptedSites.count)/\(sites.count) updates accepted, "
                     + "\(bytesUp) bytes up")
        }
        let mask = TrainableMask(mlp: model.mlp, selection: selection)
        let siteRounds = Double(sites.count * scenario.federation.rounds)
        let privacy = PrivacyFootprint(
            bytesUp: rounds.reduce(0) { $0 + $1.bytesUp }, bytesDown: rounds.reduce(0) { $0 + $1.bytesDown },
            bytesUpPerUpdate: updateBytes, parametersExposed: selection.count, parametersTotal: model.mlp.layout.count,
            tensorsExposed: selection.tensorNames)
        let compute = ComputeFootprint(
            stepsPerSiteRound: Double(totalSteps) / siteRounds,
            trainingFlopsPerSiteRound: Double(totalExamples) * model.mlp.trainingFlopsPerExample(mask) / siteRounds,
            optimizerStateBytes: stateBytes)
        let metrics = ArmMetrics(name: arm.name, mode: arm.mode.rawValue, learningRate: arm.learningRate,
                                 localEpochs: arm.localEpochs, rounds: rounds, final: rounds.last!.evaluation,
                                 privacy: privacy, compute: compute)
        let rows = predictions.flatMap { site in
            site.personIds.indices.map { i in
                PredictionRow(arm: arm.name, site: site.site, personId: site.personIds[i], label: Int(site.labels[i]),
                              score: site.scores[i], sex: site.sex[i], race: site.race[i])
            }
        }
        return (metrics, rows)
    }

    static func evaluate(_ sites: [SiteActor], broadcast: [UInt8]) async throws -> [SitePredictions] {
        try await withThrowingTaskGroup(of: (Int, SitePredictions).self) { group in
            for (index, site) in sites.enumerated() {
                group.addTask { (index, try await site.evaluate(broadcast: broadcast)) }
            }
            var collected: [(Int, SitePredictions)] = []
            for try await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// Pooled and per-site metrics of one evaluation.
    static func evaluation(_ predictions: [SitePredictions]) -> Evaluation {
        let scores = predictions.flatMap(\.scores), labels = predictions.flatMap(\.labels)
        var perSite: [String: SiteEvaluation] = [:]
        for p in predictions {
            perSite[p.site] = SiteEvaluation(
                accuracy: Metrics.accuracy(scores: p.scores, labels: p.labels),
                balancedAccuracy: Metrics.balancedAccuracy(scores: p.scores, labels: p.labels),
                majorityClassAccuracy: Metrics.majorityClassAccuracy(p.labels),
                auroc: Metrics.auroc(scores: p.scores, labels: p.labels), testSize: p.labels.count)
        }
        return Evaluation(accuracy: Metrics.accuracy(scores: scores, labels: labels),
                          balancedAccuracy: Metrics.balancedAccuracy(scores: scores, labels: labels),
                          majorityClassAccuracy: Metrics.majorityClassAccuracy(labels),
                          auroc: Metrics.auroc(scores: scores, labels: labels),
                          brier: Metrics.brier(scores: scores, labels: labels),
                          worstSiteAccuracy: perSite.values.map(\.accuracy).min() ?? .nan, perSite: perSite)
    }
}

enum Format3 {
    static func string(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "n/a" }
        return String(format: "%.3f", value)
    }
}
