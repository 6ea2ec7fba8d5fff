import Foundation
import GRDB
import Logging
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

    @Test("an omop_export: site imports and cuts the export on first use, reuses the parts after, and refuses parts cut otherwise")
    func exportSplitSites() throws {
        let folder = try fixture(["north.yaml": "name: North\nseed: 3\npatients: 120\noutcome_prevalence: 0.25\n"])
        let profile = try SiteProfileLoader.load(folder.appendingPathComponent("north.yaml"))
        let built = folder.appendingPathComponent("north.sqlite")
        try ShardBuilder.build(profile: profile, to: built)
        let csv = folder.appendingPathComponent("export")
        try OMOPCSV.export(SiteShard(site: "north", url: built), to: csv)
        func scenario(_ sites: Int, seed: Int) throws -> Scenario {
            let file = folder.appendingPathComponent("split-\(sites)-\(seed).yaml")
            try """
                seed: 7
                sites:
                  - omop_export: {from: export, sites: \(sites), name: cut, seed: \(seed)}
                task:
                  target: {concepts: [9202], domain: visit_occurrence, prior_observation_days: 0}
                  outcome: {concepts: [316139], domain: condition_occurrence}
                  time_at_risk: {start_days: 1, end_days: 365, minimum_days: 0}
                pretraining: none
                arms: [{mode: full}]
                """.write(to: file, atomically: true, encoding: .utf8)
            return try ScenarioLoader.load(file)
        }
        let two = try scenario(2, seed: 1)
        #expect(two.sites.map(\.profile.id) == ["cut-1", "cut-2"] && two.sites.allSatisfy(\.omopDatabase))
        let shards = try Simulation.provisionShards(two, logger: .init(label: "test"), progress: { _ in })
        let persons = try shards.map { shard in try shard.reader.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM person") ?? 0 } }
        #expect(persons.reduce(0, +) == 120 && persons.allSatisfy { $0 > 0 }, "every person in exactly one part")
        let part = folder.appendingPathComponent("cut/cut-1.sqlite")
        let before = try Data(contentsOf: part)
        _ = try Simulation.provisionShards(two, logger: .init(label: "test"), progress: { _ in })
        #expect(try Data(contentsOf: part) == before, "a second run reads the parts, never recuts them")
        #expect(throws: ShardError.self) { try Simulation.provisionShards(scenario(3, seed: 1), logger: .init(label: "test"), progress: { _ in }) }
        do {
            _ = try Simulation.provisionShards(scenario(2, seed: 2), logger: .init(label: "test"), progress: { _ in })
            Issue.record("parts cut with another seed were accepted")
        } catch let error as ShardError {
            #expect(error.problem.contains("not cut as the scenario asks"))
        }
        #expect(try Data(contentsOf: part) == before, "a refused run leaves the parts as they were")
    }
}
