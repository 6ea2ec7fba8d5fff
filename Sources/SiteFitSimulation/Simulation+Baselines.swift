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

    /// A baseline as an arm of strategy "baseline": round 0 is the pretrained model, the last round
    /// the baseline's final model; no update crosses the network, so nothing is exposed.
    static func runBaseline<Network: FederatedModel>(
        _ baseline: Scenario.Baseline, scenario: Scenario, model: PretrainedModel<Network>, sites: [any FederatedSite<Network>],
        bootstrap: BootstrapCache, progress: @escaping @Sendable (String) -> Void
    ) async throws -> (ArmMetrics, [PredictionRow]) {
        let federation = scenario.federation
        let (selection, configuration, localRounds, pretrainedBlob) = try await beginBaseline(scenario, model: model, sites: sites)
        let start = try await evaluate(sites, broadcast: pretrainedBlob)
        var final = start
        var finalBlobs = sites.map { _ in pretrainedBlob }
        let kind: ArmKind.Baseline
        var steps = 0.0
        switch baseline {
        case .localEach:
            preconditionFailure("local_each runs through runLocalEach")
        case .pretrained:
            kind = model.network is MLP && scenario.transformer != nil ? .startingMLP : .startingModel
        case .local:
            kind = .localOnly
            // Each site trains alone for as many epochs as a federated site would, from its own model.
            let trained = try await withThrowingTaskGroup(of: (Int, SitePredictions, Int, [UInt8]).self) { group in
                for (index, site) in sites.enumerated() {
                    group.addTask {
                        var blob = pretrainedBlob
                        var siteSteps = 0
                        for round in 1...localRounds {
                            let update = try await site.localUpdate(arm: Simulation.localBaselineArm, round: round, broadcast: blob,
                                                                    configuration: configuration)
                            blob = update.blob
                            siteSteps += update.steps
                        }
                        return (index, try await site.evaluate(broadcast: blob), siteSteps, blob)
                    }
                }
                var collected: [(Int, SitePredictions, Int, [UInt8])] = []
                for try await result in group { collected.append(result) }
                return collected.sorted { $0.0 < $1.0 }
            }
            steps = Double(trained.reduce(0) { $0 + $1.2 }) / Double(sites.count * federation.rounds)
            final = trained.map(\.1)
            finalBlobs = trained.map(\.3)
        case .pooled:
            kind = .pooled
            var rows: [PooledRows] = []
            for site in sites { rows.append(try await site.trainingRowsForPooledBaseline()) }
            let pooled = pooledDataset(rows, columns: model.network.inputSize)
            var parameters = model.parameters
            var trainer = Trainer(model: model.network, maxBatch: max(federation.batchSize, 1))
            var random = RandomStream(seed: scenario.seed, "baseline-pooled")
            var pooledConfiguration = configuration
            if scenario.baselineTraining == nil {
                pooledConfiguration.epochs = federation.localEpochs * federation.rounds
                pooledConfiguration.steps = federation.localSteps.map { $0 * federation.rounds }
            }
            let summary = trainer.train(parameters: &parameters, data: pooled, selection: selection,
                                        configuration: pooledConfiguration, random: &random)
            steps = Double(summary.steps) / Double(federation.rounds)
            let pooledBlob = WireFormat.encode(
                parameters: parameters, selection: selection, metadata: [WireFormat.Key.kind: "baseline", WireFormat.Key.round: "final"])
            final = try await evaluate(sites, broadcast: pooledBlob)
            finalBlobs = sites.map { _ in pooledBlob }
        }
        let name = kind.armName(startsPretrained: scenario.pretraining.enabled)
        let startEvaluation = evaluation(start, subgroups: scenario.subgroups), finalEvaluation = evaluation(final, subgroups: scenario.subgroups)
        progress("[\(name)] accuracy \(Format3.string(finalEvaluation.accuracy)), AUROC \(Format3.string(finalEvaluation.auroc))")
        let mask = model.network.trainableMask(selection)
        var metrics = baselineMetrics(
            name: name, kind: kind, mode: baseline == .pretrained ? "none" : "full",
            learningRate: baseline == .pretrained ? 0 : federation.learningRate, localEpochs: federation.localEpochs,
            start: startEvaluation, final: baseline == .pretrained ? nil : (federation.rounds, finalEvaluation), model: model,
            compute: ComputeFootprint(stepsPerSiteRound: steps,
                                      trainingFlopsPerSiteRound: steps * Double(federation.batchSize) * model.network.trainingFlopsPerExample(mask),
                                      optimizerStateBytes: baseline == .pretrained ? 0 : 2 * 4 * model.network.layout.count))
        let participation = federation.participation
        let meanSecondsPerStep = sites.reduce(0.0) { $0 + (participation.secondsPerStep[$1.id] ?? participation.defaultSecondsPerStep) }
            / Double(max(sites.count, 1))
        metrics.compute.simulatedSecondsPerSiteRound = steps * meanSecondsPerStep
        metrics.biasDrift = baseline == .pretrained ? [] : biasDrift(before: start, after: final, subgroups: scenario.subgroups, seed: scenario.seed, bootstrap: bootstrap)
        metrics.membershipInference = try await membershipInference(sites, broadcasts: finalBlobs)
        let rows = predictionRows(arm: name, final)
        return (metrics, rows)
    }


    /// What every baseline starts from: all sites on the pretrained model with every tensor
    /// trainable, the baseline training settings, how many training calls a site makes (one when
    /// `baseline_training` gives the epochs in all, else one per federated round), and the
    /// pretrained model as a message.
    static func beginBaseline<Network: FederatedModel>(_ scenario: Scenario, model: PretrainedModel<Network>, sites: [any FederatedSite<Network>]) async throws
        -> (selection: ParameterSelection, configuration: TrainingConfiguration, rounds: Int, blob: [UInt8]) {
        let selection = FineTuningMode.full.selection(for: model.network.layout)
        for site in sites { try await site.begin(arm: Simulation.baselineArm, network: model.network, parameters: model.parameters, selection: selection) }
        let blob = WireFormat.encode(parameters: model.parameters, selection: selection,
                                     metadata: [WireFormat.Key.kind: "baseline", WireFormat.Key.round: "0"])
        return (selection, baselineConfiguration(scenario), scenario.baselineTraining == nil ? scenario.federation.rounds : 1, blob)
    }

    /// How local and pooled baselines train: the scenario's `baseline_training`, or the federation's settings.
    public static func baselineConfiguration(_ scenario: Scenario) -> TrainingConfiguration {
        let federation = scenario.federation
        if let own = scenario.baselineTraining {
            return TrainingConfiguration(
                optimizer: OptimizerConfiguration(kind: own.optimizer, learningRate: own.learningRate,
                                                  weightDecay: federation.weightDecay, gradientClipNorm: federation.gradientClipNorm),
                epochs: own.epochs, batchSize: federation.batchSize, positiveWeight: Float(federation.positiveWeight))
        }
        return TrainingConfiguration(
            optimizer: OptimizerConfiguration(kind: federation.optimizer, learningRate: federation.learningRate,
                                              weightDecay: federation.weightDecay, gradientClipNorm: federation.gradientClipNorm),
            epochs: federation.localEpochs, batchSize: federation.batchSize, positiveWeight: Float(federation.positiveWeight),
            steps: federation.localSteps)
    }

    /// FLamby's "Local i": a model trained on site `index` alone, then scored on every site's test
    /// patients (the other sites receive it as a broadcast; no patient row moves).
    static func runLocalEach<Network: FederatedModel>(
        _ index: Int, scenario: Scenario, model: PretrainedModel<Network>, sites: [any FederatedSite<Network>],
        bootstrap: BootstrapCache, progress: @escaping @Sendable (String) -> Void
    ) async throws -> (ArmMetrics, [PredictionRow]) {
        let federation = scenario.federation
        let (selection, configuration, rounds, startBlob) = try await beginBaseline(scenario, model: model, sites: sites)
        var blob = startBlob
        let start = try await evaluate(sites, broadcast: blob)
        var steps = 0
        for round in 1...rounds {
            let update = try await sites[index].localUpdate(arm: Simulation.localBaselineArm, round: round, broadcast: blob, configuration: configuration)
            blob = update.blob
            steps += update.steps
        }
        let final = try await evaluate(sites, broadcast: blob)
        let kind = ArmKind.Baseline.localAt(site: sites[index].id)
        let name = kind.armName(startsPretrained: scenario.pretraining.enabled)
        let startEvaluation = evaluation(start, subgroups: scenario.subgroups), finalEvaluation = evaluation(final, subgroups: scenario.subgroups)
        progress("[\(name)] mean site accuracy \(Format3.string(finalEvaluation.meanSiteAccuracy)), AUROC \(Format3.string(finalEvaluation.auroc))")
        let mask = model.network.trainableMask(selection)
        var metrics = baselineMetrics(
            name: name, kind: kind, mode: "full", learningRate: configuration.optimizer.learningRate, localEpochs: configuration.epochs,
            start: startEvaluation, final: (rounds, finalEvaluation), model: model,
            compute: ComputeFootprint(stepsPerSiteRound: Double(steps) / Double(rounds),
                                      trainingFlopsPerSiteRound: Double(steps * federation.batchSize) / Double(rounds) * model.network.trainingFlopsPerExample(mask),
                                      optimizerStateBytes: 2 * 4 * model.network.layout.count))
        let participation = federation.participation
        metrics.compute.simulatedSecondsPerSiteRound = Double(steps) / Double(rounds)
            * (participation.secondsPerStep[sites[index].id] ?? participation.defaultSecondsPerStep)
        metrics.biasDrift = biasDrift(before: start, after: final, subgroups: scenario.subgroups, seed: scenario.seed, bootstrap: bootstrap)
        // Members are the training site's patients only; other sites' train rows never met this model.
        if let auc = try await sites[index].membershipInferenceAUC(broadcast: blob) { metrics.membershipInference = [sites[index].id: auc] }
        let rows = predictionRows(arm: name, final)
        return (metrics, rows)
    }

    /// A baseline's metrics as an arm of strategy "baseline": round 0 is the pretrained model and
    /// `final` (when it trained) the baseline's own model; no update crosses the network, so
    /// nothing is exposed.
    static func baselineMetrics<Network: FederatedModel>(name: String, kind: ArmKind.Baseline, mode: String, learningRate: Double, localEpochs: Int, start: Evaluation,
                                final: (round: Int, evaluation: Evaluation)?, model: PretrainedModel<Network>,
                                compute: ComputeFootprint) -> ArmMetrics {
        func round(_ number: Int, _ evaluation: Evaluation) -> RoundMetrics {
            RoundMetrics(round: number, evaluation: evaluation, bytesUp: 0, bytesDown: 0, acceptedSites: [], rejected: [], meanLocalLoss: nil)
        }
        return ArmMetrics(
            name: name, mode: mode, kind: .baseline(kind), learningRate: learningRate, localEpochs: localEpochs,
            rounds: [round(0, start)] + (final.map { [round($0.round, $0.evaluation)] } ?? []), final: final?.evaluation ?? start,
            privacy: PrivacyFootprint(bytesUp: 0, bytesDown: 0, bytesUpPerUpdate: 0, parametersExposed: 0,
                                      parametersTotal: model.network.layout.count, tensorsExposed: []),
            compute: compute)
    }

    /// The pooled baseline's training rows. Sites that share the source population's standardiser
    /// give their rows as they train on them. Sites that standardise with their own statistics
    /// (FLamby's protocol) give raw rows, standardised here with the pooled train rows' mean and
    /// standard deviation, as FLamby's pooled training does; each site still scores the pooled
    /// model on its test rows standardised with its own train statistics, as FLamby evaluates.
    static func pooledDataset(_ rows: [PooledRows], columns: Int) -> Dataset {
        let labels = rows.flatMap(\.standardized.labels)
        let raws = rows.compactMap(\.raw)
        guard raws.count == rows.count, !raws.isEmpty else {
            return Dataset(features: rows.flatMap(\.standardized.features), labels: labels, columns: columns)
        }
        let raw = raws.flatMap { $0 }
        let all = Array(0..<(raw.count / columns))
        let pooled = Standardizer(fitting: raw, columns: columns, rows: all)
        return Dataset(features: pooled.transform(raw, columns: columns, rows: all), labels: labels, columns: columns)
    }
}
