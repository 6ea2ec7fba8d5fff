import Foundation
import Testing
@testable import SiteFitReport
import SiteFitCore
import SiteFitTestSupport

/// The renderer reads kinds, not names: checked on the golden run's metrics, reshaped by hand.
@Suite("Markdown renderer")
struct RendererTests {
    static func golden() throws -> RunMetrics {
        try ReportWriter.readMetrics(repositoryRoot.appendingPathComponent("Tests/SiteFitSimulationTests/Golden/tiny/metrics.json"))
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
    /// The committed reports are golden files too: a renderer change re-renders them on purpose
    /// (`SITEFIT_RECORD_GOLDEN=1`, or `sitefit report` on each metrics.json) and shows in the diff.
    @Test("every committed report and chart is what the renderer draws from its committed metrics.json")
    func committedReports() throws {
        let reports = repositoryRoot.appendingPathComponent("Reports")
        let out = try temporaryDirectory()
        for url in BoundaryTests.committedMetrics where url.path.hasPrefix(reports.path) {
            let (report, charts) = try ReportWriter.writeReport(ReportWriter.readMetrics(url), to: out)
            Golden.expect(try Data(contentsOf: report), matches: reports.appendingPathComponent(report.lastPathComponent))
            for chart in charts {
                Golden.expect(try Data(contentsOf: chart), matches: url.deletingLastPathComponent().appendingPathComponent(chart.lastPathComponent))
            }
        }
    }
}

extension RendererTests {
    @Test("a concept-set task's words and each site's attrition reach the report and survive metrics.json; small counts show as <11")
    func attrition() throws {
        var metrics = try Self.golden()
        metrics.scenario.task = "hypertension (target: …)"
        metrics.sites[0].attrition = CohortAttrition(withTargetEvent: 56, withPriorObservation: 56, withoutPriorOutcome: 43, cohort: 43, outcomes: 7)
        metrics.sites[0].unmatchedConcepts = [9202]
        let back = try JSONDecoder().decode(RunMetrics.self, from: JSONEncoder().encode(metrics))
        #expect(back.scenario.task == metrics.scenario.task && back.sites[0].attrition == metrics.sites[0].attrition)
        let markdown = MarkdownReport.render(back)
        #expect(markdown.contains("Task: hypertension (target: …)."))
        #expect(markdown.contains("| cohort members with the outcome | <11 |"))
        #expect(markdown.contains("| … observed long enough at risk, or with the outcome: the cohort | 43 |"))
        #expect(markdown.contains("concept id 9202 of the task matches no event"))
        // Fewer than 11 removed at a step would give a count away by subtraction: that step shows —.
        var subtracted = try Self.golden()
        subtracted.sites[0].attrition = CohortAttrition(withTargetEvent: 60, withPriorObservation: 55, withoutPriorOutcome: 40, cohort: 40, outcomes: 20)
        let rows = MarkdownReport.render(subtracted).split(separator: "\n")
        #expect(rows.contains("| … with enough observation before it | — |") && rows.contains("| … without the outcome before the time at risk | 40 |"))
        #expect(rows.contains("| cohort members with the outcome | 20 |"))
        // The import's data-quality findings appear per site, small counts as <11.
        var quality = try Self.golden()
        quality.sites[0].dataQuality = [DataQualityFinding(check: "isPrimaryKey", table: "drug_exposure", field: "drug_exposure_id",
                                                           violatingRows: 3, rows: 883, action: .dropped)]
        let qualityBack = try JSONDecoder().decode(RunMetrics.self, from: JSONEncoder().encode(quality))
        #expect(MarkdownReport.render(qualityBack).contains("| north | `isPrimaryKey` | drug_exposure.drug_exposure_id | <11 | 883 | row dropped |"))
        // Without a concept-set task nothing of this appears, and the default task line stays.
        let plain = MarkdownReport.render(try Self.golden())
        #expect(!plain.contains("Cohort attrition") && !plain.contains("Data quality at import") && plain.contains("Task: 1-year incident heart failure"))
    }
}
