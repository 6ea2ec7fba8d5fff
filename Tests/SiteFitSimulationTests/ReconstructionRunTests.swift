import Foundation
import Testing
@testable import SiteFitSimulation
import SiteFitReport
import SiteFitScenario
import SiteFitMetrics
import SiteFitTestSupport

@Suite("The reconstruction experiment in a run")
struct ReconstructionRunTests {
    func scenario(name: String = #function) throws -> Scenario {
        try faultScenario("rounds: 1\noptimizer: sgd\nlearning_rate: 0.05\n", arms: """
              - {name: full, mode: full}
              - {name: bitfit, mode: bitfit}
              - {name: masked, mode: full, secure_aggregation: true}
            reconstruction: {batch_sizes: [1, 8], local_steps: [1, 3], budget: 40, trials: 2}
            expect:
              - {arm: full, leaks_more_than: bitfit, leakage: reconstruction_error, batch_size: 1, local_steps: 1}
            """, name: name)
    }

    @Test("every arm and setting has a row; a masked arm is not attacked; the full update's single patient comes back exactly")
    func rows() async throws {
        let result = try await Simulation.run(try scenario())
        let r = try #require(result.metrics.reconstruction)
        #expect(r.rows.count == 3 * 2 * 2)
        #expect(r.budget == 40 && r.trials == 2)
        let full = try #require(r.rows.first { $0.arm == "full" && $0.batchSize == 1 && $0.localSteps == 1 })
        #expect(full.updates == 3 * 2, "two trials at each of three sites")
        #expect((full.analytic?.error.estimate ?? 1) < 1e-3, "one patient, one step: the ratio attack is exact")
        #expect(full.analytic?.f1.estimate ?? 0 > 0.99 || full.analytic?.f1.count == 0)
        #expect(full.outcomeRateError != nil)
        let bitfit = try #require(r.rows.first { $0.arm == "bitfit" && $0.batchSize == 1 && $0.localSteps == 1 })
        #expect(bitfit.analytic == nil, "no input layer travels under BitFit")
        #expect(bitfit.optimisation != nil && bitfit.chance != nil)
        let masked = r.rows.filter { $0.arm == "masked" }
        #expect(masked.allSatisfy { $0.masked && $0.updates == 0 && $0.chosen == nil })
        let claim = try #require(result.metrics.claims?.first)
        #expect(claim.leakage?.difference.count == 6)
        #expect(claim.holds, "an exact reconstruction against a fit from the prior: the interval excludes 0")
        // Paired: every arm is attacked on the same patients from the same first guesses, so chance scores agree.
        for b in [1, 8] { for s in [1, 3] {
            let chances = r.rows.filter { $0.batchSize == b && $0.localSteps == s && !$0.masked }.map(\.chance)
            #expect(Set(chances.map { $0?.error.estimate }).count == 1, "batch \(b), \(s) steps")
        } }
        // The report shows the experiment and the footprint table quotes batch 1, one step.
        let report = MarkdownReport.render(result.metrics)
        #expect(report.contains("### What a single update reveals"))
        #expect(report.contains("reconstruction F1 (batch 1, 1 step)"))
        #expect(report.contains("| masked | 1 | 1 | 0 | masked |"))
    }

    @Test("the experiment gives the same bits whatever the scheduling, and metrics.json reads back unchanged")
    func deterministic() async throws {
        let scenario = try scenario()
        let a = try await Simulation.run(scenario)
        let b = try await Simulation.run(scenario, sequentialSites: true)
        #expect(try ReportWriter.metricsJSON(a.metrics) == ReportWriter.metricsJSON(b.metrics))
        let data = Data(try ReportWriter.metricsJSON(a.metrics).utf8)
        let read = try ReportWriter.readMetrics(data: data, url: URL(fileURLWithPath: "metrics.json"))
        #expect(try ReportWriter.metricsJSON(read) == ReportWriter.metricsJSON(a.metrics))
    }
}
