import Foundation
import GRDB
import Logging
import SwiftCSV

/// Exchange of shards with OHDSI tools as one CSV file per OMOP table.
///
/// Import accepts what OHDSI exports look like in practice: file and column names in upper or
/// lower case, extra columns, any column order, ISO dates (a time part is dropped), numbers written
/// as `8507.0`, and an optional `concept.csv`. A missing table or required column is an error
/// naming the file; a malformed value names the file, line and column, never the value.
public enum OMOPCSV {
    /// Tables a CSV folder must provide, and the optional ones (created empty, or filled by SiteFit).
    public static let requiredTables = ["person", "observation_period", "visit_occurrence", "condition_occurrence",
                                        "drug_exposure", "measurement", "cohort"]
    public static let optionalTables = ["observation", "concept", "cdm_source", "metadata"]

    /// Writes every table of `shard` as `<table>.csv` into `folder` (header in lower case unless
    /// `upperCaseHeaders`, as some OHDSI tools write them).
    public static func export(_ shard: SiteShard, to folder: URL, upperCaseHeaders: Bool = false) throws {
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try shard.reader.read { db in
                for table in requiredTables + optionalTables {
                    let columns = try db.columns(in: table).map(\.name)
                    var out = columns.map { upperCaseHeaders ? $0.uppercased() : $0 }.joined(separator: ",") + "\n"
                    let rows = try Row.fetchCursor(db, sql: "SELECT * FROM \(table) ORDER BY rowid")
                    while let row = try rows.next() {
                        out += (0..<columns.count).map { field(row[$0] as DatabaseValue) }.joined(separator: ",") + "\n"
                    }
                    let name = upperCaseHeaders ? table.uppercased() : table
                    try Data(out.utf8).write(to: folder.appendingPathComponent("\(name).csv"))
                }
            }
        } catch let error as ShardError {
            throw error
        } catch {
            throw ShardError(site: shard.site, file: folder.relativePath, problem: "export failed: \(describe(error))")
        }
    }

    static func field(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: return ""
        case .int64(let v): return String(v)
        case .double(let v): return "\(v)"
        case .string(let s):
            return s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        case .blob: return ""
        }
    }

    /// Builds the shard `to` for site `name` from the CSV files in `folder`.
    public static func importFolder(_ folder: URL, to url: URL, name: String,
                                    logger: Logger = Logger(label: "sitefit.import")) throws {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        guard !files.isEmpty else {
            throw ShardError(site: name, file: folder.relativePath, problem: "folder not found or empty")
        }
        var byTable: [String: URL] = [:]
        for file in files where file.lowercased().hasSuffix(".csv") {
            byTable[String(file.dropLast(4)).lowercased()] = folder.appendingPathComponent(file)
        }
        for table in requiredTables where byTable[table] == nil {
            throw ShardError(site: name, file: folder.appendingPathComponent("\(table).csv").relativePath,
                             problem: "file is missing (every OMOP folder needs \(requiredTables.map { "\($0).csv" }.joined(separator: ", ")))")
        }
        // Parse everything before writing anything, so a bad file leaves no shard behind.
        var parsed: [(table: String, file: URL, header: [String], rows: [[String]])] = []
        for table in requiredTables + optionalTables {
            guard let file = byTable[table] else { continue }
            do {
                let csv = try CSV<Enumerated>(url: file, delimiter: .comma, loadColumns: false)
                let header = csv.header.map {
                    $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\u{FEFF}", with: "").lowercased()
                }
                parsed.append((table, file, header, csv.rows))
            } catch {
                throw ShardError(site: name, file: file.relativePath, problem: "not a readable CSV file")
            }
        }
        let tables = parsed
        try ShardBuilder.write(site: name, to: url, logger: logger) { db in
            try ShardSchema.create(in: db)
            for entry in tables {
                try load(entry.table, file: entry.file, header: entry.header, rows: entry.rows, site: name, db: db)
            }
            if !tables.contains(where: { $0.table == "concept" }) { try ShardGenerator.writeUsedConcepts(db) }
            if !tables.contains(where: { $0.table == "cdm_source" }) {
                try db.execute(sql: """
                    INSERT INTO cdm_source (cdm_source_name, cdm_source_abbreviation, cdm_holder, source_release_date,
                      cdm_release_date, cdm_version, cdm_version_concept_id, vocabulary_version)
                    VALUES (?, ?, 'unknown', '1970-01-01', '1970-01-01', 'v5.4', 756265, 'unknown')
                    """, arguments: [name, name])
            }
            try db.execute(sql: """
                INSERT INTO metadata (metadata_concept_id, metadata_type_concept_id, name, value_as_string)
                VALUES (0, 0, 'sitefit.import', 'omop-csv'), (0, 0, 'sitefit.imported_as', ?)
                """, arguments: [name])
        }
    }

    static func load(_ table: String, file: URL, header: [String], rows: [[String]], site: String, db: Database) throws {
        let shown = file.relativePath
        let columns = try db.columns(in: table)
        let required = Set(columns.filter(\.isNotNull).map(\.name)).union(ShardSchema.requiredColumns[table] ?? [])
        // The metadata table's id column is filled by SQLite, so it is not required in a file.
        let positions = Dictionary(header.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        for column in columns where required.contains(column.name) && positions[column.name] == nil {
            if column.isPrimaryKeyInteger(in: table) { continue }
            throw ShardError(site: site, file: shown, problem: "required column '\(column.name)' is missing")
        }
        let present = columns.filter { positions[$0.name] != nil }
        guard !present.isEmpty else { return }
        let statement = try db.makeStatement(sql: """
            INSERT INTO \(table) (\(present.map(\.name).joined(separator: ", "))) \
            VALUES (\(Array(repeating: "?", count: present.count).joined(separator: ", ")))
            """)
        for (index, row) in rows.enumerated() {
            let line = index + 2
            var values: [DatabaseValueConvertible?] = []
            values.reserveCapacity(present.count)
            for column in present {
                let raw = positions[column.name].flatMap { $0 < row.count ? row[$0] : nil }?
                    .trimmingCharacters(in: .whitespaces) ?? ""
                if raw.isEmpty {
                    if required.contains(column.name) && !column.isPrimaryKeyInteger(in: table) {
                        throw ShardError(site: site, file: shown, problem: "line \(line): required column '\(column.name)' is empty")
                    }
                    values.append(nil)
                    continue
                }
                switch column.type.uppercased() {
                case "INTEGER":
                    if let v = Int64(raw) { values.append(v) }
                    else if let d = Double(raw), d == d.rounded(), abs(d) < 9e15 { values.append(Int64(d)) }
                    else { throw ShardError(site: site, file: shown, problem: "line \(line): column '\(column.name)' is not an integer") }
                case "REAL":
                    guard let v = Double(raw) else {
                        throw ShardError(site: site, file: shown, problem: "line \(line): column '\(column.name)' is not a number")
                    }
                    values.append(v)
                default:
                    if column.name.hasSuffix("_date") {
                        let date = String(raw.prefix(10))
                        guard isISODate(date) else {
                            throw ShardError(site: site, file: shown, problem: "line \(line): column '\(column.name)' is not an ISO date (YYYY-MM-DD)")
                        }
                        values.append(date)
                    } else {
                        values.append(raw)
                    }
                }
            }
            try statement.execute(arguments: StatementArguments(values))
        }
    }

    static func isISODate(_ text: String) -> Bool {
        let p = text.split(separator: "-", omittingEmptySubsequences: false)
        guard p.count == 3, p[0].count == 4, p[1].count == 2, p[2].count == 2,
              let y = Int(p[0]), let m = Int(p[1]), let d = Int(p[2]) else { return false }
        return CivilDate.iso(CivilDate.days(year: y, month: m, day: d)) == text
    }
}

extension ColumnInfo {
    /// `INTEGER PRIMARY KEY` columns (SQLite row ids) may be left out: SQLite numbers the rows.
    func isPrimaryKeyInteger(in table: String) -> Bool {
        primaryKeyIndex > 0 && type.uppercased() == "INTEGER"
    }
}
