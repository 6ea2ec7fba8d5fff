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
    /// One arm's federation from the pretrained model: the arm's network and selection, a server
    /// with the arm's strategy, the round driver with the arm's channel and privacy plug-ins, and
    /// an evaluation at every site after each round.
    static func runArm<Network: FederatedModel>(
        _ arm: Scenario.Arm, scenario: Scenario, model: PretrainedModel<Network>, sites: [any FederatedSite<Network>], logger: Logger,
        sequentialSites: Bool = false, bootstrap: BootstrapCache, journal: (journal: RunJournal, key: String)? = nil,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> (ArmMetrics, [PredictionRow], ArmReconstruction?) {
        // Modes that add tensors (LoRA, adapters, (IA)³) extend the pretrained network; the new
        // tensors start as the identity change.
        let network = model.network.network(for: arm)
        var extensionRandom = RandomStream(seed: scenario.seed, "extension", arm.name)
        let start = network.parameters(extending: model.parameters, of: model.network, random: &extensionRandom)
        let selection = arm.mode.selection(for: network.layout, settings: arm.modeSettings)
        // The strategy decides what leaves a site: personalised arms keep their bias terms at home.
        let strategy = arm.makeStrategy(trainedCount: selection.count)
        let shared = strategy.shared(from: selection)
        let server = FederatedServer(pretrained: start, selection: shared, strategy: strategy, logger: logger)
        for site in sites { try await site.begin(arm: arm.name, network: network, parameters: start, selection: selection, shared: shared) }
        // Only the arm's training sites take part in rounds; every site scores the result.
        let trainers = arm.trainingSites.map { ids in sites.filter { ids.contains($0.id) } } ?? sites
        var driver = try makeDriver(arm, scenario: scenario, sites: trainers, server: server, proximalMu: strategy.proximalMu,
                                    sequentialSites: sequentialSites)
        // A restarted server goes on after the arm's last completed round, unless the arm's sites
        // keep tensors of their own between rounds: a server cannot give those back, so that arm starts again.
        let keepsSiteState = shared.tensorNames != selection.tensorNames
        let saved = keepsSiteState ? nil : try journal.flatMap { try $0.journal.progress($0.key, seed: scenario.seed) }
        let sharedStart = shared.gather(from: start)
        var predictions: [SitePredictions], pretrainedPredictions: [SitePredictions]
        var rounds: [RoundMetrics], trained: [[TrainedUpdate]]
        let attacked: ArmReconstruction?
        if let saved {
            guard saved.arm == arm.name, saved.round >= 0, saved.round <= scenario.federation.rounds, saved.rounds.count == saved.round + 1,
                  saved.trained.count == saved.round, await server.restore(global: saved.global.values, strategyState: saved.strategy.map(\.values)),
                  driver.privacy == nil ? saved.rdp == nil : saved.rdp.map({ driver.privacy!.restore(rdp: $0.values) }) == true
            else {
                throw UserFacingError("the server's state of arm '\(arm.name)' (seed \(scenario.seed)) does not fit the scenario's arm; "
                                      + "pass --no-resume to start the run over")
            }
            (predictions, pretrainedPredictions, rounds, trained, attacked) =
                (saved.predictions, saved.pretrainedPredictions, saved.rounds, saved.trained, saved.attacked)
            progress("[\(arm.name)] goes on after round \(saved.round), where the previous server stopped")
        } else {
            // What the server could reconstruct from one site's first update, before the rounds move the model.
            attacked = try await reconstruction(arm, scenario: scenario, sites: trainers, sequentialSites: sequentialSites)
            if attacked != nil { progress("[\(arm.name)] reconstruction attacks on single updates done") }
            predictions = try await evaluate(sites, broadcast: await server.broadcast(round: 0))
            pretrainedPredictions = predictions
            var round0 = RoundMetrics(round: 0, evaluation: evaluation(predictions, subgroups: scenario.subgroups), bytesUp: 0, bytesDown: 0,
                                      acceptedSites: [], rejected: [], meanLocalLoss: nil)
            round0.parameterDrift = ParameterDrift(l2: 0, relative: 0)
            rounds = [round0]
            trained = []
        }
        var stoppedByBudget: Int? = nil
        for round in stride(from: rounds.count, through: scenario.federation.rounds, by: 1) {
            guard let record = try await driver.run(round: round) else {
                stoppedByBudget = round - 1
                progress("[\(arm.name)] stopped before round \(round): it would take ε past the budget of \(arm.privacy?.epsilonBudget ?? 0)")
                break
            }
            predictions = try await evaluate(sites, broadcast: await server.broadcast(round: round))
            var metrics = roundMetrics(record, evaluation: evaluation(predictions, subgroups: scenario.subgroups))
            metrics.parameterDrift = parameterDrift(await server.globalValues(), from: sharedStart)
            rounds.append(metrics)
            trained.append(record.trained)
            progress(progressLine(arm.name, record, metrics.evaluation, rounds: scenario.federation.rounds,
                                  quorum: scenario.federation.participation.quorum))
            if let journal, !keepsSiteState {
                try journal.journal.record(RunJournal.Progress(
                    arm: arm.name, round: round, global: Bits(await server.globalValues()), strategy: await server.strategyState().map(Bits.init),
                    rdp: driver.privacy.map { Bits($0.accountant.rdp) }, rounds: rounds, trained: trained, predictions: predictions,
                    pretrainedPredictions: pretrainedPredictions, attacked: attacked), key: journal.key, seed: scenario.seed)
            }
        }
        var metrics = ArmMetrics(name: arm.name, mode: arm.mode.rawValue, kind: .federated(strategy: arm.strategyName), learningRate: arm.learningRate,
                                 localEpochs: arm.localEpochs, rounds: rounds, final: rounds[rounds.count - 1].evaluation,
                                 privacy: privacyFootprint(arm, trained: trained, rounds: rounds, network: network, shared: shared,
                                                           privacy: driver.privacy, stoppedByBudget: stoppedByBudget),
                                 compute: computeFootprint(trained, network: network, selection: selection))
        metrics.biasDrift = biasDrift(before: pretrainedPredictions, after: predictions, subgroups: scenario.subgroups,
                                      seed: scenario.seed, bootstrap: bootstrap)
        let finalBroadcast = await server.broadcast(round: rounds[rounds.count - 1].round)
        // Members are the training sites' patients only: a site that never trained has none.
        metrics.membershipInference = try await membershipInference(trainers, broadcasts: trainers.map { _ in finalBroadcast })
        return (metrics, predictionRows(arm: arm.name, predictions), attacked)
    }

    /// How an arm's sites train in a round, from the scenario alone (a site in another process
    /// derives it too, and refuses a server that asks for anything else).
    public static func trainingConfiguration(_ arm: Scenario.Arm, scenario: Scenario, proximalMu: Double) -> TrainingConfiguration {
        let federation = scenario.federation
        return TrainingConfiguration(
            optimizer: OptimizerConfiguration(kind: federation.optimizer, learningRate: arm.learningRate,
                                              weightDecay: federation.weightDecay, gradientClipNorm: federation.gradientClipNorm),
            epochs: arm.localEpochs, batchSize: federation.batchSize, positiveWeight: Float(federation.positiveWeight),
            proximalMu: proximalMu, steps: federation.localSteps)
    }

    /// The round driver of an arm: the federation's participation and local training, secure
    /// aggregation as the channel and DP as the privacy plug-in when the arm asks for them.
    static func makeDriver<Network: FederatedModel>(_ arm: Scenario.Arm, scenario: Scenario, sites: [any FederatedSite<Network>], server: FederatedServer,
                           proximalMu: Double, sequentialSites: Bool) throws -> RoundDriver<Network> {
        let federation = scenario.federation
        let configuration = trainingConfiguration(arm, scenario: scenario, proximalMu: proximalMu)
        let privacy = try arm.privacy.map {
            try DifferentialPrivacy(settings: $0, participation: federation.participation, siteCount: sites.count,
                                    seed: scenario.seed, arm: arm.name)
        }
        return RoundDriver(sites: sites, server: server, participation: federation.participation, seed: scenario.seed, arm: arm.name,
                           configuration: configuration,
                           channel: arm.secureAggregation ? MaskedChannel(arm: arm.name) : PlainChannel(),
                           privacy: privacy, window: sequentialSites ? 1 : nil)
    }

    /// A round's metrics from what the driver observed and the evaluation after it.
    static func roundMetrics(_ record: RoundRecord, evaluation: Evaluation) -> RoundMetrics {
        let absent = record.absences.map { a in
            let reason: AbsenceReason = switch a.absence {
            case .notSampled: .notSampled
            case .droppedOut(let scheduled): .droppedOut(scheduled: scheduled)
            case .missedDeadline(let seconds, let deadline): .missedDeadline(seconds: seconds, deadline: deadline)
            case .lost(let reason): .lost(reason: reason)
            }
            return AbsentSite(site: a.site, reason: reason)
        }
        var metrics = RoundMetrics(
            round: record.round, evaluation: evaluation, bytesUp: record.bytesUp, bytesDown: record.bytesDown,
            acceptedSites: record.outcome.acceptedSites,
            rejected: record.outcome.rejected.map { Rejection(site: $0.site, reason: $0.reason) },
            meanLocalLoss: record.meanLocalLoss, sampledSites: record.sampled, absent: absent,
            skipped: record.outcome.skipped, epsilon: record.epsilon)
        metrics.secureAggregation = record.secure.map { secure in
            let result: SecureAggregationRound.Result = switch secure.result {
            case .aggregated: .aggregated
            case .abortedBeforeMasking: .abortedBeforeMasking
            case .abortedAtUnmasking: .abortedAtUnmasking
            }
            return SecureAggregationRound(
                maskingSet: secure.maskingSet, threshold: secure.threshold, survivors: secure.survivors,
                result: result,
                recoveredDropouts: secure.recoveredDropouts, clamped: secure.clamped,
                steps: secure.steps.map { step in
                    let name: SecureAggregationRound.Step.Name = switch step.step {
                    case .advertiseKeys: .advertiseKeys
                    case .shareKeys: .shareKeys
                    case .maskedInput: .maskedInput
                    case .unmasking: .unmasking
                    }
                    return SecureAggregationRound.Step(step: name, messagesUp: step.messagesUp, bytesUp: step.bytesUp,
                                                messagesDown: step.messagesDown, bytesDown: step.bytesDown)
                })
        }
        return metrics
    }

    /// The progress line of one round.
    static func progressLine(_ arm: String, _ record: RoundRecord, _ evaluation: Evaluation, rounds: Int, quorum: Int) -> String {
        var line = "[\(arm)] round \(record.round)/\(rounds): accuracy \(Format3.string(evaluation.accuracy)), "
            + "AUROC \(Format3.string(evaluation.auroc)), \(record.outcome.acceptedSites.count)/\(record.sampled.count) updates accepted, "
            + "\(record.bytesUp) bytes up"
        if record.outcome.skipped { line += ", skipped (quorum \(quorum))" }
        if let epsilon = record.epsilon { line += ", ε = \(Format3.string(epsilon))" }
        return line
    }

    /// Bytes, exposed parameters and (DP) the privacy spent over an arm's rounds.
    static func privacyFootprint<Network: FederatedModel>(_ arm: Scenario.Arm, trained: [[TrainedUpdate]], rounds: [RoundMetrics], network: Network,
                                 shared: ParameterSelection, privacy: DifferentialPrivacy?, stoppedByBudget: Int?) -> PrivacyFootprint {
        var footprint = PrivacyFootprint(
            bytesUp: rounds.reduce(0) { $0 + $1.bytesUp }, bytesDown: rounds.reduce(0) { $0 + $1.bytesDown },
            bytesUpPerUpdate: trained.joined().map(\.messageBytes).max() ?? 0,
            parametersExposed: shared.count, parametersTotal: network.layout.count, tensorsExposed: shared.tensorNames)
        footprint.secureAggregation = arm.secureAggregation
        if arm.secureAggregation { footprint.secureRounds = SecureAggregationTotals(rounds) }
        if let privacy {
            footprint.epsilon = privacy.epsilon
            footprint.delta = privacy.settings.delta
            footprint.noiseMultiplier = privacy.settings.noiseMultiplier
            footprint.clipNorm = privacy.settings.clipNorm
            footprint.stoppedByBudgetAfterRound = stoppedByBudget
        }
        return footprint
    }

    /// Steps, FLOPs, optimiser state and simulated time per site-round over an arm's rounds.
    static func computeFootprint<Network: FederatedModel>(_ rounds: [[TrainedUpdate]], network: Network, selection: ParameterSelection) -> ComputeFootprint {
        let trained = Array(rounds.joined())
        let siteRounds = Double(max(trained.count, 1))
        let mask = network.trainableMask(selection)
        var compute = ComputeFootprint(
            stepsPerSiteRound: Double(trained.reduce(0) { $0 + $1.steps }) / siteRounds,
            trainingFlopsPerSiteRound: Double(trained.reduce(0) { $0 + $1.examples }) * network.trainingFlopsPerExample(mask) / siteRounds,
            optimizerStateBytes: trained.map(\.optimizerStateBytes).max() ?? 0)
        compute.simulatedSecondsPerSiteRound = trained.reduce(0.0) { $0 + $1.simulatedSeconds } / siteRounds
        return compute
    }
}
