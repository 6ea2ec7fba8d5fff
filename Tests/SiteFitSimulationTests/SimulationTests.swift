import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import SiteFitCore
@testable import SiteFitReport
@testable import SiteFitScenario
@testable import SiteFitSimulation
import SiteFitFederation
import SiteFitTestSupport

@Suite("End-to-end simulation")
struct SimulationTests {
    @Test("two runs with one seed give identical metrics.json, and no shard changes during a run")
    func reproducible() async throws {
        let folder = try tinyScenario()
        let scenario = try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
        let first = try await Simulation.run(scenario)
        let shards = scenario.sites.map(\.shardFile)
        let before = shards.map(fileHash)
        let second = try await Simulation.run(scenario)
        #expect(shards.map(fileHash) == before, "a run must never modify a shard")
        #expect(try ReportWriter.metricsJSON(first.metrics) == ReportWriter.metricsJSON(second.metrics))
        #expect(first.predictions == second.predictions)

        var reseeded = scenario
        reseeded.seed = 6
        let third = try await Simulation.run(reseeded)
        #expect(try ReportWriter.metricsJSON(third.metrics) != ReportWriter.metricsJSON(first.metrics))
    }

    @Test("the report and its files hold what the issue asks for")
    func reportContents() async throws {
        let folder = try tinyScenario()
        let scenario = try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
        let result = try await Simulation.run(scenario)
        let output = try ReportWriter.write(result.metrics, predictions: result.predictions,
                                            to: folder.appendingPathComponent("Reports"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: output.metrics)) as! [String: Any]
        let arms = json["arms"] as! [[String: Any]]
        #expect(arms.map { $0["name"] as! String } == ["full", "bitfit", "pretrained", "local only", "pooled (simulation only)"])
        for arm in arms {
            let final = arm["final"] as! [String: Any]
            #expect(final["accuracy"] is Double)
            #expect(final["auroc"] is Double)
            let perSite = final["per_site"] as! [String: [String: Any]]
            #expect(Set(perSite.keys) == ["north", "south"])
            #expect(perSite["north"]?["accuracy"] is Double)
            let privacy = arm["privacy"] as! [String: Any]
            // Federations send bytes; baselines send none.
            #expect(((privacy["bytes_up"] as! Int) > 0) == ((arm["strategy"] as! String) != "baseline"))
            #expect(privacy["parameters_exposed"] is Int)
        }
        let full = result.metrics.arms[0], bitfit = result.metrics.arms[1]
        #expect(full.privacy.parametersExposed == result.metrics.model.parameters)
        // 21 inputs → 8 → 1: biases are 8 + 1
        #expect(bitfit.privacy.parametersExposed == 9)
        #expect(bitfit.privacy.bytesUp < full.privacy.bytesUp)
        #expect(full.rounds.count == 3, "round 0 (pretrained) plus two rounds")

        let csv = try String(contentsOf: output.predictions, encoding: .utf8).split(separator: "\n")
        #expect(csv.first == "arm,site,person_id,label,score,sex,race,age_band,seed")
        let testPatients = result.metrics.sites.reduce(0) { $0 + $1.testSize }
        #expect(csv.count == 1 + 5 * testPatients)
        // A single-seed run's rows name its seed (they once said 0).
        #expect(csv.dropFirst().allSatisfy { $0.hasSuffix(",\(scenario.seed)") })
        // The pretrained baseline is round 0 of every arm; local and pooled train without exposing anything.
        let baselines = result.metrics.arms.filter(\.kind.isBaseline)
        #expect(baselines.map(\.kind) == [.baseline(.startingModel), .baseline(.localOnly), .baseline(.pooled)])
        #expect(baselines.map(\.final)[0] == full.rounds[0].evaluation)
        #expect(baselines.allSatisfy { $0.privacy.bytesUp == 0 && $0.privacy.parametersExposed == 0 })
        #expect(baselines[1].final != baselines[0].final && baselines[2].final != baselines[0].final)

        let markdown = try String(contentsOf: output.report, encoding: .utf8)
        #expect(markdown.contains("| full | full |"))
        #expect(markdown.contains("| bitfit | bitfit |"))
        #expect(markdown.contains("## Sites at a glance"))
        for section in ["## Accuracy", "## Bias drift by subgroup", "### sex", "### age band", "### race", "## Privacy footprint",
                        "**How different are the sites?**", "MIA AUC", "equalised-odds drift", "## Paired comparisons"] {
            #expect(markdown.contains(section), "report lacks \(section)")
        }
        // Every chart is well-formed XML, linked from the report.
        #expect(output.charts.map(\.lastPathComponent) == ["accuracy-by-round.svg", "bias-sex-by-round.svg", "bias-age_band-by-round.svg",
                                                           "bias-race-by-round.svg", "accuracy-vs-bytes.svg", "per-site-accuracy.svg", "comparisons.svg",
                                                           "sites.svg"])
        for chart in output.charts {
            let svg = try String(contentsOf: chart, encoding: .utf8)
            #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
            #expect(XMLParser(data: Data(svg.utf8)).parse(), "\(chart.lastPathComponent) must be well-formed XML")
            #expect(markdown.contains("(\(scenario.name)/\(chart.lastPathComponent))"), "\(chart.lastPathComponent) is not linked")
        }
        // The new numbers are all there: AUPRC, ECE, subgroup audits, drift, membership inference, parameter drift.
        for arm in result.metrics.arms {
            #expect(arm.final.auprc != nil && arm.final.ece.isFinite)
            #expect(arm.final.subgroups.map(\.attribute) == ["sex", "age_band", "race"])
            #expect(Set(arm.membershipInference.keys) == ["north", "south"])
            #expect(arm.membershipInference.values.allSatisfy { (0...1).contains($0) })
            #expect(arm.name == "pretrained" ? arm.biasDrift.isEmpty : !arm.biasDrift.isEmpty)
        }
        #expect(full.rounds[0].parameterDrift == ParameterDrift(l2: 0, relative: 0))
        #expect(full.rounds.dropFirst().allSatisfy { ($0.parameterDrift?.l2 ?? 0) > 0 })
        #expect(result.metrics.sites.allSatisfy { $0.featureDistance > 0 })

        // `sitefit report` redraws the same bytes from metrics.json alone.
        let saved = try ReportWriter.readMetrics(output.metrics)
        #expect(saved == result.metrics)
        let again = folder.appendingPathComponent("Again")
        let (report, charts) = try ReportWriter.writeReport(saved, to: again)
        #expect(try Data(contentsOf: report) == Data(contentsOf: output.report))
        for (a, b) in zip(charts, output.charts) { #expect(try Data(contentsOf: a) == Data(contentsOf: b)) }
    }

    @Test("every fine-tuning mode runs; LoRA and adapters start exactly at the pretrained model")
    func allModes() async throws {
        let folder = try tinyScenario()
        let text = try String(contentsOf: folder.appendingPathComponent("tiny.yaml"), encoding: .utf8)
        let arms = """
            arms:
              - mode: full
              - mode: bitfit
              - mode: bitfit+head
              - mode: head
              - mode: lora
                lora: {rank: 2, alpha: 4}
              - mode: adapter
                adapter: {bottleneck: 3}
            """
        let modes = text.components(separatedBy: "arms:")[0] + arms
        try Data(modes.replacingOccurrences(of: "hidden: [8]", with: "hidden: [8]\n  layer_norm: true\n  activation: gelu").utf8)
            .write(to: folder.appendingPathComponent("modes.yaml"))
        let scenario = try ScenarioLoader.load(folder.appendingPathComponent("modes.yaml"))
        let result = try await Simulation.run(scenario)
        let byName = Dictionary(uniqueKeysWithValues: result.metrics.arms.map { ($0.name, $0) })
        // 21 → 8 → 1 with LayerNorm: biases 8 + 1, LayerNorm β 8; head 8 + 1.
        #expect(byName["bitfit"]?.privacy.parametersExposed == 17)
        #expect(byName["bitfit+head"]?.privacy.parametersExposed == 17 + 8)
        #expect(byName["head"]?.privacy.parametersExposed == 9)
        // LoRA r = 2 on both layers: 2·(21 + 8) + 2·(8 + 1)
        #expect(byName["lora"]?.privacy.parametersExposed == 2 * 29 + 2 * 9)
        // one adapter after the hidden layer: 3·8 + 3 + 8·3 + 8
        #expect(byName["adapter"]?.privacy.parametersExposed == 59)
        let start = byName["full"]!.rounds[0].evaluation
        for arm in result.metrics.arms { #expect(arm.rounds[0].evaluation == start, "\(arm.name) must start at the pretrained model") }
        #expect(byName["bitfit"]!.compute.trainingFlopsPerSiteRound < byName["full"]!.compute.trainingFlopsPerSiteRound)
        #expect(byName["bitfit"]!.compute.optimizerStateBytes == 2 * 4 * 17)
    }

    @Test("every strategy runs: FedAvg, FedProx, FedAdam, FedYogi, FedAdagrad")
    func strategies() async throws {
        let folder = try tinyScenario()
        let text = try String(contentsOf: folder.appendingPathComponent("tiny.yaml"), encoding: .utf8)
        let arms = """
            arms:
              - {name: avg, mode: full}
              - {name: prox, mode: full, strategy: fedprox, proximal_mu: 0.1}
              - {name: adam, mode: bitfit, strategy: fedadam, server_learning_rate: 0.05}
              - {name: yogi, mode: full, strategy: fedyogi}
              - {name: adagrad, mode: full, strategy: fedadagrad, server_learning_rate: 0.3}
              - {name: personal, mode: full, strategy: personalized}
            """
        try Data((text.components(separatedBy: "arms:")[0] + arms).utf8).write(to: folder.appendingPathComponent("s.yaml"))
        let scenario = try ScenarioLoader.load(folder.appendingPathComponent("s.yaml"))
        #expect(scenario.arms.map(\.strategyName) == ["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "personalized"])
        // Each scenario name builds the strategy of that name, carrying the arm's settings.
        for arm in scenario.arms { #expect(arm.makeStrategy(trainedCount: 3).name == arm.strategyName) }
        #expect(scenario.arms[1].makeStrategy(trainedCount: 3).proximalMu == 0.1)
        #expect((scenario.arms[2].makeStrategy(trainedCount: 3) as? FedAdam)?.settings.learningRate == 0.05)
        let result = try await Simulation.run(scenario)
        let finals = result.metrics.arms.map(\.final.accuracy)
        #expect(finals.allSatisfy { $0.isFinite && $0 > 0.5 })
        #expect(result.metrics.arms.map(\.kind) == ["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "personalized"]
            .map { ArmKind.federated(strategy: $0) } + [.baseline(.startingModel), .baseline(.localOnly), .baseline(.pooled)])
        // Personalised BitFit shares the weights (21·8 + 8·1) and keeps the 9 biases on site.
        let personal = result.metrics.arms.first { $0.name == "personal" }!
        #expect(personal.privacy.parametersExposed == 176)
        #expect(personal.privacy.tensorsExposed == ["layers.0.weight", "layers.1.weight"])
        #expect(personal.final != result.metrics.arms[0].final)
        // Different server rules give different models.
        #expect(result.metrics.arms[0].final != result.metrics.arms[3].final)

        for wrongArm in ["{mode: full, proximal_mu: 0.1}", "{mode: bitfit, strategy: personalized}"] {
            let wrong = text.components(separatedBy: "arms:")[0] + "arms:\n  - \(wrongArm)\n"
            try Data(wrong.utf8).write(to: folder.appendingPathComponent("wrong.yaml"))
            #expect(throws: DiagnosticList.self) { try ScenarioLoader.load(folder.appendingPathComponent("wrong.yaml")) }
        }
    }

    @Test("the pretrained model is cached by configuration and seed, and a named checkpoint is used as is")
    func checkpointReuse() async throws {
        let folder = try tinyScenario()
        let scenario = try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
        let cache = folder.appendingPathComponent("cache")
        let first = try await Simulation.run(scenario, cacheDirectory: cache)
        let cached = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        #expect(cached.count == 1 && cached[0].hasPrefix("pretrained-"))
        let second = try await Simulation.run(scenario, cacheDirectory: cache)
        #expect(try ReportWriter.metricsJSON(first.metrics) == ReportWriter.metricsJSON(second.metrics))

        try Data(first.checkpoint).write(to: folder.appendingPathComponent("model.safetensors"))
        let text = try String(contentsOf: folder.appendingPathComponent("tiny.yaml"), encoding: .utf8)
        try Data(text.replacingOccurrences(of: "  epochs: 3", with: "  epochs: 3\n  checkpoint: model.safetensors").utf8)
            .write(to: folder.appendingPathComponent("named.yaml"))
        let named = try ScenarioLoader.load(folder.appendingPathComponent("named.yaml"))
        #expect(named.pretraining.checkpoint != nil)
        let third = try await Simulation.run(named)
        #expect(third.metrics.arms.map(\.final) == first.metrics.arms.map(\.final))
    }

    @Test("a stale shard (built from another profile) is refused, not rebuilt")
    func staleShard() async throws {
        let folder = try tinyScenario()
        var scenario = try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
        _ = try Simulation.provisionShards(scenario, logger: .init(label: "test")) { _ in }
        let before = fileHash(scenario.sites[0].shardFile)
        scenario.sites[0].profile.patients += 1
        #expect(throws: (any Error).self) {
            _ = try Simulation.provisionShards(scenario, logger: .init(label: "test")) { _ in }
        }
        #expect(fileHash(scenario.sites[0].shardFile) == before)
    }
}
