import Foundation
import Testing
@testable import SiteFitEHR
@testable import SiteFitReport
@testable import SiteFitScenario
@testable import SiteFitSimulation
import SiteFitTestSupport

@Suite("A concept-set task with automatic covariates over omop: sites, end to end")
struct OMOPTaskTests {
    @Test("the sites agree the covariates, the model's input follows them, and the report shows the task, attrition and agreement")
    func endToEnd() async throws {
        let folder = try fixture([
            "north.yaml": "name: North\nseed: 1\npatients: 400\noutcome_prevalence: 0.25\n",
            "south.yaml": "name: South\nseed: 2\npatients: 300\noutcome_prevalence: 0.25\n",
            "task.yaml": """
                seed: 7
                sites:
                  - omop: north.sqlite
                  - omop: south.sqlite
                task:
                  target: {concepts: [9202], domain: visit_occurrence, prior_observation_days: 0}
                  outcome: {concepts: [316139], domain: condition_occurrence}
                  time_at_risk: {start_days: 1, end_days: 365, minimum_days: 0}
                pretraining: none
                model: {hidden: [8]}
                federation: {rounds: 2, batch_size: 16}
                arms:
                  - mode: full
                """,
        ])
        for site in ["north", "south"] {
            let profile = try SiteProfileLoader.load(folder.appendingPathComponent("\(site).yaml"))
            try ShardBuilder.build(profile: profile, to: folder.appendingPathComponent("\(site).sqlite"))
        }
        let scenario = try ScenarioLoader.load(folder.appendingPathComponent("task.yaml"))
        #expect(scenario.task.automatic && scenario.sites.allSatisfy(\.omopDatabase))
        let result = try await Simulation.run(scenario)
        let agreement = try #require(result.metrics.scenario.covariates)
        #expect(agreement.agreed > 0 && agreement.reported.keys.sorted() == ["north", "south"])
        #expect(agreement.bytesUp["north"] == 15 * (agreement.reported["north"] ?? 0))
        let features = result.metrics.model.features
        #expect(features.count == 3 + AutomaticCovariates.ageGroups + agreement.agreed && result.metrics.model.widths.first == features.count)
        #expect(!features.contains { $0.hasPrefix("condition_occurrence.316139.") }, "the outcome is never a feature")
        let attrition = try #require(result.metrics.sites.first?.attrition)
        #expect(attrition.cohort > 0 && attrition.cohort == result.metrics.sites[0].cohortSize)
        let markdown = MarkdownReport.render(result.metrics)
        #expect(markdown.contains("### Cohort attrition") && markdown.contains("Before training, the sites agreed the covariates"))
        #expect(markdown.contains("Task: (target: each person's first event of concept 9202+ in visit_occurrence"))
        let back = try JSONDecoder().decode(RunMetrics.self, from: Data(ReportWriter.metricsJSON(result.metrics).utf8))
        #expect(back == result.metrics)
    }
}
