import Foundation
import GRDB
import Testing
@testable import SiteFitCore
@testable import SiteFitEHR
import SiteFitTestSupport

@Suite("Code sequences: each history before the index date as the transformer reads it")
struct CodeSequenceTests {
    static let diabetes = 201826, hypertension = 316866, metformin = 1503297

    /// Three persons indexed on 2020-06-01 in the cohort table. Person 1's history, day by day:
    /// 517 days before (outside a 365-day look-back), an HbA1c of 7.2 % 92 days before (above
    /// the known range), a condition and a drug 1 day before (one visit), a condition on the index
    /// day, and one after it. Persons 2 and 3 have the diabetes code only; person 3 also a creatinine
    /// of 100 µmol/L (1.13 mg/dL: normal) and a measurement above its own range.
    static func database() throws -> DatabaseQueue {
        let db = try DatabaseQueue()
        try db.write { db in
            try ShardSchema.create(in: db)
            var event = 0
            for person in 1...3 {
                try db.execute(sql: "INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id) VALUES (?, 8507, 1950, 8527, 0)", arguments: [person])
                try db.execute(sql: "INSERT INTO observation_period VALUES (?, ?, '2015-01-01', '2022-12-31', 32817)", arguments: [person, person])
                try db.execute(sql: "INSERT INTO cohort VALUES (1, ?, '2020-06-01', '2020-06-01')", arguments: [person])
            }
            func condition(_ person: Int, _ concept: Int, _ date: String) throws {
                event += 1
                try db.execute(sql: "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, condition_start_date, condition_type_concept_id) VALUES (?, ?, ?, ?, 32817)",
                               arguments: [event, person, concept, date])
            }
            func measurement(_ person: Int, _ concept: Int, _ date: String, _ value: Double, unit: Int? = nil, range: (Double, Double)? = nil) throws {
                event += 1
                try db.execute(sql: """
                    INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date, measurement_type_concept_id,
                      value_as_number, unit_concept_id, range_low, range_high) VALUES (?, ?, ?, ?, 32817, ?, ?, ?, ?)
                    """, arguments: [event, person, concept, date, value, unit, range?.0, range?.1])
            }
            try condition(1, hypertension, "2019-01-01")
            try measurement(1, OMOPConcept.hba1c, "2020-03-01", 7.2)
            try condition(1, diabetes, "2020-05-31")
            event += 1
            try db.execute(sql: "INSERT INTO drug_exposure (drug_exposure_id, person_id, drug_concept_id, drug_exposure_start_date, drug_type_concept_id) VALUES (?, 1, ?, '2020-05-31', 32817)",
                           arguments: [event, metformin])
            try condition(1, hypertension, "2020-06-01")
            try condition(1, 4_000_000, "2020-06-02")
            try condition(2, diabetes, "2020-01-01")
            try condition(3, diabetes, "2020-02-01")
            // 100 µmol/L is 1.13 mg/dL: normal, but "high" were the unit ignored.
            try measurement(3, OMOPConcept.creatinine, "2020-02-01", 100, unit: OMOPConcept.micromolePerLiter)
            try measurement(3, 3_000_001, "2020-02-01", 5, range: (1, 4))
        }
        return db
    }

    static let spec = FeatureSpec(lookbackDays: 365, outcomeWindowDays: 365, conditions: [], measurements: [], drugs: [])
    static let keys = ["1|2020-06-01", "2|2020-06-01", "3|2020-06-01"]

    static func tokens(_ row: [Float], length: Int) -> [(code: Int, time: Int, segment: Int)] {
        (0..<length).map { (Int(row[3 * $0]), Int(row[3 * $0 + 1]), Int(row[3 * $0 + 2])) }
    }

    @Test("order, time buckets, visits, measurement bins and the look-back window, worked out by hand")
    func handWorked() throws {
        let db = try Self.database()
        let settings = CodeSequences.Settings(maxLength: 6, lookbackDays: 365)
        let vocabulary = [SequenceCode(domain: .conditionOccurrence, conceptId: Self.diabetes),
                          SequenceCode(domain: .conditionOccurrence, conceptId: Self.hypertension),
                          SequenceCode(domain: .drugExposure, conceptId: Self.metformin),
                          SequenceCode(domain: .measurement, conceptId: OMOPConcept.hba1c, bin: .high),
                          SequenceCode(domain: .measurement, conceptId: OMOPConcept.creatinine, bin: .normal),
                          SequenceCode(domain: .measurement, conceptId: 3_000_001, bin: .high)]
        let matrix = try db.read { try CodeSequences.tokens($0, spec: Self.spec, settings: settings, vocabulary: vocabulary, keys: Self.keys) }
        #expect(matrix.count == 3 * 3 * 6)
        // Person 1: HbA1c high (92 days: bucket ≤180), then one visit the day before (diabetes before
        // metformin: condition_occurrence sorts first), then the index day. The 517-day-old and the
        // later events are not there.
        let first = Self.tokens(Array(matrix[0..<18]), length: 6)
        #expect(first.map(\.code) == [6, 3, 5, 4, 0, 0])
        #expect(first.map(\.time) == [4, 1, 1, 0, 0, 0])
        #expect(first.map(\.segment) == [0, 1, 1, 0, 0, 0])
        // Person 3, all on one day: the diabetes code, creatinine normal (after the unit conversion)
        // and the lab above its own range, by code order (condition before measurement, then concept id).
        let third = Self.tokens(Array(matrix[36..<54]), length: 6)
        #expect(third.map(\.code) == [3, 8, 7, 0, 0, 0])      // concept 3000001 before creatinine (3016723)
        // Outside the vocabulary, a code reads as unknown (2).
        let short = try db.read { try CodeSequences.tokens($0, spec: Self.spec, settings: settings, vocabulary: Array(vocabulary.prefix(4)), keys: Self.keys) }
        #expect(Self.tokens(Array(short[36..<54]), length: 6).map(\.code) == [3, 2, 2, 0, 0, 0])
        #expect(Set(third.prefix(3).map(\.segment)) == [0])
    }

    @Test("truncation keeps the most recent events")
    func truncation() throws {
        let db = try Self.database()
        let settings = CodeSequences.Settings(maxLength: 2, lookbackDays: 365)
        let vocabulary = [SequenceCode(domain: .conditionOccurrence, conceptId: Self.diabetes),
                          SequenceCode(domain: .conditionOccurrence, conceptId: Self.hypertension)]
        let matrix = try db.read { try CodeSequences.tokens($0, spec: Self.spec, settings: settings, vocabulary: vocabulary, keys: Self.keys) }
        // Person 1's last two: metformin (unknown) the day before, hypertension on the index day.
        #expect(Self.tokens(Array(matrix[0..<6]), length: 2).map(\.code) == [2, 4])
    }

    @Test("the vocabulary: small cells never leave a site; codes too few sites report are dropped")
    func vocabulary() throws {
        let db = try Self.database()
        let settings = CodeSequences.Settings(maxLength: 8, lookbackDays: 365,
                                              vocabulary: .init(minimumCount: 2, minimumSites: 2, maximum: 10))
        let report = try db.read { try CodeSequences.siteCounts($0, spec: Self.spec, settings: settings) }
        // Diabetes: three persons; everything else one person: suppressed.
        #expect(report == [SequenceCode(domain: .conditionOccurrence, conceptId: Self.diabetes): 3])
        let other: [SequenceCode: Int] = [SequenceCode(domain: .drugExposure, conceptId: Self.metformin): 40,
                                          SequenceCode(domain: .conditionOccurrence, conceptId: Self.diabetes): 12]
        let agreed = CodeSequences.agree([report, other, [SequenceCode(domain: .drugExposure, conceptId: Self.metformin): 5]], settings: settings)
        #expect(agreed == [SequenceCode(domain: .conditionOccurrence, conceptId: Self.diabetes),
                           SequenceCode(domain: .drugExposure, conceptId: Self.metformin)])
        #expect(CodeSequences.reportBytes(report) == 14)
    }

    @Test("codes are named and read back; buckets and bins at their edges")
    func namesAndEdges() {
        for code in [SequenceCode(domain: .measurement, conceptId: 3004410, bin: .high), SequenceCode(domain: .drugExposure, conceptId: 1)] {
            #expect(SequenceCode(name: code.name) == code)
        }
        #expect(SequenceCode(name: "measurement:1:sideways") == nil && SequenceCode(name: "nonsense:1") == nil)
        #expect([0, 1, 7, 8, 30, 365, 366, 730, 731, 5000].map(CodeSequences.bucket) == [0, 1, 1, 2, 2, 5, 6, 6, 7, 7])
        #expect(CodeSequences.bin(concept: 1, value: 3, unit: nil, rangeLow: 3, rangeHigh: 5) == .normal)
        #expect(CodeSequences.bin(concept: 1, value: 3, unit: nil, rangeLow: nil, rangeHigh: 5) == nil)
        #expect(CodeSequences.bin(concept: OMOPConcept.hba1c, value: 3.9, unit: nil, rangeLow: nil, rangeHigh: nil) == .low)
        #expect(CodeSequences.bin(concept: OMOPConcept.hba1c, value: .nan, unit: nil, rangeLow: nil, rangeHigh: nil) == nil)
        // An HbA1c of 48 mmol/mol is not compared with a range in percent.
        #expect(CodeSequences.bin(concept: OMOPConcept.hba1c, value: 48, unit: 8753, rangeLow: nil, rangeHigh: nil) == nil)
        #expect(CodeSequences.bin(concept: OMOPConcept.hba1c, value: 6.1, unit: OMOPConcept.percent, rangeLow: nil, rangeHigh: nil) == .high)
    }

    @Test("a generated shard: vocabulary from two sites' reports, every token valid, labs binned, the shard untouched")
    func generatedShards() throws {
        let folder = try temporaryDirectory()
        var shards: [SiteShard] = []
        for (i, seed) in [3, 4].enumerated() {
            let url = folder.appendingPathComponent("site\(i).sqlite")
            try ShardBuilder.build(profile: SiteProfile(id: "site\(i)", name: "Site \(i)", seed: UInt64(seed), patients: 300), to: url)
            shards.append(try SiteShard(site: "site\(i)", url: url))
        }
        let before = try Data(contentsOf: shards[0].url)
        let settings = CodeSequences.Settings(maxLength: 32, lookbackDays: 365)
        let reports = try shards.map { try $0.sequenceCodeCounts(.heartFailure, settings: settings) }
        let vocabulary = CodeSequences.agree(reports, settings: settings)
        #expect(vocabulary.count > 5)
        #expect(vocabulary.contains { $0.domain == .measurement && $0.bin != nil })
        let extract = try shards[0].extractSequences(.heartFailure, settings: settings, vocabulary: vocabulary)
        #expect(extract.columns.count == 96 && extract.features.count == extract.rows * 96)
        let limit = Double(vocabulary.count + CodeSequences.reservedIds)
        var lengths: [Int] = []
        for r in 0..<extract.rows {
            let row = extract.features[(r * 96)..<((r + 1) * 96)]
            var length = 0, previous = Double.infinity
            for t in 0..<32 {
                let code = row[row.startIndex + 3 * t], time = row[row.startIndex + 3 * t + 1]
                #expect(code >= 0 && code < limit && time >= 0 && time < Double(CodeSequences.timeBuckets))
                if code == 0 { continue }
                #expect(time <= previous, "buckets never grow: oldest first")
                previous = time
                length = t + 1
            }
            // Padding only after the last event.
            #expect(row.dropFirst(3 * length).allSatisfy { $0 == 0 })
            lengths.append(length)
        }
        #expect(lengths.filter { $0 > 0 }.count > extract.rows / 2)
        #expect(try Data(contentsOf: shards[0].url) == before)
    }

    @Test("the real MIMIC-IV demo export: sequences for the omop-mimic task")
    func mimic() throws {
        let target = try temporaryDirectory().appendingPathComponent("mimic.sqlite")
        _ = try OMOPExport.importExport(repositoryRoot.appendingPathComponent("Sites/omop/MIMIC_5.3_partial.zip"), to: target,
                                        name: "mimic", currentYear: 2026)
        let shard = try SiteShard(site: "mimic", url: target)
        var spec = FeatureSpec(lookbackDays: 3650, outcomeWindowDays: 3650, conditions: [], measurements: [], drugs: [])
        spec.cohort = .conceptSets(ConceptSetTask(
            target: .init(concepts: ConceptSet(concepts: [9201, 262, 8883, 8870, 38004207, 581385], descendants: false), domain: .visitOccurrence),
            outcome: .init(concepts: ConceptSet(concepts: [320128]), domain: .conditionOccurrence),
            priorObservationDays: 0, riskStartDays: 1, riskEndDays: 3650, minimumRiskDays: 0, excludePriorOutcome: false))
        let settings = CodeSequences.Settings(maxLength: 48, lookbackDays: 3650, vocabulary: .init(minimumCount: 3, minimumSites: 1, maximum: 200))
        let vocabulary = CodeSequences.agree([try shard.sequenceCodeCounts(spec, settings: settings)], settings: settings)
        let extract = try shard.extractSequences(spec, settings: settings, vocabulary: vocabulary)
        #expect(!vocabulary.isEmpty && extract.rows > 20)
        // The outcome's own code never appears among the inputs, though persons with it before the
        // index date stay in this cohort (prior outcomes are not excluded here).
        #expect(!vocabulary.contains { $0.conceptId == 320128 })
        var unexcluded = spec
        if case .conceptSets(var task) = spec.cohort {
            task.outcome = .init(concepts: ConceptSet(concepts: [999_999_999]), domain: .conditionOccurrence)
            unexcluded.cohort = .conceptSets(task)
        }
        let other = try shard.sequenceCodeCounts(unexcluded, settings: settings)
        #expect(other.keys.contains { $0.conceptId == 320128 }, "without the exclusion the outcome's code is a common input here")
        let codes = stride(from: 0, to: extract.features.count, by: 3).map { extract.features[$0] }
        #expect(codes.contains { $0 >= Double(CodeSequences.reservedIds) })
    }

    @Test("hostile rows: a text concept id, a date that is not one, a text lab value; nothing stops, those events are dropped or unbinned")
    func hostileRows() throws {
        let db = try Self.database()
        try db.write { db in
            try db.execute(sql: "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, condition_start_date, condition_type_concept_id) VALUES (900, 2, 'abc', '2020-05-01', 32817)")
            try db.execute(sql: "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, condition_start_date, condition_type_concept_id) VALUES (901, 2, 201826, 'not-a-date', 32817)")
            try db.execute(sql: "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, condition_start_date, condition_type_concept_id) VALUES (902, 2, x'00ff', '2020-05-02', 32817)")
            try db.execute(sql: "INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date, measurement_type_concept_id, value_as_number, unit_concept_id, range_low, range_high) VALUES (903, 2, 3004410, '2020-05-03', 32817, 'high', 'percent', 'x', 4)")
        }
        let settings = CodeSequences.Settings(maxLength: 6, lookbackDays: 365, vocabulary: .init(minimumCount: 1, minimumSites: 1, maximum: 50))
        let report = try db.read { try CodeSequences.siteCounts($0, spec: Self.spec, settings: settings) }
        #expect(report[SequenceCode(domain: .measurement, conceptId: OMOPConcept.hba1c)] == 1, "the text value leaves the lab unbinned")
        #expect(report.keys.allSatisfy { $0.conceptId > 0 })
        let matrix = try db.read { try CodeSequences.tokens($0, spec: Self.spec, settings: settings, vocabulary: CodeSequences.agree([report], settings: settings), keys: Self.keys) }
        // Person 2: the diabetes code (2020-01-01) and the unbinned lab; the three broken rows are gone.
        #expect(Self.tokens(Array(matrix[18..<36]), length: 6).filter { $0.code != 0 }.count == 2)
    }
}
