import Testing
@testable import SiteFitCore
@testable import SiteFitFederation
@testable import SiteFitNN

@Suite("Round planning and DP-FedAvg maths")
struct RoundPlannerTests {
    let sites = (0..<40).map { "site-\($0)" }

    @Test("count sampling takes exactly k distinct sites, in site order, the same for the same key")
    func countSampling() {
        let settings = ParticipationSettings(sampling: .count(7))
        let a = RoundPlanner.sampled(siteIds: sites, settings: settings, seed: 1, arm: "x", round: 3)
        #expect(a.count == 7 && Set(a).count == 7 && a == a.sorted())
        #expect(a == RoundPlanner.sampled(siteIds: sites, settings: settings, seed: 1, arm: "x", round: 3))
        #expect(a != RoundPlanner.sampled(siteIds: sites, settings: settings, seed: 1, arm: "x", round: 4))
    }

    @Test("fraction sampling is Poisson: each site's draw is its own, and about q·K are sampled over many rounds")
    func poissonSampling() {
        let settings = ParticipationSettings(sampling: .fraction(0.25))
        let total = (1...400).reduce(0) { $0 + RoundPlanner.sampled(siteIds: sites, settings: settings, seed: 9, arm: "a", round: $1).count }
        let mean = Double(total) / 400
        #expect(abs(mean - 10) < 0.5, "mean \(mean) sampled of 40 at q = 0.25")
        // A site's membership does not depend on which other sites exist.
        let fewer = Array(sites.prefix(10))
        let full = Set(RoundPlanner.sampled(siteIds: sites, settings: settings, seed: 9, arm: "a", round: 2).filter { $0 < 10 })
        #expect(Set(RoundPlanner.sampled(siteIds: fewer, settings: settings, seed: 9, arm: "a", round: 2)) == full)
        #expect(settings.sampleRate(siteCount: 40) == 0.25 && settings.expectedParticipants(siteCount: 40) == 10)
    }

    @Test("dropout: a schedule always drops, a probability drops about that share")
    func dropout() {
        let scheduled = ParticipationSettings(dropoutSchedule: [2: ["site-3"]])
        #expect(RoundPlanner.dropsOut(site: "site-3", settings: scheduled, seed: 1, arm: "a", round: 2) == .droppedOut(scheduled: true))
        #expect(RoundPlanner.dropsOut(site: "site-3", settings: scheduled, seed: 1, arm: "a", round: 3) == nil)
        let random = ParticipationSettings(dropoutProbability: 0.3)
        let drops = (1...200).flatMap { round in sites.compactMap { RoundPlanner.dropsOut(site: $0, settings: random, seed: 4, arm: "a", round: round) } }
        #expect(abs(Double(drops.count) / 8000 - 0.3) < 0.02)
    }

    @Test("simulated time is steps × seconds per step, with a median-1 log-normal jitter")
    func stragglerTime() {
        let settings = ParticipationSettings(secondsPerStep: ["slow": 0.5], defaultSecondsPerStep: 0.01)
        #expect(RoundPlanner.simulatedSeconds(site: "slow", steps: 10, settings: settings, seed: 1, arm: "a", round: 1) == 5)
        #expect(RoundPlanner.simulatedSeconds(site: "fast", steps: 10, settings: settings, seed: 1, arm: "a", round: 1) == 0.1)
        var jittered = settings
        jittered.timeJitter = 0.5
        let times = (1...301).map { RoundPlanner.simulatedSeconds(site: "slow", steps: 10, settings: jittered, seed: 1, arm: "a", round: $0) }
        let median = times.sorted()[150]
        #expect(median > 4.5 && median < 5.5)
    }

    @Test("clipping by hand: (3, 4) has norm 5; clipped to 1 it is (0.6, 0.8); short updates are untouched")
    func clip() {
        var delta: [Float] = [3, 4]
        #expect(DPFedAvg.clip(&delta, clipNorm: 1) == 5)
        #expect(abs(delta[0] - 0.6) < 1e-7 && abs(delta[1] - 0.8) < 1e-7)
        var short: [Float] = [0.3, 0.4]
        DPFedAvg.clip(&short, clipNorm: 1)
        #expect(short == [0.3, 0.4])
    }

    @Test("noisy mean: σ = 0 gives the sum over the expected count; the noise has standard deviation σC/m")
    func noisyMean() {
        var random = RandomStream(seed: 1, "t")
        let exact = DPFedAvg.noisyMean([[1, 2], [3, 4]], count: 2, settings: DPSettings(clipNorm: 1, noiseMultiplier: 0),
                                       expectedParticipants: 4, random: &random)
        #expect(exact == [1, 1.5])
        let zeros = [[Float]](repeating: [Float](repeating: 0, count: 20_000), count: 1)
        let noise = DPFedAvg.noisyMean(zeros, count: 20_000, settings: DPSettings(clipNorm: 2, noiseMultiplier: 1.5),
                                       expectedParticipants: 3, random: &random)
        let sd = (noise.reduce(0.0) { $0 + Double($1) * Double($1) } / 20_000).squareRoot()
        #expect(abs(sd - 1.0) < 0.02, "σC/m = 1.5·2/3 = 1, measured \(sd)")
    }

    @Test("the server skips a round below quorum, and with DP clips what a site sent")
    func serverQuorumAndClip() async {
        var layout = ParameterLayout()
        layout.append(name: "b", shape: [2], role: .bias)
        let selection = ParameterSelection(layout: layout, tensorNames: ["b"])
        let server = FederatedServer(pretrained: [0, 0], selection: selection)
        func update(_ values: [Float], _ site: String) -> (site: String, blob: [UInt8]) {
            (site, WireFormat.encode(packed: values, selection: selection, metadata: [
                WireFormat.Key.round: "1", WireFormat.Key.trainSize: "10", WireFormat.Key.site: site]))
        }
        let skipped = await server.aggregate(round: 1, updates: [update([1, 1], "a")], quorum: 2)
        #expect(skipped.skipped && skipped.acceptedSites == ["a"])
        #expect(await server.globalValues() == [0, 0])
        let privacy = PrivateAggregation(settings: DPSettings(clipNorm: 1, noiseMultiplier: 0), expectedParticipants: 2,
                                         noise: RandomStream(seed: 1, "n"))
        let outcome = await server.aggregate(round: 1, updates: [update([3, 4], "a"), update([0, 1], "b")], quorum: 2, privacy: privacy)
        #expect(!outcome.skipped)
        let global = await server.globalValues()
        // ((0.6, 0.8) + (0, 1)) / 2
        #expect(abs(global[0] - 0.3) < 1e-6 && abs(global[1] - 0.9) < 1e-6)
    }
}
