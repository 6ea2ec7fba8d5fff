import GRDB

/// What a data manager checks before a site joins: table sizes, the outcome, demographics, lab
/// missingness and units, and outcome prevalence per subgroup. Aggregates only, never rows.
public struct ShardInspection: Sendable, Equatable {
    /// A row count of one OMOP table.
    public struct TableCount: Sendable, Equatable {
        public var table: String
        public var rows: Int
    }

    /// One lab: how many cohort members have a value in the look-back window, and in which units.
    public struct LabSummary: Sendable, Equatable {
        public var name: String
        public var conceptId: Int
        public var missingShare: Double
        /// Unit code (UCUM) → number of measurement rows.
        public var units: [(unit: String, rows: Int)]

        public static func == (a: LabSummary, b: LabSummary) -> Bool {
            a.name == b.name && a.conceptId == b.conceptId && a.missingShare == b.missingShare
                && a.units.map(\.unit) == b.units.map(\.unit) && a.units.map(\.rows) == b.units.map(\.rows)
        }
    }

    /// Outcome prevalence in one subgroup; `prevalence` is nil when the group is below the minimum size.
    public struct SubgroupSummary: Sendable, Equatable {
        public var attribute: String
        public var group: String
        public var patients: Int
        public var prevalence: Double?
    }

    public var site: String
    public var sourceName: String?
    public var generator: String?
    public var tables: [TableCount]
    public var cohortSize: Int
    public var outcomePrevalence: Double
    public var meanAge: Double
    public var labs: [LabSummary]
    public var subgroups: [SubgroupSummary]

    /// Groups smaller than this are reported as too small rather than as a rate.
    public static let minimumGroupSize = 20
}

extension SiteShard {
    /// Summarises the shard for `sitefit sites inspect` with the feature spec's windows.
    public func inspect(_ spec: FeatureSpec = .heartFailure) throws -> ShardInspection {
        let extract = try extractCohort(spec)
        do {
            return try reader.read { db in
                let tables = try ShardSchema.requiredColumns.keys.sorted().map { table in
                    ShardInspection.TableCount(table: table, rows: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0)
                }
                let sourceName = try String.fetchOne(db, sql: "SELECT cdm_source_name FROM cdm_source LIMIT 1")
                let generator = try String.fetchOne(db, sql: "SELECT value_as_string FROM metadata WHERE name = 'sitefit.generator_version'")
                let columns = extract.columns.count
                let ageColumn = extract.columns.firstIndex(of: "age_years")!
                let ages = (0..<extract.rows).map { extract.features[$0 * columns + ageColumn] }
                let names = Dictionary(uniqueKeysWithValues: OMOPConcept.all.map { ($0.id, $0) })
                var labs: [ShardInspection.LabSummary] = []
                for (offset, conceptId) in spec.measurements.enumerated() {
                    let column = 3 + spec.conditions.count + offset
                    let missing = (0..<extract.rows).filter { extract.features[$0 * columns + column].isNaN }.count
                    let units = try Row.fetchAll(db, sql: """
                        SELECT unit_concept_id, COUNT(*) AS n FROM measurement WHERE measurement_concept_id = ?
                        GROUP BY unit_concept_id ORDER BY unit_concept_id
                        """, arguments: [conceptId]).map { row -> (String, Int) in
                        let unit: Int? = row[0]
                        return (unit.flatMap { names[$0]?.code } ?? "concept \(unit.map(String.init) ?? "NULL")", row[1])
                    }
                    labs.append(.init(name: names[conceptId]?.name ?? "concept \(conceptId)", conceptId: conceptId,
                                      missingShare: Double(missing) / Double(extract.rows), units: units))
                }
                func band(_ age: Double) -> String {
                    switch age {
                    case ..<18: "0–17"
                    case ..<50: "18–49"
                    case ..<65: "50–64"
                    case ..<80: "65–79"
                    default: "80+"
                    }
                }
                var subgroups: [ShardInspection.SubgroupSummary] = []
                let attributes: [(String, [String], [String])] = [
                    ("sex", extract.sex, ["female", "male"]),
                    ("race", extract.race, ["White", "Black", "Asian", "Other"]),
                    ("age band", ages.map(band), ["0–17", "18–49", "50–64", "65–79", "80+"]),
                ]
                for (attribute, values, groups) in attributes {
                    for group in groups {
                        let members = values.indices.filter { values[$0] == group }
                        guard !members.isEmpty else { continue }
                        let positives = members.filter { extract.labels[$0] >= 0.5 }.count
                        subgroups.append(.init(
                            attribute: attribute, group: group, patients: members.count,
                            prevalence: members.count >= ShardInspection.minimumGroupSize
                                ? Double(positives) / Double(members.count) : nil))
                    }
                }
                return ShardInspection(
                    site: site, sourceName: sourceName, generator: generator, tables: tables, cohortSize: extract.rows,
                    outcomePrevalence: Double(extract.labels.filter { $0 >= 0.5 }.count) / Double(extract.rows),
                    meanAge: ages.reduce(0, +) / Double(ages.count), labs: labs, subgroups: subgroups)
            }
        } catch let error as ShardError {
            throw error
        } catch {
            throw ShardError(site: site, file: url.relativePath, problem: describe(error))
        }
    }
}
