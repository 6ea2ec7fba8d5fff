import Logging
import SiteFitCore
import SiteFitNN

/// The federated-averaging server; its `FederatedStrategy` turns the weighted average into the next global model. It never holds patient data: it sees only serialised updates,
/// and accepts only tensors in the selection, with the selection's shapes and finite values.
public actor FederatedServer {
    public nonisolated let selection: ParameterSelection
    /// Global values of the selected tensors, packed in selection order; frozen tensors are not
    /// the server's business.
    private var global: [Float]
    /// Moves the global model from the round's average; holds the adaptive moments, if any.
    private var strategy: any FederatedStrategy
    private let logger: Logger

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
        var accepted: [(values: [Float], trainSize: Int)] = []
        var acceptedSites: [String] = []
        var rejected: [(site: String, reason: String)] = []
        for update in updates {
            do throws(UpdateRejection) {
                let (tensors, metadata) = try WireFormat.validate(update.blob, selection: selection)
                accepted.append((tensors.flatMap(\.values), try Self.checkedTrainSize(metadata, round: round)))
                acceptedSites.append(update.site)
            } catch {
                logger.warning("rejected update", metadata: ["site": "\(update.site)", "round": "\(round)", "reason": "\(error.reason)"])
                rejected.append((update.site, error.reason))
            }
        }
        let rejections = rejected.map { RejectedUpdate(site: $0.site, reason: $0.reason) }
        guard accepted.count >= max(quorum, 1) else {
            logger.info("round skipped", metadata: ["round": "\(round)", "accepted": "\(accepted.count)", "quorum": "\(quorum)"])
            return AggregationOutcome(acceptedSites: acceptedSites, rejected: rejections, skipped: true)
        }
        let average: [Float]
        if var privacy {
            let deltas = accepted.map { update -> [Float] in
                var delta = zip(update.values, global).map { $0 - $1 }
                DPFedAvg.clip(&delta, clipNorm: privacy.settings.clipNorm)
                return delta
            }
            let noisy = DPFedAvg.noisyMean(deltas, count: global.count, settings: privacy.settings,
                                           expectedParticipants: privacy.expectedParticipants, random: &privacy.noise)
            average = zip(global, noisy).map { $0 + $1 }
        } else {
            average = FedAvg.aggregate(accepted)
        }
        global = strategy.nextGlobal(current: global, average: average)
        return AggregationOutcome(acceptedSites: acceptedSites, rejected: rejections, skipped: false)
    }

    /// Secure aggregation: sums the masked vectors of `participants` (the masking set) and adds
    /// the unmasked, dequantised sum of changes to the global model (divided by the expected count
    /// with noise added under DP; the changes are already weighted by the sites otherwise).
    /// A missing or refused masked vector means the masks cannot cancel: nothing is unmasked and
    /// the outcome names the sites to re-key without (`needsRekey`), never a wrong sum.
    public func aggregateMasked(round: Int, masked: [(site: String, blob: [UInt8])], participants: [String], scale: Double,
                                quorum: Int = 1, privacy: PrivateAggregation? = nil) -> MaskedAggregationOutcome {
        var vectors: [[UInt32]] = []
        var arrived: [String] = []
        var rejected: [RejectedUpdate] = []
        for update in masked {
            do throws(UpdateRejection) {
                guard participants.contains(update.site) else { throw UpdateRejection("site is not in this round's masking set") }
                let (words, metadata) = try SecureAggregation.decode(update.blob, count: global.count)
                _ = try Self.checkedTrainSize(metadata, round: round)
                vectors.append(words)
                arrived.append(update.site)
            } catch {
                logger.warning("rejected masked update", metadata: ["site": "\(update.site)", "round": "\(round)", "reason": "\(error.reason)"])
                rejected.append(RejectedUpdate(site: update.site, reason: error.reason))
            }
        }
        guard arrived.count == participants.count else {
            return MaskedAggregationOutcome(outcome: AggregationOutcome(acceptedSites: [], rejected: rejected, skipped: true),
                                            rekeyWith: participants.filter { arrived.contains($0) })
        }
        guard arrived.count >= max(quorum, 1) else {
            return MaskedAggregationOutcome(outcome: AggregationOutcome(acceptedSites: arrived, rejected: rejected, skipped: true), rekeyWith: nil)
        }
        var change = SecureAggregation.dequantise(SecureAggregation.sum(vectors, count: global.count), scale: scale)
        if var privacy {
            // Sites sent clipped, unweighted changes; noise goes on the sum, then the fixed denominator.
            let standardDeviation = privacy.settings.noiseMultiplier * privacy.settings.clipNorm
            change = change.map { Float((Double($0) + standardDeviation * privacy.noise.gaussian()) / privacy.expectedParticipants) }
        }
        let average = zip(global, change).map { $0 + $1 }
        global = strategy.nextGlobal(current: global, average: average)
        return MaskedAggregationOutcome(outcome: AggregationOutcome(acceptedSites: arrived, rejected: rejected, skipped: false), rekeyWith: nil)
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

/// The result of a secure-aggregation attempt: an outcome, or the survivors to re-key among.
public struct MaskedAggregationOutcome: Sendable, Equatable {
    public var outcome: AggregationOutcome
    /// Non-nil when some participant's masked vector was missing or refused: mask again among these sites.
    public var rekeyWith: [String]?
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
