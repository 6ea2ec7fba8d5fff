import Crypto

/// How a trained update travels from a site into the server's running sum: in the clear
/// (`PlainChannel`) or pairwise-masked (`MaskedChannel`). The round driver calls `open` before
/// the sites train, `deliver` for each update that arrives in time (in site order) and `close`
/// after the last one; it never knows which channel it has.
public protocol UpdateChannel: Sendable {
    /// True when a site keeps its change on site for the channel to fetch (it sends no plain blob).
    var holdsUpdatesOnSite: Bool { get }
    /// The bytes one site's update message takes on this channel, for the privacy footprint.
    func messageBytes(_ update: LocalUpdate, selectedCount: Int) -> Int
    /// Before training: anything the sites about to train must agree on (masking keys and shares).
    /// `training` is lazy: a channel that needs no list of sites (plain) builds none. Returns
    /// false when the round is aborted before training (secure aggregation with fewer sites than
    /// its threshold): the sites then neither train nor send anything.
    mutating func open<Sites: Collection<any ChannelSite> & Sendable>(round: Int, training: Sites, quorum: Int, server: FederatedServer,
                                                                       privacy: PrivateAggregation?) async throws -> Bool
    /// One update that arrived in time; returns the bytes it sent.
    mutating func deliver(_ update: LocalUpdate, from site: any ChannelSite, server: FederatedServer) async throws -> Int
    /// After the last update: the server's outcome and what closing cost.
    mutating func close(quorum: Int, server: FederatedServer) async throws -> ChannelClose
}

/// What a channel needs of a site: who it is, how many patients it trained on, and (secure
/// aggregation) its side of the masking protocol. Site actors conform whatever their network.
public protocol ChannelSite: Sendable {
    var id: String { get }
    var trainSize: Int { get }
    /// Secure aggregation step 1: fresh public keys for the round `context`.
    func secureAdvertise(context: String) async throws -> AdvertisedKeys
    /// Step 2: the site's shares for every other roster site, sealed for each.
    func secureShareKeys(context: String, roster: [AdvertisedKeys], threshold: Int) async throws -> [SealedShares]
    /// Step 2, receiving end: the sealed shares other sites sent this one.
    func secureReceive(context: String, shares: [SealedShares]) async throws
    /// Step 3: the site's held change times `weight`, quantised (with its clamp count appended) and masked.
    func maskedUpdate(context: String, round: Int, maskingSet: [String], weight: Double, scale: Double, range: Double) async throws -> [UInt8]
    /// Step 4: the shares the server needs to unmask the survivors' sum.
    func unmaskingShares(context: String, survivors: [String], dropped: [String]) async throws -> [RevealedShare]
}

extension SiteActor: ChannelSite {}

/// What closing a round's channel gave: the outcome, the bytes of the protocol's messages beyond
/// the updates themselves, and (secure aggregation) how the round went.
public struct ChannelClose: Sendable, Equatable {
    public var outcome: AggregationOutcome
    public var bytesUp: Int
    public var bytesDown: Int
    public var secure: SecureRoundSummary?
}

/// Updates go to the server as safetensors blobs, validated and folded one by one.
public struct PlainChannel: UpdateChannel {
    public init() {}

    public var holdsUpdatesOnSite: Bool { false }

    public func messageBytes(_ update: LocalUpdate, selectedCount: Int) -> Int { update.blob.count }

    public mutating func open<Sites: Collection<any ChannelSite> & Sendable>(round: Int, training: Sites, quorum: Int,
                                                                              server: FederatedServer, privacy: PrivateAggregation?) async -> Bool {
        await server.beginRound(round, privacy: privacy)
        return true
    }

    public mutating func deliver(_ update: LocalUpdate, from site: any ChannelSite, server: FederatedServer) async -> Int {
        await server.submit(site: update.site, blob: update.blob)
        return 0  // the blob's bytes are counted where it left the site, arrived or not
    }

    public mutating func close(quorum: Int, server: FederatedServer) async -> ChannelClose {
        ChannelClose(outcome: await server.endRound(quorum: quorum), bytesUp: 0, bytesDown: 0, secure: nil)
    }
}


/// Secure aggregation with dropout recovery (see `SecureAggregation`): before training, the sites
/// advertise keys and exchange sealed Shamir shares through the server; each site whose update
/// arrives in time sends a masked vector that the server adds to a running sum mod 2^32; after the
/// last one the survivors reveal the shares that remove every mask. Below the threshold of
/// max(2, quorum) sites the round is aborted: before training if too few sites are in the masking
/// set, at unmasking if too few vectors arrived (they stay masked). Every message is counted.
public struct MaskedChannel: UpdateChannel {
    /// Values within ±this are quantised exactly; a weighted change beyond it is clamped (and counted).
    public static let range = 8.0

    let arm: String
    private var round = 0
    private var context = ""
    private var threshold = 2
    private var privacy: PrivateAggregation?
    private var participants: [any ChannelSite] = []
    private var maskingSet: [String] = []
    private var scale = 1.0
    private var totalTrain = 0.0
    private var steps: [SecureStepCost] = []
    private var maskedInput = SecureStepCost(step: .maskedInput)
    private var abortedBeforeMasking = false

    public init(arm: String) {
        self.arm = arm
    }

    public var holdsUpdatesOnSite: Bool { true }

    public func messageBytes(_ update: LocalUpdate, selectedCount: Int) -> Int {
        SecureAggregation.encode([UInt32](repeating: 0, count: selectedCount + 1), metadata: [
            WireFormat.Key.kind: "masked-update", WireFormat.Key.round: "0", WireFormat.Key.site: "", WireFormat.Key.trainSize: "0"]).count
    }

    public mutating func open<Sites: Collection<any ChannelSite> & Sendable>(round: Int, training: Sites, quorum: Int,
                                                                              server: FederatedServer, privacy: PrivateAggregation?) async throws -> Bool {
        self.round = round
        self.privacy = privacy
        context = "\(arm)|\(round)"
        threshold = SecureAggregation.threshold(quorum: quorum)
        steps = []
        maskedInput = SecureStepCost(step: .maskedInput)
        let sites = Array(training)
        participants = sites
        maskingSet = sites.map(\.id)
        abortedBeforeMasking = sites.count < threshold
        if abortedBeforeMasking { return false }

        // Step 1: every site's two public keys up; every site receives the others'.
        var advertise = SecureStepCost(step: .advertiseKeys)
        var roster: [AdvertisedKeys] = []
        var advertised: [any ChannelSite] = []
        for site in sites {
            // A site that cannot advertise (its process is gone) is not in the round's roster.
            guard let keys = try? await site.secureAdvertise(context: context) else { continue }
            roster.append(keys)
            advertised.append(site)
        }
        advertise.add(up: advertised.count, bytesUp: SecureAggregation.advertisedBytes * advertised.count,
                      down: advertised.count, bytesDown: SecureAggregation.advertisedBytes * advertised.count * (advertised.count - 1))
        steps.append(advertise)
        if advertised.count < threshold {
            participants = advertised
            maskingSet = advertised.map(\.id)
            abortedBeforeMasking = true
            return false
        }

        // Step 2: sealed shares up, routed to their holders. A site that cannot share leaves the masking set.
        var share = SecureStepCost(step: .shareKeys)
        var inbox: [String: [SealedShares]] = [:]
        var shared: [any ChannelSite] = []
        for site in advertised {
            do {
                let sealed = try await site.secureShareKeys(context: context, roster: roster, threshold: threshold)
                share.add(up: 1, bytesUp: sealed.reduce(0) { $0 + $1.sealed.count }, down: 0, bytesDown: 0)
                for box in sealed { inbox[box.to, default: []].append(box) }
                shared.append(site)
            } catch {
                continue
            }
        }
        let sharedIds = Set(shared.map(\.id))
        var delivered: [any ChannelSite] = []
        for site in shared {
            let mine = (inbox[site.id] ?? []).filter { sharedIds.contains($0.from) }
            share.add(up: 0, bytesUp: 0, down: 1, bytesDown: mine.reduce(0) { $0 + $1.sealed.count })
            do {
                try await site.secureReceive(context: context, shares: mine)
                delivered.append(site)
            } catch {
                continue
            }
        }
        steps.append(share)
        participants = delivered
        maskingSet = delivered.map(\.id)
        abortedBeforeMasking = delivered.count < threshold
        if abortedBeforeMasking { return false }
        // FedAvg weights are applied on site over the masking set; the server rescales to the survivors.
        totalTrain = Double(delivered.reduce(0) { $0 + $1.trainSize })
        scale = SecureAggregation.scale(range: Self.range, participants: delivered.count)
        // The whole roster: every site split its secrets over it, so a share's x is its holder's
        // position there, whoever later left the masking set.
        await server.beginMaskedRound(round, context: context, roster: roster, maskingSet: maskingSet, threshold: threshold, scale: scale,
                                      weightTotal: privacy == nil ? totalTrain : nil, privacy: privacy)
        return true
    }

    public mutating func deliver(_ update: LocalUpdate, from site: any ChannelSite, server: FederatedServer) async throws -> Int {
        guard !abortedBeforeMasking, maskingSet.contains(site.id) else { return 0 }
        // DP sums unweighted clipped changes; FedAvg's weights are the masking set's train sizes.
        let weight = privacy == nil ? Double(site.trainSize) / totalTrain : 1
        let blob: [UInt8]
        do {
            blob = try await site.maskedUpdate(context: context, round: round, maskingSet: maskingSet, weight: weight,
                                               scale: scale, range: Self.range)
        } catch {
            return 0  // a site that refuses to mask sends nothing: at unmasking it counts as dropped
        }
        await server.submitMasked(site: site.id, blob: blob)
        maskedInput.add(up: 1, bytesUp: blob.count, down: 0, bytesDown: 0)
        return blob.count
    }

    public mutating func close(quorum: Int, server: FederatedServer) async throws -> ChannelClose {
        let skipped = AggregationOutcome(acceptedSites: [], rejected: [], skipped: true)
        if abortedBeforeMasking {
            let summary = SecureRoundSummary(maskingSet: maskingSet.count, threshold: threshold, survivors: 0,
                                             result: .abortedBeforeMasking, recoveredDropouts: 0, clamped: nil, steps: steps)
            return ChannelClose(outcome: skipped, bytesUp: summary.bytesUp, bytesDown: summary.bytesDown, secure: summary)
        }
        steps.append(maskedInput)
        var unmasking = SecureStepCost(step: .unmasking)
        let (survivors, dropped, unmask) = await server.nameSurvivors()
        if unmask {
            let survived = Set(survivors)
            for site in participants where survived.contains(site.id) {
                unmasking.add(up: 0, bytesUp: 0, down: 1, bytesDown: 0)
                guard let shares = try? await site.unmaskingShares(context: context, survivors: survivors, dropped: dropped) else { continue }
                unmasking.add(up: 1, bytesUp: SecureAggregation.revealedShareBytes * shares.count, down: 0, bytesDown: 0)
                await server.submitUnmaskingShares(site: site.id, shares: shares)
            }
            steps.append(unmasking)
        }
        let end = await server.endMaskedRound(quorum: quorum)
        let summary = SecureRoundSummary(
            maskingSet: maskingSet.count, threshold: threshold, survivors: survivors.count,
            result: end.abortedAtUnmasking ? .abortedAtUnmasking : .aggregated, recoveredDropouts: end.recoveredDropouts,
            clamped: end.clamped, steps: steps)
        // The masked vectors were counted as they were delivered.
        return ChannelClose(outcome: end.outcome, bytesUp: summary.bytesUp - maskedInput.bytesUp, bytesDown: summary.bytesDown,
                            secure: summary)
    }
}

/// How one round of secure aggregation went: the masking set against the threshold, the
/// survivors, whether it was aborted and where, dropped sites recovered from shares, values
/// clamped, and what each protocol step cost.
public struct SecureRoundSummary: Sendable, Equatable {
    /// Where the round ended.
    public enum Result: String, Sendable, Equatable {
        /// Unmasked and installed (or skipped for the quorum after unmasking).
        case aggregated
        /// Fewer sites than the threshold in the masking set: nothing trained, nothing was sent.
        case abortedBeforeMasking = "aborted before masking"
        /// Fewer masked vectors than the threshold arrived: nothing was unmasked.
        case abortedAtUnmasking = "aborted at unmasking"
    }

    public var maskingSet: Int
    public var threshold: Int
    public var survivors: Int
    public var result: Result
    /// Dropped sites whose pairwise masks the survivors' shares removed.
    public var recoveredDropouts: Int
    /// Values clamped to ±range across the survivors (nil when nothing was unmasked).
    public var clamped: Int?
    public var steps: [SecureStepCost]

    public var bytesUp: Int { steps.reduce(0) { $0 + $1.bytesUp } }
    public var bytesDown: Int { steps.reduce(0) { $0 + $1.bytesDown } }
}

/// Messages and payload bytes one protocol step took, each way.
public struct SecureStepCost: Sendable, Equatable {
    /// The four steps of Bonawitz et al.'s protocol.
    public enum Step: String, Sendable, CaseIterable {
        case advertiseKeys = "advertise keys", shareKeys = "share keys", maskedInput = "masked input", unmasking
    }

    public var step: Step
    public var messagesUp = 0
    public var bytesUp = 0
    public var messagesDown = 0
    public var bytesDown = 0

    public init(step: Step) {
        self.step = step
    }

    mutating func add(up: Int, bytesUp: Int, down: Int, bytesDown: Int) {
        messagesUp += up
        self.bytesUp += bytesUp
        messagesDown += down
        self.bytesDown += bytesDown
    }
}
