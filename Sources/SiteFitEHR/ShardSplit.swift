import Foundation
import GRDB
import Logging
import SiteFitCore

/// One OMOP database cut into several sites: every person goes to one part with all of their
/// rows, and every part gets the shared vocabulary. By care site when the data has enough of
/// them (a hospital's own departments or clinics), otherwise by a seeded hash of `person_id`.
public enum ShardSplit {
    /// One written part.
    public struct Part: Sendable, Equatable {
        public var file: URL
        public var persons: Int
    }

    /// How persons were assigned.
    public enum Method: String, Sendable {
        case careSite = "care site", hash = "hash of person_id"
    }

    /// Tables whose rows belong to one person (the column that says whose).
    static let personTables: [(table: String, person: String)] = [
        ("person", "person_id"), ("observation_period", "person_id"), ("visit_occurrence", "person_id"),
        ("condition_occurrence", "person_id"), ("drug_exposure", "person_id"), ("procedure_occurrence", "person_id"),
        ("measurement", "person_id"), ("observation", "person_id"), ("death", "person_id"), ("cohort", "subject_id"),
    ]
    /// Tables every part shares.
    static let sharedTables = ["concept", "concept_ancestor", "care_site", "cdm_source"]

    /// Splits `source` into `parts` shards named `<name>-<k>.sqlite` in `folder` (k from 1).
    /// Refuses to replace an existing file unless `force`.
    public static func split(_ source: SiteShard, parts: Int, into folder: URL, name: String, byCareSite: Bool, seed: UInt64,
                             force: Bool = false, currentYear: Int = CivilDate.currentYear,
                             logger: Logger = Logger(label: "sitefit.split")) throws -> (method: Method, parts: [Part]) {
        guard parts >= 2 else { throw ShardError(site: source.site, file: source.url.relativePath, problem: "split into at least 2 sites") }
        let files = (1...parts).map { folder.appendingPathComponent("\(name)-\($0).sqlite") }
        if !force, let existing = files.first(where: { FileManager.default.fileExists(atPath: $0.path) }) {
            throw ShardError(site: source.site, file: existing.relativePath, problem: "the file exists; pass --force to replace it")
        }
        let persons = try source.reader.read { db in
            try Row.fetchAll(db, sql: "SELECT person_id, care_site_id FROM person ORDER BY person_id").map { row -> (Int64, Int64?) in
                (try row.required(0, "person.person_id", site: source.site, file: source.url.relativePath), Int64.fromDatabaseValue(row[1]))
            }
        }
        guard persons.count >= parts else {
            throw ShardError(site: source.site, file: source.url.relativePath, problem: "\(persons.count) persons cannot make \(parts) sites")
        }
        var assignment: [Int64: Int] = [:]
        var method = Method.hash
        let careSites = Dictionary(grouping: persons.compactMap { $0.1 }, by: { $0 }).mapValues(\.count)
        if byCareSite && careSites.count >= parts {
            // Largest care sites first, each to the part with the fewest persons so far.
            method = .careSite
            var sizes = [Int](repeating: 0, count: parts)
            var partOf: [Int64: Int] = [:]
            for (careSite, count) in careSites.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                let k = sizes.indices.min { sizes[$0] != sizes[$1] ? sizes[$0] < sizes[$1] : $0 < $1 }!
                partOf[careSite] = k
                sizes[k] += count
            }
            for (person, careSite) in persons { assignment[person] = careSite.flatMap { partOf[$0] } ?? hashPart(person, parts: parts, seed: seed) }
        } else {
            for (person, _) in persons { assignment[person] = hashPart(person, parts: parts, seed: seed) }
        }
        let sizes = (0..<parts).map { k in assignment.values.filter { $0 == k }.count }
        if let empty = sizes.firstIndex(of: 0) {
            throw ShardError(site: source.site, file: source.url.relativePath,
                             problem: "site \(empty + 1) of \(parts) would hold no person; split into fewer sites or use another --seed")
        }
        var written: [Part] = []
        let chosen = method
        for (k, file) in files.enumerated() {
            let members = Set(assignment.filter { $0.value == k }.map(\.key))
            try ShardBuilder.write(site: "\(name)-\(k + 1)", to: file, logger: logger) { db in
                try ShardSchema.create(in: db)
                try copy(from: source, into: db, persons: members)
                // The import's row-level findings were settled in the source (duplicates dropped,
                // values set); the plausibility checks are run again on this part's own rows.
                try DataQualityFinding.store(try PlausibilityChecks.run(in: db, currentYear: currentYear), in: db)
                try db.execute(sql: """
                    INSERT INTO metadata (metadata_concept_id, metadata_type_concept_id, name, value_as_string)
                    VALUES (0, 0, 'sitefit.import', 'split'), (0, 0, 'sitefit.split_from', ?), (0, 0, 'sitefit.split_by', ?),
                           (0, 0, 'sitefit.split_parts', ?), (0, 0, 'sitefit.split_seed', ?)
                    """, arguments: [source.url.lastPathComponent, chosen.rawValue, String(parts), String(seed)])
            }
            written.append(Part(file: file, persons: members.count))
        }
        return (method, written)
    }

    /// How a part was cut (from its metadata), or nil for a shard `split` did not write.
    public static func recorded(in shard: SiteShard) throws -> (from: String, parts: Int, seed: UInt64, by: String)? {
        try shard.reader.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT name, value_as_string FROM metadata WHERE name LIKE 'sitefit.split_%'")
            var values: [String: String] = [:]
            for row in rows { if let name = String.fromDatabaseValue(row[0]), let value = String.fromDatabaseValue(row[1]) { values[name] = value } }
            guard let from = values["sitefit.split_from"], let by = values["sitefit.split_by"],
                  let parts = values["sitefit.split_parts"].flatMap({ Int($0) }),
                  let seed = values["sitefit.split_seed"].flatMap({ UInt64($0) }) else { return nil }
            return (from, parts, seed, by)
        }
    }

    /// The part of `person` by a seeded hash (stable across runs and machines).
    static func hashPart(_ person: Int64, parts: Int, seed: UInt64) -> Int {
        var random = RandomStream(seed: seed, "split-site", String(person))
        return random.int(below: parts)
    }

    /// Copies `persons`' rows of every person table, and all rows of the shared tables.
    static func copy(from source: SiteShard, into db: Database, persons: Set<Int64>) throws {
        for (table, person) in personTables.map({ ($0.table, Optional($0.person)) }) + sharedTables.map({ ($0, nil as String?) }) {
            let target = try db.columns(in: table).map(\.name)
            let columns: [String] = try source.reader.read { src in
                guard try src.tableExists(table) else { return [] }
                let present = Set(try src.columns(in: table).map(\.name))
                return target.filter { present.contains($0) }
            }
            guard !columns.isEmpty else { continue }
            let insert = try db.makeStatement(sql: """
                INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
                """)
            let owner = person.flatMap { columns.firstIndex(of: $0) }
            if person != nil && owner == nil {
                // Rows that name no person cannot be given to one part; copying them to all would leak them.
                throw ShardError(site: source.site, file: source.url.relativePath, problem: "table '\(table)' has no column '\(person!)'")
            }
            try source.reader.read { src in
                let rows = try Row.fetchCursor(src, sql: "SELECT \(columns.joined(separator: ", ")) FROM \(table)")
                while let row = try rows.next() {
                    if let owner {
                        guard let id = Int64.fromDatabaseValue(row[owner]), persons.contains(id) else { continue }
                    }
                    try insert.execute(arguments: StatementArguments(row.databaseValues))
                }
            }
        }
    }
}
