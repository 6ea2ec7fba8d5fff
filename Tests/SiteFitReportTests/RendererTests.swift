import Foundation
import Testing
@testable import SiteFitReport

/// The renderer reads kinds, not names: checked on the golden run's metrics, reshaped by hand.
@Suite("Markdown renderer")
struct RendererTests {
    static func golden() throws -> RunMetrics {
        try ReportWriter.readMetrics(BoundaryTests.repository.appendingPathComponent("Tests/SiteFitSimulationTests/Golden/tiny/metrics.json"))
    }

    /// The golden run as it would read under `pretraining: none`: the starting-model baseline is
    /// named "initial model".
    static func withoutPretraining() throws -> RunMetrics {
        var metrics = try golden()
        metrics.pretraining.pretrained = false
        for index in metrics.arms.indices where metrics.arms[index].kind == .baseline(.startingModel) {
            metrics.arms[index].name = ArmKind.Baseline.startingModel.armName(startsPretrained: false)
        }
        return metrics
    }

    @Test("each group's table lists the starting model once, named 'pretrained' or 'initial model'", arguments: [true, false])
    func startingModelOnce(_ pretrained: Bool) throws {
        let metrics = try pretrained ? Self.golden() : Self.withoutPretraining()
        let start = pretrained ? "pretrained model" : "initial model"
        let markdown = MarkdownReport.render(metrics)
        for group in ["female", "male"] {
            let models = markdown.split(separator: "\n").filter { $0.hasPrefix("| \(group) | ") }
                .map { $0.split(separator: "|")[1].trimmingCharacters(in: .whitespaces) }
            #expect(models == [start, "full", "bitfit", "local only", "pooled (simulation only)"], "\(group)")
        }
    }
}

extension RendererTests {
    @Test("every committed report and chart is what the renderer draws from its committed metrics.json")
    func committedReports() throws {
        let reports = BoundaryTests.repository.appendingPathComponent("Reports")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sitefit-rerender-\(ProcessInfo.processInfo.processIdentifier)")
        for url in BoundaryTests.committedMetrics where url.path.hasPrefix(reports.path) {
            let (report, charts) = try ReportWriter.writeReport(ReportWriter.readMetrics(url), to: out)
            #expect(try Data(contentsOf: report) == Data(contentsOf: reports.appendingPathComponent(report.lastPathComponent)),
                    "\(report.lastPathComponent)")
            for chart in charts {
                let committed = url.deletingLastPathComponent().appendingPathComponent(chart.lastPathComponent)
                #expect(try Data(contentsOf: chart) == Data(contentsOf: committed), "\(committed.path)")
            }
        }
    }
}
