import Foundation
import GRDB
import Logging
import SiteFitCore

/// A problem with a site's shard, naming the site and the file; never a patient value.
public struct ShardError: Error, Sendable, CustomStringConvertible {
    public var site: String
    public var file: String
    public var problem: String

    public init(site: String, file: String, problem: String) {
        self.site = site
        self.file = file
        self.problem = problem
    }

    public var description: String { "site '\(site)': \(file): \(problem)" }
}

/// Writes shards atomically: a temporary file in the target folder, one transaction, then a rename,
/// so an interrupted build never leaves a half shard under the real name.
public enum ShardBuilder {
    /// Builds `profile` into `url`, replacing any file there.
    public static func build(profile: SiteProfile, to url: URL, logger: Logger = Logger(label: "sitefit.ehr")) throws {
        try write(site: profile.id, to: url, logger: logger) { db in try ShardGenerator.populate(db, profile: profile) }
    }

    /// Runs `populate` on a new database in one transaction and renames it into `url` only when
    /// everything succeeded.
    public static func write(
        site: String, to url: URL, logger: Logger = Logger(label: "sitefit.ehr"),
        populate: @escaping @Sendable (Database) throws -> Void
    ) throws {
        let folder = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw ShardError(site: site, file: url.relativePath, problem: "cannot create folder \(folder.relativePath)")
        }
        removeStaleTemporaries(of: url)
        // The builder's process id in the name tells a later build whether its writer is still alive.
        let temporary = folder.appendingPathComponent(StaleFiles.temporaryName(".\(url.lastPathComponent).tmp-"))
        do {
            let queue = try DatabaseQueue(path: temporary.path)
            try queue.write { db in try populate(db) }
            try queue.close()
            // rename(2) replaces the target atomically: readers see the old shard or the new one.
            guard rename(temporary.path, url.path) == 0 else {
                throw ShardError(site: site, file: url.relativePath, problem: "cannot move the new shard into place")
            }
        } catch let error as ShardError {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw ShardError(site: site, file: url.relativePath, problem: "build failed: \(describe(error))")
        }
        logger.info("wrote shard", metadata: ["site": "\(site)", "file": "\(url.relativePath)"])
    }
}

extension ShardBuilder {
    /// Removes what interrupted builds of `url` left behind (`.<file>.tmp-<pid>-<uuid>` with its
    /// SQLite journal files), keeping those of builds still running: a killed build's partial
    /// patient tables must not lie around forever.
    public static func removeStaleTemporaries(of url: URL) {
        StaleFiles.remove(prefix: ".\(url.lastPathComponent).tmp-", in: url.deletingLastPathComponent())
    }
}

/// A site's shard opened read-only (`SQLITE_OPEN_READONLY`): any write through it fails.
public struct SiteShard: Sendable {
    public let site: String
    public let url: URL
    /// Read-only by type and by configuration.
    public let reader: any DatabaseReader

    /// Opens and checks a shard: the file exists, is SQLite, and has every table and column SiteFit reads.
    public init(site: String, url: URL) throws {
        self.site = site
        self.url = url
        let file = url.relativePath
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ShardError(site: site, file: file, problem: "shard file not found (build it with `sitefit sites build`)")
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.label = "shard:\(site)"
        do {
            let queue = try DatabaseQueue(path: url.path, configuration: configuration)
            reader = queue
            try queue.inDatabase { db in
                // quick_check reads every page once (about 25 ms for a 5 MB shard) and catches the
                // damage a run would otherwise read silently; integrity_check's index-to-table
                // cross-checks would cost more and guard against bugs in SQLite rather than bad files.
                let verdict = try String.fetchAll(db, sql: "PRAGMA quick_check(1)")
                guard verdict == ["ok"] else {
                    throw ShardError(site: site, file: file, problem: "the database is damaged (SQLite's quick_check fails); restore or rebuild it")
                }
                let foreign = try Self.isForeign(db)
                for (table, columns) in ShardSchema.requiredColumns.sorted(by: { $0.key < $1.key }) {
                    guard try db.tableExists(table) else {
                        if foreign && !ShardSchema.foreignRequiredTables.contains(table) {
                            try Self.createEmptyTemporary(table, in: db)
                            continue
                        }
                        throw ShardError(site: site, file: file, problem: "table '\(table)' is missing")
                    }
                    let present = Set(try db.columns(in: table).map(\.name))
                    for column in columns where !present.contains(column) {
                        throw ShardError(site: site, file: file, problem: "table '\(table)' has no column '\(column)'")
                    }
                }
                if foreign {
                    // Every id and date column of every table SiteFit reads, not only the ones it
                    // requires: a split copies all of them, and covariates read the other domains.
                    for table in ShardSchema.requiredColumns.keys.sorted() + ShardSchema.otherTables {
                        guard try db.tableExists(table, in: "main") else {
                            if try !db.tableExists(table) { try Self.createEmptyTemporary(table, in: db) }
                            continue
                        }
                        let columns = try db.columns(in: table).map(\.name)
                            .filter { ($0.hasSuffix("_id") || $0.hasSuffix("_date")) && !ShardSchema.textIds.contains("\(table).\($0)") }
                        try Self.checkStorage(table, columns: columns, in: db, site: site, file: file)
                    }
                }
            }
        } catch let error as ShardError {
            throw error
        } catch {
            throw ShardError(site: site, file: file, problem: describe(error))
        }
    }

    /// Whether the database was written by someone other than SiteFit (an OMOP SQLite database
    /// opened in place): no `metadata` row of SiteFit's own.
    static func isForeign(_ db: Database) throws -> Bool {
        guard try db.tableExists("metadata"), try db.columns(in: "metadata").contains(where: { $0.name == "name" }) else { return true }
        return try Bool.fetchOne(db, sql: "SELECT NOT EXISTS (SELECT 1 FROM metadata WHERE name LIKE 'sitefit.%')") ?? true
    }

    /// A table SiteFit reads but a foreign OMOP database need not have (no cohort table, no
    /// measurements): an empty one in the connection's own temporary schema, which SQLite
    /// searches first and which never touches the file.
    static func createEmptyTemporary(_ table: String, in db: Database) throws {
        guard let statement = ShardSchema.statements.first(where: { $0.hasPrefix("CREATE TABLE \(table) (") }) else { return }
        try db.execute(sql: "CREATE TEMP TABLE" + statement.dropFirst("CREATE TABLE".count))
    }

    /// SiteFit's SQL compares ids as integers and dates as ISO text (`julianday`). A database
    /// with text ids or numeric dates (as some tools write SQLite) would be read wrongly rather
    /// than fail, so it is refused here, naming the column and never a value.
    static func checkStorage(_ table: String, columns: [String], in db: Database, site: String, file: String) throws {
        for column in columns {
            let quoted = "\"\(column)\""
            if column.hasSuffix("_id") {
                if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM \(table) WHERE typeof(\(quoted)) NOT IN ('integer', 'null'))") == true {
                    throw ShardError(site: site, file: file, problem: "column \(table).\(column) holds values that are not whole numbers; "
                                     + "SiteFit reads an OMOP database in place only with integer ids and ISO dates: "
                                     + "export it to CSV and import that with `sitefit sites import omop`")
                }
            } else if column.hasSuffix("_date") {
                if try Bool.fetchOne(db, sql: """
                    SELECT EXISTS (SELECT 1 FROM \(table) WHERE \(quoted) IS NOT NULL
                                   AND (typeof(\(quoted)) <> 'text' OR \(quoted) NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'))
                    """) == true {
                    throw ShardError(site: site, file: file, problem: "column \(table).\(column) holds dates that are not ISO text (YYYY-MM-DD); "
                                     + "SiteFit reads an OMOP database in place only with ISO dates: "
                                     + "export it to CSV and import that with `sitefit sites import omop`, which reads epoch numbers too")
                }
            }
        }
    }

    /// The profile fingerprint the shard was built from, if it was built by SiteFit.
    public func profileFingerprint() throws -> String? {
        try reader.read { db in
            try String.fetchOne(db, sql: "SELECT value_as_string FROM metadata WHERE name = 'sitefit.profile_fingerprint'")
        }
    }
}

extension Row {
    /// The value at `index`, or an error naming `column` and never a value. GRDB's own
    /// subscript traps on a NULL or a wrong type, and its message prints the whole row: a
    /// patient's record.
    func required<T: DatabaseValueConvertible>(_ index: Int, _ column: String, site: String, file: String) throws -> T {
        let value: DatabaseValue = self[index]
        guard let decoded = T.fromDatabaseValue(value) else {
            throw ShardError(site: site, file: file, problem: value.isNull
                ? "\(column) is empty (NULL) where SiteFit needs a value"
                : "\(column) holds a value of the wrong type (\(value.storage.kind))")
        }
        return decoded
    }
}

extension DatabaseValue.Storage {
    /// The storage class's name, never the value.
    var kind: String {
        switch self {
        case .null: "NULL"
        case .int64: "an integer"
        case .double: "a real number"
        case .string: "text"
        case .blob: "a blob"
        }
    }
}

/// SQLite errors described without SQL arguments (which could carry patient values).
func describe(_ error: any Error) -> String {
    if let error = error as? DatabaseError {
        switch error.resultCode {
        case .SQLITE_NOTADB: return "not a SQLite database"
        case .SQLITE_CORRUPT: return "the database file is corrupt"
        case .SQLITE_CANTOPEN: return "cannot open the file"
        case .SQLITE_READONLY: return "attempt to write a read-only database"
        default: return "SQLite error \(error.resultCode.rawValue): \(error.message ?? "unknown")"
        }
    }
    if let error = error as? ShardError { return error.problem }
    return String(describing: type(of: error))
}
