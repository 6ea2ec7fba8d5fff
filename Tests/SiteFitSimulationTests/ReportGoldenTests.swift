import Foundation
import Testing
@testable import SiteFitReport
@testable import SiteFitScenario
@testable import SiteFitSimulation
import SiteFitTestSupport

/// The report of a tiny scenario against a golden file. The renderer is checked from a committed
/// metrics.json, so the golden does not depend on the CPU's floating-point summation order;
/// `SITEFIT_RECORD_GOLDEN=1` re-runs the scenario and records both files (and fails, see `Golden`).
@Suite("Report golden file and multi-seed runs")
struct ReportGoldenTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    @Test("the tiny scenario's report matches Golden/tiny.md, rendered from Golden/tiny/metrics.json")
    func golden() async throws {
        let metricsURL = Self.golden.appendingPathComponent("tiny/metrics.json")
        if Golden.isRecording {
            let folder = try tinyScenario()
            var scenario = try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
            scenario.file = "tiny.yaml"
            let result = try await Simulation.run(scenario)
            var metrics = result.metrics
            metrics.sites = metrics.sites.map { var s = $0; s.shard = "Sites/\(s.id).sqlite"; return s }
            Golden.record(Data(try ReportWriter.metricsJSON(metrics).utf8), to: metricsURL)
        }
        let metrics = try ReportWriter.readMetrics(metricsURL)
        let (report, charts) = try ReportWriter.writeReport(metrics, to: try temporaryDirectory())
        Golden.expect(try Data(contentsOf: report), matches: Self.golden.appendingPathComponent("tiny.md"))
        for chart in charts {
            Golden.expect(try Data(contentsOf: chart), matches: Self.golden.appendingPathComponent("tiny/\(chart.lastPathComponent)"))
        }
    }

    @Test("several seeds: every table is the mean of the seeds' own runs, and the comparisons hold every seed")
    func seeds() async throws {
        let folder = try tinyScenario()
        let url = folder.appendingPathComponent("tiny.yaml")
        let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "seed: 5\n", with: "seeds: [5, 8]\n")
        try Data(text.utf8).write(to: url)
        let scenario = try ScenarioLoader.load(url)
        #expect(scenario.seed == 5 && scenario.extraSeeds == [8])
        let both = try await Simulation.run(scenario)
        var single = scenario
        single.extraSeeds = []
        let first = try await Simulation.run(single)
        single.seed = 8
        single.pretraining.source.seed = 9
        let second = try await Simulation.run(single)
        let summary = try #require(both.metrics.seeds)
        #expect(summary.seeds == [5, 8])
        // Every table is the mean over seeds: each arm is its seeds' runs averaged, number by number.
        #expect(both.metrics.arms == zip(first.metrics.arms, second.metrics.arms).map { ArmMetrics.averaged([$0, $1]) })
        #expect(abs(both.metrics.arms[0].final.auroc! - (first.metrics.arms[0].final.auroc! + second.metrics.arms[0].final.auroc!) / 2) < 1e-12)
        #expect(both.metrics.comparisons?.seeds == 2 && both.metrics.comparisons?.differences.first?.perSeed.count == 2)
        for (i, arm) in summary.arms.enumerated() {
            let expected = (first.metrics.arms[i].final.accuracy + second.metrics.arms[i].final.accuracy) / 2
            #expect(abs(arm.accuracy.mean - expected) < 1e-12 && arm.accuracy.count == 2)
        }
        #expect(MarkdownReport.render(both.metrics).contains("### Across 2 seeds"))
    }
}
