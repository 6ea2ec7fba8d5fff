import Foundation
import Logging
import SiteFitFederation
@testable import SiteFitRemote
import SiteFitReport
import SiteFitScenario
import SiteFitSimulation
import SiteFitTestSupport
import Testing

/// The protocol itself, without a network: every site an agent behind serialised messages.
@Suite("Remote sites over the protocol's messages")
struct InProcessLinkTests {
    /// The tiny scenario with three sites, two seeds, secure aggregation, DP, a local baseline and the reconstruction experiment.
    static func scenario(_ name: String = #function) throws -> Scenario {
        let files = TinyScenario.threeSiteFiles(TinyScenario.threeSites(seeds: "seeds: [5, 6]", arms: """
              - name: bitfit-secure
                mode: bitfit
                learning_rate: 0.01
                secure_aggregation: true
              - name: lora-dp
                mode: lora
                lora: {rank: 2, alpha: 4}
                dp: {clip_norm: 0.5, noise_multiplier: 0.5, delta: 1.0e-5}

            """, baselines: "[pretrained, local, local_each]", extra: """
            reconstruction:
              batch_sizes: [1, 4]
              local_steps: [1]
              budget: 20
              trials: 1

            """))
        let folder = try fixture(files, name: name)
        return try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
    }

    @Test("a run whose sites answer through messages writes the in-process run's metrics.json, byte for byte")
    func sameMetrics() async throws {
        let scenario = try Self.scenario()
        let local = try await Simulation.run(scenario)
        let shards = scenario.sites.map(\.shardFile)
        let before = shards.map(fileHash)
        let links = try scenario.sites.map { site in
            InProcessLink.connect(try SiteAgent(site: site.profile.id, scenario: scenario, shard: site.shardFile))
        }
        let remote = try await Simulation.run(scenario, fleet: await RemoteFleet(links: links))
        #expect(shards.map(fileHash) == before, "a site agent must never modify its shard")
        let expected = try ReportWriter.metricsJSON(local.metrics), actual = try ReportWriter.metricsJSON(remote.metrics)
        #expect(actual == expected, "metrics.json differs")
        let samePredictions = remote.predictions == local.predictions
        #expect(samePredictions, "predictions.csv differs")
    }

    @Test("a transformer scenario too: the vocabulary agreed through counts, the transformer and the MLP twin opened at every site")
    func transformerSameMetrics() async throws {
        var files = TinyScenario.files
        files["tiny.yaml"] = files["tiny.yaml"]!
            .replacingOccurrences(of: "model:\n  hidden: [8]\n", with: """
                model:
                  kind: transformer
                  layers: 1
                  width: 8
                  heads: 2
                  feed_forward: 16
                  max_length: 8
                  masked_epochs: 2
                  hidden: [8]
                  vocabulary: {minimum_count: 5}
                baselines: [pretrained, local]

                """)
            .replacingOccurrences(of: "learning_rate: 0.01\n", with: "learning_rate: 0.01\n  - {name: mlp, mode: full, model: mlp}\n")
        let scenario = try ScenarioLoader.load(try fixture(files).appendingPathComponent("tiny.yaml"))
        #expect(scenario.transformer != nil && scenario.arms.map(\.onMLP) == [false, false, true])
        let local = try await Simulation.run(scenario)
        let links = try scenario.sites.map { site in
            InProcessLink.connect(try SiteAgent(site: site.profile.id, scenario: scenario, shard: site.shardFile))
        }
        let remote = try await Simulation.run(scenario, fleet: await RemoteFleet(links: links))
        #expect(try ReportWriter.metricsJSON(remote.metrics) == ReportWriter.metricsJSON(local.metrics), "metrics.json differs")
        let samePredictions = remote.predictions == local.predictions
        #expect(samePredictions, "predictions.csv differs")
    }

    @Test("a scenario that needs rows in one place is refused before anything runs")
    func pooledRefused() async throws {
        let folder = try tinyScenario()
        let scenario = try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
        let reason = try await RemoteFleet.refusal(scenario)
        #expect(reason?.contains("pooled") == true)
    }

    @Test("an agent refuses a site the scenario does not have, and a missing shard, naming them")
    func agentRefusals() async throws {
        let scenario = try Self.scenario()
        #expect(throws: (any Error).self) { try SiteAgent(site: "elsewhere", scenario: scenario, shard: scenario.sites[0].shardFile) }
        let error = #expect(throws: (any Error).self) {
            try SiteAgent(site: scenario.sites[0].profile.id, scenario: scenario, shard: URL(fileURLWithPath: "/nonexistent/x.sqlite"))
        }
        #expect("\(error!)".contains("/nonexistent/x.sqlite"))
    }
}
