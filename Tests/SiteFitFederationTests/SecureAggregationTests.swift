import Crypto
import Testing
@testable import SiteFitCore
@testable import SiteFitFederation
@testable import SiteFitNN

@Suite("Shamir secret sharing")
struct ShamirTests {
    let secret: [UInt8] = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }

    @Test("field products match a 128-bit reference, including the values next to the modulus")
    func fieldProducts() {
        let p = Shamir.prime
        let values: [UInt64] = [0, 1, 2, 3, p - 1, p - 2, p / 2, 1 << 60, (1 << 61) - 3, 123_456_789_012_345]
        for a in values {
            for b in values {
                let (high, low) = a.multipliedFullWidth(by: b)
                #expect(Shamir.multiply(a, b) == p.dividingFullWidth((high, low)).remainder, "\(a) × \(b)")
            }
            if a != 0 { #expect(Shamir.multiply(a, Shamir.inverse(a)) == 1) }
        }
    }

    @Test("any t of n shares give the secret back, for every t-subset of 5 shares at t = 3")
    func anySubset() {
        var random = RandomStream(seed: 1, "shamir")
        let shares = Shamir.split(secret, threshold: 3, count: 5, using: &random)
        for i in 0..<5 { for j in (i + 1)..<5 { for k in (j + 1)..<5 {
            #expect(Shamir.reconstruct([shares[k], shares[i], shares[j]], threshold: 3) == secret)
        } } }
        #expect(Shamir.reconstruct(Array(shares.prefix(2)), threshold: 3) == nil, "two shares are below the threshold")
    }

    @Test("a tampered or repeated share never reconstructs the secret")
    func belowThreshold() {
        var random = RandomStream(seed: 2, "shamir")
        let shares = Shamir.split(secret, threshold: 3, count: 5, using: &random)
        var forged = shares[2]
        forged.values[0] = Shamir.add(forged.values[0], 1)
        #expect(Shamir.reconstruct([shares[0], shares[1], forged], threshold: 3) != secret)
        #expect(Shamir.reconstruct([shares[0], shares[0], shares[1]], threshold: 3) == nil, "a repeated x is refused")
    }

    @Test("shares round-trip through their bytes; a value outside the field is refused")
    func shareBytes() throws {
        var random = RandomStream(seed: 3, "shamir")
        let share = Shamir.split(secret, threshold: 2, count: 3, using: &random)[1]
        #expect(share.bytes.count == Shamir.shareBytes)
        #expect(Shamir.Share(x: 2, bytes: share.bytes) == share)
        #expect(Shamir.Share(x: 2, bytes: [UInt8](repeating: 0xFF, count: Shamir.shareBytes)) == nil)
        #expect(Shamir.Share(x: 2, bytes: share.bytes.dropLast()) == nil)
    }
}

@Suite("Secure aggregation")
struct SecureAggregationTests {
    let sites = ["a", "b", "c", "d"]
    let context = "arm|1"

    /// The sites' participants after steps 1 and 2 (keys advertised, shares delivered).
    func keyed(_ sites: [String], threshold: Int) throws -> [SecureAggregationParticipant] {
        var participants = sites.map { SecureAggregationParticipant(site: $0, context: context) }
        let roster = participants.map(\.advertised)
        var inbox: [String: [SealedShares]] = [:]
        for i in participants.indices {
            for box in try participants[i].shareKeys(roster: roster, threshold: threshold) { inbox[box.to, default: []].append(box) }
        }
        for i in participants.indices { try participants[i].receive(inbox[participants[i].site] ?? []) }
        return participants
    }

    func server(count: Int) -> FederatedServer {
        var layout = ParameterLayout()
        layout.append(name: "b", shape: [count], role: .bias)
        return FederatedServer(pretrained: [Float](repeating: 0, count: count), selection: ParameterSelection(layout: layout, tensorNames: ["b"]))
    }

    func blob(_ words: [UInt32]) -> [UInt8] {
        SecureAggregation.encode(words, metadata: [WireFormat.Key.round: "1", WireFormat.Key.trainSize: "5"])
    }

    @Test("pairwise and self masks: each masked vector of zeros looks random, and the pairwise masks alone cancel")
    func masksLookRandom() throws {
        var participants = try keyed(sites, threshold: 2)
        let zeros = [UInt32](repeating: 0, count: 257)
        let masked = try participants.indices.map { try participants[$0].mask(zeros, maskingSet: sites) }
        for vector in masked { #expect(vector.filter { $0 == 0 }.count < 5, "a masked vector must not reveal its zeros") }
        let selfMasks = participants.map { SecureAggregation.selfMask(seed: $0.selfSeed, context: context, count: 257) }
        #expect(SecureAggregation.sum(masked, count: 257) == SecureAggregation.sum(selfMasks, count: 257))
    }

    @Test("the dequantised sum equals the plain sum within the quantisation error")
    func sumMatches() async throws {
        var random = RandomStream(seed: 3, "secagg")
        let values = sites.map { _ in (0..<100).map { _ in Float(random.gaussian()) } }
        let scale = SecureAggregation.scale(range: 8, participants: 4)
        var participants = try keyed(sites, threshold: 2)
        let server = server(count: 100)
        await server.beginMaskedRound(1, context: context, roster: participants.map(\.advertised), maskingSet: sites, threshold: 2,
                                      scale: scale, weightTotal: nil)
        for i in participants.indices {
            let words = SecureAggregation.quantise(values[i], scale: scale, range: 8).words + [0]
            await server.submitMasked(site: sites[i], blob: blob(try participants[i].mask(words, maskingSet: sites)))
        }
        let (survivors, dropped, unmask) = await server.nameSurvivors()
        #expect(unmask)
        for i in participants.indices {
            await server.submitUnmaskingShares(site: sites[i], shares: try participants[i].unmaskingShares(survivors: survivors, dropped: dropped))
        }
        let end = await server.endMaskedRound()
        #expect(end.outcome.acceptedSites == sites && !end.outcome.skipped && end.clamped == 0)
        let sum = await server.globalValues()
        for i in 0..<100 {
            let plain = values.reduce(0.0) { $0 + Double($1[i]) }
            #expect(abs(Double(sum[i]) - plain) <= 4 * 0.5 / scale + 1e-6 * abs(plain))
        }
    }

    @Test("sites that drop after the key exchange: the survivors' shares remove their masks and the sum is exact")
    func dropoutRecovery() async throws {
        let six = ["a", "b", "c", "d", "e", "f"]
        var participants = try keyed(six, threshold: 3)
        var random = RandomStream(seed: 4, "secagg")
        let words = six.map { _ in (0..<50).map { _ in UInt32(truncatingIfNeeded: random.next() % 1000) } + [UInt32(1)] }
        let server = server(count: 50)
        await server.recordTranscript()
        await server.beginMaskedRound(1, context: context, roster: participants.map(\.advertised), maskingSet: six, threshold: 3,
                                      scale: 1, weightTotal: nil)
        // b and e trained but never sent: dropped after the key exchange.
        for i in [0, 2, 3, 5] {
            await server.submitMasked(site: six[i], blob: blob(try participants[i].mask(words[i], maskingSet: six)))
        }
        let (survivors, dropped, unmask) = await server.nameSurvivors()
        #expect(unmask)
        #expect(survivors == ["a", "c", "d", "f"] && dropped == ["b", "e"])
        for i in [0, 2, 3, 5] {
            await server.submitUnmaskingShares(site: six[i], shares: try participants[i].unmaskingShares(survivors: survivors, dropped: dropped))
        }
        let end = await server.endMaskedRound()
        #expect(end.recoveredDropouts == 2 && end.clamped == 4 && end.outcome.acceptedSites == survivors)
        // At scale 1 the installed values are the unmasked integers: the survivors' plain sum, exactly.
        let exact = SecureAggregation.sum([0, 2, 3, 5].map { words[$0] }, count: 51).prefix(50).map { Float($0) }
        #expect(await server.globalValues() == exact, "the unmasked sum equals the plain sum of the survivors' words")
        // No survivor revealed a self-mask share of a dropped site, or a key share of a survivor.
        for case let .revealed(_, shares) in await server.receivedTranscript() {
            for share in shares { #expect((share.secret == .maskingKey) == dropped.contains(share.owner)) }
        }
    }

    @Test("a site that fails to share keys leaves the masking set; shares keep their roster positions and a later dropout is still recovered")
    func maskingSetSmallerThanRoster() async throws {
        let four = ["a", "b", "c", "d"]
        var participants = four.map { SecureAggregationParticipant(site: $0, context: context) }
        let roster = participants.map(\.advertised)
        var inbox: [String: [SealedShares]] = [:]
        for i in [0, 2, 3] {  // b never shares
            for box in try participants[i].shareKeys(roster: roster, threshold: 2) { inbox[box.to, default: []].append(box) }
        }
        for i in [0, 2, 3] { try participants[i].receive(inbox[four[i]] ?? []) }
        let maskingSet = ["a", "c", "d"]
        let words = [[UInt32]]([[5, 7, 0], [0, 0, 0], [11, 13, 0], [17, 19, 0]])
        let server = server(count: 2)
        await server.beginMaskedRound(1, context: context, roster: roster, maskingSet: maskingSet, threshold: 2, scale: 1, weightTotal: nil)
        _ = try participants[2].mask(words[2], maskingSet: maskingSet)  // c masks, then drops before sending
        for i in [0, 3] {
            let masked = try participants[i].mask(words[i], maskingSet: maskingSet)
            await server.submitMasked(site: four[i], blob: blob(masked))
        }
        let (survivors, dropped, unmask) = await server.nameSurvivors()
        #expect(unmask && survivors == ["a", "d"] && dropped == ["c"])
        for i in [0, 3] {
            await server.submitUnmaskingShares(site: four[i], shares: try participants[i].unmaskingShares(survivors: survivors, dropped: dropped))
        }
        let end = await server.endMaskedRound()
        #expect(!end.outcome.skipped && end.recoveredDropouts == 1)
        #expect(await server.globalValues() == [22, 26], "a + d, exactly")
    }

    @Test("the server refuses a survivor's shares of the wrong kind: a key share of a survivor is never used")
    func wrongKindRefused() async throws {
        var participants = try keyed(["a", "b", "c"], threshold: 2)
        let server = server(count: 2)
        await server.recordTranscript()
        await server.beginMaskedRound(1, context: context, roster: participants.map(\.advertised), maskingSet: ["a", "b", "c"],
                                      threshold: 2, scale: 1, weightTotal: nil)
        for i in 0..<3 { await server.submitMasked(site: ["a", "b", "c"][i], blob: blob(try participants[i].mask([1, 2, 0], maskingSet: ["a", "b", "c"]))) }
        _ = await server.nameSurvivors()
        var shares = try participants[0].unmaskingShares(survivors: ["a", "b", "c"], dropped: [])
        shares[1].secret = .maskingKey  // b survived: asking for its key would let the server strip b's pairwise masks
        await server.submitUnmaskingShares(site: "a", shares: shares)
        await server.submitUnmaskingShares(site: "d", shares: try participants[1].unmaskingShares(survivors: ["a", "b", "c"], dropped: []))
        #expect(await server.receivedTranscript().filter { if case .revealed = $0 { true } else { false } }.isEmpty,
                "both submissions refused: a wrong kind, and a site that is not a survivor")
        let end = await server.endMaskedRound()
        #expect(end.outcome.skipped && end.abortedAtUnmasking, "too few shares: nothing is unmasked")
    }

    @Test("with one survivor the server receives one masked vector and unmasks nothing")
    func oneSurvivor() async throws {
        var participants = try keyed(["a", "b", "c"], threshold: 2)
        let server = server(count: 20)
        await server.recordTranscript()
        await server.beginMaskedRound(1, context: context, roster: participants.map(\.advertised), maskingSet: ["a", "b", "c"],
                                      threshold: 2, scale: 1, weightTotal: nil)
        let plain = (0..<20).map { UInt32($0 + 1) } + [0]
        await server.submitMasked(site: "a", blob: blob(try participants[0].mask(plain, maskingSet: ["a", "b", "c"])))
        #expect(await server.nameSurvivors().unmask == false)
        let end = await server.endMaskedRound()
        #expect(end.outcome.skipped && end.abortedAtUnmasking && end.clamped == nil)
        #expect(await server.globalValues() == [Float](repeating: 0, count: 20))
        let received = await server.receivedTranscript()
        #expect(received.count == 1, "one masked vector, no shares")
        guard case let .masked(_, words) = received.first else { Issue.record("expected a masked vector"); return }
        #expect(zip(words, plain).filter { $0 == $1 }.count < 3, "what arrived is not the plain vector")
        // The site itself refuses to reveal anything for fewer survivors than the threshold.
        #expect(throws: UpdateRejection.self) { try participants[0].unmaskingShares(survivors: ["a"], dropped: ["b", "c"]) }
    }

    @Test("a late site's vector stays hidden by its self-mask even after the server rebuilt its masking key")
    func lateSiteProtected() async throws {
        var participants = try keyed(["a", "b", "c"], threshold: 2)
        let plain = (0..<16).map { UInt32($0 * 3) }
        let late = try participants[2].mask(plain, maskingSet: ["a", "b", "c"])
        // The server declared c dropped and collected a and b's shares of c's masking key.
        _ = try participants[0].mask(plain, maskingSet: ["a", "b", "c"])
        _ = try participants[1].mask(plain, maskingSet: ["a", "b", "c"])
        let revealed = try [0, 1].map { try participants[$0].unmaskingShares(survivors: ["a", "b"], dropped: ["c"]) }
        let keyShares = zip([UInt64(1), 2], revealed).map { x, shares in
            Shamir.Share(x: x, values: shares.first { $0.owner == "c" && $0.secret == .maskingKey }!.values)
        }
        let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: try #require(Shamir.reconstruct(keyShares, threshold: 2)))
        #expect(key.publicKey.rawRepresentation == participants[2].advertised.maskingKey.rawRepresentation)
        let roster = participants.map(\.advertised)
        let pairs = try SecureAggregation.pairwiseMasks(of: "c", key: key, peers: roster.map { ($0.site, $0.maskingKey) },
                                                        order: ["a", "b", "c"], context: context, count: 16)
        let unpaired = zip(late, pairs).map { $0 &- $1 }
        #expect(zip(unpaired, plain).filter { $0 == $1 }.count < 3, "the self-mask still hides the late vector")
        #expect(!revealed.flatMap { $0 }.contains { $0.owner == "c" && $0.secret == .selfMaskSeed })
    }

    @Test("a site refuses to share, mask or reveal for fewer sites than the threshold, or to answer twice")
    func siteRefusals() throws {
        var alone = SecureAggregationParticipant(site: "a", context: context)
        #expect(throws: UpdateRejection.self) { try alone.shareKeys(roster: [alone.advertised], threshold: 2) }
        #expect(throws: UpdateRejection.self) { try alone.shareKeys(roster: [alone.advertised], threshold: 1) }
        var participants = try keyed(["a", "b", "c"], threshold: 2)
        #expect(throws: UpdateRejection.self) { try participants[0].mask([1, 2], maskingSet: ["a"]) }
        _ = try participants[0].mask([1, 2], maskingSet: ["a", "b", "c"])
        #expect(throws: UpdateRejection.self) { try participants[0].mask([1, 2], maskingSet: ["a", "b", "c"]) }
        #expect(throws: UpdateRejection.self) { try participants[0].unmaskingShares(survivors: ["a", "b"], dropped: ["b", "c"]) }
        #expect(throws: UpdateRejection.self) { try participants[0].unmaskingShares(survivors: ["a", "b"], dropped: []) }
        _ = try participants[0].unmaskingShares(survivors: ["a", "b"], dropped: ["c"])
        #expect(throws: UpdateRejection.self) { try participants[0].unmaskingShares(survivors: ["a", "b", "c"], dropped: []) }
    }

    @Test("a sealed share pair opens only for its recipient: the server routes what it cannot read")
    func sharesSealed() throws {
        var fresh = ["a", "b", "c"].map { SecureAggregationParticipant(site: $0, context: context) }
        let roster = fresh.map(\.advertised)
        let sealed = try fresh[0].shareKeys(roster: roster, threshold: 2)
        #expect(sealed.count == 2 && sealed.allSatisfy { $0.sealed.count == SecureAggregation.sealedShareBytes })
        // Delivered to the wrong site (c gets b's box relabelled), it does not open.
        var relabelled = sealed.first { $0.to == "b" }!
        relabelled.to = "c"
        var c = fresh[2]
        _ = try c.shareKeys(roster: roster, threshold: 2)
        try c.receive([relabelled])
        _ = try c.mask([0], maskingSet: ["a", "c"])
        #expect(throws: UpdateRejection.self) { try c.unmaskingShares(survivors: ["a", "c"], dropped: []) }
    }

    @Test("a masked message round-trips as safetensors U32 and fails closed on a wrong length")
    func wireFormat() throws {
        let blob = SecureAggregation.encode([1, 2, 0xFFFF_FFFF], metadata: ["round": "1"])
        #expect(try SecureAggregation.decode(blob, count: 3).words == [1, 2, 0xFFFF_FFFF])
        #expect(throws: UpdateRejection.self) { try SecureAggregation.decode(blob, count: 4) }
        let plain = Safetensors.encode([NamedTensor(name: "masked", shape: [3], values: [1, 2, 3])])
        #expect(throws: UpdateRejection.self) { try SecureAggregation.decode(plain, count: 3) }
    }

    @Test("quantisation counts every clamped value, NaN included")
    func clampCount() {
        let (words, clamped) = SecureAggregation.quantise([0.5, 9, -9, .nan, .infinity], scale: 100, range: 8)
        #expect(clamped == 4)
        #expect(words.map { Int32(bitPattern: $0) } == [50, 800, -800, 0, 800])
    }
}
