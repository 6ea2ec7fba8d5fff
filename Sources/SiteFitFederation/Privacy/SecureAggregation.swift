import Crypto
import Foundation
import SiteFitNN

/// Secure aggregation with dropout recovery, after Bonawitz et al., "Practical Secure Aggregation
/// for Privacy-Preserving Machine Learning", CCS 2017 (§4, the semi-honest protocol).
///
/// Four steps per round, each one message up from every site still in and one down:
/// 1. *Advertise keys*: every site makes two fresh X25519 key pairs, one to encrypt shares
///    (c) and one to agree pairwise masks (s), and publishes both public keys.
/// 2. *Share keys*: every site draws a self-mask seed b and splits b and its masking private
///    key s into t-of-n Shamir shares, one per site of the roster; each share pair travels
///    to its holder through the server, sealed with AES-GCM under a key agreed from the two sites'
///    c keys (HKDF-SHA256), so the server routes shares it cannot read.
/// 3. *Masked input*: a site sends its quantised contribution plus PRG(b) plus, for every other
///    site of the masking set, ± PRG(agreed pairwise secret), all mod 2^32. Pairwise masks cancel
///    in the sum; the self-mask does not.
/// 4. *Unmasking*: the server names the survivors (whose masked vector arrived). Each survivor
///    returns its share of b for every survivor and its share of s for every site that dropped,
///    never both for one site. With t shares the server removes the survivors' self-masks and
///    the dropped sites' pairwise masks and holds the exact sum of the survivors' contributions.
///
/// Why a self-mask: a site whose vector arrives *after* the server declared it dropped (it was
/// only late) has its pairwise masks known to the server by then, but its self-mask still hides
/// its values, and no survivor reveals a share of b for a site it was told had dropped.
/// Why the threshold t = max(2, quorum): with fewer sites a "sum" is one site's update, so a
/// site refuses to share keys, mask or reveal shares for fewer than t sites, and the server
/// aborts the round before any vector leaves a site.
/// Not covered: a malicious server that lies about who dropped to different sites (the
/// protocol's consistency check and signatures, §4's active-adversary version).
public enum SecureAggregation {
    /// Fixed-point scale for `participants` contributions each within ±`range`: the sum of all
    /// of them stays inside a signed 32-bit integer, so it decodes without wrapping.
    public static func scale(range: Double, participants: Int) -> Double {
        Double(Int32.max) / (range * Double(max(participants, 1)) * 1.000001)
    }

    /// x ↦ round(clamp(x, ±range)·scale) mod 2^32. Returns the words and how many values were clamped.
    public static func quantise(_ values: [Float], scale: Double, range: Double) -> (words: [UInt32], clamped: Int) {
        var clamped = 0
        let words = values.map { value -> UInt32 in
            var x = Double(value)
            if x.isNaN { x = 0; clamped += 1 } else if x > range { x = range; clamped += 1 } else if x < -range { x = -range; clamped += 1 }
            return UInt32(bitPattern: Int32((x * scale).rounded()))
        }
        return (words, clamped)
    }

    /// The signed sum of quantised contributions back in real units.
    public static func dequantise(_ sum: some Collection<UInt32>, scale: Double) -> [Float] {
        sum.map { Float(Double(Int32(bitPattern: $0)) / scale) }
    }

    /// The smallest masking set that may aggregate: never one site, never fewer than the quorum.
    public static func threshold(quorum: Int) -> Int { max(2, quorum) }

    /// `count` words of the ChaCha20 keystream under `key`.
    static func keystream(_ key: SymmetricKey, count: Int) -> [UInt32] {
        // ChaCha20-Poly1305 over zeros with a fixed nonce is the ChaCha20 keystream (plus a tag we
        // drop): every key is derived for one mask only, so the fixed nonce is safe.
        let zeros = [UInt8](repeating: 0, count: count * 4)
        let stream: [UInt8]
        do {
            let sealed = try ChaChaPoly.seal(zeros, using: key, nonce: ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12)))
            stream = Array(sealed.ciphertext)
        } catch {
            preconditionFailure("ChaCha20 with a 32-byte key and 12-byte nonce cannot fail: \(error)")
        }
        return (0..<count).map { i in
            UInt32(stream[4 * i]) | UInt32(stream[4 * i + 1]) << 8 | UInt32(stream[4 * i + 2]) << 16 | UInt32(stream[4 * i + 3]) << 24
        }
    }

    /// The pairwise mask of `first` and `second` (in masking order) in round `context`.
    static func pairwiseMask(secret: SharedSecret, context: String, first: String, second: String, count: Int) -> [UInt32] {
        let key = secret.hkdfDerivedSymmetricKey(using: SHA256.self, salt: Array("sitefit-secagg-pair-v2".utf8),
                                                 sharedInfo: Array("\(context)|\(first)|\(second)".utf8), outputByteCount: 32)
        return keystream(key, count: count)
    }

    /// A site's self-mask from its seed b in round `context`.
    static func selfMask(seed: [UInt8], context: String, count: Int) -> [UInt32] {
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: seed), salt: Array("sitefit-secagg-self-v2".utf8),
                                         info: Array(context.utf8), outputByteCount: 32)
        return keystream(key, count: count)
    }

    /// The key that seals the shares `from` sends `to` in `context`, from the two sites' c keys.
    static func shareKey(mine: Curve25519.KeyAgreement.PrivateKey, theirs: Curve25519.KeyAgreement.PublicKey,
                         context: String, from: String, to: String) throws -> SymmetricKey {
        let secret = try mine.sharedSecretFromKeyAgreement(with: theirs)
        return secret.hkdfDerivedSymmetricKey(using: SHA256.self, salt: Array("sitefit-secagg-share-v2".utf8),
                                              sharedInfo: Array("\(context)|\(from)|\(to)".utf8), outputByteCount: 32)
    }

    /// What the masked vector of `me` adds for the pairs it forms with `peers`: + towards sites later
    /// in `order`, − towards earlier ones. The server calls it with a dropped site's reconstructed
    /// key to take that site's masks back out of the survivors' sum.
    static func pairwiseMasks(of me: String, key: Curve25519.KeyAgreement.PrivateKey,
                              peers: [(site: String, maskingKey: Curve25519.KeyAgreement.PublicKey)],
                              order: [String], context: String, count: Int) throws -> [UInt32] {
        // Positions by name: a linear search per peer would make a round cubic in the sites.
        let position = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        guard let myIndex = position[me] else { throw UpdateRejection("site is not in the masking set") }
        var total = [UInt32](repeating: 0, count: count)
        for peer in peers where peer.site != me {
            guard let peerIndex = position[peer.site] else { continue }
            let secret = try key.sharedSecretFromKeyAgreement(with: peer.maskingKey)
            let (first, second) = myIndex < peerIndex ? (me, peer.site) : (peer.site, me)
            let mask = pairwiseMask(secret: secret, context: context, first: first, second: second, count: count)
            if myIndex < peerIndex {
                for i in total.indices { total[i] &+= mask[i] }
            } else {
                for i in total.indices { total[i] &-= mask[i] }
            }
        }
        return total
    }

    /// The masked message a site sends: one U32 tensor `masked` (the selection's words, then the
    /// site's clamp count, masked with the rest so the server learns only the round's total).
    public static func encode(_ masked: [UInt32], metadata: [String: String]) -> [UInt8] {
        Safetensors.encode([NamedTensor(name: "masked", shape: [masked.count], values: masked.map { Float(bitPattern: $0) })],
                           metadata: metadata, dtype: "U32")
    }

    /// Parses a masked message and fails closed on anything but one U32 tensor of `count` words.
    public static func decode(_ blob: [UInt8], count: Int) throws(UpdateRejection) -> (words: [UInt32], metadata: [String: String]) {
        let decoded: (tensors: [NamedTensor], metadata: [String: String])
        do { decoded = try Safetensors.decode(blob, dtype: "U32") } catch { throw UpdateRejection(error.description) }
        guard decoded.tensors.count == 1, decoded.tensors[0].name == "masked" else {
            throw UpdateRejection("a masked update holds exactly one tensor named 'masked'")
        }
        guard decoded.tensors[0].shape == [count] else {
            throw UpdateRejection("masked tensor has shape \(decoded.tensors[0].shape), expected [\(count)]")
        }
        return (decoded.tensors[0].values.map(\.bitPattern), decoded.metadata)
    }

    /// Sum mod 2^32 of masked vectors.
    public static func sum(_ vectors: [[UInt32]], count: Int) -> [UInt32] {
        var total = [UInt32](repeating: 0, count: count)
        for vector in vectors { for i in 0..<count { total[i] &+= vector[i] } }
        return total
    }

    /// Payload bytes of the protocol's messages, for the privacy footprint (site ids and framing
    /// not counted): two 32-byte public keys; a sealed share pair (12-byte nonce, two shares,
    /// 16-byte tag); one revealed share.
    public static let advertisedBytes = 64
    public static let sealedShareBytes = 12 + 2 * Shamir.shareBytes + 16
    public static let revealedShareBytes = Shamir.shareBytes
}

/// A site's two public keys for one round (step 1).
public struct AdvertisedKeys: Sendable {
    public var site: String
    /// Seals the Shamir shares sent to this site.
    public var encryptionKey: Curve25519.KeyAgreement.PublicKey
    /// Agrees this site's pairwise masks.
    public var maskingKey: Curve25519.KeyAgreement.PublicKey

    public init(site: String, encryptionKey: Curve25519.KeyAgreement.PublicKey, maskingKey: Curve25519.KeyAgreement.PublicKey) {
        self.site = site
        self.encryptionKey = encryptionKey
        self.maskingKey = maskingKey
    }
}

/// One site's share pair for another, sealed so only the recipient can open it (step 2).
public struct SealedShares: Sendable, Equatable {
    public var from: String
    public var to: String
    /// AES-GCM combined form: nonce, ciphertext of the two shares, tag.
    public var sealed: [UInt8]

    public init(from: String, to: String, sealed: [UInt8]) {
        self.from = from
        self.to = to
        self.sealed = sealed
    }
}

/// One share a survivor reveals to the server at unmasking (step 4).
public struct RevealedShare: Sendable, Equatable {
    /// Which secret: a survivor's self-mask seed, or a dropped site's masking private key.
    public enum Secret: Sendable, Equatable { case selfMaskSeed, maskingKey }

    /// The site whose secret this is a share of.
    public var owner: String
    public var secret: Secret
    /// The share's field elements (its x is the revealing site's roster position).
    public var values: [UInt64]

    public init(owner: String, secret: Secret, values: [UInt64]) {
        self.owner = owner
        self.secret = secret
        self.values = values
    }
}

/// A site's side of one round of secure aggregation: its keys and seed, the shares it holds for
/// the other sites, and the checks that keep it from masking for, or revealing to, too few sites.
public struct SecureAggregationParticipant: Sendable {
    public let site: String
    public let context: String
    let encryptionKey = Curve25519.KeyAgreement.PrivateKey()
    let maskingKey = Curve25519.KeyAgreement.PrivateKey()
    let selfSeed: [UInt8]
    private var roster: [AdvertisedKeys] = []
    private var threshold = 2
    /// The share pairs other sites sealed for this one, by sender.
    private var held: [String: [UInt8]] = [:]
    private var maskingSet: [String]? = nil
    private var revealed = false

    public init(site: String, context: String) {
        self.site = site
        self.context = context
        var system = SystemRandomNumberGenerator()
        selfSeed = (0..<32).map { _ in UInt8.random(in: 0...255, using: &system) }
    }

    /// Step 1: the public keys to advertise.
    public var advertised: AdvertisedKeys {
        AdvertisedKeys(site: site, encryptionKey: encryptionKey.publicKey, maskingKey: maskingKey.publicKey)
    }

    /// Step 2: shares of the seed and masking key for every site of `roster` (this one's own
    /// share is kept), each sealed for its holder. Refuses a roster below `threshold` sites.
    public mutating func shareKeys(roster: [AdvertisedKeys], threshold: Int) throws(UpdateRejection) -> [SealedShares] {
        guard threshold >= 2 else { throw UpdateRejection("secure aggregation needs a threshold of at least 2") }
        guard roster.count >= threshold else {
            throw UpdateRejection("only \(roster.count) site(s) in the roster, below the threshold of \(threshold)")
        }
        guard Set(roster.map(\.site)).count == roster.count, let me = roster.firstIndex(where: { $0.site == site }) else {
            throw UpdateRejection("the roster must name every site once, this one included")
        }
        guard roster[me].maskingKey.rawRepresentation == maskingKey.publicKey.rawRepresentation,
              roster[me].encryptionKey.rawRepresentation == encryptionKey.publicKey.rawRepresentation else {
            throw UpdateRejection("the roster does not carry this site's keys")
        }
        self.roster = roster
        self.threshold = threshold
        var system = SystemRandomNumberGenerator()
        let keyShares = Shamir.split(Array(maskingKey.rawRepresentation), threshold: threshold, count: roster.count, using: &system)
        let seedShares = Shamir.split(selfSeed, threshold: threshold, count: roster.count, using: &system)
        var out: [SealedShares] = []
        for (position, peer) in roster.enumerated() {
            let plaintext = keyShares[position].bytes + seedShares[position].bytes
            if peer.site == site {
                held[site] = plaintext
                continue
            }
            do {
                let key = try SecureAggregation.shareKey(mine: encryptionKey, theirs: peer.encryptionKey, context: context,
                                                         from: site, to: peer.site)
                let box = try AES.GCM.seal(plaintext, using: key, authenticating: Array("\(context)|\(site)|\(peer.site)".utf8))
                guard let combined = box.combined else { throw UpdateRejection("AES-GCM gave no combined form") }
                out.append(SealedShares(from: site, to: peer.site, sealed: Array(combined)))
            } catch let error as UpdateRejection {
                throw error
            } catch {
                throw UpdateRejection("could not seal shares for \(peer.site): \(error)")
            }
        }
        return out
    }

    /// Step 2, receiving end: the sealed share pairs the server forwarded to this site. They stay
    /// sealed until unmasking; a pair that is not for this site or from a roster site is refused.
    public mutating func receive(_ shares: [SealedShares]) throws(UpdateRejection) {
        for share in shares {
            guard share.to == site, share.from != site, roster.contains(where: { $0.site == share.from }) else {
                throw UpdateRejection("a share pair not addressed to this site by a roster site")
            }
            guard held[share.from] == nil else { throw UpdateRejection("two share pairs from \(share.from)") }
            held[share.from] = share.sealed
        }
    }

    /// Step 3: `words` plus the self-mask plus the pairwise masks with every other site of
    /// `maskingSet` (the roster sites whose shares reached this one, in roster order).
    public mutating func mask(_ words: [UInt32], maskingSet: [String]) throws(UpdateRejection) -> [UInt32] {
        guard self.maskingSet == nil else { throw UpdateRejection("this site already masked its input this round") }
        guard maskingSet.count >= threshold else {
            throw UpdateRejection("only \(maskingSet.count) site(s) in the masking set, below the threshold of \(threshold)")
        }
        let members = Set(maskingSet)
        guard members.count == maskingSet.count, members.contains(site), maskingSet.allSatisfy({ held[$0] != nil }) else {
            throw UpdateRejection("the masking set must be sites whose shares this site holds, this one included")
        }
        let order = roster.map(\.site).filter { members.contains($0) }
        let peers = roster.filter { members.contains($0.site) }.map { (site: $0.site, maskingKey: $0.maskingKey) }
        self.maskingSet = order
        var out = words
        let own = SecureAggregation.selfMask(seed: selfSeed, context: context, count: words.count)
        let pairs: [UInt32]
        do {
            pairs = try SecureAggregation.pairwiseMasks(of: site, key: maskingKey, peers: peers, order: order, context: context,
                                                        count: words.count)
        } catch let error as UpdateRejection {
            throw error
        } catch {
            throw UpdateRejection("key agreement failed: \(error)")
        }
        for i in out.indices { out[i] &+= own[i] &+ pairs[i] }
        return out
    }

    /// Step 4: for every survivor its self-mask seed share, for every dropped site its masking-key
    /// share. Answered once per round, only for a partition of the masking set with at least
    /// `threshold` survivors including this site: a server that could ask twice, or name a site
    /// both ways, would collect both secrets of one site and unmask its vector.
    public mutating func unmaskingShares(survivors: [String], dropped: [String]) throws(UpdateRejection) -> [RevealedShare] {
        guard let maskingSet else { throw UpdateRejection("this site has not masked an input this round") }
        guard !revealed else { throw UpdateRejection("this site already answered the unmasking request") }
        guard survivors.count >= threshold else {
            throw UpdateRejection("only \(survivors.count) survivor(s), below the threshold of \(threshold)")
        }
        guard survivors.contains(site), Set(survivors).isDisjoint(with: dropped),
              Set(survivors + dropped) == Set(maskingSet), survivors.count + dropped.count == maskingSet.count else {
            throw UpdateRejection("survivors and dropped sites must split the masking set, with this site a survivor")
        }
        revealed = true
        guard let position = roster.firstIndex(where: { $0.site == site }) else { throw UpdateRejection("not in the roster") }
        let x = UInt64(position + 1)
        let survived = Set(survivors)
        let keys = Dictionary(roster.map { ($0.site, $0) }, uniquingKeysWith: { first, _ in first })
        var out: [RevealedShare] = []
        for owner in maskingSet {
            guard let stored = held[owner] else { throw UpdateRejection("no shares from \(owner)") }
            let plaintext: [UInt8]
            if owner == site {
                plaintext = stored
            } else {
                guard let sender = keys[owner] else { throw UpdateRejection("\(owner) is not in the roster") }
                do {
                    let key = try SecureAggregation.shareKey(mine: encryptionKey, theirs: sender.encryptionKey, context: context,
                                                             from: owner, to: site)
                    plaintext = Array(try AES.GCM.open(AES.GCM.SealedBox(combined: stored), using: key,
                                                       authenticating: Array("\(context)|\(owner)|\(site)".utf8)))
                } catch {
                    throw UpdateRejection("the shares from \(owner) do not open: \(error)")
                }
            }
            guard plaintext.count == 2 * Shamir.shareBytes,
                  let keyShare = Shamir.Share(x: x, bytes: plaintext.prefix(Shamir.shareBytes)),
                  let seedShare = Shamir.Share(x: x, bytes: plaintext.suffix(Shamir.shareBytes)) else {
                throw UpdateRejection("the shares from \(owner) are malformed")
            }
            out.append(survived.contains(owner)
                       ? RevealedShare(owner: owner, secret: .selfMaskSeed, values: seedShare.values)
                       : RevealedShare(owner: owner, secret: .maskingKey, values: keyShare.values))
        }
        return out
    }
}
