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

    @Test("secure aggregation gives the plain average within quantisation, and re-keys among the survivors when a site is late")
    func secureAggregation() async throws {
        var (plain, plainServer) = (await Federation()).driver()
        _ = try await plain.run(round: 1)
        let expected = await plainServer.globalValues()
        var (masked, maskedServer) = (await Federation()).driver(channel: MaskedChannel(arm: "a"))
        let record = try #require(try await masked.run(round: 1))
        #expect(record.outcome.acceptedSites == ["s0", "s1", "s2", "s3"])
        #expect(record.rekeyedAmong == nil)
        let scale = SecureAggregation.scale(range: MaskedChannel.range, participants: 4)
        for (x, y) in zip(await maskedServer.globalValues(), expected) { #expect(abs(x - y) <= Float(4 / scale) + 1e-6) }

        let participation = ParticipationSettings(defaultSecondsPerStep: 1, deadlineSeconds: 6)
        var (late, _) = (await Federation()).driver(participation, channel: MaskedChannel(arm: "a"))
        let rekeyed = try #require(try await late.run(round: 1))
        #expect(rekeyed.rekeyedAmong == 3)
        #expect(rekeyed.outcome.acceptedSites == ["s0", "s2", "s3"])
        #expect(rekeyed.absences.map(\.site) == ["s1"])
        // Keys twice (4 sites, then 3) and masked vectors from 3 + 3 sites.
        let maskedBytes = rekeyed.trained[0].messageBytes
        #expect(rekeyed.bytesUp == 32 * 4 + 32 * 3 + 6 * maskedBytes)
        #expect(rekeyed.bytesDown == 4 * rekeyed.broadcastBytes + 32 * 4 * 3 + 32 * 3 * 2)
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
