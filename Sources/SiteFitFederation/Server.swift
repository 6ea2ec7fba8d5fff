import Logging
import SiteFitCore
import SiteFitNN

/// The federated-averaging server; its `FederatedStrategy` turns the weighted average into the next global model. It never holds patient data: it sees only serialised updates,
/// and accepts only tensors in the selection, with the selection's shapes and finite values.
public actor FederatedServer {
    public nonisolated let selection: ParameterSelection
    /// Global values of the selected tensors, packed in selection order; frozen tensors are not
    /// the server's business.
    var global: [Float]
    /// Moves the global model from the round's average; holds the adaptive moments, if any.
    var strategy: any FederatedStrategy
    /// The round being fed update by update (between `beginRound` and `endRound`).
    private var pending: PendingRound?
    /// The masked round being fed (between `beginMaskedRound` and `endMaskedRound`).
    var pendingMasked: PendingMaskedRound?
    /// What reached the server in secure rounds, when a test asked for it (`recordTranscript`).
    var transcript: [ServerReceipt]? = nil
    let logger: Logger

    /// Starts from the pretrained values of the selected tensors.
    public init(pretrained: [Float], selection: ParameterSelection, strategy: any FederatedStrategy = FedAvg(),
                logger: Logger = Logger(label: "sitefit.server")) {
        self.selection = selection
        self.logger = logger
        self.strategy = strategy
        global = selection.gather(from: pretrained)
    }

    /// The round's broadcast: the current global values of the selected tensors.
    public func broadcast(round: Int) -> [UInt8] {
        WireFormat.encode(packed: global, selection: selection,
                          metadata: [WireFormat.Key.kind: "broadcast", WireFormat.Key.round: String(round)])
    }

    /// Validates every update, combines the accepted ones (in the given order) and installs the
    /// result. Fewer than `quorum` accepted updates skip the round and leave the model as it was.
    /// With `privacy` the server takes each update's change from the global model, enforces the
    /// clip norm (sites clip already; this makes the bound hold whatever a site sent), and adds
    /// Gaussian noise from the given stream to the sum (DP-FedAvg).
    public func aggregate(round: Int, updates: [(site: String, blob: [UInt8])], quorum: Int = 1,
                          privacy: PrivateAggregation? = nil) -> AggregationOutcome {
        beginRound(round, privacy: privacy)
        for update in updates { submit(site: update.site, blob: update.blob) }
        return endRound(quorum: quorum)
    }

    /// A round fed one update at a time (`beginRound`, `submit` in site order, `endRound`): the
    /// server keeps a running sum, never the round's updates, so memory does not grow with the
    /// number of sites. `aggregate` is the same three steps over a list.
    public func beginRound(_ round: Int, privacy: PrivateAggregation? = nil) {
        pending = PendingRound(round: round, privacy: privacy, count: global.count)
    }

    /// Validates one update and folds it into the round's sum, or records why it was refused.
    public func submit(site: String, blob: [UInt8]) {
        guard var round = pending else { preconditionFailure("submit before beginRound") }
        pending = nil
        defer { pending = round }
        do throws(UpdateRejection) {
            let (entries, metadata) = try WireFormat.validatedLayout(blob, selection: selection)
            let trainSize = try Self.checkedTrainSize(metadata, round: round.round)
            if let privacy = round.privacy {
                // Sites clip already; clipping again makes the bound hold whatever a site sent.
                var values = entries.flatMap { Safetensors.withValues(blob, $0.bytes) { Array($0) } }
                for i in values.indices { values[i] -= global[i] }
                DPFedAvg.clip(&values, clipNorm: privacy.settings.clipNorm)
                round.clipped.add(values)
            } else {
                // Folded straight from the message's bytes: no copy of the update is made.
                round.weighted.add(weight: trainSize) { add in
                    for entry in entries { Safetensors.withValues(blob, entry.bytes, add) }
                }
            }
            round.acceptedSites.append(site)
        } catch {
            logger.warning("rejected update", metadata: ["site": "\(site)", "round": "\(round.round)", "reason": "\(error.reason)"])
            round.rejected.append(RejectedUpdate(site: site, reason: error.reason))
        }
    }

    /// Installs the round's result, or skips the round when fewer than `quorum` updates were accepted.
    public func endRound(quorum: Int = 1) -> AggregationOutcome {
        guard var round = pending else { preconditionFailure("endRound before beginRound") }
        pending = nil
        guard round.acceptedSites.count >= max(quorum, 1) else {
            logger.info("round skipped", metadata: ["round": "\(round.round)", "accepted": "\(round.acceptedSites.count)", "quorum": "\(quorum)"])
            return AggregationOutcome(acceptedSites: round.acceptedSites, rejected: round.rejected, skipped: true)
        }
        let average: [Float]
        if let privacy = round.privacy {
            let noisy = round.clipped.noisyMean(settings: privacy.settings, expectedParticipants: privacy.expectedParticipants,
                                                random: &round.privacy!.noise)
            average = zip(global, noisy).map { $0 + $1 }
        } else {
            average = round.weighted.mean()
        }
        global = strategy.nextGlobal(current: global, average: average)
        return AggregationOutcome(acceptedSites: round.acceptedSites, rejected: round.rejected, skipped: false)
    }

    /// The metadata checks every update passes: a positive train size and this round's number.
    static func checkedTrainSize(_ metadata: [String: String], round: Int) throws(UpdateRejection) -> Int {
        guard let size = metadata[WireFormat.Key.trainSize].flatMap(Int.init), size > 0 else {
            throw UpdateRejection("metadata 'train_size' is missing or not a positive integer")
        }
        guard metadata[WireFormat.Key.round] == String(round) else {
            throw UpdateRejection("update is for round \(metadata[WireFormat.Key.round] ?? "?"), expected \(round)")
        }
        return size
    }

    /// The current global selected values, packed in selection order.
    public func globalValues() -> [Float] { global }

    /// What the strategy carries between rounds (see `FederatedStrategy.carried`).
    public func strategyState() -> [[Double]] { strategy.carried }

    /// Puts back the global values and strategy state a restarted server saved after its last
    /// completed round; false (nothing changed) when they do not fit this selection and strategy.
    public func restore(global values: [Float], strategyState: [[Double]]) -> Bool {
        guard pending == nil, pendingMasked == nil, values.count == global.count, values.allSatisfy(\.isFinite) else { return false }
        var restored = strategy
        guard restored.restore(carried: strategyState) else { return false }
        strategy = restored
        global = values
        return true
    }
}

/// What the server did with one round's updates.
public struct AggregationOutcome: Sendable, Equatable {
    public var acceptedSites: [String]
    public var rejected: [RejectedUpdate]
    /// Too few accepted updates for the quorum: the global model did not change.
    public var skipped: Bool

    public init(acceptedSites: [String], rejected: [RejectedUpdate], skipped: Bool) {
        self.acceptedSites = acceptedSites
        self.rejected = rejected
        self.skipped = skipped
    }
}

/// What the server needs for a DP-FedAvg round: the settings, the fixed denominator and the
/// round's own noise stream (seed, "dp-noise", arm, round).
public struct PrivateAggregation: Sendable {
    public var settings: DPSettings
    public var expectedParticipants: Double
    public var noise: RandomStream

    public init(settings: DPSettings, expectedParticipants: Double, noise: RandomStream) {
        self.settings = settings
        self.expectedParticipants = expectedParticipants
        self.noise = noise
    }
}

/// An update the server refused, with its reason (shown in the report).
public struct RejectedUpdate: Sendable, Equatable, Codable {
    public var site: String
    public var reason: String
}

/// A round in progress: running sums and what happened to each update so far.
struct PendingRound: Sendable {
    let round: Int
    var privacy: PrivateAggregation?
    var weighted: FedAvg.WeightedSum
    var clipped: DPFedAvg.Sum
    var acceptedSites: [String] = []
    var rejected: [RejectedUpdate] = []

    init(round: Int, privacy: PrivateAggregation?, count: Int) {
        self.round = round
        self.privacy = privacy
        // Only the sum the round uses gets storage.
        weighted = FedAvg.WeightedSum(count: privacy == nil ? count : 0)
        clipped = DPFedAvg.Sum(count: privacy == nil ? 0 : count)
    }
}
