import Logging
import SiteFitNN

/// Secure aggregation on the server: masked vectors are summed mod 2^32 as they arrive, so the
/// server holds one running sum, never a site's vector, and unmasks only a complete masking set.
extension FederatedServer {
    /// Opens a masked round over `participants` (the masking set, in masking order).
    public func beginMaskedRound(_ round: Int, participants: [String], scale: Double, privacy: PrivateAggregation? = nil) {
        pendingMasked = PendingMaskedRound(round: round, participants: participants, scale: scale, privacy: privacy,
                                           sum: [UInt32](repeating: 0, count: global.count))
    }

    /// Validates one masked vector and adds it to the round's sum mod 2^32, or records why it was refused.
    public func submitMasked(site: String, blob: [UInt8]) {
        guard var round = pendingMasked else { preconditionFailure("submitMasked before beginMaskedRound") }
        pendingMasked = nil
        defer { pendingMasked = round }
        do throws(UpdateRejection) {
            guard round.participants.contains(site) else { throw UpdateRejection("site is not in this round's masking set") }
            guard !round.arrived.contains(site) else { throw UpdateRejection("site already sent its masked vector this round") }
            let (words, metadata) = try SecureAggregation.decode(blob, count: global.count)
            _ = try Self.checkedTrainSize(metadata, round: round.round)
            for i in round.sum.indices { round.sum[i] &+= words[i] }
            round.arrived.append(site)
        } catch {
            logger.warning("rejected masked update", metadata: ["site": "\(site)", "round": "\(round.round)", "reason": "\(error.reason)"])
            round.rejected.append(RejectedUpdate(site: site, reason: error.reason))
        }
    }

    /// Unmasks and installs the sum when every participant's vector arrived. A missing or refused
    /// vector means the masks cannot cancel: nothing is unmasked, and the outcome names the sites
    /// to re-key without (`rekeyWith`), never a wrong sum. Under DP the sites sent clipped,
    /// unweighted changes: noise goes on the sum, then the fixed denominator.
    public func endMaskedRound(quorum: Int = 1) -> MaskedAggregationOutcome {
        guard var round = pendingMasked else { preconditionFailure("endMaskedRound before beginMaskedRound") }
        pendingMasked = nil
        guard round.arrived.count == round.participants.count else {
            return MaskedAggregationOutcome(outcome: AggregationOutcome(acceptedSites: [], rejected: round.rejected, skipped: true),
                                            rekeyWith: round.participants.filter { round.arrived.contains($0) })
        }
        guard round.arrived.count >= max(quorum, 1) else {
            return MaskedAggregationOutcome(outcome: AggregationOutcome(acceptedSites: round.arrived, rejected: round.rejected, skipped: true),
                                            rekeyWith: nil)
        }
        var change = SecureAggregation.dequantise(round.sum, scale: round.scale)
        if round.privacy != nil {
            let settings = round.privacy!.settings
            let standardDeviation = settings.noiseMultiplier * settings.clipNorm
            let expected = round.privacy!.expectedParticipants
            change = change.map { Float((Double($0) + standardDeviation * round.privacy!.noise.gaussian()) / expected) }
        }
        let average = zip(global, change).map { $0 + $1 }
        global = strategy.nextGlobal(current: global, average: average)
        return MaskedAggregationOutcome(outcome: AggregationOutcome(acceptedSites: round.arrived, rejected: round.rejected, skipped: false),
                                        rekeyWith: nil)
    }

    /// A whole masked round from a list: `beginMaskedRound`, `submitMasked` for each, `endMaskedRound`.
    public func aggregateMasked(round: Int, masked: [(site: String, blob: [UInt8])], participants: [String], scale: Double,
                                quorum: Int = 1, privacy: PrivateAggregation? = nil) -> MaskedAggregationOutcome {
        beginMaskedRound(round, participants: participants, scale: scale, privacy: privacy)
        for update in masked { submitMasked(site: update.site, blob: update.blob) }
        return endMaskedRound(quorum: quorum)
    }
}

/// A masked round in progress: the running sum mod 2^32 and who has sent so far.
struct PendingMaskedRound: Sendable {
    let round: Int
    let participants: [String]
    let scale: Double
    var privacy: PrivateAggregation?
    var sum: [UInt32]
    var arrived: [String] = []
    var rejected: [RejectedUpdate] = []
}
