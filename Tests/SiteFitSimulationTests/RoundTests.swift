import Foundation
import Testing
@testable import SiteFitFederation
@testable import SiteFitReport
@testable import SiteFitScenario
@testable import SiteFitSimulation
import SiteFitTestSupport

/// The tiny scenario with three sites and the given `federation:` and `arms:` blocks.
func faultScenario(_ federation: String, arms: String = "  - mode: bitfit\n    learning_rate: 0.01\n",
                   name: String = #function) throws -> Scenario {
    let folder = try tinyScenario(name)
    try Data(TinyScenario.eastSite.utf8).write(to: folder.appendingPathComponent("Sites/east.yaml"))
    let text = TinyScenario.scenario(sites: ["north", "south", "east"], federation: "batch_size: 16\n" + federation, arms: arms,
                                     baselines: "[]", subgroups: false)
    let url = folder.appendingPathComponent("faults.yaml")
    try Data(text.utf8).write(to: url)
    return try ScenarioLoader.load(url)
}

@Suite("Rounds: sampling, dropout, quorum, deadlines and DP in a run")
struct RoundTests {
    @Test("a scheduled dropout leaves the site out of that round only")
    func scheduledDropout() async throws {
        let scenario = try faultScenario("rounds: 2\ndropout:\n  schedule:\n    1: [north]\n")
        let arm = try await Simulation.run(scenario).metrics.arms[0]
        #expect(arm.rounds[1].absent == [AbsentSite(site: "north", reason: .droppedOut(scheduled: true))])
        #expect(arm.rounds[1].acceptedSites == ["south", "east"])
        #expect(arm.rounds[2].acceptedSites == ["north", "south", "east"])
    }

    @Test("below the quorum a round is skipped and the model does not change")
    func quorum() async throws {
        let scenario = try faultScenario("rounds: 2\nquorum: 3\ndropout:\n  schedule:\n    2: [east]\n")
        let arm = try await Simulation.run(scenario).metrics.arms[0]
        #expect(!arm.rounds[1].skipped)
        #expect(arm.rounds[2].skipped)
        #expect(arm.rounds[2].evaluation == arm.rounds[1].evaluation)
    }

    @Test("a slow site misses the deadline: its bytes were sent, its update is not used")
    func deadline() async throws {
        let scenario = try faultScenario("rounds: 1\nstragglers:\n  seconds_per_step: {default: 0.0001, north: 1.0}\n  deadline_seconds: 0.5\n")
        let arm = try await Simulation.run(scenario).metrics.arms[0]
        let round = arm.rounds[1]
        #expect(round.acceptedSites == ["south", "east"])
        #expect(round.absent.map(\.site) == ["north"])
        guard case let .missedDeadline(seconds, deadline) = round.absent[0].reason else {
            Issue.record("north should have missed the deadline, not: \(round.absent[0].reason)")
            return
        }
        #expect(seconds > deadline && deadline == 0.5)
        #expect(round.bytesUp > 2 * arm.privacy.bytesUpPerUpdate, "three updates were sent")
    }

    @Test("sampling a count asks exactly that many sites each round, reproducibly")
    func samplingCount() async throws {
        let scenario = try faultScenario("rounds: 3\nsampling: {count: 2}\n")
        let first = try await Simulation.run(scenario).metrics.arms[0]
        let second = try await Simulation.run(scenario).metrics.arms[0]
        for round in first.rounds.dropFirst() { #expect(round.sampledSites.count == 2) }
        #expect(first.rounds.map(\.sampledSites) == second.rounds.map(\.sampledSites))
    }

    @Test("DP: ε per round is the accountant's, and a budget stops training before it is exceeded")
    func privacyBudget() async throws {
        let perRound = (1...3).map { RDPAccountant.epsilon(noiseMultiplier: 2, sampleRate: 1, rounds: $0, delta: 1e-5).epsilon }
        let budget = (perRound[1] + perRound[2]) / 2
        let scenario = try faultScenario("rounds: 3\n", arms: """
              - mode: bitfit
                dp: {clip_norm: 0.5, noise_multiplier: 2, delta: 1e-5, epsilon_budget: \(budget)}
            """)
        let arm = try await Simulation.run(scenario).metrics.arms[0]
        #expect(arm.rounds.count == 3, "round 0 and the two rounds the budget allows")
        #expect(arm.rounds[1].epsilon == perRound[0])
        #expect(arm.rounds[2].epsilon == perRound[1])
        #expect(arm.privacy.epsilon == perRound[1])
        #expect(arm.privacy.stoppedByBudgetAfterRound == 2)
    }

    @Test("a scenario built in code with DP and a fixed count of sites is refused by the run, as the loader refuses it")
    func dpWithCountRefused() async throws {
        var scenario = try faultScenario("rounds: 1\n", arms: """
              - mode: bitfit
                dp: {clip_norm: 0.5, noise_multiplier: 2}
            """)
        scenario.federation.participation.sampling = .count(2)
        do {
            _ = try await Simulation.run(scenario)
            Issue.record("a DP arm with a fixed count of sites ran")
        } catch {
            #expect("\(error)".contains("a fixed count of 2 of 3 sites is not covered by the accountant"), "\(error)")
        }
        scenario.federation.participation.sampling = .count(3)                  // every site: allowed
        #expect(try await Simulation.run(scenario).metrics.arms[0].privacy.epsilon != nil)
    }
}

@Suite("Secure aggregation in a run")
struct SecureRunTests {
    @Test("a masked arm ends where the plain arm ends (within quantisation), and a late site's masks are removed with the survivors' shares")
    func secureMatchesPlain() async throws {
        let scenario = try faultScenario("rounds: 2\nstragglers:\n  seconds_per_step: {default: 0.0001, north: 1.0}\n  deadline_seconds: 0.5\n", arms: """
              - name: plain
                mode: bitfit
                learning_rate: 0.01
              - name: masked
                mode: bitfit
                learning_rate: 0.01
                secure_aggregation: true
            """)
        let arms = try await Simulation.run(scenario).metrics.arms
        let (plain, masked) = (arms[0], arms[1])
        #expect(masked.privacy.secureAggregation)
        for (p, m) in zip(plain.rounds, masked.rounds) {
            #expect(abs((p.evaluation.auroc ?? 0) - (m.evaluation.auroc ?? 0)) < 1e-3)
            #expect(p.acceptedSites == m.acceptedSites)
        }
        #expect(masked.rounds[1].absent.map(\.site) == ["north"])
        let secure = try #require(masked.rounds[1].secureAggregation)
        #expect(secure.result == .aggregated && secure.survivors == 2 && secure.recoveredDropouts == 1,
                "the two sites that met the deadline remove north's masks with their shares")
        let totals = try #require(masked.privacy.secureRounds)
        #expect(totals.recoveredDropouts == 2 && totals.rounds == 2 && totals.aggregated == 2, "north is late in both rounds")
        #expect(masked.rounds[1].bytesUp > plain.rounds[1].bytesUp / 2)
    }
}

@Suite("Determinism whatever the scheduling")
struct SchedulingTests {
    @Test("sites trained one at a time or all at once give byte-identical metrics.json and predictions")
    func sequentialEqualsConcurrent() async throws {
        let scenario = try faultScenario("rounds: 3\nsampling: {fraction: 0.7}\ndropout: {probability: 0.2}\n", arms: """
              - mode: full
              - mode: bitfit
                learning_rate: 0.01
                dp: {clip_norm: 0.1, noise_multiplier: 1.0}
              - mode: bitfit
                name: masked
                learning_rate: 0.01
                secure_aggregation: true
            """)
        let concurrent = try await Simulation.run(scenario)
        let sequential = try await Simulation.run(scenario, sequentialSites: true)
        #expect(try ReportWriter.metricsJSON(concurrent.metrics) == ReportWriter.metricsJSON(sequential.metrics))
        #expect(concurrent.predictions == sequential.predictions)
    }
}
