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
    let links: [SiteLink]

    /// `links` in the scenario's site order, one per site.
    public init(links: [SiteLink]) {
        self.links = links
    }

    public func prepare(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws {
        if let problem = try await Self.refusal(scenario) { throw UserFacingError(problem) }
        for link in links {
            if let reason = await link.endReason { throw SiteUnavailable(site: link.site, reason: reason) }
        }
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
        return try await inSiteOrder { link in
            guard case .counts(let counts) = try await link.call(.count(request)) else {
                throw SiteUnavailable(site: link.site, reason: "did not answer a count request with counts")
            }
            do {
                return (link.site, try counts.dictionary(key))
            } catch let violation as ProtocolViolation {
                throw SiteUnavailable(site: link.site, reason: violation.reason)
            }
        }
    }

    /// `body` at every site at once, the results in site order.
    private func inSiteOrder<T: Sendable>(_ body: @escaping @Sendable (SiteLink) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for (index, link) in links.enumerated() { group.addTask { (index, try await body(link)) } }
            var results: [Int: T] = [:]
            for try await (index, value) in group { results[index] = value }
            return links.indices.map { results[$0]! }
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

    private func opened<Network: NeuralModel>(_ command: Sitefit_V1_Open, as: Network.Type) async throws -> [any FederatedSite<Network>] {
        try await inSiteOrder { link in
            guard case .opened(let opened) = try await link.call(.open(command)) else {
                throw SiteUnavailable(site: link.site, reason: "did not answer an open command with its summary")
            }
            return try RemoteSite<Network>(link: link, target: command.target, opened: opened)
        }
    }

    public func mlpSites(_ scenario: Scenario, model: PretrainedModel<MLP>, logger: Logger,
                         progress: @escaping @Sendable (String) -> Void) async throws -> [any FederatedSite<MLP>] {
        try await opened(open(scenario, checkpoint: Checkpoint.encode(model), mlp: false), as: MLP.self)
    }

    public func transformerSites(_ scenario: Scenario, model: PretrainedModel<Transformer>, mlp: PretrainedModel<MLP>, logger: Logger,
                                 progress: @escaping @Sendable (String) -> Void) async throws
        -> (transformer: [any FederatedSite<Transformer>], mlp: [any FederatedSite<MLP>]) {
        let vocabulary = scenario.transformer?.vocabulary.map(\.name) ?? []
        let transformer = try await opened(open(scenario, checkpoint: TransformerCheckpoint.encode(model, vocabulary: vocabulary), mlp: false),
                                           as: Transformer.self)
        let twins = try await opened(open(scenario, checkpoint: Checkpoint.encode(mlp), mlp: true), as: MLP.self)
        return (transformer, twins)
    }

    /// Tells every site the run is over (their agents then exit); a site already gone is skipped.
    public static func finish(_ links: [SiteLink], reason: String) async {
        for link in links { try? await link.notify(.finish(.with { $0.reason = reason })) }
    }

    public func close(seed: UInt64) async {
        let command = Sitefit_V1_Close.with { $0.seed = seed }
        // Closing frees memory at the sites; a site that is gone has nothing left to free.
        _ = try? await inSiteOrder { link in _ = try await link.call(.close(command)) }
    }
}
