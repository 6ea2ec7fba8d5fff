import Foundation
import Testing
@testable import SiteFitEHR
@testable import SiteFitScenario
import SiteFitTestSupport

@Suite("Scenario files: OMOP sites and concept-set tasks")
struct ConceptSetScenarioTests {
    static let scenario = """
        seed: 42
        sites:
          - omop: ../Sites/a.sqlite
          - omop: ../Sites/b.sqlite
        task:
          name: hypertension within ten years of a first visit
          target: {concepts: [9201, 9202], domain: visit_occurrence, prior_observation_days: 0}
          outcome: {concept_set: hypertension.json, domain: condition_occurrence}
          time_at_risk: {start_days: 1, end_days: 3650, minimum_days: 0}
          conditions: [type_2_diabetes, atrial_fibrillation]
        pretraining: none
        arms:
          - mode: full
        """

    static let atlas = """
        {"items": [
          {"concept": {"CONCEPT_ID": 320128, "CONCEPT_NAME": "Essential hypertension"}, "includeDescendants": true, "isExcluded": false},
          {"concept": {"CONCEPT_ID": 4215640}, "includeDescendants": false, "isExcluded": true}
        ]}
        """

    @Test("omop: sites and a concept-set task with an ATLAS concept-set file load as written")
    func loads() throws {
        let folder = try fixture(["Sites/a.sqlite": "x", "Sites/b.sqlite": "x", "Scenarios/s.yaml": Self.scenario,
                                  "Scenarios/hypertension.json": Self.atlas])
        let s = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/s.yaml"))
        #expect(s.sites.map(\.profile.id) == ["a", "b"] && s.sites.allSatisfy(\.omopDatabase))
        #expect(s.task.name == "hypertension within ten years of a first visit")
        guard case .conceptSets(let task) = s.task.cohort else { Issue.record("no concept-set task"); return }
        #expect(task.target == .init(concepts: ConceptSet(concepts: [9201, 9202]), domain: .visitOccurrence))
        #expect(task.outcome.concepts.items == [.init(conceptId: 320128, includeDescendants: true),
                                                .init(conceptId: 4215640, includeDescendants: false, isExcluded: true)])
        #expect(task.priorObservationDays == 0 && task.riskStartDays == 1 && task.riskEndDays == 3650 && task.minimumRiskDays == 0)
    }

    @Test("mistakes are located: a missing database, a target-only key on the outcome, a window that ends first, an outcome concept as a feature")
    func mistakes() throws {
        let broken = Self.scenario
            .replacingOccurrences(of: "../Sites/b.sqlite", with: "../Sites/missing.sqlite")
            .replacingOccurrences(of: "domain: condition_occurrence}", with: "domain: condition_occurrence, prior_observation_days: 30}")
            .replacingOccurrences(of: "end_days: 3650, minimum_days: 0", with: "end_days: 0")
        let folder = try fixture(["Sites/a.sqlite": "x", "Scenarios/s.yaml": broken, "Scenarios/hypertension.json": Self.atlas])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/s.yaml")) }
        #expect(found.map(\.field) == ["sites[1].omop", "task.outcome.prior_observation_days", "task.time_at_risk.end_days"])
        #expect(found[0].problem.contains("sitefit sites import omop") && found[0].line == 4)
        #expect(found[1].problem.contains("unknown key 'prior_observation_days'"))

        // With a valid definition, the outcome's concept listed as a feature is refused.
        let leaky = Self.scenario.replacingOccurrences(of: "[type_2_diabetes, atrial_fibrillation]", with: "[type_2_diabetes, hypertension]")
        let folder2 = try fixture(["Sites/a.sqlite": "x", "Sites/b.sqlite": "x", "Scenarios/s.yaml": leaky,
                                   "Scenarios/hypertension.json": Self.atlas], name: "leaky")
        let leaks = diagnostics { _ = try ScenarioLoader.load(folder2.appendingPathComponent("Scenarios/s.yaml")) }
        #expect(leaks.map(\.field) == ["task.conditions"])
        #expect(leaks.first?.problem.contains("320128") == true && leaks.first?.problem.contains("never features") == true)
    }

    @Test("omop_export: expands to one site per part with files beside the export; its mistakes are located")
    func exportSplit() throws {
        let split = Self.scenario.replacingOccurrences(of: "  - omop: ../Sites/a.sqlite\n  - omop: ../Sites/b.sqlite\n",
                                                       with: "  - omop_export: {from: ../Sites/Export.zip, sites: 3, seed: 9, by: care_site}\n")
        let folder = try fixture(["Sites/Export.zip": "x", "Scenarios/s.yaml": split, "Scenarios/hypertension.json": Self.atlas])
        let s = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/s.yaml"))
        #expect(s.sites.map(\.profile.id) == ["export-1", "export-2", "export-3"] && s.sites.allSatisfy(\.omopDatabase))
        let cut = try #require(s.sites.first?.omopExport)
        #expect(cut.parts == 3 && cut.seed == 9 && cut.byCareSite && cut.name == "export")
        #expect(s.sites[1].shardFile.path.hasSuffix("Sites/export/export-2.sqlite") && cut.importedFile.path.hasSuffix("Sites/export/export.sqlite"))

        let broken = Self.scenario.replacingOccurrences(of: "  - omop: ../Sites/a.sqlite\n  - omop: ../Sites/b.sqlite\n", with: """
              - omop_export: {from: ../Sites/missing.zip, sites: 2}
              - omop_export: {from: ../Sites/Export.zip, sites: 1}
              - omop_export: {from: ../Sites/Export.zip, sites: 2, name: ../x}
              - omop_export: {from: ../Sites/Export.zip, sites: 2, by: hospital}

            """)
        let folder2 = try fixture(["Sites/Export.zip": "x", "Scenarios/s.yaml": broken, "Scenarios/hypertension.json": Self.atlas], name: "broken-export")
        let found = diagnostics { _ = try ScenarioLoader.load(folder2.appendingPathComponent("Scenarios/s.yaml")) }
        #expect(found.map(\.field) == ["sites[0].omop_export.from", "sites[1].omop_export.sites", "sites[2].omop_export.name",
                                        "sites[3].omop_export.by"])
        #expect(found.map(\.line) == [3, 4, 5, 6])
    }

    @Test("an ATLAS file that is not a concept set is a located error that echoes nothing of the file")
    func badAtlas() throws {
        let folder = try fixture(["Sites/a.sqlite": "x", "Sites/b.sqlite": "x", "Scenarios/s.yaml": Self.scenario,
                                  "Scenarios/hypertension.json": #"{"items": [{"concept": {"NAME": "secret 123"}}]}"#])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/s.yaml")) }
        #expect(found.map(\.field) == ["task.outcome.concept_set"])
        #expect(found.first?.problem.hasSuffix("items[0] has no concept.CONCEPT_ID") == true && found.first?.problem.contains("secret") == false)
    }

    @Test("existing cohorts by id load; one id alone, or ids beside concept sets, is a located error")
    func cohortIds() throws {
        let ids = """
            seed: 1
            sites:
              - omop: ../Sites/a.sqlite
            task:
              target_cohort_id: 7
              outcome_cohort_id: 9
            arms:
              - mode: full
            """
        let folder = try fixture(["Sites/a.sqlite": "x", "Scenarios/s.yaml": ids])
        let s = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/s.yaml"))
        #expect(s.task.targetCohortId == 7 && s.task.outcomeCohortId == 9)
        let broken = ids.replacingOccurrences(of: "  outcome_cohort_id: 9\n", with: "  outcome: {concepts: [1], domain: condition_occurrence}\n")
        let folder2 = try fixture(["Sites/a.sqlite": "x", "Scenarios/s.yaml": broken], name: "broken-cohort-ids")
        let found = diagnostics { _ = try ScenarioLoader.load(folder2.appendingPathComponent("Scenarios/s.yaml")) }
        #expect(found.map(\.field).contains("task.target_cohort_id") && found.map(\.field).contains("task.outcome"))
    }
}
