import GRDB
import SiteFitCore

/// What a data manager checks before a site joins: table sizes, the outcome, demographics, lab
/// missingness and units, and outcome prevalence per subgroup. Aggregates only, never rows.
public struct ShardInspection: Sendable, Equatable {
    /// A row count of one OMOP table.
    public struct TableCount: Sendable, Equatable {
        public var table: String
        public var rows: Int
    }

    /// One kind of measurement: the share of cohort members with no value (nil when the members
    /// with or without one are a small cell), and the units used.
    public struct LabSummary: Sendable, Equatable {
        public var name: String
        public var conceptId: Int
        public var missingShare: Double?
        /// Unit code (UCUM) → number of measurement rows.
        public var units: [(unit: String, rows: Int)]

        public static func == (a: LabSummary, b: LabSummary) -> Bool {
            a.name == b.name && a.conceptId == b.conceptId && a.missingShare == b.missingShare
                && a.units.map(\.unit) == b.units.map(\.unit) && a.units.map(\.rows) == b.units.map(\.rows)
        }
    }

    /// Outcome prevalence in one subgroup. `patients` is nil when the group is a small cell;
    /// `prevalence` is nil when the group is below the minimum size or either its patients with
    /// or without the outcome are a small cell (a rate would give that count away).
    public struct SubgroupSummary: Sendable, Equatable {
        public var attribute: String
        public var group: String
        public var patients: Int?
        public var prevalence: Double?
    }

    public var site: String
    public var sourceName: String?
    public var generator: String?
    public var tables: [TableCount]
    public var cohortSize: Int
    /// Nil when the patients with or without the outcome are a small cell.
    public var outcomePrevalence: Double?
    /// Nil when the cohort itself is a small cell.
    public var meanAge: Double?
    public var labs: [LabSummary]
    public var subgroups: [SubgroupSummary]
    /// What the OMOP import found and did (empty for a generated shard).
    public var dataQuality: [DataQualityFinding] = []
    /// How the shard was made: "generated", "omop-csv" import, or "uci-heart-disease" import.
    public var provenance: String?
    /// The CDM version an imported export stated.
    public var cdmVersion: String?

    /// Counts below this are small cells: shown as "<N", never as a number.
    public var minimumCellCount: Int

    /// Groups smaller than this are reported as too small rather than as a rate.
    public static let minimumGroupSize = 20
    /// The usual small-cell threshold of health-data disclosure rules (counts of 1 to 10 hidden).
    public static let defaultMinimumCellCount = 11

    /// `count` as it may be shown: the number, or "<N" for a small cell (0 is not a small cell).
    public func cell(_ count: Int) -> String {
        Self.isSmall(count, minimum: minimumCellCount) ? "<\(minimumCellCount)" : String(count)
    }

    /// A count of 1 to minimum − 1: one that disclosure rules hide.
    public static func isSmall(_ count: Int, minimum: Int) -> Bool { count > 0 && count < minimum }

    /// A share that would give a small count away (its numerator or its complement is small).
    static func revealsSmall(_ part: Int, of whole: Int, minimum: Int) -> Bool {
        isSmall(part, minimum: minimum) || isSmall(whole - part, minimum: minimum)
    }

    /// Complementary suppression within one attribute: when exactly one group's count (or rate) is
    /// hidden, the others and the cohort total would give it back by subtraction, so the next
    /// smallest group's is hidden too.
    static func suppressComplements(_ groups: inout [SubgroupSummary]) {
        if groups.filter({ $0.patients == nil }).count == 1,
           let next = groups.indices.filter({ groups[$0].patients != nil }).min(by: { groups[$0].patients! < groups[$1].patients! }) {
            groups[next].patients = nil
            groups[next].prevalence = nil
        }
        if groups.filter({ $0.prevalence == nil }).count == 1,
           let next = groups.indices.filter({ groups[$0].prevalence != nil }).min(by: { (groups[$0].patients ?? 0) < (groups[$1].patients ?? 0) }) {
            groups[next].prevalence = nil
        }
    }
}

extension SiteShard {
    /// Summarises the shard for `sitefit sites inspect` with the feature spec's windows.
    /// Counts below `minimumCellCount` are small cells: the inspection never shows them as numbers.
    public func inspect(_ spec: FeatureSpec = .heartFailure,
                        minimumCellCount: Int = ShardInspection.defaultMinimumCellCount) throws -> ShardInspection {
        // An OMOP export has no cohort until a task defines one: its tables and data quality are
        // still worth inspecting, with an empty cohort.
        let hasCohort = (try? reader.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM cohort WHERE cohort_definition_id = ?", arguments: [ShardSchema.targetCohort])
        }).flatMap { $0 } ?? 0 > 0
        let extract = hasCohort ? try extractCohort(spec)
            : CohortExtract(columns: spec.columnNames, personIds: [], features: [], labels: [], sex: [], race: [])
        do {
            return try reader.read { db in
                let tables = try (ShardSchema.requiredColumns.keys.sorted() + ShardSchema.otherTables).filter { try db.tableExists($0, in: "main") }.map { table in
                    ShardInspection.TableCount(table: table, rows: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0)
                }
                let sourceName = try String.fetchOne(db, sql: "SELECT cdm_source_name FROM cdm_source LIMIT 1")
                let generator = try String.fetchOne(db, sql: "SELECT value_as_string FROM metadata WHERE name = 'sitefit.generator_version'")
                let columns = extract.columns.count
                let ageColumn = extract.columns.firstIndex(of: "age_years")!
                let ages = (0..<extract.rows).map { extract.features[$0 * columns + ageColumn] }
                let names = Dictionary(uniqueKeysWithValues: OMOPConcept.all.map { ($0.id, $0) })
                // Every kind of measurement present: by standard concept, or by source value where the
                // concept is 0 ("no matching concept"). Missing = cohort members with no value at all.
                var labs: [ShardInspection.LabSummary] = []
                let kinds = try Row.fetchAll(db, sql: """
                    SELECT measurement_concept_id,
                      CASE WHEN measurement_concept_id = 0 THEN measurement_source_value END AS source,
                      COUNT(DISTINCT person_id) AS patients
                    FROM measurement GROUP BY 1, 2 ORDER BY 1, 2
                    """)
                for kind in kinds {
                    // A NULL concept (a foreign database) counts as "no matching concept".
                    let conceptId = Int.fromDatabaseValue(kind[0]) ?? 0
                    let source = String.fromDatabaseValue(kind[1])
                    let patients = Int.fromDatabaseValue(kind[2]) ?? 0
                    let units = try Row.fetchAll(db, sql: """
                        SELECT unit_concept_id, unit_source_value, COUNT(*) FROM measurement
                        WHERE measurement_concept_id = ? AND (? IS NULL OR measurement_source_value = ?)
                        GROUP BY 1, 2 ORDER BY 1, 2
                        """, arguments: [conceptId, source, source]).map { row -> (String, Int) in
                        let unit = Int.fromDatabaseValue(row[0])
                        let unitSource = String.fromDatabaseValue(row[1])
                        let code = unit.flatMap { $0 == 0 ? nil : names[$0]?.code } ?? unitSource ?? "none"
                        return (code, Int.fromDatabaseValue(row[2]) ?? 0)
                    }
                    let stored = conceptId == 0 ? nil
                        : try String.fetchOne(db, sql: "SELECT concept_name FROM concept WHERE concept_id = ?", arguments: [conceptId])
                    let name = conceptId == 0 ? "\(source ?? "unnamed") (no standard concept)"
                        : (names[conceptId]?.name ?? stored ?? "concept \(conceptId)")
                    let present = min(patients, extract.rows)
                    labs.append(.init(name: name, conceptId: conceptId,
                                      missingShare: extract.rows == 0 || ShardInspection.revealsSmall(present, of: extract.rows, minimum: minimumCellCount)
                                          ? nil : 1 - Double(present) / Double(extract.rows),
                                      units: units))
                }
                let positives = extract.labels.filter { $0 >= 0.5 }.count
                var subgroups: [ShardInspection.SubgroupSummary] = []
                let attributes: [(String, [String], [String])] = [
                    ("sex", extract.sex, ["female", "male"]),
                    ("race", extract.race, ["White", "Black", "Asian", "Other", "Unknown"]),
                    ("age band", ages.map(AgeBands.label), AgeBands.labels),
                ]
                for (attribute, values, groups) in attributes {
                    var summaries: [ShardInspection.SubgroupSummary] = []
                    for group in groups {
                        let members = values.indices.filter { values[$0] == group }
                        guard !members.isEmpty else { continue }
                        let positives = members.filter { extract.labels[$0] >= 0.5 }.count
                        let rateShown = members.count >= ShardInspection.minimumGroupSize
                            && !ShardInspection.revealsSmall(positives, of: members.count, minimum: minimumCellCount)
                        summaries.append(.init(
                            attribute: attribute, group: group,
                            patients: ShardInspection.isSmall(members.count, minimum: minimumCellCount) ? nil : members.count,
                            prevalence: rateShown ? Double(positives) / Double(members.count) : nil))
                    }
                    ShardInspection.suppressComplements(&summaries)
                    subgroups += summaries
                }
                let imported = try String.fetchOne(db, sql: "SELECT value_as_string FROM metadata WHERE name = 'sitefit.import'")
                let cdmVersion = try String.fetchOne(db, sql: "SELECT value_as_string FROM metadata WHERE name = 'sitefit.cdm_version'")
                var inspection = ShardInspection(
                    site: site, sourceName: sourceName, generator: generator, tables: tables, cohortSize: extract.rows,
                    outcomePrevalence: extract.rows == 0 || ShardInspection.revealsSmall(positives, of: extract.rows, minimum: minimumCellCount)
                        ? nil : Double(positives) / Double(extract.rows),
                    meanAge: ages.isEmpty || ShardInspection.isSmall(extract.rows, minimum: minimumCellCount)
                        ? nil : ages.reduce(0, +) / Double(ages.count),
                    labs: labs, subgroups: subgroups,
                    minimumCellCount: minimumCellCount)
                inspection.dataQuality = try DataQualityFinding.stored(in: db)
                inspection.provenance = imported.map { "\($0) import" } ?? (generator != nil ? "generated" : nil)
                inspection.cdmVersion = cdmVersion
                return inspection
            }
        } catch let error as ShardError {
            throw error
        } catch {
            throw ShardError(site: site, file: url.relativePath, problem: describe(error))
        }
    }
}
