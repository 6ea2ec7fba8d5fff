import Crypto
import Testing
@testable import SiteFitCore
@testable import SiteFitFederation
@testable import SiteFitNN

@Suite("Secure aggregation")
struct SecureAggregationTests {
    let sites = ["a", "b", "c", "d"]

    func maskedVectors(_ words: [[UInt32]], context: String = "arm|1|0") throws -> [[UInt32]] {
        let keys = sites.map { _ in Curve25519.KeyAgreement.PrivateKey() }
        let peers = zip(sites, keys).map { (site: $0, publicKey: $1.publicKey) }
        return try sites.indices.map { i in
            try SecureAggregation.masked(words[i], me: sites[i], privateKey: keys[i], peers: peers, order: sites, context: context)
        }
    }

    @Test("masks cancel: the masked vectors of zeros sum to zero, though each looks random")
    func masksCancel() throws {
        let zeros = [[UInt32]](repeating: [UInt32](repeating: 0, count: 257), count: 4)
        let masked = try maskedVectors(zeros)
        #expect(SecureAggregation.sum(masked, count: 257) == [UInt32](repeating: 0, count: 257))
        for vector in masked { #expect(vector.filter { $0 == 0 }.count < 5, "a masked vector must not reveal its zeros") }
    }

    @Test("the dequantised masked sum equals the plain sum within the quantisation error")
    func sumMatches() throws {
        var random = RandomStream(seed: 3, "secagg")
        let range = 8.0
        let values = sites.map { _ in (0..<100).map { _ in Float(random.gaussian()) } }
        let scale = SecureAggregation.scale(range: range, participants: 4)
        let words = values.map { SecureAggregation.quantise($0, scale: scale, range: range).words }
        let sum = SecureAggregation.dequantise(SecureAggregation.sum(try maskedVectors(words), count: 100), scale: scale)
        for i in 0..<100 {
            let plain = values.reduce(0.0) { $0 + Double($1[i]) }
            #expect(abs(Double(sum[i]) - plain) <= 4 * 0.5 / scale + 1e-6 * abs(plain))
        }
    }

    @Test("a masked message round-trips as safetensors U32 and fails closed on a wrong length")
    func wireFormat() throws {
        let blob = SecureAggregation.encode([1, 2, 0xFFFF_FFFF], metadata: ["round": "1"])
        #expect(try SecureAggregation.decode(blob, count: 3).words == [1, 2, 0xFFFF_FFFF])
        #expect(throws: UpdateRejection.self) { try SecureAggregation.decode(blob, count: 4) }
        let plain = Safetensors.encode([NamedTensor(name: "masked", shape: [3], values: [1, 2, 3])])
        #expect(throws: UpdateRejection.self) { try SecureAggregation.decode(plain, count: 3) }
    }

    @Test("a missing masked vector is never unmasked: the server asks to re-key among the survivors")
    func dropAfterMasking() async throws {
        var layout = ParameterLayout()
        layout.append(name: "b", shape: [3], role: .bias)
        let selection = ParameterSelection(layout: layout, tensorNames: ["b"])
        let server = FederatedServer(pretrained: [0, 0, 0], selection: selection)
        let scale = SecureAggregation.scale(range: 8, participants: 4)
        let words = sites.map { _ in SecureAggregation.quantise([0.25, -0.5, 1], scale: scale, range: 8).words }
        let masked = try maskedVectors(words)
        let blobs = zip(sites, masked).map { (site: $0, blob: SecureAggregation.encode($1, metadata: ["round": "1", "train_size": "5"])) }
        let partial = await server.aggregateMasked(round: 1, masked: Array(blobs.prefix(3)), participants: sites, scale: scale)
        #expect(partial.rekeyWith == ["a", "b", "c"])
        #expect(await server.globalValues() == [0, 0, 0])
        let full = await server.aggregateMasked(round: 1, masked: blobs, participants: sites, scale: scale)
        #expect(full.rekeyWith == nil && full.outcome.acceptedSites == sites)
        let global = await server.globalValues()
        #expect(abs(global[0] - 1) < 1e-6 && abs(global[1] + 2) < 1e-6 && abs(global[2] - 4) < 1e-6)
    }
}
