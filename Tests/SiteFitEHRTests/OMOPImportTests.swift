import Foundation
import GRDB
import Testing
@testable import SiteFitCore
@testable import SiteFitEHR
import SiteFitTestSupport

@Suite("OMOP import of what OHDSI tools export: v5.3 and v5.4, data-quality findings, the real exports")
struct OMOPImportTests {
    /// A CDM 5.3 export with the quirks real ones have, each once, so every finding is countable by hand.
    static let quirks: [String: String] = [
        // Upper-case file name, lower-case header, signed 64-bit ids; one person without an id
        // (dropped, never renumbered) and one born in 1800 (implausible, kept).
        "PERSON.csv": """
            person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id
            -3210373572193940939,8507,1950,8527,0
            9122337203685477001,8532,1962,,0
            ,8507,1970,8527,0
            77,8532,1800,8516,0

            """,
        // A macOS resource fork next to the files: not a table, never read.
        "._PERSON.csv": "\u{0}\u{5}\u{16}\u{7}binary",
        // Datetimes in date columns; one period of a person who is not in person.csv.
        "observation_period.csv": """
            observation_period_id,person_id,observation_period_start_date,observation_period_end_date,period_type_concept_id
            1,-3210373572193940939,2015-01-01 00:00:00,2022-12-31 00:00:00,32817
            2,9122337203685477001,2016-03-01,2022-12-31,32817
            3,77,2010-01-01,2022-12-31,32817
            4,555,2010-01-01,2022-12-31,32817

            """,
        // v5.3 column names; an empty required visit_end_date (kept) and visit_type_concept_id (set to 0).
        "visit_occurrence.csv": """
            visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date,visit_type_concept_id,admitting_source_concept_id,discharge_to_concept_id
            10,-3210373572193940939,9202,2020-05-01,2020-05-01,32817,0,0
            11,9122337203685477001,9201,2020-06-01,,,8717,8536

            """,
        // Condition status as the last column (MIMIC's order); one event 100 days after death.
        "condition_occurrence.csv": """
            condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_type_concept_id,condition_status_concept_id
            20,-3210373572193940939,320128,2019-01-01,32817,0
            21,77,201826,2021-04-11,32817,0

            """,
        "death.csv": """
            person_id,death_date,death_type_concept_id
            77,2021-01-01,32817

            """,
        // A duplicated primary key (the second row is dropped).
        "drug_exposure.csv": """
            drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_exposure_end_date,drug_type_concept_id
            30,-3210373572193940939,1503297,2019-02-01,2019-03-01,32817
            30,-3210373572193940939,1503297,2019-02-01,2019-03-01,32817
            31,9122337203685477001,1308216,2019-02-01,2019-03-01,32817

            ,9122337203685477001,1308216,,2019-03-01,32817

            """,
        // Dates as epoch days and epoch seconds; an empty (nullable) value; inf (not a number: set to
        // NULL); a creatinine of 300 mg/dL (implausible, kept).
        "measurement.csv": """
            measurement_id,person_id,measurement_concept_id,measurement_date,measurement_type_concept_id,value_as_number,unit_concept_id
            40,-3210373572193940939,3016723,18262,32817,1.1,8840
            41,-3210373572193940939,3016723,1580515200,32817,,8840
            42,9122337203685477001,3016723,2020-02-01,32817,inf,8840
            43,9122337203685477001,3016723,2020-02-01,32817,300,8840

            """,
        // CDM 5.3: no cdm_version_concept_id.
        "cdm_source.csv": """
            cdm_source_name,cdm_source_abbreviation,cdm_holder,source_release_date,cdm_release_date,cdm_version,vocabulary_version
            Quirks,Q,SiteFit tests,2023-01-01,2023-01-01,5.3.1,v5.0

            """,
    ]

    @Test("a CDM 5.3 export with duplicate ids, empty values, orphans and implausible values imports, each counted as DQD names it")
    func quirks() throws {
        let folder = try fixture(Self.quirks)
        let target = folder.appendingPathComponent("quirks.sqlite")
        let summary = try OMOPCSV.importFolder(folder, to: target, name: "quirks", currentYear: 2026)
        #expect(summary.cdmVersion == "5.3.1")
        func imported(_ table: String) -> Int? { summary.tables.first { $0.table == table }?.imported }
        #expect(imported("person") == 3 && imported("observation_period") == 3 && imported("drug_exposure") == 2)
        #expect(imported("measurement") == 4 && imported("visit_occurrence") == 2 && imported("condition_occurrence") == 2)
        func finding(_ check: String, _ table: String, _ field: String) -> DataQualityFinding? {
            summary.findings.first { $0.check == check && $0.table == table && $0.field == field }
        }
        #expect(finding("isRequired", "person", "person_id")?.violatingRows == 1)
        #expect(finding("isRequired", "person", "person_id")?.action == .dropped)
        #expect(finding("isRequired", "person", "race_concept_id")?.action == .setToZero)
        #expect(finding("plausibleValueLow", "person", "year_of_birth")?.violatingRows == 1)
        #expect(finding("isForeignKey", "observation_period", "person_id")?.violatingRows == 1)
        #expect(finding("isRequired", "visit_occurrence", "visit_end_date")?.action == .kept)
        #expect(finding("isRequired", "visit_occurrence", "visit_type_concept_id")?.action == .setToZero)
        #expect(finding("isPrimaryKey", "drug_exposure", "drug_exposure_id")?.violatingRows == 1)
        // A blank line is no record; a record with neither id nor date fails both checks.
        #expect(summary.tables.first { $0.table == "drug_exposure" }?.read == 4)
        #expect(finding("isRequired", "drug_exposure", "drug_exposure_id")?.violatingRows == 1)
        #expect(finding("isRequired", "drug_exposure", "drug_exposure_start_date")?.violatingRows == 1)
        #expect(finding("cdmDatatype", "measurement", "value_as_number")?.action == .setToNull)
        #expect(finding("plausibleValueHigh", "measurement", "value_as_number (concept 3016723, unit 8840)")?.violatingRows == 1)
        #expect(finding("plausibleDuringLife", "condition_occurrence", "condition_start_date")?.violatingRows == 1)
        #expect(finding("isRequired", "measurement", "value_as_number") == nil, "value_as_number is nullable in the CDM")
        #expect(summary.findings.count == 12, "\(summary.findings.map { "\($0.check) \($0.table).\($0.field)" })")

        let shard = try SiteShard(site: "quirks", url: target)
        try shard.reader.read { (db: Database) throws -> Void in
            // Ids are the files' own, 64-bit and signed; nobody was renumbered.
            #expect(try Int64.fetchAll(db, sql: "SELECT person_id FROM person ORDER BY person_id") == [-3210373572193940939, 77, 9122337203685477001])
            #expect(try String.fetchAll(db, sql: "SELECT measurement_date FROM measurement ORDER BY measurement_id")
                    == ["2020-01-01", "2020-02-01", "2020-02-01", "2020-02-01"])
            #expect(try Int.fetchOne(db, sql: "SELECT admitted_from_concept_id FROM visit_occurrence WHERE visit_occurrence_id = 11") == 8717)
            #expect(try String.fetchOne(db, sql: "SELECT observation_period_start_date FROM observation_period WHERE observation_period_id = 1") == "2015-01-01")
            // The concepts the data uses are named even though the export had no concept file.
            #expect(try String.fetchOne(db, sql: "SELECT concept_name FROM concept WHERE concept_id = 3016723") != nil)
            #expect(try DataQualityFinding.stored(in: db) == summary.findings)
        }
        let inspection = try shard.inspect()
        #expect(inspection.dataQuality == summary.findings && inspection.provenance == "omop-csv import" && inspection.cdmVersion == "5.3.1")
    }

    @Test("what makes every task impossible is a located error, and leaves no shard: no person or observation_period file, no person_id column")
    func impossible() throws {
        var files = Self.quirks
        files["observation_period.csv"] = nil
        var folder = try fixture(files, name: "noperiods")
        let target = folder.appendingPathComponent("never.sqlite")
        var error = #expect(throws: ShardError.self) { try OMOPCSV.importFolder(folder, to: target, name: "q") }
        #expect(error?.file.hasSuffix("observation_period.csv") == true && error?.site == "q")

        files = Self.quirks
        files["PERSON.csv"] = "gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id\n8507,1950,8527,0\n"
        folder = try fixture(files, name: "nopersonid")
        error = #expect(throws: ShardError.self) { try OMOPCSV.importFolder(folder, to: target, name: "q") }
        #expect(error?.problem == "required column 'person_id' is missing" && error?.file.hasSuffix("PERSON.csv") == true)
        #expect(!FileManager.default.fileExists(atPath: target.path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    @Test("dates: ISO with or without a time, YYYYMMDD, epoch days, seconds and milliseconds; nonsense is nil")
    func dates() {
        #expect(OMOPImport.date("2020-02-29") == "2020-02-29")
        #expect(OMOPImport.date("2020-02-29 13:45:00") == "2020-02-29")
        #expect(OMOPImport.date("2020-02-29T13:45:00Z") == "2020-02-29")
        #expect(OMOPImport.date("20200229") == "2020-02-29")
        #expect(OMOPImport.date("18321") == "2020-02-29")
        #expect(OMOPImport.date("1582934400") == "2020-02-29")
        #expect(OMOPImport.date("1582934400000") == "2020-02-29")
        #expect(OMOPImport.date("2021-02-29") == nil && OMOPImport.date("soon") == nil && OMOPImport.date("inf") == nil)
        #expect(OMOPImport.dateTime("2020-02-29T13:45:07.123Z") == "2020-02-29 13:45:07")
        #expect(OMOPImport.dateTime("2020-02-29") == "2020-02-29 00:00:00")
        #expect(OMOPImport.dateTime("1582983907") == "2020-02-29 13:45:07")
        #expect(OMOPImport.dateTime("20200229") == "2020-02-29 00:00:00", "YYYYMMDD is a date, not epoch seconds")
        #expect(OMOPImport.dateTime("2020-02-29T13:45") == "2020-02-29 13:45:00")
        #expect(OMOPImport.date("2020") == nil, "a year is not a day count")
        #expect(OMOPImport.date("86400000") == "1972-09-27", "8 digits that are no YYYYMMDD are epoch seconds")
    }

    @Test("an unpacked zip's CSV files are at its top level or in the one folder it holds, macOS resource forks aside")
    func zipLayouts() throws {
        let flat = try temporaryDirectory("flat"), nested = try temporaryDirectory("nested")
        try Data().write(to: flat.appendingPathComponent("PERSON.csv"))
        for folder in ["export", "__MACOSX"] {
            try FileManager.default.createDirectory(at: nested.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        #expect(OMOPExport.csvFolder(in: flat) == flat)
        #expect(OMOPExport.csvFolder(in: nested).lastPathComponent == "export")
    }

    @Test("a damaged zip, or a file that is neither a folder nor a zip, is an error naming the site and the file")
    func damagedZip() throws {
        let folder = try temporaryDirectory()
        let zip = folder.appendingPathComponent("export.zip")
        try Data("PK\u{3}\u{4} not really a zip".utf8).write(to: zip)
        for source in [zip, folder.appendingPathComponent("export.csv"), folder.appendingPathComponent("missing")] {
            if source.pathExtension == "csv" { try Data("person_id\n1\n".utf8).write(to: source) }
            do {
                _ = try OMOPExport.importExport(source, to: folder.appendingPathComponent("out.sqlite"), name: "north")
                Issue.record("\(source.lastPathComponent) was imported")
            } catch let error as ShardError {
                #expect(error.site == "north" && error.file.hasSuffix(source.lastPathComponent))
            }
        }
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("out.sqlite").path))
    }

    /// Imports a committed export and checks its version and the rows kept per table (the
    /// export's own row counts: every row of every table SiteFit reads comes in).
    static func importExport(_ zip: String, site: String, version: String, rows expected: [String: Int],
                             name: String = #function) throws -> (OMOPImportSummary, SiteShard) {
        // Straight from the zip, as `sites import omop --from X.zip` and `omop_export:` read it.
        let target = try temporaryDirectory(name).appendingPathComponent("\(site).sqlite")
        let summary = try OMOPExport.importExport(repositoryRoot.appendingPathComponent("Sites/omop/\(zip)"), to: target,
                                                  name: site, currentYear: 2026)
        #expect(summary.cdmVersion == version)
        for (table, rows) in expected {
            #expect(summary.tables.first { $0.table == table }?.imported == rows, "\(table)")
        }
        return (summary, try SiteShard(site: site, url: target))
    }

    @Test("the real Synthea27Nj export (CDM 5.4, upper-case files, a __MACOSX folder) imports unchanged, every row kept")
    func synthea() throws {
        let (summary, shard) = try Self.importExport("Synthea27Nj_5.4.zip", site: "synthea", version: "5.4", rows: [
            "person": 28, "observation_period": 28, "visit_occurrence": 1791, "condition_occurrence": 470, "drug_exposure": 883,
            "measurement": 10040, "observation": 8099, "procedure_occurrence": 1649, "death": 3, "concept": 2294,
        ])
        #expect(summary.findings.filter { $0.action == .dropped }.isEmpty)
        try shard.reader.read { (db: Database) throws -> Void in
            // Gender concepts the export's concept file lacks are named from SiteFit's vocabulary.
            #expect(try String.fetchOne(db, sql: "SELECT concept_name FROM concept WHERE concept_id = 8507") == "MALE")
        }
    }

    @Test("the real MIMIC-IV demo export (CDM 5.3.1, 64-bit ids, dates in 2110-2202) imports; every birth year is flagged as in the future")
    func mimic() throws {
        let (summary, shard) = try Self.importExport("MIMIC_5.3_partial.zip", site: "mimic", version: "5.3.1", rows: [
            "person": 100, "observation_period": 100, "visit_occurrence": 852, "condition_occurrence": 16441,
            "drug_exposure": 18229, "procedure_occurrence": 18447, "death": 15, "care_site": 31,
        ])
        #expect(summary.findings == [DataQualityFinding(check: "plausibleValueHigh", table: "person", field: "year_of_birth",
                                                        violatingRows: 100, rows: 100, action: .kept)])
        try shard.reader.read { (db: Database) throws -> Void in
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM person WHERE person_id < 0") ?? 0 > 0)
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT person_id) FROM condition_occurrence WHERE condition_concept_id = 320128") == 53)
        }
    }
}

@Suite("One database split into sites")
struct ShardSplitTests {
    @Test("every person goes to exactly one part with all of their rows; the vocabulary goes to every part; the source is untouched")
    func split() throws {
        let folder = try temporaryDirectory()
        let source = folder.appendingPathComponent("whole.sqlite")
        try ShardBuilder.build(profile: SiteProfile(id: "whole", name: "Whole", seed: 5, patients: 300), to: source)
        let before = try Data(contentsOf: source)
        let shard = try SiteShard(site: "whole", url: source)
        let result = try ShardSplit.split(shard, parts: 3, into: folder, name: "part", byCareSite: true, seed: 42)
        #expect(result.method == .hash, "generated shards have no care sites: the split falls back to the hash")
        #expect(result.parts.map(\.persons).reduce(0, +) == 300 && result.parts.allSatisfy { $0.persons > 50 })
        func counts(_ url: URL) throws -> [String: Int] {
            try SiteShard(site: "x", url: url).reader.read { db in
                var out: [String: Int] = [:]
                for table in ["person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure", "measurement", "cohort", "concept"] {
                    out[table] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)")
                }
                return out
            }
        }
        let whole = try counts(source)
        let parts = try result.parts.map { try counts($0.file) }
        for table in whole.keys where table != "concept" {
            #expect(parts.map { $0[table]! }.reduce(0, +) == whole[table], "\(table)")
        }
        #expect(parts.allSatisfy { $0["concept"] == whole["concept"] })
        let ids = try result.parts.map { part in
            try SiteShard(site: "x", url: part.file).reader.read { try Set(Int64.fetchAll($0, sql: "SELECT person_id FROM person")) }
        }
        #expect(ids[0].isDisjoint(with: ids[1]) && ids[0].isDisjoint(with: ids[2]) && ids[1].isDisjoint(with: ids[2]))
        #expect(try Data(contentsOf: source) == before)
        // The same seed gives the same parts; existing files are not replaced without force.
        #expect(throws: ShardError.self) { try ShardSplit.split(shard, parts: 3, into: folder, name: "part", byCareSite: false, seed: 42) }
        let again = try ShardSplit.split(shard, parts: 3, into: folder, name: "part", byCareSite: false, seed: 42, force: true)
        #expect(again.parts.map(\.persons) == result.parts.map(\.persons))
    }
}
