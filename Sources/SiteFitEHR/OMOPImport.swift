import Foundation
import GRDB
import Logging
import SiteFitCore
import SwiftCSV

/// What an OMOP import did: rows read and kept per table, the CDM version, and every
/// data-quality finding (also stored in the shard, for `sites inspect` and the report).
public struct OMOPImportSummary: Sendable {
    /// One table's rows in its file and in the shard.
    public struct TableCount: Sendable, Equatable {
        public var table: String
        public var read: Int
        public var imported: Int
    }

    public var site: String
    public var cdmVersion: String?
    public var tables: [TableCount]
    public var findings: [DataQualityFinding]
}

/// The import of a folder of OMOP CDM CSV files as OHDSI tools export them (v5.3 or v5.4).
///
/// Real exports hold what the CDM allows and more: duplicate ids, empty values in nullable and in
/// required fields, events of persons who are not in `person`, version-specific columns. None of
/// that stops the import. Each is counted as the Data Quality Dashboard would count it and handled
/// the way that keeps the most data without inventing any: a duplicate id or a row without a
/// person or a date is dropped, an empty required concept id becomes 0 ("no matching concept"),
/// anything else is kept. Only what makes every task impossible (no `person` or
/// `observation_period` file, a file without its id or person column) is an error. Patients are
/// never renumbered: ids are taken from the files or the row is dropped.
enum OMOPImport {
    /// Import order: persons first, so every other table's person ids can be checked against them.
    static let tables = ["person", "death", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
                         "procedure_occurrence", "measurement", "observation", "cohort", "concept", "concept_ancestor",
                         "care_site", "cdm_source", "metadata"]
    static let requiredFiles = ["person", "observation_period"]

    /// CDM v5.3 column names that v5.4 renamed.
    static let renames: [String: [String: String]] = [
        "visit_occurrence": [
            "admitting_source_concept_id": "admitted_from_concept_id", "admitting_source_value": "admitted_from_source_value",
            "discharge_to_concept_id": "discharged_to_concept_id", "discharge_to_source_value": "discharged_to_source_value",
        ],
    ]

    /// Fields the CDM v5.4 field tables mark required (`isRequired`).
    static let cdmRequired: [String: [String]] = [
        "person": ["person_id", "gender_concept_id", "year_of_birth", "race_concept_id", "ethnicity_concept_id"],
        "death": ["person_id", "death_date"],
        "observation_period": ["observation_period_id", "person_id", "observation_period_start_date", "observation_period_end_date",
                               "period_type_concept_id"],
        "visit_occurrence": ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date", "visit_end_date",
                             "visit_type_concept_id"],
        "condition_occurrence": ["condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
                                 "condition_type_concept_id"],
        "drug_exposure": ["drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date", "drug_exposure_end_date",
                          "drug_type_concept_id"],
        "procedure_occurrence": ["procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date", "procedure_type_concept_id"],
        "measurement": ["measurement_id", "person_id", "measurement_concept_id", "measurement_date", "measurement_type_concept_id"],
        "observation": ["observation_id", "person_id", "observation_concept_id", "observation_date", "observation_type_concept_id"],
        "cohort": ["cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date"],
        "concept": ["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id", "concept_code", "valid_start_date",
                    "valid_end_date"],
        "concept_ancestor": ["ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation", "max_levels_of_separation"],
        "care_site": ["care_site_id"],
        "cdm_source": ["cdm_source_name", "cdm_source_abbreviation", "cdm_holder", "source_release_date", "cdm_release_date",
                       "cdm_version_concept_id", "vocabulary_version"],
        "metadata": ["metadata_concept_id", "metadata_type_concept_id", "name"],
    ]

    /// Required fields that only one CDM version has: a file of the other version may lack the column.
    static let versionSpecific: Set<String> = ["cdm_source.cdm_version_concept_id", "metadata.metadata_id"]

    /// Fields without which a row means nothing (its id, its person, its date): such a row is
    /// dropped, and a file without the column is an error.
    static let essential: [String: [String]] = [
        "person": ["person_id", "year_of_birth"],
        "death": ["person_id", "death_date"],
        "observation_period": ["observation_period_id", "person_id", "observation_period_start_date", "observation_period_end_date"],
        "visit_occurrence": ["visit_occurrence_id", "person_id", "visit_start_date"],
        "condition_occurrence": ["condition_occurrence_id", "person_id", "condition_start_date"],
        "drug_exposure": ["drug_exposure_id", "person_id", "drug_exposure_start_date"],
        "procedure_occurrence": ["procedure_occurrence_id", "person_id", "procedure_date"],
        "measurement": ["measurement_id", "person_id", "measurement_date"],
        "observation": ["observation_id", "person_id", "observation_date"],
        "cohort": ["cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date"],
        "concept": ["concept_id"],
        "concept_ancestor": ["ancestor_concept_id", "descendant_concept_id"],
        "care_site": ["care_site_id"],
    ]

    /// Counts of one check on one field while rows are read.
    struct Tally {
        var counts: [String: (check: String, field: String, action: DataQualityFinding.Action, rows: Int)] = [:]
        mutating func add(_ check: String, _ field: String, _ action: DataQualityFinding.Action) {
            let key = "\(check)|\(field)|\(action.rawValue)"
            counts[key, default: (check, field, action, 0)].rows += 1
        }
        func findings(table: String, rows: Int) -> [DataQualityFinding] {
            counts.keys.sorted().map { key in
                let c = counts[key]!
                return DataQualityFinding(check: c.check, table: table, field: c.field, violatingRows: c.rows, rows: rows, action: c.action)
            }
        }
    }

    /// A parsed file: its table, its normalised header, its rows.
    struct ParsedFile {
        var table: String
        var file: URL
        var header: [String]
        var rows: [[String]]
    }

    static func run(folder: URL, to url: URL, site: String, currentYear: Int, logger: Logger) throws -> OMOPImportSummary {
        let files = try discover(folder, site: site)
        // Parse everything before writing anything, so a bad file leaves no shard behind.
        var parsed: [ParsedFile] = []
        for table in tables {
            guard let file = files[table] else { continue }
            let csv: CSV<Enumerated>
            do {
                csv = try CSV<Enumerated>(url: file, delimiter: .comma, loadColumns: false)
            } catch {
                throw ShardError(site: site, file: file.relativePath, problem: "not a readable CSV file")
            }
            let header = csv.header.map { raw -> String in
                let name = raw.replacingOccurrences(of: "\u{FEFF}", with: "").trimmingCharacters(in: .whitespaces).lowercased()
                return renames[table]?[name] ?? name
            }
            try checkColumns(table, header: header, file: file, site: site)
            parsed.append(ParsedFile(table: table, file: file, header: header, rows: csv.rows))
        }
        let version = cdmVersion(parsed)
        let inputs = parsed
        let result = Box()
        try ShardBuilder.write(site: site, to: url, logger: logger) { db in
            try ShardSchema.create(in: db)
            var counts: [OMOPImportSummary.TableCount] = []
            var findings: [DataQualityFinding] = []
            for input in inputs {
                let loaded = try load(input, db: db)
                counts.append(.init(table: input.table, read: loaded.read, imported: loaded.imported))
                findings += loaded.findings
            }
            findings += try dropOrphans(db, counts: &counts)
            findings += try PlausibilityChecks.run(in: db, currentYear: currentYear)
            // Concepts the data uses but the export's concept file lacks (OHDSI exports often
            // ship a partial concept table): SiteFit's own names for the ones it knows.
            try ShardGenerator.writeUsedConcepts(db)
            if !inputs.contains(where: { $0.table == "cdm_source" }) {
                try db.execute(sql: "INSERT INTO cdm_source (cdm_source_name, cdm_source_abbreviation, cdm_version) VALUES (?, ?, ?)",
                               arguments: [site, site, version])
            }
            try db.execute(sql: """
                INSERT INTO metadata (metadata_concept_id, metadata_type_concept_id, name, value_as_string)
                VALUES (0, 0, 'sitefit.import', 'omop-csv'), (0, 0, 'sitefit.imported_as', ?), (0, 0, 'sitefit.cdm_version', ?)
                """, arguments: [site, version ?? "unknown"])
            try DataQualityFinding.store(findings, in: db)
            result.set(OMOPImportSummary(site: site, cdmVersion: version, tables: counts, findings: findings))
        }
        guard let summary = result.value else {
            throw ShardError(site: site, file: url.relativePath, problem: "import finished without a summary")
        }
        return summary
    }

    /// The table files of a folder, by lower-case table name. Hidden files (macOS `._X.csv`
    /// resource forks) and sub-folders (`__MACOSX`) are not looked at.
    static func discover(_ folder: URL, site: String) throws -> [String: URL] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), isFolder.boolValue,
              let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else {
            throw ShardError(site: site, file: folder.relativePath, problem: "folder not found")
        }
        var files: [String: URL] = [:]
        for name in names.sorted() where !name.hasPrefix(".") && name.lowercased().hasSuffix(".csv") {
            let table = String(name.dropLast(4)).lowercased()
            if files[table] == nil { files[table] = folder.appendingPathComponent(name) }
        }
        for table in requiredFiles where files[table] == nil {
            throw ShardError(site: site, file: folder.appendingPathComponent("\(table).csv").relativePath,
                             problem: "file is missing: an OMOP CDM export needs at least person.csv and observation_period.csv")
        }
        return files
    }

    /// A file must have the columns that give its rows an identity and those the CDM requires;
    /// a column only one CDM version has may be missing.
    static func checkColumns(_ table: String, header: [String], file: URL, site: String) throws {
        let present = Set(header)
        let needed = (essential[table] ?? []) + (cdmRequired[table] ?? []).filter { !versionSpecific.contains("\(table).\($0)") }
        for column in needed where !present.contains(column) {
            throw ShardError(site: site, file: file.relativePath, problem: "required column '\(column)' is missing")
        }
    }

    /// The CDM version as the export's `cdm_source.cdm_version` states it (nil without one).
    static func cdmVersion(_ files: [ParsedFile]) -> String? {
        guard let source = files.first(where: { $0.table == "cdm_source" }), let column = source.header.firstIndex(of: "cdm_version"),
              let row = source.rows.first, column < row.count else { return nil }
        let value = row[column].trimmingCharacters(in: .whitespaces)
        return value.isEmpty ? nil : value
    }

    /// Inserts one file's rows, counting and handling every failed check; returns the rows kept.
    static func load(_ input: ParsedFile, db: Database) throws -> (read: Int, imported: Int, findings: [DataQualityFinding]) {
        let table = input.table
        let columns = try db.columns(in: table)
        let positions = Dictionary(input.header.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let present = columns.filter { positions[$0.name] != nil }
        guard !present.isEmpty else { return (0, 0, []) }
        let required = Set(cdmRequired[table] ?? []), needed = Set(essential[table] ?? [])
        let key = try db.primaryKey(table).columns.joined(separator: ", ")
        let statement = try db.makeStatement(sql: """
            INSERT OR IGNORE INTO \(table) (\(present.map(\.name).joined(separator: ", "))) \
            VALUES (\(Array(repeating: "?", count: present.count).joined(separator: ", ")))
            """)
        var tally = Tally()
        var imported = 0
        var values: [DatabaseValueConvertible?] = []
        // Per inserted column, resolved once: where it sits in the file and what it must hold.
        struct Field { var column: ColumnInfo; var kind: Kind; var source: Int; var isConcept: Bool; var isRequired: Bool; var isEssential: Bool }
        let fields = present.map { c in
            Field(column: c, kind: Kind(c), source: positions[c.name]!, isConcept: c.name.hasSuffix("_concept_id"),
                  isRequired: required.contains(c.name), isEssential: needed.contains(c.name))
        }
        var read = 0
        rows: for row in input.rows {
            // A blank line (every field empty) is no record: SwiftCSV returns one for an empty line.
            if row.allSatisfy({ $0.allSatisfy(\.isWhitespace) }) { continue }
            read += 1
            values.removeAll(keepingCapacity: true)
            // Every field is checked even once the row is lost, so each failed check is counted, as DQD counts per field.
            var drop = false
            for field in fields {
                var raw = field.source < row.count ? row[field.source] : ""
                if raw.first?.isWhitespace == true || raw.last?.isWhitespace == true { raw = raw.trimmingCharacters(in: .whitespaces) }
                let name = field.column.name
                if raw.isEmpty {
                    if field.isEssential {
                        tally.add("isRequired", name, .dropped)
                        drop = true
                        continue
                    }
                    if field.isRequired {
                        tally.add("isRequired", name, field.isConcept ? .setToZero : .kept)
                        values.append(field.isConcept ? Int64(0) : nil)
                    } else {
                        values.append(nil)
                    }
                    continue
                }
                if let value = parse(raw, as: field.kind) {
                    values.append(value)
                    continue
                }
                // A value of the wrong type (DQD's cdmDatatype).
                if field.isEssential {
                    tally.add("cdmDatatype", name, .dropped)
                    drop = true
                    continue
                }
                let zero = field.isConcept && field.isRequired
                tally.add("cdmDatatype", name, zero ? .setToZero : .setToNull)
                values.append(zero ? Int64(0) : nil)
            }
            if drop { continue rows }
            try statement.execute(arguments: StatementArguments(values))
            if db.changesCount == 0 {
                // Only a primary key conflicts: every NOT NULL field was checked above.
                tally.add("isPrimaryKey", key, .dropped)
            } else {
                imported += 1
            }
        }
        return (read, imported, tally.findings(table: table, rows: read))
    }

    /// What a column holds, as the import reads it.
    enum Kind {
        case date, dateTime, integer, real, text
        init(_ column: ColumnInfo) {
            if column.name.hasSuffix("_date") { self = .date }
            else if column.name.hasSuffix("_datetime") { self = .dateTime }
            else {
                switch column.type.uppercased() {
                case "INTEGER": self = .integer
                case "REAL": self = .real
                default: self = .text
                }
            }
        }
    }

    /// A cell as the column's kind, or nil when it is not one (a non-finite number is not a number).
    static func parse(_ raw: String, as kind: Kind) -> DatabaseValueConvertible? {
        switch kind {
        case .date: return date(raw)
        case .dateTime: return dateTime(raw)
        case .integer:
            if let v = Int64(raw) { return v }
            if let d = Double(raw), d.isFinite, d == d.rounded(), abs(d) < 9e15 { return Int64(d) }
            return nil
        case .real:
            guard let v = Double(raw), v.isFinite else { return nil }
            return v
        case .text:
            return raw
        }
    }

    /// An ISO date from `YYYY-MM-DD` (with or without a time part), `YYYYMMDD`, or an epoch
    /// number: days below 10⁶ (year 4707), seconds below 10¹¹, milliseconds above.
    static func date(_ raw: String) -> String? {
        // Byte-wise: this runs once per date cell, and Character-wise string slicing dominated imports.
        let bytes = Array(raw.utf8)
        var start = 0, end = bytes.count
        while start < end && (bytes[start] == 0x20 || bytes[start] == 0x09) { start += 1 }
        while end > start && (bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09) { end -= 1 }
        let n = end - start
        func digits(_ from: Int, _ count: Int) -> Int? {
            var value = 0
            for i in from..<(from + count) {
                let b = bytes[start + i]
                guard b >= 0x30 && b <= 0x39 else { return nil }
                value = value * 10 + Int(b - 0x30)
            }
            return value
        }
        func valid(_ y: Int, _ m: Int, _ d: Int) -> String? {
            guard (1...12).contains(m) else { return nil }
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
            let length = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
            guard (1...length).contains(d) else { return nil }
            return CivilDate.iso(CivilDate.days(year: y, month: m, day: d))
        }
        if n >= 10, bytes[start + 4] == 0x2D, bytes[start + 7] == 0x2D,
           n == 10 || bytes[start + 10] == 0x20 || bytes[start + 10] == 0x54,
           let y = digits(0, 4), let m = digits(5, 2), let d = digits(8, 2) {
            return valid(y, m, d)
        }
        if n == 8, let y = digits(0, 4), let m = digits(4, 2), let d = digits(6, 2), let date = valid(y, m, d) {
            return date
        }
        // A number of 4 digits or fewer is more likely a year than a day count: not a date.
        guard n >= 5, let number = Double(String(decoding: bytes[start..<end], as: UTF8.self)), number.isFinite else { return nil }
        let days: Double
        switch abs(number) {
        case ..<1e6: days = number.rounded(.down)
        case ..<1e11: days = (number / 86_400).rounded(.down)
        case ..<1e14: days = (number / 86_400_000).rounded(.down)
        default: return nil
        }
        return CivilDate.iso(Int(days))
    }

    /// A `YYYY-MM-DD HH:MM:SS` date-time from ISO text (a `T`, fractions and a zone are dropped),
    /// a date alone (midnight), or an epoch number as for `date`.
    static func dateTime(_ raw: String) -> String? {
        guard let day = date(raw) else { return nil }
        let bytes = Array(raw.utf8.drop { $0 == 0x20 || $0 == 0x09 })
        func pad(_ v: Int) -> String { v < 10 ? "0\(v)" : String(v) }
        func number(_ i: Int) -> Int? {
            guard i + 1 < bytes.count, (0x30...0x39).contains(bytes[i]), (0x30...0x39).contains(bytes[i + 1]) else { return nil }
            return Int(bytes[i] - 0x30) * 10 + Int(bytes[i + 1] - 0x30)
        }
        // ISO text: a date, then a space or T and HH:MM, with or without :SS (fractions and a zone dropped).
        if bytes.count >= 10, bytes[4] == 0x2D {
            guard bytes.count >= 16, bytes[10] == 0x20 || bytes[10] == 0x54, bytes[13] == 0x3A else { return "\(day) 00:00:00" }
            guard let h = number(11), let m = number(14), h < 24, m < 60 else { return nil }
            var sec = 0
            if bytes.count >= 19, bytes[16] == 0x3A {
                guard let s = number(17), s <= 60 else { return nil }
                sec = s
            }
            return "\(day) \(pad(h)):\(pad(m)):\(pad(sec))"
        }
        // A number that `date` read as YYYYMMDD is a date alone; any other number is an epoch
        // count (days have no time of day; seconds and milliseconds do).
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        if text.count == 8, date(text).map({ $0.replacingOccurrences(of: "-", with: "") == text }) == true { return "\(day) 00:00:00" }
        guard let value = Double(text), value.isFinite, abs(value) >= 1e6 else { return "\(day) 00:00:00" }
        let seconds = abs(value) < 1e11 ? value : value / 1000
        let withinDay = Int(seconds.rounded(.down)) - Int((seconds / 86_400).rounded(.down)) * 86_400
        return "\(day) \(pad(withinDay / 3600)):\(pad(withinDay / 60 % 60)):\(pad(withinDay % 60))"
    }

    /// Drops every event, period and cohort row whose person is not in `person` (DQD's
    /// `isForeignKey` on `person_id`): a row that belongs to nobody cannot enter a cohort.
    static func dropOrphans(_ db: Database, counts: inout [OMOPImportSummary.TableCount]) throws -> [DataQualityFinding] {
        var findings: [DataQualityFinding] = []
        for table in tables where table != "person" {
            let column = table == "cohort" ? "subject_id" : "person_id"
            guard try db.columns(in: table).contains(where: { $0.name == column }) else { continue }
            let rows = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0
            guard rows > 0 else { continue }
            try db.execute(sql: "DELETE FROM \(table) WHERE \(column) NOT IN (SELECT person_id FROM person)")
            let dropped = db.changesCount
            guard dropped > 0 else { continue }
            findings.append(DataQualityFinding(check: "isForeignKey", table: table, field: column, violatingRows: dropped, rows: rows, action: .dropped))
            if let i = counts.firstIndex(where: { $0.table == table }) { counts[i].imported -= dropped }
        }
        return findings
    }

    /// Carries the summary out of the write transaction's closure.
    final class Box: @unchecked Sendable {
        // @unchecked: set once inside the synchronous write, read after it returns.
        private(set) var value: OMOPImportSummary?
        func set(_ summary: OMOPImportSummary) { value = summary }
    }
}
