import Foundation
import SiteFitCore
import SiteFitNN
import SiteFitReport
import SiteFitScenario
import SiteFitTestSupport
import SiteFitTransformer
import Testing
@testable import SiteFitSimulation

/// The tiny scenario with a transformer as its model and one arm on the MLP.
private func transformerScenario(_ name: String = #function, model: String? = nil, arms: String? = nil) throws -> URL {
    var files = TinyScenario.files
    files["tiny.yaml"] = files["tiny.yaml"]!
        .replacingOccurrences(of: "model:\n  hidden: [8]\n", with: model ?? """
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

            """)
        .replacingOccurrences(of: """
            arms:
              - mode: full
              - mode: bitfit
                learning_rate: 0.01

            """, with: arms ?? """
            arms:
              - mode: full
              - mode: bitfit
                learning_rate: 0.01
              - {name: mlp, mode: full, model: mlp}

            """)
    return try fixture(files, name: name).appendingPathComponent("tiny.yaml")
}

@Suite("A transformer scenario: vocabulary, pretraining, arms on the transformer and the MLP")
struct TransformerScenarioTests {
    @Test("it runs end to end, the same whatever the scheduling, without touching a shard")
    func runsAndIsDeterministic() async throws {
        let file = try transformerScenario()
        let scenario = try ScenarioLoader.load(file)
        #expect(scenario.transformer?.layers == 1 && scenario.arms.map(\.onMLP) == [false, false, true])
        let concurrent = try await Simulation.run(scenario)
        let shards = scenario.sites.map(\.shardFile)
        let before = try shards.map { try Data(contentsOf: $0) }
        let sequential = try await Simulation.run(scenario, sequentialSites: true)
        #expect(try shards.map { try Data(contentsOf: $0) } == before, "a run modified a shard")
        #expect(try ReportWriter.metricsJSON(concurrent.metrics) == ReportWriter.metricsJSON(sequential.metrics))
        #expect(concurrent.predictions == sequential.predictions)

        let m = concurrent.metrics
        let t = try #require(m.model.transformer)
        #expect(t.vocabulary.agreed > 0 && Set(t.vocabulary.reported.keys) == ["north", "south"])
        #expect(t.maskedLosses.count == 2 && t.mlpArms == ["mlp"])
        // The transformer the arms train, rebuilt from the report's shape.
        let network = Transformer(TransformerConfiguration(vocabularySize: t.vocabulary.agreed + 3, timeBuckets: 8, maxLength: 8,
                                                           width: 8, heads: 2, layers: 1, feedForwardWidth: 16))
        #expect(t.parameters == network.layout.count)
        let full = try #require(m.arms.first { $0.name == "full" }), bitfit = try #require(m.arms.first { $0.name == "bitfit" })
        let mlp = try #require(m.arms.first { $0.name == "mlp" })
        #expect(full.privacy.parametersTotal == network.layout.count && full.privacy.parametersExposed == network.layout.count)
        let biases = network.layout.tensors.filter { $0.role.isBiasTerm }.reduce(0) { $0 + $1.count }
        #expect(bitfit.privacy.parametersExposed == biases && bitfit.privacy.parametersTotal == network.layout.count)
        #expect(mlp.privacy.parametersTotal == t.mlpParameters && mlp.privacy.parametersExposed == t.mlpParameters)
        // The MLP's own starting point is a row of its own, and the MLP arm starts there.
        let mlpStart = try #require(m.arms.first { $0.name == "pretrained mlp" })
        #expect(mlpStart.rounds[0].evaluation.auroc == mlp.rounds[0].evaluation.auroc)
        #expect(mlpStart.rounds[0].evaluation.auroc != full.rounds[0].evaluation.auroc, "the transformer starts elsewhere")
        // The baselines train the transformer.
        for name in ["local only", "pooled (simulation only)"] {
            let row = try #require(m.arms.first { $0.name == name })
            #expect(row.privacy.parametersTotal == network.layout.count, "\(name)")
            #expect(row.final.auroc != m.arms.first { $0.name == "pretrained" }?.final.auroc, "\(name) trained")
        }
        // Both models score exactly the same test patients.
        func patients(_ arm: String) -> Set<String> {
            Set(concurrent.predictions.filter { $0.arm == arm }.map { "\($0.site)|\($0.personId)" })
        }
        #expect(!patients("full").isEmpty && patients("full") == patients("mlp"))
        // The checkpoint is the transformer, with the agreed vocabulary in its metadata.
        let (model, vocabulary, _) = try TransformerCheckpoint.decode(concurrent.checkpoint, file: "pretrained.safetensors")
        #expect(model.network.layout.count == t.parameters && vocabulary.count == t.vocabulary.agreed)
        let report = MarkdownReport.render(m)
        #expect(report.contains("A transformer over each patient's sequence of codes"))
        #expect(report.contains("**The MLP** (`mlp`)"))
    }

    @Test("a transformer's settings are checked where they are written")
    func refusedSettings() throws {
        func problems(model: String? = nil, arms: String? = nil, extra: String = "", name: String = #function,
                      pretrainingNone: Bool = false) throws -> [Diagnostic] {
            let file = try transformerScenario(name, model: model, arms: arms)
            var text = try String(contentsOf: file, encoding: .utf8) + "\n" + extra
            if pretrainingNone { text = text.replacingOccurrences(of: "pretraining:\n  patients: 600\n  epochs: 3\n", with: "pretraining: none\n") }
            try text.write(to: file, atomically: true, encoding: .utf8)
            return diagnostics { _ = try ScenarioLoader.load(file) }
        }
        let width = try problems(model: "model:\n  kind: transformer\n  width: 9\n", name: "width")
        #expect(width.map(\.field) == ["model.width"] && width.first?.problem == "2 heads do not divide the width 9")
        let masked = try problems(model: "model:\n  kind: transformer\n  masked_epochs: 3\n", extra: "", name: "masked")
        #expect(masked.isEmpty)
        let unpretrained = try problems(model: "model:\n  kind: transformer\n  masked_epochs: 3\n", name: "unpretrained", pretrainingNone: true)
        #expect(unpretrained.map(\.field) == ["model.masked_epochs"])
        let heads = try problems(model: "model:\n  kind: transformer\n  width: 10\n  heads: 4\n", name: "heads")
        #expect(heads.map(\.field) == ["model.heads"] && heads.first?.line == 8)
        #expect(heads.first?.problem == "4 heads do not divide the width 10")
        let noKind = try problems(model: "model:\n  layers: 2\n", name: "noKind")
        // The MLP arm's `model: mlp` is refused too: this scenario's model is the MLP.
        #expect(noKind.map(\.field) == ["model.layers", "arms[2].model"] && noKind.first?.problem.contains("add `kind: transformer`") == true)
        let onMLP = try problems(model: "model:\n  hidden: [8]\n", name: "onMLP")
        #expect(onMLP.map(\.field) == ["arms[2].model"])
        let loraLayers = try problems(arms: "arms:\n  - {mode: lora, lora: {layers: [0]}}\n", name: "loraLayers")
        #expect(loraLayers.map(\.field) == ["arms[0].lora"] && loraLayers.first?.problem.contains("every attention projection") == true)
        let sites = try problems(model: "model:\n  kind: transformer\n  vocabulary: {minimum_sites: 3}\n", name: "sites")
        // Anchored at the key itself (line 7), not at `model:` (line 5).
        #expect(sites.map(\.field) == ["model.vocabulary.minimum_sites"] && sites.first?.line == 7)
        let long = try problems(model: "model:\n  kind: transformer\n  layers: 12\n  heads: 16\n  width: 32\n  max_length: 512\n", name: "long")
        #expect(long.map(\.field) == ["model.max_length"] && long.first?.problem.contains("attention scores per patient") == true)
        let attack = try problems(extra: "reconstruction: {batch_sizes: [1], local_steps: [1]}\n", name: "attack")
        #expect(attack.map(\.field).contains("reconstruction"), "\(attack)")
    }

    @Test("the estimate counts the transformer: a large one passes every per-field limit but not the budget")
    func estimateCountsTheTransformer() throws {
        let small = try ScenarioLoader.load(try transformerScenario("estimateSmall"))
        let large = try ScenarioLoader.load(try transformerScenario("estimateLarge", model: """
            model:
              kind: transformer
              layers: 12
              width: 512
              heads: 8
              feed_forward: 2048
              max_length: 128

            """))
        // The same scenario with every arm on the MLP: the difference is the transformer's cost alone.
        var plain = small
        plain.transformer = nil
        plain.arms = plain.arms.map { var arm = $0; arm.onMLP = false; return arm }
        let (s, l, m) = (ResourceEstimate.of(small, cores: 2), ResourceEstimate.of(large, cores: 2), ResourceEstimate.of(plain, cores: 2))
        #expect(s.flops > 2 * m.flops && s.memoryBytes > m.memoryBytes && s.parameters > m.parameters, "\(s.summary) against the MLP's \(m.summary)")
        #expect(s.refusal(within: .standard) == nil)
        #expect(l.parameters > 30_000_000 && l.refusal(within: .standard) != nil, "\(l.summary)")
    }

    @Test("a cached pretrained transformer gives the same run as a fresh one, and a changed model misses the cache")
    func cacheIsExact() async throws {
        let file = try transformerScenario()
        let scenario = try ScenarioLoader.load(file)
        let cache = file.deletingLastPathComponent().appendingPathComponent(".cache")
        let fresh = try await Simulation.run(scenario)
        let first = try await Simulation.run(scenario, cacheDirectory: cache)
        let cached = try await Simulation.run(scenario, cacheDirectory: cache)
        func transformers() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: cache.path).filter { $0.hasPrefix("pretrained-transformer-") }
        }
        #expect(try transformers().count == 1)
        #expect(try ReportWriter.metricsJSON(fresh.metrics) == ReportWriter.metricsJSON(first.metrics))
        #expect(try ReportWriter.metricsJSON(fresh.metrics) == ReportWriter.metricsJSON(cached.metrics))
        #expect(fresh.predictions == cached.predictions && fresh.checkpoint == cached.checkpoint)
        var longer = scenario
        longer.transformer?.sequences.maxLength = 6
        _ = try await Simulation.run(longer, cacheDirectory: cache)
        #expect(try transformers().count == 2)
    }
}
