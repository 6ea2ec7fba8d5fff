import Foundation
import SiteFitCore
import SiteFitFederation
import SiteFitNN
import SiteFitSimulation

/// A site in another process, as the simulation sees it: each `FederatedSite` call becomes one
/// command on the site's stream and waits for its reply. It holds only what the site said about
/// itself when it opened (split sizes and aggregate summary), never a row.
public struct RemoteSite<Network: NeuralModel>: FederatedSite {
    public let id: String
    public let trainSize: Int
    public let testSize: Int
    public let summary: SiteSummary
    let slot: SiteSlot
    let target: Sitefit_V1_Target

    /// `columns`: the task's feature columns when the target reads feature rows (its summary has
    /// one statistic per column), nil for a transformer target.
    init(slot: SiteSlot, target: Sitefit_V1_Target, opened: Sitefit_V1_Opened, columns: Int?) throws {
        guard (0...Int64(Int32.max)).contains(opened.trainSize), (0...Int64(Int32.max)).contains(opened.testSize) else {
            throw SiteUnavailable(site: slot.site, reason: "reported \(opened.trainSize) train and \(opened.testSize) test patients")
        }
        id = slot.site
        trainSize = Int(opened.trainSize)
        testSize = Int(opened.testSize)
        summary = try Self.decode(SiteSummary.self, opened.summary, what: "cohort summary", site: slot.site)
        do {
            try summary.checked(columns: columns, trainSize: trainSize, testSize: testSize)
        } catch {
            throw SiteUnavailable(site: slot.site, reason: error.reason)
        }
        self.slot = slot
        self.target = target
    }

    /// Sends a command for this site's target. A round's steps (`wait` false) fail at once when the
    /// site is gone, making it that round's dropout; the rest wait for it to come back.
    private func send(_ body: Sitefit_V1_ServerMessage.OneOf_Body, wait: Bool) async throws -> Sitefit_V1_Reply.OneOf_Body {
        try await slot.send(body, to: SiteSlot.Target(target), wait: wait)
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ document: Sitefit_V1_JsonDocument, what: String, site: String) throws -> T {
        do {
            return try JSONDocument.decode(type, from: document, what: what)
        } catch let violation as ProtocolViolation {
            throw SiteUnavailable(site: site, reason: violation.reason)
        }
    }

    /// The reply's body when it is of the expected kind.
    private func expect<T>(_ reply: Sitefit_V1_Reply.OneOf_Body, _ what: String,
                           _ pick: (Sitefit_V1_Reply.OneOf_Body) -> T?) throws -> T {
        guard let value = pick(reply) else { throw SiteUnavailable(site: id, reason: "answered \(what) with \(reply.kind)") }
        return value
    }

    /// Runs `body`, turning a protocol violation in what the site sent into `SiteUnavailable`.
    private func checked<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let violation as ProtocolViolation {
            throw SiteUnavailable(site: id, reason: violation.reason)
        }
    }

    public func begin(arm: String, network: Network, parameters: [Float], selection: ParameterSelection,
                      shared: ParameterSelection?) async throws {
        var command = Sitefit_V1_Begin()
        command.target = target
        command.arm = arm
        let everything = ParameterSelection(layout: network.layout, tensorNames: network.layout.tensors.map(\.name))
        command.parameters = Data(WireFormat.encode(parameters: parameters, selection: everything, metadata: [WireFormat.Key.kind: "begin"]))
        command.selection = selection.tensorNames
        command.shared = (shared ?? selection).tensorNames
        try await slot.begin(command)
    }

    public func localUpdate(arm: String, round: Int, broadcast: [UInt8], configuration: TrainingConfiguration,
                            clipNorm: Double?, secure: Bool) async throws -> LocalUpdate {
        var command = Sitefit_V1_Train()
        command.target = target
        command.arm = arm
        command.round = UInt32(round)
        command.broadcast = Data(broadcast)
        command.settings = Sitefit_V1_TrainingSettings(configuration)
        if let clipNorm { command.clipNorm = clipNorm }
        command.secure = secure
        // A round goes on without a site that is gone; a local-only baseline is no round: it waits
        // for the site to come back, and trains the same bits (its stream is keyed by round).
        let update = try expect(try await send(.train(command), wait: arm == Simulation.localBaselineArm), "train") {
            if case .update(let u) = $0 { u } else { nil }
        }
        return try checked { try update.localUpdate(site: id) }
    }

    public func evaluate(broadcast: [UInt8]) async throws -> SitePredictions {
        var command = Sitefit_V1_Evaluate()
        command.target = target
        command.broadcast = Data(broadcast)
        let predictions = try expect(try await send(.evaluate(command), wait: true), "evaluate") {
            if case .predictions(let p) = $0 { p } else { nil }
        }
        let decoded = try checked { try predictions.sitePredictions(site: id, testSize: testSize) }
        try await slot.checkSameTestSet(decoded, target: SiteSlot.Target(target))
        return decoded
    }

    public func membershipInferenceAUC(broadcast: [UInt8]) async throws -> Double? {
        var command = Sitefit_V1_Evaluate()
        command.target = target
        command.broadcast = Data(broadcast)
        let auc = try expect(try await send(.membership(command), wait: true), "membership") {
            if case .membershipAuc(let a) = $0 { a } else { nil }
        }
        guard !auc.hasAuc || (0...1).contains(auc.auc) else { throw SiteUnavailable(site: id, reason: "sent a membership AUC outside [0, 1]") }
        return auc.hasAuc ? auc.auc : nil
    }

    public func reconstructionTrials(settings: ReconstructionSettings, optimizer: OptimizerConfiguration, positiveWeight: Float,
                                     clipNorm: Double?) async throws -> [ReconstructionTrial] {
        var command = Sitefit_V1_Reconstruct()
        command.target = target
        command.batchSizes = settings.batchSizes.map(Int64.init)
        command.localSteps = settings.localSteps.map(Int64.init)
        command.budget = Int64(settings.budget)
        command.trials = Int64(settings.trials)
        // The optimiser travels inside training settings; epochs and batch are the experiment's own.
        command.settings = Sitefit_V1_TrainingSettings(TrainingConfiguration(optimizer: optimizer, epochs: 1, batchSize: 1,
                                                                             positiveWeight: positiveWeight))
        if let clipNorm { command.clipNorm = clipNorm }
        let document = try expect(try await send(.reconstruct(command), wait: true), "reconstruct") {
            if case .reconstructionTrials(let d) = $0 { d } else { nil }
        }
        let trials = try Self.decode([ReconstructionTrial].self, document, what: "reconstruction trials", site: id)
        try checked { try ReconstructionTrial.checked(trials, site: id, settings: settings) }
        return trials
    }

    public func trainingRowsForPooledBaseline() async throws -> PooledRows {
        throw UserFacingError("the pooled baseline needs every site's patient rows in one place, which a run with separate site "
                              + "processes never has: remove `pooled` from the scenario's baselines")
    }

    // MARK: Secure aggregation (the same steps as in-process; the server relays what sites send each other)

    public func secureAdvertise(context: String) async throws -> AdvertisedKeys {
        var command = Sitefit_V1_SecureAdvertise()
        command.target = target
        command.context = context
        let keys = try expect(try await send(.secureAdvertise(command), wait: false), "secure advertise") {
            if case .publicKeys(let k) = $0 { k } else { nil }
        }
        return try checked { try keys.advertised(site: id) }
    }

    public func secureShareKeys(context: String, roster: [AdvertisedKeys], threshold: Int) async throws -> [SealedShares] {
        var command = Sitefit_V1_SecureShareKeys()
        command.target = target
        command.context = context
        command.roster = roster.map { keys in
            var entry = Sitefit_V1_AdvertisedKeys()
            entry.site = keys.site
            entry.keys = Sitefit_V1_PublicKeys(keys)
            return entry
        }
        command.threshold = UInt32(threshold)
        let list = try expect(try await send(.secureShareKeys(command), wait: false), "secure share keys") {
            if case .sealedShares(let s) = $0 { s } else { nil }
        }
        let shares = list.shares.map(\.sealedShares)
        // A site speaks only for itself: shares it claims another site sent are refused here.
        guard shares.allSatisfy({ $0.from == id }) else { throw SiteUnavailable(site: id, reason: "sent shares in another site's name") }
        return shares
    }

    public func secureReceive(context: String, shares: [SealedShares]) async throws {
        var command = Sitefit_V1_SecureReceive()
        command.target = target
        command.context = context
        command.shares = shares.map(Sitefit_V1_SealedShare.init)
        _ = try expect(try await send(.secureReceive(command), wait: false), "secure receive") { if case .done = $0 { true } else { nil } }
    }

    public func maskedUpdate(context: String, round: Int, maskingSet: [String], weight: Double, scale: Double,
                             range: Double) async throws -> [UInt8] {
        var command = Sitefit_V1_MaskedInput()
        command.target = target
        command.context = context
        command.round = UInt32(round)
        command.maskingSet = maskingSet
        command.weight = weight
        command.scale = scale
        command.range = range
        let vector = try expect(try await send(.maskedInput(command), wait: false), "masked input") {
            if case .maskedVector(let v) = $0 { v } else { nil }
        }
        return [UInt8](vector.vector)
    }

    public func unmaskingShares(context: String, survivors: [String], dropped: [String]) async throws -> [RevealedShare] {
        var command = Sitefit_V1_Unmask()
        command.target = target
        command.context = context
        command.survivors = survivors
        command.dropped = dropped
        let list = try expect(try await send(.unmask(command), wait: false), "unmask") {
            if case .revealedShares(let r) = $0 { r } else { nil }
        }
        return try checked { try list.shares.map { try $0.revealed() } }
    }
}
