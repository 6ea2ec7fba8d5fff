import Testing
@testable import SiteFitCore
@testable import SiteFitFederation
@testable import SiteFitNN
@testable import SiteFitTuning
import SiteFitTestSupport

@Suite("The round driver")
struct RoundDriverTests {
    /// Four in-memory sites of different sizes on a small MLP, all starting from `start`.
    struct Federation {
        let mlp = MLP(MLPConfiguration(inputSize: 4, hiddenSizes: [5]))
        let start: [Float]
        let sites: [SiteActor<MLP>]
        let selection: ParameterSelection
        let configuration = TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.01), epochs: 1, batchSize: 8)

        init() async {
            var random = RandomStream(seed: 5, "driver")
            start = mlp.initialParameters(random: &random)
            let model = InMemory.model(mlp, parameters: start)
            func rows(_ n: Int) -> Dataset { InMemory.rows(n, columns: 4, random: &random) }
            sites = [30, 50, 20, 40].enumerated().map { i, n in
                SiteActor(id: "s\(i)", train: rows(n), test: rows(10), model: model, seed: 9, maxBatch: 8)
            }
            selection = FineTuningMode.full.selection(for: mlp.layout)
            for site in sites { await site.begin(network: mlp, parameters: start, selection: selection) }
        }

        func driver(_ participation: ParticipationSettings = ParticipationSettings(), channel: any UpdateChannel = PlainChannel(),
                    privacy: DifferentialPrivacy? = nil, window: Int? = nil) -> (RoundDriver<MLP>, FederatedServer) {
            let server = FederatedServer(pretrained: start, selection: selection)
            return (RoundDriver(sites: sites, server: server, participation: participation, seed: 1, arm: "a",
                                configuration: configuration, channel: channel, privacy: privacy, window: window), server)
        }
    }

    @Test("streamed rounds equal collecting every update and aggregating it in site order, bit for bit, whatever the window")
    func streamedEqualsCollected() async throws {
        let federation = await Federation()
        var (driver, server) = federation.driver(window: 1)
        for round in 1...2 { _ = try await driver.run(round: round) }
        let streamed = await server.globalValues()

        var (wide, wideServer) = (await Federation()).driver(window: 8)
        for round in 1...2 { _ = try await wide.run(round: round) }
        #expect(await wideServer.globalValues() == streamed)

        let again = await Federation()
        let reference = FederatedServer(pretrained: again.start, selection: again.selection)
        for round in 1...2 {
            let message = await reference.broadcast(round: round)
            var updates: [(site: String, blob: [UInt8])] = []
            for site in again.sites {
                updates.append((site.id, try await site.localUpdate(arm: "a", round: round, broadcast: message,
                                                                    configuration: again.configuration).blob))
            }
            _ = await reference.aggregate(round: round, updates: updates)
        }
        #expect(await reference.globalValues() == streamed)
    }

    @Test("a late site is absent for missing the deadline, its bytes still count, and it is not averaged")
    func deadline() async throws {
        let federation = await Federation()
        // 30, 50, 20, 40 rows at batch 8 are 4, 7, 3, 5 steps; at 1 s a step only s2 (3 s) and s0 (4 s) make a 4.5 s deadline.
        let participation = ParticipationSettings(defaultSecondsPerStep: 1, deadlineSeconds: 4.5)
        var (driver, _) = federation.driver(participation)
        let record = try #require(try await driver.run(round: 1))
        #expect(record.trained.map(\.siteIndex) == [0, 1, 2, 3])
        #expect(record.trained.map(\.steps) == [4, 7, 3, 5])
        #expect(record.outcome.acceptedSites == ["s0", "s2"])
        #expect(record.absences.map(\.site) == ["s1", "s3"])
        #expect(record.absences[0].absence == .missedDeadline(seconds: 7, deadline: 4.5))
        #expect(record.bytesUp == record.trained.reduce(0) { $0 + $1.messageBytes })
        #expect(record.bytesDown == 4 * record.broadcastBytes)
    }

    @Test("secure aggregation gives the plain average within quantisation, and recovers from a late site with the survivors' shares")
    func secureAggregation() async throws {
        var (plain, plainServer) = (await Federation()).driver()
        _ = try await plain.run(round: 1)
        let expected = await plainServer.globalValues()
        var (masked, maskedServer) = (await Federation()).driver(channel: MaskedChannel(arm: "a"))
        let record = try #require(try await masked.run(round: 1))
        #expect(record.outcome.acceptedSites == ["s0", "s1", "s2", "s3"])
        #expect(record.secure?.result == .aggregated && record.secure?.recoveredDropouts == 0 && record.secure?.clamped == 0)
        let scale = SecureAggregation.scale(range: MaskedChannel.range, participants: 4)
        for (x, y) in zip(await maskedServer.globalValues(), expected) { #expect(abs(x - y) <= Float(4 / scale) + 1e-6) }

        // s1 (7 steps) misses a 6 s deadline: its masks come out with the three survivors' shares,
        // and the average is the survivors' own (reweighted to their train sizes).
        let participation = ParticipationSettings(defaultSecondsPerStep: 1, deadlineSeconds: 6)
        var (late, lateServer) = (await Federation()).driver(participation, channel: MaskedChannel(arm: "a"))
        let recovered = try #require(try await late.run(round: 1))
        #expect(recovered.outcome.acceptedSites == ["s0", "s2", "s3"])
        #expect(recovered.absences.map(\.site) == ["s1"])
        let secure = try #require(recovered.secure)
        #expect(secure.result == .aggregated && secure.maskingSet == 4 && secure.survivors == 3 && secure.recoveredDropouts == 1)
        var (plainLate, plainLateServer) = (await Federation()).driver(participation)
        _ = try await plainLate.run(round: 1)
        for (x, y) in zip(await lateServer.globalValues(), await plainLateServer.globalValues()) {
            #expect(abs(x - y) <= Float(4 / scale) + 1e-6)
        }
        // Every step's messages and bytes: keys, sealed shares (3 per site), 3 masked vectors, 4 revealed shares per survivor.
        let maskedBytes = recovered.trained[0].messageBytes
        #expect(secure.steps.map(\.step) == [.advertiseKeys, .shareKeys, .maskedInput, .unmasking])
        #expect(secure.steps[0].bytesUp == 64 * 4 && secure.steps[0].bytesDown == 64 * 4 * 3)
        #expect(secure.steps[1].bytesUp == 4 * 3 * SecureAggregation.sealedShareBytes && secure.steps[1].bytesDown == secure.steps[1].bytesUp)
        #expect(secure.steps[2].messagesUp == 3 && secure.steps[2].bytesUp == 3 * maskedBytes)
        #expect(secure.steps[3].messagesUp == 3 && secure.steps[3].bytesUp == 3 * 4 * Shamir.shareBytes)
        #expect(recovered.bytesUp == secure.bytesUp)
        #expect(recovered.bytesDown == 4 * recovered.broadcastBytes + secure.bytesDown)
    }

    @Test("one site in the masking set: the round is aborted before anyone trains, and nothing reaches the server")
    func secureBelowThreshold() async throws {
        // Sampling one site of four: a "sum" of one update would be that site's update.
        let participation = ParticipationSettings(sampling: .count(1))
        var (driver, server) = (await Federation()).driver(participation, channel: MaskedChannel(arm: "a"))
        await server.recordTranscript()
        let before = await server.globalValues()
        let record = try #require(try await driver.run(round: 1))
        #expect(record.sampled.count == 1 && record.trained.isEmpty)
        #expect(record.secure?.result == .abortedBeforeMasking && record.secure?.maskingSet == 1 && record.secure?.threshold == 2)
        #expect(record.outcome.skipped && record.bytesUp == 0)
        #expect(await server.receivedTranscript().isEmpty)
        #expect(await server.globalValues() == before)
    }

    @Test("one survivor after masking: its vector reaches the server masked, and nothing is unmasked")
    func secureOneSurvivor() async throws {
        // At 1 s a step only s2 (3 steps) makes a 3.5 s deadline.
        let participation = ParticipationSettings(defaultSecondsPerStep: 1, deadlineSeconds: 3.5)
        var (driver, server) = (await Federation()).driver(participation, channel: MaskedChannel(arm: "a"))
        await server.recordTranscript()
        let before = await server.globalValues()
        let record = try #require(try await driver.run(round: 1))
        #expect(record.secure?.result == .abortedAtUnmasking && record.secure?.survivors == 1)
        #expect(record.outcome.skipped && record.outcome.acceptedSites.isEmpty)
        let received = await server.receivedTranscript()
        #expect(received.count == 1, "one masked vector and no shares")
        if case let .masked(site, words)? = received.first {
            #expect(site == "s2")
            // Quantised plainly, a small change has most words near 0 or near 2^32; masked words are uniform.
            let near = words.filter { $0 < 1 << 28 || $0 > UInt32.max - (1 << 28) }.count
            #expect(Double(near) < 0.4 * Double(words.count), "the vector is masked")
        }
        #expect(await server.globalValues() == before)
    }

    @Test("DP: a round that would take ε past the budget never runs, and ε grows round by round until then")
    func privacyBudget() async throws {
        let federation = await Federation()
        let settings = DPSettings(clipNorm: 1, noiseMultiplier: 1, delta: 1e-5, epsilonBudget: 12)
        let privacy = try DifferentialPrivacy(settings: settings, participation: ParticipationSettings(), siteCount: 4, seed: 1, arm: "a")
        var (driver, _) = federation.driver(privacy: privacy)
        var epsilons: [Double] = []
        var round = 1
        while let record = try await driver.run(round: round) {
            epsilons.append(try #require(record.epsilon))
            round += 1
        }
        #expect(!epsilons.isEmpty)
        #expect(epsilons == epsilons.sorted() && epsilons.last! <= 12)
        var next = RDPAccountant()
        for _ in 0...epsilons.count { next.compose(noiseMultiplier: 1, sampleRate: 1) }
        #expect(next.epsilon(delta: 1e-5).epsilon > 12)
    }

    @Test("DP with a fixed count of sites is refused: the accountant covers Poisson sampling only")
    func fixedCountRefused() {
        #expect(throws: UserFacingError.self) {
            try DifferentialPrivacy(settings: DPSettings(clipNorm: 1, noiseMultiplier: 1), participation: ParticipationSettings(sampling: .count(2)),
                                    siteCount: 4, seed: 1, arm: "a")
        }
    }
}
