import Foundation
import Logging
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitNN
import SiteFitScenario
import SiteFitSimulation
import SiteFitTransformer

/// The sites of a run that live in their own processes, one admitted stream each, in the
/// scenario's site order. The simulation runs over it exactly as over `LocalFleet`.
public struct RemoteFleet: SiteFleet {
    let slots: [SiteSlot]

    /// `slots` in the scenario's site order, one per site.
    public init(slots: [SiteSlot]) {
        self.slots = slots
    }

    /// Sites on fixed streams (in-process links), in the scenario's site order.
    public init(links: [SiteLink], deadlines: SiteDeadlines = SiteDeadlines()) async {
        var slots: [SiteSlot] = []
        for link in links {
            let slot = SiteSlot(site: link.site, deadlines: deadlines)
            await slot.connect(link)
            slots.append(slot)
        }
        self.init(slots: slots)
    }

    public func prepare(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws {
        if let problem = try await Self.refusal(scenario) { throw UserFacingError(problem) }
    }

    /// Why a scenario cannot run with separate site processes, or nil when it can: nothing may
    /// need rows from more than one site in one place.
    public static func refusal(_ scenario: Scenario) async throws -> String? {
        if scenario.baselines.contains(.pooled) {
            return "\(scenario.file): the pooled baseline needs every site's rows in one place, which a run with separate site "
                + "processes never has: remove `pooled` from baselines"
        }
        if !scenario.pretraining.heartDiseaseShards.isEmpty {
            return "\(scenario.file): pretraining reads other hospitals' shards, which the server does not have in a run with "
                + "separate site processes: pretrain once and give the checkpoint as pretraining.checkpoint"
        }
        return nil
    }

    public func covariateCounts(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws
        -> [(site: String, counts: [CovariateKey: Int])] {
        try await count(.covariates) { try $0.covariate() }
    }

    public func codeCounts(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws
        -> [(site: String, counts: [SequenceCode: Int])] {
        try await count(.codes) { try $0.code() }
    }

    private func count<Key: Hashable & Sendable>(_ kind: Sitefit_V1_CountRequest.Kind,
                                                 key: @escaping @Sendable (Sitefit_V1_CountEntry) throws -> Key) async throws
        -> [(site: String, counts: [Key: Int])] {
        let request = Sitefit_V1_CountRequest.with { $0.kind = kind }
        return try await inSiteOrder { slot in
            guard case .counts(let counts) = try await slot.call(.count(request)) else {
                throw SiteUnavailable(site: slot.site, reason: "did not answer a count request with counts")
            }
            do {
                return (slot.site, try counts.dictionary(key))
            } catch let violation as ProtocolViolation {
                throw SiteUnavailable(site: slot.site, reason: violation.reason)
            }
        }
    }

    /// `body` at every site at once, the results in site order.
    private func inSiteOrder<T: Sendable>(_ body: @escaping @Sendable (SiteSlot) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for (index, slot) in slots.enumerated() { group.addTask { (index, try await body(slot)) } }
            var results: [Int: T] = [:]
            for try await (index, value) in group { results[index] = value }
            return slots.indices.map { results[$0]! }
        }
    }

    private func open(_ scenario: Scenario, checkpoint: [UInt8], mlp: Bool) -> Sitefit_V1_Open {
        var command = Sitefit_V1_Open()
        command.target.seed = scenario.seed
        command.target.mlp = mlp
        command.checkpoint = Data(checkpoint)
        if scenario.dataset == .omop, scenario.task.automatic {
            command.covariates = scenario.task.automaticCovariates.map { Sitefit_V1_CountEntry($0, persons: 0) }
        }
        command.vocabulary = scenario.transformer?.vocabulary.map { Sitefit_V1_CountEntry($0, persons: 0) } ?? []
        return command
    }

    private func opened<Network: NeuralModel>(_ command: Sitefit_V1_Open, as: Network.Type, columns: Int?) async throws -> [any FederatedSite<Network>] {
        try await inSiteOrder { slot in
            try RemoteSite<Network>(slot: slot, target: command.target, opened: try await slot.open(command), columns: columns)
        }
    }

    public func mlpSites(_ scenario: Scenario, model: PretrainedModel<MLP>, logger: Logger,
                         progress: @escaping @Sendable (String) -> Void) async throws -> [any FederatedSite<MLP>] {
        try await opened(open(scenario, checkpoint: Checkpoint.encode(model), mlp: false), as: MLP.self, columns: Simulation.columnNames(scenario, spec: scenario.task).count)
    }

    public func transformerSites(_ scenario: Scenario, model: PretrainedModel<Transformer>, mlp: PretrainedModel<MLP>, logger: Logger,
                                 progress: @escaping @Sendable (String) -> Void) async throws
        -> (transformer: [any FederatedSite<Transformer>], mlp: [any FederatedSite<MLP>]) {
        let vocabulary = scenario.transformer?.vocabulary.map(\.name) ?? []
        let transformer = try await opened(open(scenario, checkpoint: TransformerCheckpoint.encode(model, vocabulary: vocabulary), mlp: false),
                                           as: Transformer.self, columns: nil)
        let twins = try await opened(open(scenario, checkpoint: Checkpoint.encode(mlp), mlp: true), as: MLP.self,
                                     columns: Simulation.columnNames(scenario, spec: scenario.task).count)
        return (transformer, twins)
    }

    /// What `finish` says when the run completed: a site agent exits with success only on it.
    public static let completed = "the run is complete"

    /// Tells every site the run is over (their agents then exit); a site already gone is skipped.
    public func finish(reason: String) async {
        for slot in slots { await slot.finish(reason: reason) }
    }

    public func close(seed: UInt64) async {
        // Closing frees memory at the sites; a site that is gone has nothing left to free.
        _ = try? await inSiteOrder { slot in await slot.close(seed: seed) }
    }
}
