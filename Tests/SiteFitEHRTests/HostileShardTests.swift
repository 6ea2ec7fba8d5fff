import Foundation
import GRDB
import Testing
@testable import SiteFitCore
@testable import SiteFitEHR
import SiteFitTestSupport

@Suite("Damaged and hostile shards: a located error or a defined result, never a crash or a patient value")
struct HostileShardTests {
    /// A built shard, then changed by `sql` as an attacker or a broken tool could (constraints
    /// dropped by copying `person` without them first).
    static func shard(_ sql: String, name: String = #function) throws -> URL {
        let url = try temporaryDirectory(name).appendingPathComponent("s.sqlite")
        try ShardBuilder.build(profile: smallProfile, to: url)
        let db = try DatabaseQueue(path: url.path)
        try db.write { db in
            try db.execute(sql: """
                CREATE TABLE loose AS SELECT * FROM person; DROP TABLE person; ALTER TABLE loose RENAME TO person;
                """)
            try db.execute(sql: sql)
        }
        try db.close()
        return url
    }

    @Test("a NULL gender, race or person_id (declared NOT NULL) extracts, as an unknown group or no member; inspect works too")
    func nulls() throws {
        let url = try Self.shard("""
            UPDATE person SET gender_concept_id = NULL, race_concept_id = NULL WHERE person_id IN (SELECT person_id FROM person LIMIT 5);
            UPDATE person SET person_id = NULL WHERE rowid IN (SELECT rowid FROM person LIMIT 2 OFFSET 10);
            """)
        let shard = try SiteShard(site: "test-site", url: url)
        let extract = try shard.extractCohort(.heartFailure)
        #expect(extract.sex.contains("unknown") && extract.race.contains("Unknown"))
        #expect(extract.rows > 0 && extract.rows < smallProfile.patients)
        _ = try shard.inspect()
    }

    @Test("a lab value of 1e308 or infinity, or an index date that is no date, is an error naming the column, not the value")
    func absurdValues() throws {
        let cases = [
            ("UPDATE measurement SET value_as_number = 1e308 WHERE measurement_id % 2 = 0", "measurement."),
            ("UPDATE measurement SET value_as_number = 9e999", "infinite"),
            ("UPDATE cohort SET cohort_start_date = '2020-13-45' WHERE rowid IN (SELECT rowid FROM cohort WHERE cohort_definition_id = 1 LIMIT 2)",
             "age of 2 cohort member(s) cannot be computed"),
        ]
        for (k, (sql, problem)) in cases.enumerated() {
            let shard = try SiteShard(site: "test-site", url: try Self.shard(sql, name: "absurd-\(k)"))
            do {
                _ = try shard.extractCohort(.heartFailure)
                Issue.record("extracted after: \(sql)")
            } catch let error as ShardError {
                #expect(error.problem.contains(problem), "\(error.problem)")
                #expect(!error.problem.contains("308") && !error.problem.contains("2020-13-45"))
            }
        }
    }

    @Test("a shard that fails SQLite's quick_check is refused when opened, naming the file")
    func damaged() throws {
        let url = try temporaryDirectory().appendingPathComponent("s.sqlite")
        try ShardBuilder.build(profile: smallProfile, to: url)
        var bytes = [UInt8](try Data(contentsOf: url))
        // Overwrite the middle pages (table data, past the schema page) with a pattern.
        for i in (bytes.count / 2)..<(bytes.count / 2 + 16_384) { bytes[i] = UInt8(truncatingIfNeeded: i &* 31) }
        try Data(bytes).write(to: url)
        do {
            _ = try SiteShard(site: "test-site", url: url)
            Issue.record("a damaged shard opened")
        } catch let error as ShardError {
            #expect(error.file.hasSuffix("s.sqlite") && error.site == "test-site")
        }
    }

    @Test("a build removes what killed builds left (their process is gone) and keeps what running ones are writing")
    func staleTemporaries() throws {
        let folder = try temporaryDirectory()
        let url = folder.appendingPathComponent("s.sqlite")
        let dead = folder.appendingPathComponent(".s.sqlite.tmp-2147483646-0000")
        let deadJournal = folder.appendingPathComponent(".s.sqlite.tmp-2147483646-0000-journal")
        let alive = folder.appendingPathComponent(".s.sqlite.tmp-\(getpid())-1111")
        let other = folder.appendingPathComponent(".t.sqlite.tmp-2147483646-2222")
        for file in [dead, deadJournal, alive, other] { try Data("partial".utf8).write(to: file) }
        try ShardBuilder.build(profile: smallProfile, to: url)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
        #expect(left == ["s.sqlite", alive.lastPathComponent, other.lastPathComponent])
    }

    @Test("a UCI file with an age of -1e308 is refused by line and field, and leaves no file behind")
    func uciExtremes() throws {
        let source = repositoryRoot.appendingPathComponent("Sites/heart-disease")
        let folder = try temporaryDirectory()
        for file in ["processed.cleveland.data", "flamby-split.csv"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: folder.appendingPathComponent(file))
        }
        let data = folder.appendingPathComponent("processed.cleveland.data")
        var lines = try String(contentsOf: data, encoding: .utf8).components(separatedBy: "\n")
        lines[4] = "-1e308" + lines[4].drop { $0 != "," }
        try lines.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
        do {
            _ = try HeartDiseaseImport.importSite("cleveland", from: folder, to: folder)
            Issue.record("imported an age of -1e308")
        } catch let error as ShardError {
            #expect(error.problem.hasPrefix("line 5, field 1 (age): outside 0…120"), "\(error.problem)")
        }
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)) == before)
    }
}
