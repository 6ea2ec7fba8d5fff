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
    /// Before training: anything the sites about to train must agree on (masking keys).
    /// `training` is lazy: a channel that needs no list of sites (plain) builds none.
    mutating func open<Sites: Collection<any ChannelSite> & Sendable>(round: Int, training: Sites, server: FederatedServer,
                                                                       privacy: PrivateAggregation?) async throws
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
    /// A fresh X25519 public key for one masking context (round and attempt).
    func maskingPublicKey(context: String) async -> Curve25519.KeyAgreement.PublicKey
    /// The site's held change times `weight`, quantised and masked against every other participant.
    func maskedUpdate(context: String, round: Int, peers: [(site: String, publicKey: Curve25519.KeyAgreement.PublicKey)],
                      weight: Double, scale: Double, range: Double) async throws -> (blob: [UInt8], clamped: Int)
}

extension SiteActor: ChannelSite {}

/// What closing a round's channel gave: the outcome, the bytes of any key exchange or re-keying,
/// and (secure aggregation) how many survivors the round re-keyed among.
public struct ChannelClose: Sendable, Equatable {
    public var outcome: AggregationOutcome
    public var bytesUp: Int
    public var bytesDown: Int
    public var rekeyedAmong: Int?
}

/// Updates go to the server as safetensors blobs, validated and folded one by one.
public struct PlainChannel: UpdateChannel {
    public init() {}

    public var holdsUpdatesOnSite: Bool { false }

    public func messageBytes(_ update: LocalUpdate, selectedCount: Int) -> Int { update.blob.count }

    public mutating func open<Sites: Collection<any ChannelSite> & Sendable>(round: Int, training: Sites, server: FederatedServer,
                                                                              privacy: PrivateAggregation?) async {
        await server.beginRound(round, privacy: privacy)
    }

    public mutating func deliver(_ update: LocalUpdate, from site: any ChannelSite, server: FederatedServer) async -> Int {
        await server.submit(site: update.site, blob: update.blob)
        return 0  // the blob's bytes are counted where it left the site, arrived or not
    }

    public mutating func close(quorum: Int, server: FederatedServer) async -> ChannelClose {
        ChannelClose(outcome: await server.endRound(quorum: quorum), bytesUp: 0, bytesDown: 0, rekeyedAmong: nil)
    }
}

/// Pairwise-masked secure aggregation (see `SecureAggregation`): every site that trains publishes
/// a fresh X25519 key before training (32 bytes up, 32 bytes per peer down); each one whose update
/// arrives in time sends a masked vector that the server adds to a running sum mod 2^32. If one
/// never arrives the server refuses to unmask, and the survivors re-key and mask again among
/// themselves; every byte is counted.
public struct MaskedChannel: UpdateChannel {
    /// Values within ±this are quantised exactly; a weighted change beyond it is clamped.
    public static let range = 8.0

    let arm: String
    private var round = 0
    private var attempt = 0
    private var privacy: PrivateAggregation?
    private var participants: [any ChannelSite] = []
    private var peers: [(site: String, publicKey: Curve25519.KeyAgreement.PublicKey)] = []
    private var scale = 1.0
    private var totalTrain = 0.0
    private var bytesUp = 0, bytesDown = 0

    public init(arm: String) {
        self.arm = arm
    }

    public var holdsUpdatesOnSite: Bool { true }

    public func messageBytes(_ update: LocalUpdate, selectedCount: Int) -> Int {
        SecureAggregation.encode([UInt32](repeating: 0, count: selectedCount), metadata: [
            WireFormat.Key.kind: "masked-update", WireFormat.Key.round: "0", WireFormat.Key.site: "", WireFormat.Key.trainSize: "0"]).count
    }

    public mutating func open<Sites: Collection<any ChannelSite> & Sendable>(round: Int, training: Sites, server: FederatedServer,
                                                                              privacy: PrivateAggregation?) async {
        self.round = round
        self.privacy = privacy
        bytesUp = 0
        bytesDown = 0
        await exchangeKeys(among: Array(training), attempt: 0, server: server)
    }

    /// One masking context: fresh keys among `sites`, and the server's masked round over them.
    private mutating func exchangeKeys(among sites: [any ChannelSite], attempt: Int, server: FederatedServer) async {
        self.attempt = attempt
        participants = sites
        let context = "\(arm)|\(round)|\(attempt)"
        peers = []
        for site in sites { peers.append((site.id, await site.maskingPublicKey(context: context))) }
        bytesUp += 32 * sites.count
        bytesDown += 32 * sites.count * max(sites.count - 1, 0)
        totalTrain = Double(sites.reduce(0) { $0 + $1.trainSize })
        scale = SecureAggregation.scale(range: Self.range, participants: sites.count)
        await server.beginMaskedRound(round, participants: sites.map(\.id), scale: scale, privacy: privacy)
    }

    public mutating func deliver(_ update: LocalUpdate, from site: any ChannelSite, server: FederatedServer) async throws -> Int {
        try await sendMasked(site, server: server)
    }

    private mutating func sendMasked(_ site: any ChannelSite, server: FederatedServer) async throws -> Int {
        // FedAvg weights are applied on site; DP sums unweighted clipped changes.
        let weight = privacy == nil ? Double(site.trainSize) / totalTrain : 1
        let (blob, _) = try await site.maskedUpdate(context: "\(arm)|\(round)|\(attempt)", round: round, peers: peers, weight: weight,
                                                    scale: scale, range: Self.range)
        await server.submitMasked(site: site.id, blob: blob)
        return blob.count
    }

    public mutating func close(quorum: Int, server: FederatedServer) async throws -> ChannelClose {
        var result = await server.endMaskedRound(quorum: quorum)
        var rekeyedAmong: Int? = nil
        if let survivors = result.rekeyWith {
            // A masked vector is missing: mask again among the sites that did send (they still hold their change).
            let remaining = participants.filter { survivors.contains($0.id) }
            rekeyedAmong = remaining.count
            if remaining.isEmpty {
                result = MaskedAggregationOutcome(outcome: AggregationOutcome(acceptedSites: [], rejected: [], skipped: true), rekeyWith: nil)
            } else {
                await exchangeKeys(among: remaining, attempt: 1, server: server)
                for site in remaining { bytesUp += try await sendMasked(site, server: server) }
                // A second failure is not re-keyed again: its outcome is a skipped round.
                result = await server.endMaskedRound(quorum: quorum)
            }
        }
        return ChannelClose(outcome: result.outcome, bytesUp: bytesUp, bytesDown: bytesDown, rekeyedAmong: rekeyedAmong)
    }
}
