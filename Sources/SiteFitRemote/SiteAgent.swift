import Foundation
import Logging
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitNN
import SiteFitScenario
import SiteFitSimulation
import SiteFitTransformer
import SiteFitTuning

/// One hospital's side of a distributed run, next to its data: it answers the server's commands
/// with the same `SiteActor` that an in-process run uses, so the numbers are the same. Its rows
/// never leave it; what it sends is what `FederatedSite` returns (updates of the selected
/// tensors, test-set scores, aggregate counts and summaries).
///
/// The site's operator approves the scenario by starting the agent with it: a server running any
/// other scenario (another fingerprint) is refused, so a server cannot make a site train on, or
/// report, more than the operator agreed to.
public actor SiteAgent {
    public nonisolated let site: String
    let scenario: Scenario
    let reference: Scenario.SiteReference
    let shard: SiteShard
    let logger: Logger
    private var mlps: [UInt64: Opened<MLP>] = [:]
    private var transformers: [UInt64: Opened<Transformer>] = [:]
    /// The MLP over the same patients, for a transformer scenario's MLP arms.
    private var twins: [UInt64: Opened<MLP>] = [:]
    /// Fault drill: the process ends abruptly, as in a crash, when asked to train this round of an arm.
    let crashAtRound: Int?

    struct Opened<Network: FederatedModel> {
        var actor: SiteActor<Network>
        var model: PretrainedModel<Network>
    }

    /// What the approved scenario lets the server ask of a target after `begin`: the arm, and how
    /// its rounds train. The site derives it itself; a train command that differs is refused.
    struct Plan: Equatable {
        var arm: String
        var configuration: TrainingConfiguration
        var clipNorm: Double?
        var secure: Bool
    }

    private var plans: [SiteSlot.Target: Plan] = [:]

    /// An agent for `site` of the approved `scenario`, reading the shard at `shard` (read-only;
    /// it must exist, and a generated one must match the site's profile).
    /// `crashAtRound` is for fault drills only (see `sitefit site --crash-at-round`).
    public init(site: String, scenario: Scenario, shard: URL, crashAtRound: Int? = nil, logger: Logger = Logger(label: "sitefit.site")) throws {
        guard let reference = scenario.sites.first(where: { $0.profile.id == site }) else {
            throw UserFacingError("\(scenario.file): has no site '\(site)' (its sites: \(scenario.sites.map(\.profile.id).joined(separator: ", ")))")
        }
        self.site = site
        self.scenario = scenario
        self.reference = reference
        self.shard = try Simulation.openShard(for: reference, at: shard)
        self.logger = logger
        self.crashAtRound = crashAtRound
    }

    /// The answer to one command, or nil for a message that needs none. A command the site
    /// cannot carry out is answered with a failure that says why; the agent itself goes on.
    func handle(_ message: Sitefit_V1_ServerMessage) async -> Sitefit_V1_Reply? {
        guard let body = message.body else { return reply(message.call, failure: "empty command") }
        do {
            let answer: Sitefit_V1_Reply.OneOf_Body
            switch body {
            case .welcome, .finish:
                return nil
            case .count(let request): answer = .counts(try counts(request.kind))
            case .open(let command): answer = .opened(try open(command))
            case .begin(let command): try await begin(command); answer = .done(Sitefit_V1_Done())
            case .train(let command):
                if let crash = crashAtRound, Int(command.round) == crash, scenario.arms.contains(where: { $0.name == command.arm }) {
                    logger.critical("fault drill: crashing on round \(crash)'s training", metadata: ["site": "\(site)"])
                    _exit(86)
                }
                answer = .update(try await train(command))
            case .evaluate(let command):
                let predictions = try await site(command.target).evaluate(broadcast: [UInt8](command.broadcast))
                answer = .predictions(Sitefit_V1_Predictions(predictions))
            case .membership(let command):
                var auc = Sitefit_V1_MembershipAuc()
                if let value = try await site(command.target).membershipInferenceAUC(broadcast: [UInt8](command.broadcast)) { auc.auc = value }
                answer = .membershipAuc(auc)
            case .reconstruct(let command): answer = .reconstructionTrials(try await reconstruct(command))
            case .secureAdvertise(let command):
                answer = .publicKeys(Sitefit_V1_PublicKeys(try await site(command.target).secureAdvertise(context: command.context)))
            case .secureShareKeys(let command):
                // The roster: sites of the approved scenario, each once, this one among them; the
                // threshold no lower than the scenario's quorum makes it (else fewer could unmask one update).
                let ids = command.roster.map(\.site)
                let known = Set(scenario.sites.map(\.profile.id))
                guard Set(ids).count == ids.count, ids.contains(site), ids.allSatisfy(known.contains),
                      Int(command.threshold) >= SecureAggregation.threshold(quorum: scenario.federation.participation.quorum),
                      Int(command.threshold) <= ids.count
                else { throw ProtocolViolation("a secure-aggregation roster or threshold that the approved scenario does not allow") }
                let roster = try command.roster.map { try $0.keys.advertised(site: $0.site) }
                var list = Sitefit_V1_SealedShareList()
                list.shares = try await site(command.target).secureShareKeys(context: command.context, roster: roster,
                                                                             threshold: Int(command.threshold)).map(Sitefit_V1_SealedShare.init)
                answer = .sealedShares(list)
            case .secureReceive(let command):
                try await site(command.target).secureReceive(context: command.context, shares: command.shares.map(\.sealedShares))
                answer = .done(Sitefit_V1_Done())
            case .maskedInput(let command):
                // Scale and range are the protocol's own for the masking set's size; the weight a share of one.
                let members = Set(command.maskingSet)
                guard members.count == command.maskingSet.count, members.contains(site), command.range == MaskedChannel.range,
                      command.scale == SecureAggregation.scale(range: MaskedChannel.range, participants: members.count),
                      command.weight.isFinite, (0...1).contains(command.weight)
                else { throw ProtocolViolation("masking settings that the protocol does not use") }
                var vector = Sitefit_V1_MaskedVector()
                vector.vector = Data(try await site(command.target).maskedUpdate(
                    context: command.context, round: Int(command.round), maskingSet: command.maskingSet, weight: command.weight,
                    scale: command.scale, range: command.range))
                answer = .maskedVector(vector)
            case .unmask(let command):
                var list = Sitefit_V1_RevealedShareList()
                list.shares = try await site(command.target).unmaskingShares(context: command.context, survivors: command.survivors,
                                                                             dropped: command.dropped).map(Sitefit_V1_RevealedShare.init)
                answer = .revealedShares(list)
            case .close(let command):
                mlps[command.seed] = nil
                transformers[command.seed] = nil
                twins[command.seed] = nil
                answer = .done(Sitefit_V1_Done())
            }
            var reply = Sitefit_V1_Reply()
            reply.call = message.call
            reply.body = answer
            return reply
        } catch {
            logger.warning("refused a command", metadata: ["site": "\(site)", "reason": "\(error)"])
            // Only the protocol's own reasons leave the site; anything else may name its files or data.
            return reply(message.call, failure: (error as? ProtocolViolation)?.reason ?? "the site could not carry out the command (its log says why)")
        }
    }

    nonisolated func reply(_ call: UInt64, failure reason: String) -> Sitefit_V1_Reply {
        var failure = Sitefit_V1_Failure()
        failure.reason = reason
        var reply = Sitefit_V1_Reply()
        reply.call = call
        reply.body = .failure(failure)
        return reply
    }

    // MARK: Commands

    private func counts(_ kind: Sitefit_V1_CountRequest.Kind) throws -> Sitefit_V1_Counts {
        var counts = Sitefit_V1_Counts()
        switch kind {
        case .covariates:
            guard let source = Simulation.cohortSource(scenario, site: reference, shard: shard) as? ShardCohortSource else {
                throw ProtocolViolation("covariates are counted only at OMOP sites")
            }
            counts.entries = try source.covariateCounts().sorted { $0.key < $1.key }.map { Sitefit_V1_CountEntry($0.key, persons: $0.value) }
        case .codes:
            guard let transformer = scenario.transformer else { throw ProtocolViolation("codes are counted only for a transformer scenario") }
            counts.entries = try shard.sequenceCodeCounts(scenario.task, settings: transformer.sequences).sorted { $0.key < $1.key }
                .map { Sitefit_V1_CountEntry($0.key, persons: $0.value) }
        case .unspecified, .UNRECOGNIZED:
            throw ProtocolViolation("a count request names nothing to count")
        }
        return counts
    }

    /// The scenario as the server runs it for `seed`, with what the sites agreed.
    private func seeded(_ command: Sitefit_V1_Open) throws -> Scenario {
        var run = scenario
        run.seed = command.target.seed
        if scenario.dataset == .omop, scenario.task.automatic {
            run.task.automaticCovariates = try command.covariates.map { try $0.covariate() }
            run.model.inputSize = run.task.columnNames.count
        }
        if var transformer = run.transformer {
            transformer.vocabulary = try command.vocabulary.map { try $0.code() }
            run.transformer = transformer
        }
        return run
    }

    private func open(_ command: Sitefit_V1_Open) throws -> Sitefit_V1_Opened {
        // Only the approved scenario's seeds: each opened seed holds a copy of the site's rows.
        guard ([scenario.seed] + scenario.extraSeeds).contains(command.target.seed) else {
            throw ProtocolViolation("seed \(command.target.seed) is not one of the approved scenario's seeds")
        }
        let run = try seeded(command)
        let source = Simulation.cohortSource(run, site: reference, shard: shard)
        let seed = command.target.seed
        let bytes = [UInt8](command.checkpoint)
        let file = "the server's checkpoint"
        let summary: SiteSummary, trainSize: Int, testSize: Int
        if run.transformer != nil, !command.target.mlp {
            let (model, vocabulary, _) = try TransformerCheckpoint.decode(bytes, file: file)
            guard let t = run.transformer, vocabulary == t.vocabulary.map(\.name) else {
                throw ProtocolViolation("the checkpoint's vocabulary is not the one the sites agreed")
            }
            // The architecture the approved scenario describes, so no kernel meets shapes it was not built for.
            guard model.network.configuration == Simulation.transformerConfiguration(t) else {
                throw ProtocolViolation("the checkpoint's transformer is not the approved scenario's")
            }
            let actor = try Simulation.transformerSite(source, scenario: run, model: model, logger: logger)
            transformers[seed] = Opened(actor: actor, model: model)
            (summary, trainSize, testSize) = (actor.summary, actor.trainSize, actor.testSize)
        } else {
            let (model, _) = try Checkpoint.decode(bytes, file: file, as: MLP.self)
            // The features the site extracts, in its order, and a network over exactly that many.
            let columns = Simulation.columnNames(run, spec: run.task)
            guard model.columns == columns, model.network.configuration.inputSize == columns.count,
                  model.standardizer.means.count == columns.count, model.standardizer.standardDeviations.count == columns.count,
                  run.transformer != nil || model.network.configuration.hiddenSizes == run.model.hiddenSizes
            else { throw ProtocolViolation("the checkpoint's model does not take the approved scenario's features") }
            let actor = try SiteActor(source: source, model: model, seed: seed, maxBatch: Simulation.maxBatch(run), logger: logger)
            if command.target.mlp { twins[seed] = Opened(actor: actor, model: model) } else { mlps[seed] = Opened(actor: actor, model: model) }
            (summary, trainSize, testSize) = (actor.summary, actor.trainSize, actor.testSize)
        }
        var opened = Sitefit_V1_Opened()
        opened.trainSize = Int64(trainSize)
        opened.testSize = Int64(testSize)
        opened.summary = try JSONDocument.encode(summary)
        return opened
    }

    /// The opened site a command addresses.
    private func site(_ target: Sitefit_V1_Target) throws -> any FederatedSite {
        if scenario.transformer != nil, !target.mlp {
            guard let opened = transformers[target.seed] else { throw ProtocolViolation("seed \(target.seed) is not open") }
            return opened.actor
        }
        guard let opened = target.mlp ? twins[target.seed] : mlps[target.seed] else { throw ProtocolViolation("seed \(target.seed) is not open") }
        return opened.actor
    }

    private func begin(_ command: Sitefit_V1_Begin) async throws {
        if scenario.transformer != nil, !command.target.mlp {
            guard let opened = transformers[command.target.seed] else { throw ProtocolViolation("seed \(command.target.seed) is not open") }
            try await begin(opened, command)
        } else {
            guard let opened = command.target.mlp ? twins[command.target.seed] : mlps[command.target.seed] else {
                throw ProtocolViolation("seed \(command.target.seed) is not open")
            }
            try await begin(opened, command)
        }
    }

    /// Installs the arm's network, which the site builds itself from the approved scenario (the
    /// server names the arm; it cannot send a network of its own making), and its starting values.
    private func begin<Network: FederatedModel>(_ opened: Opened<Network>, _ command: Sitefit_V1_Begin) async throws {
        let network: Network
        let selection: ParameterSelection, shared: ParameterSelection, plan: Plan
        if command.arm == Simulation.baselineArm {
            network = opened.model.network
            selection = FineTuningMode.full.selection(for: network.layout)
            shared = selection
            plan = Plan(arm: command.arm, configuration: Simulation.baselineConfiguration(scenario), clipNorm: nil, secure: false)
        } else if let arm = scenario.arms.first(where: { $0.name == command.arm }) {
            network = opened.model.network.network(for: arm)
            // The tensors the arm trains and the ones it sends, as the approved scenario has them.
            selection = arm.mode.selection(for: network.layout, settings: arm.modeSettings)
            let strategy = arm.makeStrategy(trainedCount: selection.count)
            shared = strategy.shared(from: selection)
            plan = Plan(arm: arm.name, configuration: Simulation.trainingConfiguration(arm, scenario: scenario, proximalMu: strategy.proximalMu),
                        clipNorm: arm.privacy?.clipNorm, secure: arm.secureAggregation)
        } else {
            throw ProtocolViolation("the approved scenario has no arm '\(command.arm)'")
        }
        guard command.selection == selection.tensorNames, command.shared == shared.tensorNames else {
            throw ProtocolViolation("arm '\(command.arm)' trains and shares other tensors in the approved scenario")
        }
        let layout = network.layout
        var parameters = [Float](repeating: 0, count: layout.count)
        do {
            let everything = ParameterSelection(layout: layout, tensorNames: layout.tensors.map(\.name))
            _ = try WireFormat.apply([UInt8](command.parameters), selection: everything, to: &parameters)
        } catch {
            throw ProtocolViolation("the arm's starting values: \(error.reason)")
        }
        guard parameters.allSatisfy(\.isFinite) else { throw ProtocolViolation("the arm's starting values are not all finite") }
        plans[SiteSlot.Target(command.target)] = plan
        await opened.actor.begin(network: network, parameters: parameters, selection: selection, shared: shared)
    }

    private func train(_ command: Sitefit_V1_Train) async throws -> Sitefit_V1_Update {
        guard let plan = plans[SiteSlot.Target(command.target)] else { throw ProtocolViolation("no arm has begun for this seed") }
        // The local baselines train under the baseline's plan with their own stream name.
        guard command.arm == plan.arm || (plan.arm == Simulation.baselineArm && command.arm == Simulation.localBaselineArm) else {
            throw ProtocolViolation("arm '\(plan.arm)' has begun, not '\(command.arm)'")
        }
        let asked = Plan(arm: plan.arm, configuration: try command.settings.configuration(),
                         clipNorm: command.hasClipNorm ? command.clipNorm : nil, secure: command.secure)
        guard asked == plan else { throw ProtocolViolation("the server asks for training that the approved scenario does not have") }
        let update = try await site(command.target).localUpdate(
            arm: command.arm, round: Int(command.round), broadcast: [UInt8](command.broadcast), configuration: plan.configuration,
            clipNorm: plan.clipNorm, secure: plan.secure)
        return Sitefit_V1_Update(update)
    }

    private func reconstruct(_ command: Sitefit_V1_Reconstruct) async throws -> Sitefit_V1_JsonDocument {
        guard let settings = scenario.reconstruction else { throw ProtocolViolation("the approved scenario runs no reconstruction experiment") }
        guard let plan = plans[SiteSlot.Target(command.target)], let arm = scenario.arms.first(where: { $0.name == plan.arm }) else {
            throw ProtocolViolation("no arm has begun for this seed")
        }
        // The experiment as the approved scenario sets it for the begun arm; anything else is refused.
        let federation = scenario.federation
        let optimizer = OptimizerConfiguration(kind: federation.optimizer, learningRate: arm.learningRate,
                                               weightDecay: federation.weightDecay, gradientClipNorm: federation.gradientClipNorm)
        let asked = try command.settings.configuration()
        guard command.batchSizes == settings.batchSizes.map(Int64.init), command.localSteps == settings.localSteps.map(Int64.init),
              command.budget == Int64(settings.budget), command.trials == Int64(settings.trials), asked.optimizer == optimizer,
              asked.positiveWeight == Float(federation.positiveWeight), (command.hasClipNorm ? command.clipNorm : nil) == arm.privacy?.clipNorm,
              !arm.secureAggregation
        else { throw ProtocolViolation("the server asks for a reconstruction experiment that the approved scenario does not have") }
        let trials = try await site(command.target).reconstructionTrials(
            settings: settings, optimizer: optimizer, positiveWeight: Float(federation.positiveWeight), clipNorm: arm.privacy?.clipNorm)
        return try JSONDocument.encode(trials)
    }
}
