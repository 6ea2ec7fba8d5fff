import Foundation
import GRDB
import Testing
@testable import SiteFitEHR
import SiteFitTestSupport

@Suite("An OMOP SQLite database SiteFit did not write, opened in place")
struct InPlaceOMOPTests {
    /// The concept-set fixture's persons in a file with only the CDM tables the task needs, as a
    /// database from other tools may be: no cohort, measurement, metadata or cdm_source table.
    static func foreignDatabase(_ name: String = #function, change: String? = nil) throws -> URL {
        let url = try temporaryDirectory(name).appendingPathComponent("foreign.sqlite")
        let file = try DatabaseQueue(path: url.path)
        try ConceptSetTaskTests.database().backup(to: file)
        try file.write { db in
            for table in ["cohort", "measurement", "observation", "metadata", "cdm_source", "concept", "visit_occurrence",
                          "death", "care_site", "procedure_occurrence"] {
                try db.execute(sql: "DROP TABLE \(table)")
            }
            if let change { try db.execute(sql: change) }
        }
        try file.close()
        return url
    }

    @Test("opens read-only with the missing tables read as empty; the cohort is the one worked out by hand; the file is untouched")
    func opens() throws {
        let url = try Self.foreignDatabase()
        let before = try Data(contentsOf: url)
        let shard = try SiteShard(site: "foreign", url: url)
        let (attrition, measurements) = try shard.reader.read { db in
            (try ConceptSetTaskTests.task.attrition(db), try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM measurement"))
        }
        let expected = try ConceptSetTaskTests.database().read { try ConceptSetTaskTests.task.attrition($0) }
        #expect(attrition == expected && attrition.cohort > 0)
        #expect(measurements == 0)
        #expect(try Data(contentsOf: url) == before, "the empty tables live in the connection, never in the file")
    }

    @Test("no observation_period, a text id or a date stored as a number is an error naming the column, never a value")
    func refused() throws {
        let cases: [(String, String)] = [
            ("DROP TABLE observation_period", "table 'observation_period' is missing"),
            ("UPDATE condition_occurrence SET condition_concept_id = 'c-' || condition_concept_id", "condition_occurrence.condition_concept_id"),
            ("UPDATE observation_period SET observation_period_start_date = 1577836800", "observation_period.observation_period_start_date"),
            // A table SiteFit does not require but copies and reads (a split, covariates).
            ("CREATE TABLE death (person_id, death_date); INSERT INTO death VALUES ('c-9', '2021-01-01')", "death.person_id"),
        ]
        for (k, (change, problem)) in cases.enumerated() {
            let url = try Self.foreignDatabase("refused-\(k)", change: change)
            do {
                _ = try SiteShard(site: "foreign", url: url)
                Issue.record("accepted after: \(change)")
            } catch let error as ShardError {
                #expect(error.problem.contains(problem), "\(error.problem)")
                #expect(!error.problem.contains("1577836800") && !error.problem.contains("c-9"))
            }
        }
    }

    @Test("a shard SiteFit wrote stays strict: a missing table there is damage, not a foreign database")
    func ownShardsStrict() throws {
        let url = try temporaryDirectory().appendingPathComponent("own.sqlite")
        try ShardBuilder.write(site: "own", to: url) { db in
            try ShardSchema.create(in: db)
            try db.execute(sql: "INSERT INTO metadata (metadata_concept_id, metadata_type_concept_id, name, value_as_string) VALUES (0, 0, 'sitefit.import', 'omop')")
            try db.execute(sql: "DROP TABLE cohort")
        }
        #expect(throws: ShardError.self) { _ = try SiteShard(site: "own", url: url) }
    }
}
