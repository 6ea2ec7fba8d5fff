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
    public static let requiredTables = ["person", "observation_period"]
    public static let optionalTables = ["visit_occurrence", "condition_occurrence", "drug_exposure", "measurement", "cohort",
                                        "observation", "procedure_occurrence", "death", "care_site", "concept", "concept_ancestor",
                                        "cdm_source", "metadata"]

    /// Writes every table of `shard` as `<table>.csv` into `folder` (header in lower case unless
    /// `upperCaseHeaders`, as some OHDSI tools write them).
    public static func export(_ shard: SiteShard, to folder: URL, upperCaseHeaders: Bool = false) throws {
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try shard.reader.read { db in
                for table in requiredTables + optionalTables where try db.tableExists(table) {
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

    /// Builds the shard `to` for site `name` from the CSV files in `folder` (see `OMOPImport`),
    /// replacing any file there: callers that must not overwrite check first.
    @discardableResult
    public static func importFolder(_ folder: URL, to url: URL, name: String, currentYear: Int = CivilDate.currentYear,
                                    logger: Logger = Logger(label: "sitefit.import")) throws -> OMOPImportSummary {
        try OMOPImport.run(folder: folder, to: url, site: name, currentYear: currentYear, logger: logger)
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
