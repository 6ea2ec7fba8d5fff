import Foundation
import GRDB
import Testing
@testable import SiteFitCore
@testable import SiteFitEHR
import SiteFitTestSupport

let smallProfile = SiteProfile(id: "test-site", name: "Test Site", seed: 7, patients: 300, outcomePrevalence: 0.2,
                               labMissingRate: 0.1, underCodingRate: 0.1)

@Suite("OMOP shards")
struct ShardTests {
    @Test("the same profile and seed give a byte-identical shard")
    func deterministic() throws {
        let folder = try temporaryDirectory()
        let a = folder.appendingPathComponent("a.sqlite"), b = folder.appendingPathComponent("b.sqlite")
        try ShardBuilder.build(profile: smallProfile, to: a)
        try ShardBuilder.build(profile: smallProfile, to: b)
        #expect(fileHash(a) == fileHash(b))
        var other = smallProfile
        other.seed = 8
        try ShardBuilder.build(profile: other, to: b)
        #expect(fileHash(a) != fileHash(b))
        // No temporary file is left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains("tmp") }
        #expect(leftovers.isEmpty)
    }

    @Test("a write through a site's read-only shard fails and changes nothing")
    func readOnly() throws {
        let url = try temporaryDirectory().appendingPathComponent("s.sqlite")
        try ShardBuilder.build(profile: smallProfile, to: url)
        let before = fileHash(url)
        let shard = try SiteShard(site: "test-site", url: url)
        #expect(throws: DatabaseError.self) {
            try shard.reader.read { db in try db.execute(sql: "DELETE FROM person") }
        }
        #expect(throws: DatabaseError.self) {
            try shard.reader.read { db in try db.execute(sql: "CREATE TABLE leak (x)") }
        }
        _ = try shard.extractCohort(.heartFailure)
        #expect(fileHash(url) == before)
    }

    @Test("a missing shard names the site and the file")
    func missing() throws {
        let url = try temporaryDirectory().appendingPathComponent("nowhere.sqlite")
        let error = #expect(throws: ShardError.self) { try SiteShard(site: "hungary", url: url) }
        #expect(error?.description.contains("site 'hungary'") == true)
        #expect(error?.description.contains("nowhere.sqlite") == true)
    }

    @Test("a file that is not SQLite is refused with the site and file named")
    func notADatabase() throws {
        let url = try temporaryDirectory().appendingPathComponent("junk.sqlite")
        try Data(String(repeating: "not a database ", count: 100).utf8).write(to: url)
        let error = #expect(throws: ShardError.self) { try SiteShard(site: "junk", url: url) }
        #expect(error?.description == "site 'junk': \(url.relativePath): not a SQLite database")
    }

    @Test("a shard missing a table is refused, naming the table")
    func missingTable() throws {
        let url = try temporaryDirectory().appendingPathComponent("partial.sqlite")
        try ShardBuilder.build(profile: smallProfile, to: url)
        let queue = try DatabaseQueue(path: url.path)
        try queue.write { db in try db.execute(sql: "DROP TABLE measurement") }
        try queue.close()
        let error = #expect(throws: ShardError.self) { try SiteShard(site: "partial", url: url) }
        #expect(error?.problem == "table 'measurement' is missing")
    }

    @Test("an empty cohort is an error naming the site")
    func emptyCohort() throws {
        let url = try temporaryDirectory().appendingPathComponent("empty.sqlite")
        try ShardBuilder.build(profile: smallProfile, to: url)
        let queue = try DatabaseQueue(path: url.path)
        try queue.write { db in try db.execute(sql: "DELETE FROM cohort") }
        try queue.close()
        let shard = try SiteShard(site: "empty", url: url)
        let error = #expect(throws: ShardError.self) { try shard.extractCohort(.heartFailure) }
        #expect(error?.problem.contains("cohort is empty") == true)
    }

    @Test("extraction yields one row per patient, the profile's prevalence and the right columns")
    func extraction() throws {
        let url = try temporaryDirectory().appendingPathComponent("x.sqlite")
        var profile = smallProfile
        profile.patients = 2000
        try ShardBuilder.build(profile: profile, to: url)
        let extract = try SiteShard(site: "x", url: url).extractCohort(.heartFailure)
        #expect(extract.rows == 2000)
        #expect(extract.columns.count == FeatureSpec.heartFailure.columnNames.count)
        #expect(extract.features.count == 2000 * extract.columns.count)
        let prevalence = Double(extract.labels.filter { $0 == 1 }.count) / 2000
        // Labels are Bernoulli draws around the calibrated mean: sd ≈ √(0.2·0.8/2000) ≈ 0.009.
        #expect(abs(prevalence - 0.2) < 0.035)
    }

    @Test("creatinine recorded in µmol/L is converted back to mg/dL by unit_concept_id")
    func unitConversion() throws {
        let folder = try temporaryDirectory()
        var mg = smallProfile
        mg.patients = 800
        mg.labMissingRate = 0
        var micromole = mg
        micromole.labs[.creatinine] = LabKnob(unit: .micromolePerLiter)
        try ShardBuilder.build(profile: mg, to: folder.appendingPathComponent("mg.sqlite"))
        try ShardBuilder.build(profile: micromole, to: folder.appendingPathComponent("umol.sqlite"))
        let column = FeatureSpec.heartFailure.columnNames.firstIndex { $0.contains("creatinine") }!
        func creatinine(_ name: String) throws -> [Double] {
            let e = try SiteShard(site: name, url: folder.appendingPathComponent("\(name).sqlite")).extractCohort(.heartFailure)
            return (0..<e.rows).map { e.features[$0 * e.columns.count + column] }
        }
        let a = try creatinine("mg"), b = try creatinine("umol")
        // Same latent patients (same seed and id), so values agree to the 0.01 rounding of storage.
        for (x, y) in zip(a, b) { #expect(abs(x - y) < 0.011) }
        // The raw stored values really are in µmol/L.
        let raw = try SiteShard(site: "umol", url: folder.appendingPathComponent("umol.sqlite")).reader.read { db in
            try Double.fetchOne(db, sql: "SELECT AVG(value_as_number) FROM measurement WHERE measurement_concept_id = 3016723")!
        }
        #expect(raw > 50)
    }

    @Test("the shard explains itself: concepts, cdm_source and the profile fingerprint")
    func selfDescribing() throws {
        let url = try temporaryDirectory().appendingPathComponent("meta.sqlite")
        try ShardBuilder.build(profile: smallProfile, to: url)
        let shard = try SiteShard(site: "meta", url: url)
        #expect(try shard.profileFingerprint() == smallProfile.fingerprint)
        let unexplained = try shard.reader.read { db in
            try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM (SELECT condition_concept_id AS id FROM condition_occurrence
                  UNION SELECT measurement_concept_id FROM measurement UNION SELECT unit_concept_id FROM measurement
                  UNION SELECT drug_concept_id FROM drug_exposure UNION SELECT gender_concept_id FROM person
                  UNION SELECT race_concept_id FROM person UNION SELECT visit_concept_id FROM visit_occurrence)
                WHERE id NOT IN (SELECT concept_id FROM concept)
                """)
        }
        #expect(unexplained == 0)
    }

    @Test("ISO dates round-trip through day counts", arguments: ["1970-01-01", "2000-02-29", "2021-12-31", "1899-03-01"])
    func dates(_ iso: String) {
        let parts = iso.split(separator: "-").map { Int($0)! }
        #expect(CivilDate.iso(CivilDate.days(year: parts[0], month: parts[1], day: parts[2])) == iso)
    }
}

@Suite("Shard inspection")
struct ShardInspectionTests {
    @Test("small cells never show as numbers: counts under the minimum read <N, and no rate gives one away; the report's age bands")
    func smallCells() throws {
        let url = try temporaryDirectory().appendingPathComponent("inspect.sqlite")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try ShardBuilder.build(profile: smallProfile, to: url)
        let inspection = try SiteShard(site: "test-site", url: url).inspect(minimumCellCount: 11)
        let extract = try SiteShard(site: "test-site", url: url).extractCohort(.heartFailure)
        #expect(!inspection.subgroups.isEmpty)
        for group in inspection.subgroups {
            #expect(group.patients.map { $0 >= 11 } ?? true, "\(group.attribute) \(group.group) shows a small cell")
            guard let rate = group.prevalence, let n = group.patients else { continue }
            let positives = Int((rate * Double(n)).rounded())
            #expect(positives >= 11 && n - positives >= 11, "\(group.attribute) \(group.group)'s rate gives a small cell away")
        }
        let bands = inspection.subgroups.filter { $0.attribute == "age band" }.map(\.group)
        #expect(Set(bands).isSubset(of: Set(AgeBands.labels)))
        // A group's count agrees with the rows when shown, and is hidden exactly when small.
        let women = extract.sex.filter { $0 == "female" }.count
        #expect(inspection.subgroups.first { $0.group == "female" }?.patients == (women < 11 ? nil : women))
        #expect(inspection.cell(3) == "<11" && inspection.cell(11) == "11" && inspection.cell(0) == "0")
        // Never exactly one hidden count or rate in an attribute: the others would give it back.
        for attribute in Set(inspection.subgroups.map(\.attribute)) {
            let groups = inspection.subgroups.filter { $0.attribute == attribute }
            #expect(groups.filter { $0.patients == nil }.count != 1, "\(attribute): one hidden count")
            #expect(groups.filter { $0.prevalence == nil }.count != 1 || groups.count == 1, "\(attribute): one hidden rate")
        }
        for lab in inspection.labs { if let share = lab.missingShare { #expect(share >= 0 && share <= 1) } }
        // A threshold above every group hides every count.
        let strict = try SiteShard(site: "test-site", url: url).inspect(minimumCellCount: 100_000)
        #expect(strict.subgroups.allSatisfy { $0.patients == nil && $0.prevalence == nil })
    }

    @Test("complementary suppression: one hidden count takes the next smallest with it; so does one hidden rate")
    func complements() {
        func group(_ name: String, _ patients: Int?, _ rate: Double?) -> ShardInspection.SubgroupSummary {
            .init(attribute: "race", group: name, patients: patients, prevalence: rate)
        }
        var groups = [group("White", 500, 0.1), group("Black", 40, 0.2), group("Asian", nil, nil), group("Other", 30, 0.3)]
        ShardInspection.suppressComplements(&groups)
        #expect(groups.map(\.patients) == [500, 40, nil, nil])
        #expect(groups.map(\.prevalence) == [0.1, 0.2, nil, nil])
        var rates = [group("female", 400, 0.1), group("male", 390, nil)]
        ShardInspection.suppressComplements(&rates)
        #expect(rates.map(\.patients) == [400, 390] && rates.map(\.prevalence) == [nil, nil])
        var none = [group("female", 400, 0.1), group("male", 390, 0.2)]
        ShardInspection.suppressComplements(&none)
        #expect(none.map(\.prevalence) == [0.1, 0.2])
    }
}
