import Crypto
import Foundation
import SiteFitNN

/// Pairwise-masked secure aggregation (after Bonawitz et al., "Practical Secure Aggregation for
/// Privacy-Preserving Machine Learning", CCS 2017, without its secret-sharing recovery).
///
/// Every participant of a round makes a fresh X25519 key pair and publishes the public key. Each
/// pair (i, j) derives a shared secret, expands it with HKDF-SHA256 and ChaCha20 into a mask of
/// 32-bit words; the site earlier in the participant list adds the mask, the later one subtracts
/// it. Contributions are quantised to integers modulo 2^32, so the masks cancel exactly in the sum
/// and the server, which only ever holds masked vectors, learns the sum and nothing else.
/// If a participant's masked vector never arrives, the masks it shares do not cancel: the server
/// does not unmask but asks the survivors to re-key and mask again among themselves.
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
            if x > range { x = range; clamped += 1 } else if x < -range { x = -range; clamped += 1 }
            return UInt32(bitPattern: Int32((x * scale).rounded()))
        }
        return (words, clamped)
    }

    /// The signed sum of quantised contributions back in real units.
    public static func dequantise(_ sum: [UInt32], scale: Double) -> [Float] {
        sum.map { Float(Double(Int32(bitPattern: $0)) / scale) }
    }

    /// Mask words for the pair whose shared secret is `secret`, in the round and participant set
    /// given by `context` (so a re-keyed round never reuses a mask).
    static func mask(secret: SharedSecret, context: String, count: Int) -> [UInt32] {
        let key = secret.hkdfDerivedSymmetricKey(using: SHA256.self, salt: Array("sitefit-secagg-v1".utf8),
                                                 sharedInfo: Array(context.utf8), outputByteCount: 32)
        // ChaCha20-Poly1305 over zeros with a fixed nonce is the ChaCha20 keystream (plus a tag we
        // drop): a key is used for one message only, so the fixed nonce is safe.
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

    /// One participant's masked vector: its quantised words plus the masks shared with every other
    /// participant (added towards later sites, subtracted towards earlier ones), all mod 2^32.
    public static func masked(
        _ words: [UInt32], me: String, privateKey: Curve25519.KeyAgreement.PrivateKey,
        peers: [(site: String, publicKey: Curve25519.KeyAgreement.PublicKey)], order: [String], context: String
    ) throws -> [UInt32] {
        guard let myIndex = order.firstIndex(of: me) else { throw UpdateRejection("site '\(me)' is not a participant") }
        var out = words
        for peer in peers where peer.site != me {
            guard let peerIndex = order.firstIndex(of: peer.site) else { continue }
            let secret = try privateKey.sharedSecretFromKeyAgreement(with: peer.publicKey)
            let (first, second) = myIndex < peerIndex ? (me, peer.site) : (peer.site, me)
            let mask = mask(secret: secret, context: "\(context)|\(first)|\(second)", count: words.count)
            if myIndex < peerIndex {
                for i in out.indices { out[i] &+= mask[i] }
            } else {
                for i in out.indices { out[i] &-= mask[i] }
            }
        }
        return out
    }

    /// The masked message a site sends: one U32 tensor `masked` of the selection's length.
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
}
