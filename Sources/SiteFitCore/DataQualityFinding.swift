// A data-quality finding is plain data: the import makes it, the shard keeps it, the report shows it.

/// One data-quality check on an imported OMOP table, named as OHDSI's Data Quality Dashboard
/// names its check types, with the number of records that failed it and what the import did.
public struct DataQualityFinding: Sendable, Equatable, Codable {
    /// The DQD check type, e.g. `isPrimaryKey`, `isRequired`, `plausibleValueLow`.
    public var check: String
    public var table: String
    public var field: String
    /// Records that failed the check.
    public var violatingRows: Int
    /// Records the check looked at.
    public var rows: Int
    /// What the import did with the failing records: dropped them, set a value, or kept them as they are.
    public var action: Action

    /// What happened to the records that failed a check.
    public enum Action: String, Sendable, Codable {
        /// Not imported (a duplicate id, no person, no usable date).
        case dropped = "row dropped"
        /// A required concept id was empty: set to 0, the CDM's "no matching concept".
        case setToZero = "set to 0"
        /// An unreadable value in an optional field: stored as NULL.
        case setToNull = "set to NULL"
        /// Imported unchanged; the finding is for the data manager.
        case kept
    }

    public init(check: String, table: String, field: String, violatingRows: Int, rows: Int, action: Action) {
        self.check = check
        self.table = table
        self.field = field
        self.violatingRows = violatingRows
        self.rows = rows
        self.action = action
    }
}
