import Foundation
import GRDB
import Testing
@testable import SiteFitCore
@testable import SiteFitEHR
import SiteFitTestSupport

@Suite("Feature extraction on a hand-built shard")
struct HandBuiltExtractionTests {
    /// Two patients, index dates 2021-06-01, with rows just inside and just outside every window.
    /// Each test builds its own copy: tests run in parallel and must not share a file.
    static func build(_ test: String = #function) throws -> URL {
        let url = try temporaryDirectory("handbuilt-\(test)").appendingPathComponent("tiny.sqlite")
        try ShardBuilder.write(site: "tiny", to: url) { db in
            try ShardSchema.create(in: db)
            try db.execute(sql: """
                INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id)
                  VALUES (1, 8532, 1951, 8516, 38003564), (2, 8507, 1981, 8527, 38003564);
                INSERT INTO cohort VALUES (1, 1, '2021-06-01', '2022-06-01'), (1, 2, '2021-06-01', '2022-06-01');
                -- outcome for 1 inside the year, for 2 after it
                INSERT INTO cohort VALUES (2, 1, '2022-01-15', '2022-01-15'), (2, 2, '2022-06-02', '2022-06-02');
                INSERT INTO visit_occurrence (person_id, visit_concept_id, visit_start_date, visit_end_date, visit_type_concept_id)
                  VALUES (1, 9202, '2021-05-31', '2021-05-31', 32817), (1, 9202, '2020-06-01', '2020-06-01', 32817),
                         (1, 9202, '2020-05-31', '2020-05-31', 32817), (1, 9202, '2021-06-01', '2021-06-01', 32817),
                         (2, 9201, '2021-01-10', '2021-01-12', 32817);
                -- diabetes: patient 1 inside the window; patient 2 only after the index date
                INSERT INTO condition_occurrence (person_id, condition_concept_id, condition_start_date, condition_type_concept_id)
                  VALUES (1, 201826, '2021-01-01', 32817), (2, 201826, '2021-06-01', 32817), (2, 320128, '2020-05-01', 32817);
                -- creatinine: 1 has two values, the latest counts; 2 recorded in µmol/L
                INSERT INTO measurement (person_id, measurement_concept_id, measurement_date, measurement_type_concept_id,
                    value_as_number, unit_concept_id)
                  VALUES (1, 3016723, '2021-02-01', 32817, 1.1, 8840), (1, 3016723, '2021-04-01', 32817, 1.4, 8840),
                         (1, 3016723, '2021-07-01', 32817, 9.9, 8840), (2, 3016723, '2021-03-01', 32817, 88.42, 8749);
                INSERT INTO drug_exposure (person_id, drug_concept_id, drug_exposure_start_date, drug_exposure_end_date,
                    drug_type_concept_id)
                  VALUES (1, 1503297, '2021-03-01', '2021-06-01', 32817), (2, 1503297, '2019-03-01', '2019-06-01', 32817);
                INSERT INTO cdm_source (cdm_source_name, cdm_source_abbreviation, cdm_holder, source_release_date,
                    cdm_release_date, cdm_version_concept_id, vocabulary_version)
                  VALUES ('Tiny', 'tiny', 'test', '2021-01-01', '2021-01-01', 756265, 'v');
                """)
        }
        return url
    }

    @Test("every feature and label is the hand-computed value")
    func features() throws {
        let spec = FeatureSpec(lookbackDays: 365, outcomeWindowDays: 365, conditions: [201826, 320128],
                               measurements: [3016723, 3004410], drugs: [1503297])
        let e = try SiteShard(site: "tiny", url: Self.build()).extractCohort(spec)
        #expect(e.columns == ["age_years", "male", "visit_count", "condition.type_2_diabetes_mellitus",
                              "condition.essential_hypertension", "measurement.creatinine__mass_volume__in_serum_or_plasma",
                              "measurement.hemoglobin_a1c_hemoglobin_total_in_blood", "drug.metformin"])
        #expect(e.personIds == [1, 2])
        #expect(e.sex == ["female", "male"])
        #expect(e.race == ["Black", "White"])
        let row1 = Array(e.features[0..<8]), row2 = Array(e.features[8..<16])
        // Patient 1: 70 years; visits on 2021-05-31 and 2020-06-01 are in [2020-06-01, 2021-06-01), the
        // others are not; diabetes yes, hypertension no; latest creatinine before index 1.4; HbA1c missing.
        #expect(row1[0...4] == [70, 0, 2, 1, 0])
        #expect(abs(row1[5] - 1.4) < 1e-12)
        #expect(row1[6].isNaN)
        #expect(row1[7] == 1)
        // Patient 2: 40 years, male, one visit; diabetes only on the index date (excluded); hypertension
        // 2020-05-01 is before the window; creatinine 88.42 µmol/L → 1 mg/dL; metformin 2019 excluded.
        #expect(row2[0...4] == [40, 1, 1, 0, 0])
        #expect(abs(row2[5] - 1.0) < 1e-12)
        #expect(row2[7] == 0)
        #expect(e.labels == [1, 0], "patient 2's outcome is one day past the window")
        #expect(e.indexDates == ["2021-06-01", "2021-06-01"])
    }

    @Test("a shard missing a column names the table and the column")
    func missingColumn() throws {
        let url = try Self.build()
        let queue = try DatabaseQueue(path: url.path)
        try queue.write { db in try db.execute(sql: "ALTER TABLE measurement DROP COLUMN unit_concept_id") }
        try queue.close()
        let error = #expect(throws: ShardError.self) { try SiteShard(site: "tiny", url: url) }
        #expect(error?.problem == "table 'measurement' has no column 'unit_concept_id'")
    }
}

@Suite("Importers")
struct ImportTests {
    static let heartDisease = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sites/heart-disease")

    @Test("UCI Heart Disease: four shards with FLamby's sizes, labels and split")
    func heartDiseaseImport() throws {
        let out = try temporaryDirectory("hd")
        let shards = try HeartDiseaseImport.importAll(from: Self.heartDisease, to: out)
        #expect(shards.map(\.lastPathComponent) == ["cleveland.sqlite", "hungarian.sqlite", "switzerland.sqlite", "va.sqlite"])
        // Raw rows and num > 0 from the data README; FLamby train/test from flamby-split.csv.
        let expected: [(rows: Int, positives: Int, train: Int, test: Int)] = [(303, 139, 199, 104), (294, 106, 172, 89),
                                                                              (123, 115, 30, 16), (200, 149, 85, 45)]
        for (url, e) in zip(shards, expected) {
            let shard = try SiteShard(site: url.deletingPathExtension().lastPathComponent, url: url)
            let counts = try shard.reader.read { db in
                try [1, 2, 10, 11].map { try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM cohort WHERE cohort_definition_id = ?", arguments: [$0])! }
            }
            #expect(counts == [e.rows, e.positives, e.train, e.test], "\(url.lastPathComponent)")
        }
        // A missing value produces no row: VA has 56 '?' in trestbps.
        let va = try SiteShard(site: "va", url: shards[3])
        let bp = try va.reader.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM measurement WHERE measurement_source_value = 'trestbps'")!
        }
        #expect(bp == 200 - 56)
    }

    @Test("FLamby's preprocessing read back by SQL: 13 features, FLamby's split sizes, the first Cleveland row by hand")
    func heartDiseaseCohort() throws {
        let out = try temporaryDirectory("hdc")
        let shards = try HeartDiseaseImport.importAll(from: Self.heartDisease, to: out)
        let sizes = try shards.map { url in
            let cohort = try HeartDiseaseCohort.extract(SiteShard(site: url.deletingPathExtension().lastPathComponent, url: url))
            #expect(cohort.extract.columns.count == 13)
            return (cohort.isTest.filter { !$0 }.count, cohort.isTest.filter { $0 }.count)
        }
        #expect(sizes.map(\.0) == [199, 172, 30, 85] && sizes.map(\.1) == [104, 89, 16, 45])
        // Line 1: 63,1,cp 1,145,233,fbs 1,restecg 2,150,exang 0,2.3,... num 0 → cp dummies 0,0,0; restecg_2 = 1.
        let first = try HeartDiseaseCohort.extract(SiteShard(site: "cleveland", url: shards[0]))
        #expect(Array(first.extract.features.prefix(13)) == [63, 1, 145, 233, 1, 150, 0, 2.3, 0, 0, 0, 0, 1])
        #expect(first.extract.labels[0] == 0 && first.extract.sex[0] == "male" && first.ages[0] == 63)
    }

    @Test("a malformed UCI line is named by file and line, without its values")
    func heartDiseaseMalformed() throws {
        let folder = try temporaryDirectory("hdbad")
        for name in ["flamby-split.csv", "processed.cleveland.data"] {
            try FileManager.default.copyItem(at: Self.heartDisease.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        try Data("63,1,1,145,233,1,2,150,0,2.3,3,0,6,0\n61,1,4,abc,233,1,2,150,0,2.3,3,0,6,0\n".utf8)
            .write(to: folder.appendingPathComponent("processed.hungarian.data"))
        let error = #expect(throws: ShardError.self) { try HeartDiseaseImport.importAll(from: folder, to: folder) }
        #expect(error?.problem == "line 2, field 4 (trestbps): not a number or '?'")
        #expect(error?.site == "hungarian")
    }

    @Test("OMOP round trip: export to CSV (upper-case, OHDSI style), import, same features and labels")
    func omopRoundTrip() throws {
        let folder = try temporaryDirectory("roundtrip")
        let original = folder.appendingPathComponent("original.sqlite")
        var profile = SiteProfile(id: "rt", name: "Round Trip", seed: 9, patients: 400, labMissingRate: 0.2, underCodingRate: 0.1)
        profile.labs[.creatinine] = LabKnob(unit: .micromolePerLiter)
        try ShardBuilder.build(profile: profile, to: original)
        let csv = folder.appendingPathComponent("csv")
        try OMOPCSV.export(SiteShard(site: "rt", url: original), to: csv, upperCaseHeaders: true)
        #expect(FileManager.default.fileExists(atPath: csv.appendingPathComponent("PERSON.csv").path))
        let imported = folder.appendingPathComponent("imported.sqlite")
        try OMOPCSV.importFolder(csv, to: imported, name: "rt")
        let a = try SiteShard(site: "rt", url: original).extractCohort(.heartFailure)
        let b = try SiteShard(site: "rt", url: imported).extractCohort(.heartFailure)
        #expect(a.personIds == b.personIds)
        #expect(a.labels == b.labels)
        #expect(a.sex == b.sex && a.race == b.race)
        #expect(zip(a.features, b.features).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) })
    }

    @Test("the shipped OHDSI-style fixture (upper-case CSV, 25 patients) imports and extracts")
    func omopFixture() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/omop-small")
        let target = try temporaryDirectory("fixture").appendingPathComponent("fixture.sqlite")
        try OMOPCSV.importFolder(fixture, to: target, name: "fixture")
        let shard = try SiteShard(site: "fixture", url: target)
        let extract = try shard.extractCohort(.heartFailure)
        #expect(extract.rows == 25)
        // Its creatinine was exported in µmol/L and must come back near 1 mg/dL.
        let column = extract.columns.firstIndex { $0.contains("creatinine") }!
        let values = (0..<25).map { extract.features[$0 * extract.columns.count + column] }.filter { !$0.isNaN }
        #expect(!values.isEmpty && values.allSatisfy { (0.2...4).contains($0) })
        let units = try shard.reader.read { db in
            try Int.fetchAll(db, sql: "SELECT DISTINCT unit_concept_id FROM measurement WHERE measurement_concept_id = 3016723")
        }
        #expect(units == [8749])
    }

    @Test("OMOP import tolerates extra columns, any order and datetimes")
    func omopTolerant() throws {
        let folder = try temporaryDirectory("tolerant")
        let original = folder.appendingPathComponent("o.sqlite")
        try ShardBuilder.build(profile: SiteProfile(id: "t", name: "T", seed: 1, patients: 50), to: original)
        let csv = folder.appendingPathComponent("csv")
        try OMOPCSV.export(SiteShard(site: "t", url: original), to: csv)
        // Reverse the person columns, add an unknown one, and write dates with a time part.
        let personFile = csv.appendingPathComponent("person.csv")
        let lines = try String(contentsOf: personFile, encoding: .utf8).split(separator: "\n").map {
            ["extra_column"] + $0.split(separator: ",", omittingEmptySubsequences: false).reversed().map(String.init)
        }
        try Data((lines.map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n").utf8).write(to: personFile)
        let cohortFile = csv.appendingPathComponent("cohort.csv")
        let cohort = try String(contentsOf: cohortFile, encoding: .utf8)
            .replacingOccurrences(of: #"(\d{4}-\d{2}-\d{2})"#, with: "$1 00:00:00", options: .regularExpression)
        try Data(cohort.utf8).write(to: cohortFile)
        try FileManager.default.removeItem(at: csv.appendingPathComponent("concept.csv"))
        let imported = folder.appendingPathComponent("i.sqlite")
        try OMOPCSV.importFolder(csv, to: imported, name: "t")
        let a = try SiteShard(site: "t", url: original).extractCohort(.heartFailure)
        let b = try SiteShard(site: "t", url: imported).extractCohort(.heartFailure)
        #expect(a.labels == b.labels && a.sex == b.sex)
    }

    @Test("OMOP import names the missing file and the missing column; a value of the wrong type is a finding")
    func omopErrors() throws {
        let folder = try temporaryDirectory("omoperrors")
        let original = folder.appendingPathComponent("o.sqlite")
        try ShardBuilder.build(profile: SiteProfile(id: "e", name: "E", seed: 1, patients: 30), to: original)
        let csv = folder.appendingPathComponent("csv")
        try OMOPCSV.export(SiteShard(site: "e", url: original), to: csv)
        let target = folder.appendingPathComponent("never.sqlite")

        let measurement = csv.appendingPathComponent("measurement.csv")
        let text = try String(contentsOf: measurement, encoding: .utf8)
        try Data(text.replacingOccurrences(of: "measurement_concept_id", with: "measurement_concept").utf8).write(to: measurement)
        var error = #expect(throws: ShardError.self) { try OMOPCSV.importFolder(csv, to: target, name: "e") }
        #expect(error?.problem == "required column 'measurement_concept_id' is missing")
        #expect(error?.file.hasSuffix("measurement.csv") == true)
        try Data(text.utf8).write(to: measurement)

        let person = csv.appendingPathComponent("person.csv")
        var personLines = try String(contentsOf: person, encoding: .utf8).split(separator: "\n").map(String.init)
        personLines[3] = personLines[3].replacingOccurrences(of: ",8507,", with: ",male,")
            .replacingOccurrences(of: ",8532,", with: ",female,")
        try Data((personLines.joined(separator: "\n") + "\n").utf8).write(to: person)
        // A value of the wrong type no longer stops the import: it is DQD's cdmDatatype finding.
        let summary = try OMOPCSV.importFolder(csv, to: target, name: "e")
        #expect(summary.findings == [DataQualityFinding(check: "cdmDatatype", table: "person", field: "gender_concept_id",
                                                        violatingRows: 1, rows: 30, action: .setToZero)])
        try FileManager.default.removeItem(at: target)

        try FileManager.default.removeItem(at: csv.appendingPathComponent("cohort.csv"))
        try FileManager.default.removeItem(at: person)
        error = #expect(throws: ShardError.self) { try OMOPCSV.importFolder(csv, to: target, name: "e") }
        #expect(error?.file.hasSuffix("person.csv") == true)
        #expect(!FileManager.default.fileExists(atPath: target.path), "a failed import leaves no shard")
    }
}
