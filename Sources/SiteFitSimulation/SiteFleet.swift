import Foundation
import Logging
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitNN
import SiteFitScenario
import SiteFitTransformer

/// Where a run's sites live. The simulation asks its fleet for the sites' aggregate counts and
/// for the sites of each seed, and then talks to them only through `FederatedSite`: whether they
/// are actors in this process (`LocalFleet`) or agents in other processes is the fleet's business.
public protocol SiteFleet: Sendable {
    /// Before a seed's pretraining: whatever must hold for its sites to open (shards built and
    /// checked), so that a missing or stale shard stops the run before minutes of pretraining.
    func prepare(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws
    /// Each site's persons per covariate (small cells left out), in the scenario's site order.
    func covariateCounts(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws
        -> [(site: String, counts: [CovariateKey: Int])]
    /// Each site's persons per code of its sequences (small cells left out), in site order.
    func codeCounts(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws
        -> [(site: String, counts: [SequenceCode: Int])]
    /// The sites of one seed (`scenario.seed`) over the pretrained MLP, in site order.
    func mlpSites(_ scenario: Scenario, model: PretrainedModel<MLP>, logger: Logger,
                  progress: @escaping @Sendable (String) -> Void) async throws -> [any FederatedSite<MLP>]
    /// The sites of one seed over the pretrained transformer, and the same patients as feature rows for the MLP's arms.
    func transformerSites(_ scenario: Scenario, model: PretrainedModel<Transformer>, mlp: PretrainedModel<MLP>, logger: Logger,
                          progress: @escaping @Sendable (String) -> Void) async throws
        -> (transformer: [any FederatedSite<Transformer>], mlp: [any FederatedSite<MLP>])
    /// The seed's run is over: its sites may let go of their rows and models.
    func close(seed: UInt64) async
}

/// Every site an actor in this process, reading its shard (built from its profile when missing).
public struct LocalFleet: SiteFleet {
    public init() {}

    public func prepare(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) throws {
        _ = try Simulation.provisionShards(scenario, logger: logger, progress: progress)
    }

    public func covariateCounts(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) throws
        -> [(site: String, counts: [CovariateKey: Int])] {
        let shards = try Simulation.provisionShards(scenario, logger: logger, progress: progress)
        return try Simulation.cohortSources(scenario, shards: shards).compactMap { $0 as? ShardCohortSource }
            .map { ($0.site, try $0.covariateCounts()) }
    }

    public func codeCounts(_ scenario: Scenario, logger: Logger, progress: @escaping @Sendable (String) -> Void) throws
        -> [(site: String, counts: [SequenceCode: Int])] {
        guard let transformer = scenario.transformer else { return [] }
        let shards = try Simulation.provisionShards(scenario, logger: logger, progress: progress)
        return try shards.map { ($0.site, try $0.sequenceCodeCounts(scenario.task, settings: transformer.sequences)) }
    }

    public func mlpSites(_ scenario: Scenario, model: PretrainedModel<MLP>, logger: Logger,
                         progress: @escaping @Sendable (String) -> Void) throws -> [any FederatedSite<MLP>] {
        let shards = try Simulation.provisionShards(scenario, logger: logger, progress: progress)
        let maxBatch = Simulation.maxBatch(scenario)
        return try Simulation.cohortSources(scenario, shards: shards).map {
            try SiteActor(source: $0, model: model, seed: scenario.seed, maxBatch: maxBatch, logger: logger)
        }
    }

    public func transformerSites(_ scenario: Scenario, model: PretrainedModel<Transformer>, mlp: PretrainedModel<MLP>, logger: Logger,
                                 progress: @escaping @Sendable (String) -> Void) throws
        -> (transformer: [any FederatedSite<Transformer>], mlp: [any FederatedSite<MLP>]) {
        let shards = try Simulation.provisionShards(scenario, logger: logger, progress: progress)
        var pairs: [(transformer: any FederatedSite<Transformer>, mlp: any FederatedSite<MLP>)] = []
        for source in Simulation.cohortSources(scenario, shards: shards) {
            pairs.append(try Simulation.transformerSitePair(source, scenario: scenario, model: model, mlp: mlp, logger: logger))
        }
        return (pairs.map(\.transformer), pairs.map(\.mlp))
    }

    public func close(seed: UInt64) {}
}

extension Simulation {
    /// The largest batch a site's trainer must hold: the federation's batch, and whole evaluations of up to 256 rows.
    public static func maxBatch(_ scenario: Scenario) -> Int { max(scenario.federation.batchSize, 256) }

    /// One site of a transformer scenario: its patients as code sequences for the transformer and
    /// as feature rows for the MLP. Each actor reads the shard itself; the same extraction and
    /// split make them the same patients.
    public static func transformerSitePair(_ source: any CohortSource, scenario: Scenario, model: PretrainedModel<Transformer>,
                                           mlp: PretrainedModel<MLP>, logger: Logger) throws
        -> (transformer: SiteActor<Transformer>, mlp: SiteActor<MLP>) {
        let mlpSite = try SiteActor(source: source, model: mlp, seed: scenario.seed, maxBatch: maxBatch(scenario), logger: logger)
        return (try transformerSite(source, scenario: scenario, model: model, logger: logger), mlpSite)
    }

    /// A transformer scenario's site over its patients' code sequences.
    public static func transformerSite(_ source: any CohortSource, scenario: Scenario, model: PretrainedModel<Transformer>,
                                       logger: Logger) throws -> SiteActor<Transformer> {
        guard let t = scenario.transformer, let tabular = source as? ShardCohortSource else {
            throw UserFacingError("\(scenario.file): a transformer scenario reads OMOP shards")
        }
        return try SiteActor(source: SequenceCohortSource(base: tabular, settings: t.sequences, vocabulary: t.vocabulary),
                             model: model, seed: scenario.seed, maxBatch: maxBatch(scenario), logger: logger)
    }
}
