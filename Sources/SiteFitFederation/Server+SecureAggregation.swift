import Crypto
import Logging
import SiteFitNN

/// Secure aggregation on the server (see `SecureAggregation` for the protocol): masked vectors
/// are summed mod 2^32 as they arrive, so the server holds one running sum, never a site's
/// vector; it unmasks only with the shares of at least `threshold` survivors.
extension FederatedServer {
    /// Opens step 3 over `maskingSet` (roster sites whose shares were all delivered, in roster order).
    /// `roster` is every site that advertised keys, in the order the sites split their secrets over.
    /// `weightTotal` is the masking set's train size the sites weighted by (FedAvg; nil under DP):
    /// when some drop, the unmasked sum is rescaled to the survivors' own total.
    public func beginMaskedRound(_ round: Int, context: String, roster: [AdvertisedKeys], maskingSet: [String], threshold: Int,
                                 scale: Double, weightTotal: Double?, privacy: PrivateAggregation? = nil) {
        pendingMasked = PendingMaskedRound(round: round, context: context, roster: roster, maskingSet: maskingSet, threshold: threshold,
                                           scale: scale, weightTotal: weightTotal, privacy: privacy,
                                           sum: [UInt32](repeating: 0, count: global.count + 1))
    }

    /// Validates one masked vector and adds it to the round's sum mod 2^32, or records why it was refused.
    public func submitMasked(site: String, blob: [UInt8]) {
        guard var round = pendingMasked else { preconditionFailure("submitMasked before beginMaskedRound") }
        pendingMasked = nil
        defer { pendingMasked = round }
        do throws(UpdateRejection) {
            guard round.maskingSet.contains(site) else { throw UpdateRejection("site is not in this round's masking set") }
            guard !round.arrived.contains(site) else { throw UpdateRejection("site already sent its masked vector this round") }
            guard round.survivors == nil else { throw UpdateRejection("the round's survivors were already named") }
            let (words, metadata) = try SecureAggregation.decode(blob, count: global.count + 1)
            let trainSize = try Self.checkedTrainSize(metadata, round: round.round)
            transcript?.append(.masked(site: site, words: words))
            for i in round.sum.indices { round.sum[i] &+= words[i] }
            round.arrived.append(site)
            round.arrivedTrain += Double(trainSize)
        } catch {
            logger.warning("rejected masked update", metadata: ["site": "\(site)", "round": "\(round.round)", "reason": "\(error.reason)"])
            round.rejected.append(RejectedUpdate(site: site, reason: error.reason))
        }
    }

    /// Ends step 3: the survivors (masked vector arrived and accepted, in masking order) and the
    /// dropped sites, for the unmasking request. With fewer survivors than the threshold,
    /// `unmask` is false: the round is aborted, nothing will be unmasked and the sum is dropped.
    public func nameSurvivors() -> (survivors: [String], dropped: [String], unmask: Bool) {
        guard var round = pendingMasked else { preconditionFailure("nameSurvivors before beginMaskedRound") }
        let arrived = Set(round.arrived)
        let survivors = round.maskingSet.filter { arrived.contains($0) }
        let dropped = round.maskingSet.filter { !arrived.contains($0) }
        guard survivors.count >= round.threshold else {
            round.sum = []
            round.aborted = true
            pendingMasked = round
            return (survivors, dropped, false)
        }
        round.survivors = survivors
        pendingMasked = round
        return (survivors, dropped, true)
    }

    /// Step 4: one survivor's revealed shares. A share from a site that is not a survivor, about a
    /// site outside the masking set, or of the wrong secret for its owner is refused whole.
    public func submitUnmaskingShares(site: String, shares: [RevealedShare]) {
        guard var round = pendingMasked, let survivors = round.survivors else { return }
        defer { pendingMasked = round }
        let survived = Set(survivors), members = Set(round.maskingSet)
        guard survived.contains(site), round.revealedBy[site] == nil,
              shares.allSatisfy({ share in
                  members.contains(share.owner)
                      && (share.secret == .selfMaskSeed) == survived.contains(share.owner)
                      && share.values.count == Shamir.limbs && share.values.allSatisfy { $0 < Shamir.prime }
              }) else {
            logger.warning("refused unmasking shares", metadata: ["site": "\(site)", "round": "\(round.round)"])
            return
        }
        transcript?.append(.revealed(site: site, shares: shares))
        round.revealedBy[site] = shares
    }

    /// Reconstructs the survivors' seeds and the dropped sites' masking keys from the revealed
    /// shares, takes every mask out of the sum and installs it (under DP, with noise on the sum).
    /// An aborted round, too few shares, or a secret that does not reconstruct to the advertised
    /// key leaves the model unchanged: a skipped round, never a wrong sum.
    public func endMaskedRound(quorum: Int = 1) -> MaskedRoundEnd {
        guard let round = pendingMasked else { preconditionFailure("endMaskedRound before beginMaskedRound") }
        pendingMasked = nil
        guard !round.aborted, let survivors = round.survivors else {
            return MaskedRoundEnd(outcome: AggregationOutcome(acceptedSites: [], rejected: round.rejected, skipped: true),
                                  abortedAtUnmasking: true, recoveredDropouts: 0, clamped: nil)
        }
        let survived = Set(survivors)
        let dropped = round.maskingSet.filter { !survived.contains($0) }
        // The quorum is decided before anything is unmasked (the threshold, at least the quorum, makes this a safeguard).
        guard survivors.count >= max(quorum, 1) else {
            return MaskedRoundEnd(outcome: AggregationOutcome(acceptedSites: survivors, rejected: round.rejected, skipped: true),
                                  abortedAtUnmasking: true, recoveredDropouts: 0, clamped: nil)
        }
        do throws(UpdateRejection) {
            let sum = try unmask(round, survivors: survivors, dropped: dropped)
            var change = SecureAggregation.dequantise(sum.prefix(global.count), scale: round.scale)
            if let total = round.weightTotal, round.arrivedTrain > 0, round.arrivedTrain != total {
                // Weighted by the whole masking set's size on site: renormalise to the survivors'.
                let factor = total / round.arrivedTrain
                change = change.map { Float(Double($0) * factor) }
            }
            if var privacy = round.privacy {
                let standardDeviation = privacy.settings.noiseMultiplier * privacy.settings.clipNorm
                change = change.map { Float((Double($0) + standardDeviation * privacy.noise.gaussian()) / privacy.expectedParticipants) }
            }
            let average = zip(global, change).map { $0 + $1 }
            global = strategy.nextGlobal(current: global, average: average)
            return MaskedRoundEnd(outcome: AggregationOutcome(acceptedSites: survivors, rejected: round.rejected, skipped: false),
                                  abortedAtUnmasking: false, recoveredDropouts: dropped.count, clamped: Int(sum[global.count]))
        } catch {
            logger.warning("unmasking failed", metadata: ["round": "\(round.round)", "reason": "\(error.reason)"])
            return MaskedRoundEnd(outcome: AggregationOutcome(acceptedSites: [], rejected: round.rejected, skipped: true),
                                  abortedAtUnmasking: true, recoveredDropouts: 0, clamped: nil)
        }
    }

    /// The sum of the survivors' contributions: the masked sum minus every survivor's self-mask
    /// and every pairwise mask a survivor shares with a dropped site.
    private func unmask(_ round: PendingMaskedRound, survivors: [String], dropped: [String]) throws(UpdateRejection) -> [UInt32] {
        let count = round.sum.count
        let positions = Dictionary(uniqueKeysWithValues: round.roster.enumerated().map { ($1.site, UInt64($0 + 1)) })
        // Each revealer's shares by owner, indexed once: looking each one up by scanning would make unmasking cubic.
        var byOwner: [String: [Shamir.Share]] = [:]
        for (revealer, shares) in round.revealedBy {
            guard let x = positions[revealer] else { continue }
            for share in shares { byOwner["\(share.secret == .selfMaskSeed ? "seed" : "key")|\(share.owner)", default: []].append(Shamir.Share(x: x, values: share.values)) }
        }
        func secret(of owner: String, _ kind: RevealedShare.Secret) throws(UpdateRejection) -> [UInt8] {
            let shares = (byOwner["\(kind == .selfMaskSeed ? "seed" : "key")|\(owner)"] ?? []).sorted { $0.x < $1.x }
            guard let secret = Shamir.reconstruct(shares, threshold: round.threshold) else {
                throw UpdateRejection("\(shares.count) share(s) of \(owner)'s secret, \(round.threshold) needed")
            }
            return secret
        }
        var sum = round.sum
        for owner in survivors {
            let mask = SecureAggregation.selfMask(seed: try secret(of: owner, .selfMaskSeed), context: round.context, count: count)
            for i in 0..<count { sum[i] &-= mask[i] }
        }
        let survived = Set(survivors)
        let advertised = Dictionary(round.roster.map { ($0.site, $0.maskingKey) }, uniquingKeysWith: { first, _ in first })
        let survivorKeys = round.roster.filter { survived.contains($0.site) }.map { (site: $0.site, maskingKey: $0.maskingKey) }
        for owner in dropped {
            guard let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: try secret(of: owner, .maskingKey)),
                  key.publicKey.rawRepresentation == advertised[owner]?.rawRepresentation else {
                throw UpdateRejection("\(owner)'s masking key does not reconstruct to the key it advertised")
            }
            // What the dropped site's pairs put into the survivors' vectors is the negative of
            // what it would have added itself: add its own side back.
            let masks: [UInt32]
            do {
                masks = try SecureAggregation.pairwiseMasks(of: owner, key: key, peers: survivorKeys, order: round.maskingSet,
                                                            context: round.context, count: count)
            } catch let error as UpdateRejection {
                throw error
            } catch {
                throw UpdateRejection("key agreement failed: \(error)")
            }
            for i in 0..<count { sum[i] &+= masks[i] }
        }
        return sum
    }

    /// Turns on the record of what reaches the server in secure rounds (tests inspect it).
    public func recordTranscript() { transcript = [] }

    /// What reached the server since `recordTranscript()`.
    public func receivedTranscript() -> [ServerReceipt] { transcript ?? [] }
}

/// One message the server received in a secure round, as the tests that inspect it see it.
public enum ServerReceipt: Sendable, Equatable {
    case masked(site: String, words: [UInt32])
    case revealed(site: String, shares: [RevealedShare])
}

/// How a masked round ended: the outcome, whether it was aborted for too few survivors, how many
/// dropped sites' masks the shares removed, and the round's total clamp count (nil when not unmasked).
public struct MaskedRoundEnd: Sendable, Equatable {
    public var outcome: AggregationOutcome
    public var abortedAtUnmasking: Bool
    public var recoveredDropouts: Int
    public var clamped: Int?
}

/// A masked round in progress: the roster, the running sum mod 2^32 and who has sent so far.
struct PendingMaskedRound: Sendable {
    let round: Int
    let context: String
    let roster: [AdvertisedKeys]
    let maskingSet: [String]
    let threshold: Int
    let scale: Double
    let weightTotal: Double?
    var privacy: PrivateAggregation?
    var arrivedTrain = 0.0
    /// The selection's words, then the clamp count.
    var sum: [UInt32]
    var arrived: [String] = []
    var rejected: [RejectedUpdate] = []
    var survivors: [String]? = nil
    var aborted = false
    var revealedBy: [String: [RevealedShare]] = [:]
}
