import SiteFitNN

/// A site that cannot answer: its process died or stalled, its stream closed, it broke the
/// protocol, or it reported a failure. A round counts it as lost (a dropout); anything else that
/// needs the site stops on it, and the message names the site, so the operator knows which hospital to look at.
public struct SiteUnavailable: Error, Sendable, CustomStringConvertible {
    public var site: String
    public var reason: String
    public init(site: String, reason: String) {
        self.site = site
        self.reason = reason
    }
    public var description: String { "site '\(site)': \(reason)" }
}

/// Everything the coordinating side of a federation asks of a hospital site: the round driver,
/// the evaluations, the baselines and the privacy experiments talk to sites through this alone.
/// `SiteActor` answers in-process; a networked site answers the same calls from its own process.
/// Every call may fail, because a site that runs apart can disconnect between any two of them.
public protocol FederatedSite<Network>: ChannelSite {
    associatedtype Network: NeuralModel
    var testSize: Int { get }
    /// Aggregate statistics of the site's cohort (never rows).
    var summary: SiteSummary { get }
    /// Resets the site's model for an arm. `arm` names the arm's network for a site that builds it
    /// itself from the scenario (a site in another process), and is the arm's name or a baseline's.
    func begin(arm: String, network: Network, parameters: [Float], selection: ParameterSelection,
               shared: ParameterSelection?) async throws
    /// One round's local training from the broadcast; only the shared tensors come back.
    func localUpdate(arm: String, round: Int, broadcast: [UInt8], configuration: TrainingConfiguration,
                     clipNorm: Double?, secure: Bool) async throws -> LocalUpdate
    /// The site's held-out patients scored with the broadcast model.
    func evaluate(broadcast: [UInt8]) async throws -> SitePredictions
    /// The membership-inference attack's AUC at this site (one number leaves the site).
    func membershipInferenceAUC(broadcast: [UInt8]) async throws -> Double?
    /// The reconstruction experiment, scored at the site.
    func reconstructionTrials(settings: ReconstructionSettings, optimizer: OptimizerConfiguration, positiveWeight: Float,
                              clipNorm: Double?) async throws -> [ReconstructionTrial]
    /// Patient rows for the pooled upper reference: only a simulation may answer.
    func trainingRowsForPooledBaseline() async throws -> PooledRows
}

extension FederatedSite {
    /// `begin` for an arm that shares everything it trains.
    public func begin(arm: String, network: Network, parameters: [Float], selection: ParameterSelection) async throws {
        try await begin(arm: arm, network: network, parameters: parameters, selection: selection, shared: nil)
    }

    /// `localUpdate` in the clear, without DP clipping (the baselines).
    public func localUpdate(arm: String, round: Int, broadcast: [UInt8], configuration: TrainingConfiguration) async throws -> LocalUpdate {
        try await localUpdate(arm: arm, round: round, broadcast: broadcast, configuration: configuration, clipNorm: nil, secure: false)
    }
}

extension SiteActor: FederatedSite {
    public func begin(arm: String, network: Network, parameters: [Float], selection: ParameterSelection,
                      shared: ParameterSelection?) {
        begin(network: network, parameters: parameters, selection: selection, shared: shared)
    }
}
