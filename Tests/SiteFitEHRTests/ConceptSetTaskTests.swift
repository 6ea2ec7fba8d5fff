import Foundation
import GRDB
import Testing
@testable import SiteFitCore
@testable import SiteFitEHR
import SiteFitTestSupport

@Suite("Concept-set tasks: the cohort, its attrition and its labels, as PatientLevelPrediction defines them")
struct ConceptSetTaskTests {
    static let target = 900_001, targetChild = 900_002, outcome = 900_010

    /// Eleven persons, one edge of the definition each (index 2020-06-01 unless said otherwise).
    static func database() throws -> DatabaseQueue {
        let db = try DatabaseQueue()
        try db.write { db in
            try ShardSchema.create(in: db)
            // (person, observation start, observation end, target events, outcome events)
            let people: [(Int, String, String, [(Int, String)], [String])] = [
                (1, "2018-01-01", "2022-12-31", [(target, "2020-06-01")], ["2020-12-01"]),       // in, outcome
                (2, "2020-01-01", "2022-12-31", [(target, "2020-06-01")], []),                   // too little prior observation
                (3, "2018-01-01", "2022-12-31", [(target, "2020-06-01")], ["2020-05-01"]),       // outcome before index
                (4, "2018-01-01", "2020-09-01", [(target, "2020-06-01")], []),                   // too short at risk
                (5, "2018-01-01", "2020-09-01", [(target, "2020-06-01")], ["2020-08-01"]),       // short, but the outcome: in
                (6, "2015-01-01", "2022-12-31", [(target, "2020-06-01"), (target, "2019-03-01")], ["2020-07-01"]), // first event; outcome too late
                (7, "2015-01-01", "2022-12-31", [], ["2020-07-01"]),                             // no target event
                (8, "2015-01-01", "2022-12-31", [(targetChild, "2020-06-01")], []),              // a descendant of the target concept
                (9, "2015-01-01", "2022-12-31", [(target, "2020-06-01")], ["2021-06-01"]),       // outcome on the last day at risk: in
                (10, "2015-01-01", "2022-12-31", [(target, "2020-06-01")], ["2020-06-01"]),      // outcome on the index day: prior
                (11, "2019-01-01", "2022-12-31", [(target, "2018-01-01"), (target, "2020-06-01")], []), // first event unobserved: index 2020-06-01
            ]
            var event = 0
            for (person, start, end, targets, outcomes) in people {
                try db.execute(sql: "INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id) VALUES (?, 8507, 1950, 8527, 0)", arguments: [person])
                try db.execute(sql: "INSERT INTO observation_period VALUES (?, ?, ?, ?, 32817)", arguments: [person, person, start, end])
                for (concept, date) in targets {
                    event += 1
                    try db.execute(sql: "INSERT INTO drug_exposure (drug_exposure_id, person_id, drug_concept_id, drug_exposure_start_date, drug_type_concept_id) VALUES (?, ?, ?, ?, 32817)",
                                   arguments: [event, person, concept, date])
                }
                for date in outcomes {
                    event += 1
                    try db.execute(sql: "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, condition_start_date, condition_type_concept_id) VALUES (?, ?, ?, ?, 32817)",
                                   arguments: [event, person, outcome, date])
                }
            }
            // As OHDSI vocabularies have them: every concept its own ancestor, at level 0.
            try db.execute(sql: "INSERT INTO concept_ancestor VALUES (?, ?, 0, 0), (?, ?, 1, 1), (?, ?, 0, 0)",
                           arguments: [target, target, target, targetChild, targetChild, targetChild])
        }
        return db
    }

    static let task = ConceptSetTask(target: .init(concepts: ConceptSet(concepts: [target]), domain: .drugExposure),
                                     outcome: .init(concepts: ConceptSet(concepts: [outcome]), domain: .conditionOccurrence),
                                     priorObservationDays: 365, riskStartDays: 1, riskEndDays: 365)

    @Test("attrition counts each step by hand; the cohort and its labels are the ones worked out person by person")
    func attritionAndLabels() throws {
        let db = try Self.database()
        let attrition = try db.read { try Self.task.attrition($0) }
        #expect(attrition == CohortAttrition(withTargetEvent: 10, withPriorObservation: 9, withoutPriorOutcome: 7, cohort: 6, outcomes: 3))
        var spec = FeatureSpec.heartFailure
        spec.cohort = .conceptSets(Self.task)
        let extract = try db.read { try CohortExtraction.extract($0, spec: spec, site: "t", file: "t") }
        #expect(extract.personIds == [1, 5, 6, 8, 9, 11])
        #expect(extract.labels == [1, 1, 0, 0, 1, 0])
        #expect(extract.indexDates == ["2020-06-01", "2020-06-01", "2019-03-01", "2020-06-01", "2020-06-01", "2020-06-01"])
        #expect(try db.read { try Self.task.unmatchedConcepts($0) }.isEmpty)
    }

    @Test("without descendants the child concept's person is not in the target; excluded concepts and unknown ids are honoured")
    func conceptSets() throws {
        let db = try Self.database()
        var task = Self.task
        task.target.concepts = ConceptSet(concepts: [Self.target], descendants: false)
        #expect(try db.read { try task.attrition($0) }.withTargetEvent == 9)
        task.target.concepts = ConceptSet(items: [.init(conceptId: Self.target), .init(conceptId: Self.targetChild, isExcluded: true)])
        #expect(try db.read { try task.attrition($0) }.withTargetEvent == 9)
        // An excluded concept with its descendants (each concept its own descendant) stays excluded.
        task.target.concepts = ConceptSet(items: [.init(conceptId: Self.target), .init(conceptId: Self.targetChild, includeDescendants: true, isExcluded: true)])
        #expect(try db.read { try task.attrition($0) }.withTargetEvent == 9)
        task.target.concepts = ConceptSet(concepts: [Self.target, 123_456_789])
        #expect(try db.read { try task.unmatchedConcepts($0) } == [123_456_789])
    }

    @Test("on the real MIMIC-IV demo export the cohort count equals an independent count worked out in Swift from the raw rows")
    func mimicAgainstIndependentCount() throws {
        let (_, shard) = try OMOPImportTests.importExport("MIMIC_5.3_partial.zip", site: "mimic", version: "5.3.1", rows: [:])
        // Target: first essential hypertension; outcome: atrial fibrillation within 1-365 days.
        let task = ConceptSetTask(target: .init(concepts: ConceptSet(concepts: [OMOPConcept.hypertension]), domain: .conditionOccurrence),
                                  outcome: .init(concepts: ConceptSet(concepts: [OMOPConcept.atrialFibrillation]), domain: .conditionOccurrence),
                                  priorObservationDays: 0, riskStartDays: 1, riskEndDays: 365, minimumRiskDays: 0)
        let attrition = try shard.reader.read { try task.attrition($0) }
        // The same definition by hand: per person, dates as day numbers.
        let expected = try shard.reader.read { (db: Database) throws -> (Int, Int) in
            func day(_ iso: String) -> Int {
                let p = iso.prefix(10).split(separator: "-").compactMap { Int($0) }
                return CivilDate.days(year: p[0], month: p[1], day: p[2])
            }
            var first: [Int64: Int] = [:], outcomes: [Int64: [Int]] = [:], periods: [Int64: [(Int, Int)]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT person_id, observation_period_start_date, observation_period_end_date FROM observation_period") {
                periods[row[0], default: []].append((day(row[1]), day(row[2])))
            }
            for row in try Row.fetchAll(db, sql: "SELECT person_id, condition_concept_id, condition_start_date FROM condition_occurrence") {
                let person: Int64 = row[0], concept: Int = row[1], date = day(row[2])
                let observed = periods[person]?.contains { $0.0 <= date && date <= $0.1 } ?? false
                if concept == OMOPConcept.hypertension && observed { first[person] = min(first[person] ?? .max, date) }
                if concept == OMOPConcept.atrialFibrillation { outcomes[person, default: []].append(date) }
            }
            var cohort = 0, cases = 0
            for (person, index) in first {
                guard let end = periods[person]?.filter({ $0.0 <= index && $0.1 >= index }).map(\.1).max() else { continue }
                let dates = outcomes[person] ?? []
                if dates.contains(where: { $0 < index + 1 }) { continue }
                cohort += 1
                if dates.contains(where: { $0 >= index + 1 && $0 <= min(index + 365, end) }) { cases += 1 }
            }
            return (cohort, cases)
        }
        #expect(attrition.withTargetEvent == 53)
        // Split into two sites, each part carries its own plausibility findings (every MIMIC birth year is in the future).
        let parts = try ShardSplit.split(shard, parts: 2, into: try temporaryDirectory("mimicsplit"), name: "m", byCareSite: false, seed: 42,
                                         currentYear: 2026).parts
        for part in parts {
            let findings = try SiteShard(site: "m", url: part.file).reader.read { try DataQualityFinding.stored(in: $0) }
            #expect(findings == [DataQualityFinding(check: "plausibleValueHigh", table: "person", field: "year_of_birth",
                                                    violatingRows: part.persons, rows: part.persons, action: .kept)])
        }
        #expect(attrition.cohort == expected.0 && attrition.outcomes == expected.1, "\(attrition) vs \(expected)")
        #expect(attrition.cohort > 0)
    }
}

@Suite("Automatic covariates: site counts with small cells left out, the server's agreement, the extracted columns")
struct AutomaticCovariateTests {
    /// The concept-set test database with covariate events added: condition 111 in the last 30
    /// days for persons 1, 5 and 8 and ten months before for person 9; condition 222 on person
    /// 1's index date. The target drug itself is in every target person's window.
    static func database() throws -> DatabaseQueue {
        let db = try ConceptSetTaskTests.database()
        try db.write { db in
            for (id, person, concept, date) in [(501, 1, 111, "2020-05-20"), (502, 5, 111, "2020-05-20"), (503, 8, 111, "2020-05-20"),
                                                (504, 9, 111, "2019-09-01"), (505, 1, 222, "2020-06-01")] {
                try db.execute(sql: "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, condition_start_date, condition_type_concept_id) VALUES (?, ?, ?, ?, 32817)",
                               arguments: [id, person, concept, date])
            }
        }
        return db
    }

    static func spec() -> FeatureSpec {
        var spec = FeatureSpec.heartFailure
        spec.cohort = .conceptSets(ConceptSetTaskTests.task)
        spec.conditions = []
        spec.measurements = []
        spec.drugs = []
        spec.automatic = true
        return spec
    }

    @Test("a site counts cohort persons per concept and window as worked out by hand; cells under the minimum are not reported")
    func siteCounts() throws {
        let db = try Self.database()
        let all = try db.read { try AutomaticCovariates.siteCounts($0, spec: Self.spec(), settings: .init(minimumCount: 1)) }
        func key(_ d: EventDomain, _ c: Int, _ w: Int) -> CovariateKey { CovariateKey(domain: d, conceptId: c, windowDays: w) }
        #expect(all == [key(.conditionOccurrence, 111, 365): 4, key(.conditionOccurrence, 111, 30): 3,
                        key(.conditionOccurrence, 222, 365): 1, key(.conditionOccurrence, 222, 30): 1,
                        key(.drugExposure, ConceptSetTaskTests.target, 365): 5, key(.drugExposure, ConceptSetTaskTests.target, 30): 5,
                        key(.drugExposure, ConceptSetTaskTests.targetChild, 365): 1, key(.drugExposure, ConceptSetTaskTests.targetChild, 30): 1])
        let suppressed = try db.read { try AutomaticCovariates.siteCounts($0, spec: Self.spec(), settings: .init(minimumCount: 2)) }
        #expect(Set(suppressed.keys) == Set(all.filter { $0.value >= 2 }.keys))
    }

    @Test("the outcome's concepts are never covariates, even when persons with an earlier outcome stay in the cohort")
    func outcomeExcluded() throws {
        let db = try Self.database()
        var spec = Self.spec()
        var task = ConceptSetTaskTests.task
        task.excludePriorOutcome = false
        spec.cohort = .conceptSets(task)
        let counts = try db.read { try AutomaticCovariates.siteCounts($0, spec: spec, settings: .init(minimumCount: 1)) }
        #expect(!counts.keys.contains { $0.conceptId == ConceptSetTaskTests.outcome })
        #expect(try db.read { try task.attrition($0) }.cohort == 8, "persons 3 and 10 stay in with their earlier outcome")
    }

    @Test("the server keeps concepts that enough sites report, the most frequent first, up to the cap")
    func agreement() {
        func key(_ d: EventDomain, _ c: Int, _ w: Int) -> CovariateKey { CovariateKey(domain: d, conceptId: c, windowDays: w) }
        let a = [key(.conditionOccurrence, 111, 365): 4, key(.conditionOccurrence, 111, 30): 3, key(.drugExposure, 7, 365): 4]
        let b = [key(.conditionOccurrence, 111, 365): 3, key(.drugExposure, 7, 365): 20, key(.procedureOccurrence, 5, 365): 50]
        #expect(AutomaticCovariates.agree([a, b], settings: .init(minimumSites: 2)) == [key(.conditionOccurrence, 111, 365), key(.drugExposure, 7, 365)])
        #expect(AutomaticCovariates.agree([a, b], settings: .init(minimumSites: 2, maximum: 1)) == [key(.drugExposure, 7, 365)])
        #expect(AutomaticCovariates.agree([a, b], settings: .init(minimumSites: 1)).count == 4)
        #expect(AutomaticCovariates.reportBytes(a) == 45)
    }

    @Test("extraction sets each agreed covariate and the age group person by person")
    func extraction() throws {
        let db = try Self.database()
        var spec = Self.spec()
        let covariates = [CovariateKey(domain: .conditionOccurrence, conceptId: 111, windowDays: 365),
                          CovariateKey(domain: .conditionOccurrence, conceptId: 111, windowDays: 30),
                          CovariateKey(domain: .drugExposure, conceptId: ConceptSetTaskTests.target, windowDays: 30)]
        spec.automaticCovariates = covariates
        let extract = try db.read { try CohortExtraction.extract($0, spec: spec, site: "t", file: "t") }
        #expect(extract.personIds == [1, 5, 6, 8, 9, 11])
        let columns = extract.columns
        #expect(columns.count == 3 + 20 + 3 && columns[3 + 14] == "age_group.70-74" && columns.last == "drug_exposure.900001.30d")
        func value(_ row: Int, _ column: String) -> Double { extract.features[row * columns.count + columns.firstIndex(of: column)!] }
        let expected: [[Double]] = [[1, 1, 1], [1, 1, 1], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 0, 1]]
        for (r, row) in expected.enumerated() {
            #expect(covariates.map { value(r, $0.column) } == row, "person \(extract.personIds[r])")
        }
        // Born 1950: 70 at a 2020 index date (age group 70-74), 69 at person 6's 2019 one (65-69).
        #expect(value(0, "age_group.70-74") == 1 && value(2, "age_group.65-69") == 1 && value(2, "age_group.70-74") == 0)
    }
}

@Suite("Existing cohorts by id")
struct CohortIdTests {
    @Test("a task reads index dates and outcomes from the cohort ids it names, not SiteFit's 1 and 2; a person's later entries do not count twice")
    func cohortIds() throws {
        let db = try ConceptSetTaskTests.database()
        try db.write { db in
            for (definition, person, date) in [(7, 1, "2020-06-01"), (7, 2, "2020-06-01"), (7, 3, "2020-06-01"), (7, 3, "2021-12-01"),
                                                 (9, 2, "2020-09-01"), (9, 3, "2022-01-01")] {
                try db.execute(sql: "INSERT INTO cohort VALUES (?, ?, ?, ?)", arguments: [definition, person, date, date])
            }
        }
        var spec = FeatureSpec.heartFailure
        (spec.targetCohortId, spec.outcomeCohortId) = (7, 9)
        let extract = try db.read { try CohortExtraction.extract($0, spec: spec, site: "t", file: "t") }
        #expect(extract.personIds == [1, 2, 3] && extract.labels == [0, 1, 0],
                "person 3 counts once, from the first entry, so the outcome is after the 365-day window")
        #expect(spec.description?.contains("outcome cohort 9") == true)
        let error = #expect(throws: ShardError.self) { try db.read { try CohortExtraction.extract($0, spec: .heartFailure, site: "t", file: "t") } }
        #expect(error?.problem == "the cohort is empty (no rows with cohort_definition_id = 1)")
    }
}
