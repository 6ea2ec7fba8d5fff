import Foundation
import GRDB
import SiteFitCore

/// One automatic covariate, as OHDSI's FeatureExtraction builds its defaults: a concept of one
/// event domain present in a window of days up to and including the index date.
public struct CovariateKey: Sendable, Hashable, Comparable, Codable {
    public var domain: EventDomain
    public var conceptId: Int
    /// The window: the `windowDays` days before the index date, and the index date itself.
    public var windowDays: Int

    public init(domain: EventDomain, conceptId: Int, windowDays: Int) {
        self.domain = domain
        self.conceptId = conceptId
        self.windowDays = windowDays
    }

    /// The feature column's name, e.g. `condition_occurrence.201826.365d`.
    public var column: String { "\(domain.rawValue).\(conceptId).\(windowDays)d" }

    public static func < (a: CovariateKey, b: CovariateKey) -> Bool {
        (a.domain.rawValue, a.conceptId, a.windowDays) < (b.domain.rawValue, b.conceptId, b.windowDays)
    }

    enum CodingKeys: String, CodingKey {
        case domain, conceptId = "concept_id", windowDays = "window_days"
    }
}

extension EventDomain: Codable {}

/// FeatureExtraction-style covariates agreed across sites without sharing a row: each site counts
/// the cohort persons with each concept in each window (small cells suppressed), and the server
/// keeps the concepts enough sites report, the most frequent first, up to a cap.
public enum AutomaticCovariates {
    /// The domains covariates come from (drugs rolled up to their ingredients where the vocabulary allows).
    public static let domains: [EventDomain] = [.conditionOccurrence, .drugExposure, .procedureOccurrence, .measurement]
    /// FeatureExtraction's default long- and short-term windows.
    public static let windows = [365, 30]
    /// 5-year age groups, FeatureExtraction's `DemographicsAgeGroup`: 0–4, 5–9, …, 95+.
    public static let ageGroups = 20

    /// How sites agree on the covariate list.
    public struct Settings: Sendable, Equatable {
        /// Counts below this are small cells: a site does not report the concept at all.
        public var minimumCount: Int
        /// A concept must be reported by at least this many sites.
        public var minimumSites: Int
        /// At most this many covariates, the most frequent over all sites first.
        public var maximum: Int

        public init(minimumCount: Int = 11, minimumSites: Int = 2, maximum: Int = 200) {
            self.minimumCount = minimumCount
            self.minimumSites = minimumSites
            self.maximum = maximum
        }
    }

    /// The `t(subject_id, cohort_start_date, …)` cohort of a spec, as a WITH clause.
    static func cohortSQL(_ spec: FeatureSpec, hasAncestors: Bool) -> String {
        switch spec.cohort {
        case .cohortTable:
            return "WITH t AS (\(FeatureSpec.firstEntrySQL(spec.targetCohortId)))"
        case .conceptSets(let task):
            return task.cohortSQL(hasAncestors: hasAncestors)
        }
    }

    /// The concept a row of `domain` counts as: a drug's ingredient where `concept_ancestor` and
    /// `concept` say which it is, else the recorded concept.
    static func conceptJoin(_ domain: EventDomain, hasAncestors: Bool) -> (join: String, concept: String) {
        let recorded = "e.\(domain.conceptColumn)"
        guard domain == .drugExposure, hasAncestors else { return ("", recorded) }
        return ("""
            LEFT JOIN (SELECT ca.descendant_concept_id AS drug, ca.ancestor_concept_id AS ingredient FROM concept_ancestor ca
              JOIN concept c ON c.concept_id = ca.ancestor_concept_id AND c.concept_class_id = 'Ingredient') i ON i.drug = \(recorded)
            """, "COALESCE(i.ingredient, \(recorded))")
    }

    /// Whether covariates may see the index date itself: not when the outcome can fall on it
    /// (a time at risk from day 0), or that day's treatment of the outcome would give the label away.
    static func includesIndexDay(_ spec: FeatureSpec) -> Bool {
        if case .conceptSets(let task) = spec.cohort { return task.riskStartDays > 0 }
        return true
    }

    /// The rows of `domain` in `window` days up to the index date of each cohort member.
    static func windowSQL(_ domain: EventDomain, window: Int, hasAncestors: Bool, indexDay: Bool) -> (from: String, concept: String) {
        let (join, concept) = conceptJoin(domain, hasAncestors: hasAncestors)
        return ("""
            FROM t JOIN \(domain.rawValue) e ON e.person_id = t.subject_id
              AND e.\(domain.dateColumn) \(indexDay ? "<=" : "<") t.cohort_start_date AND e.\(domain.dateColumn) >= date(t.cohort_start_date, '-\(window) days')
            \(join)
            """, concept)
    }

    /// One site's report: for each covariate, the cohort persons who have it, small cells left
    /// out. Concept 0 and the outcome's concepts (with descendants) are never covariates.
    public static func siteCounts(_ db: Database, spec: FeatureSpec, settings: Settings) throws -> [CovariateKey: Int] {
        let ancestors = try ConceptSetTask.hasAncestors(db)
        var excluded = "SELECT 0"
        if case .conceptSets(let task) = spec.cohort {
            excluded = "SELECT 0 UNION SELECT concept_id FROM (\(task.outcome.concepts.sql(hasAncestors: ancestors)))"
        }
        var counts: [CovariateKey: Int] = [:]
        for domain in domains where try db.tableExists(domain.rawValue) {
            for window in windows {
                let (from, concept) = windowSQL(domain, window: window, hasAncestors: ancestors, indexDay: includesIndexDay(spec))
                let rows = try Row.fetchAll(db, sql: cohortSQL(spec, hasAncestors: ancestors) + """

                    SELECT \(concept) AS concept, COUNT(DISTINCT t.subject_id) \(from)
                    WHERE \(concept) NOT IN (\(excluded)) GROUP BY 1
                    """)
                for row in rows {
                    guard let count = Int.fromDatabaseValue(row[1]), count >= settings.minimumCount,
                          let id = Int.fromDatabaseValue(row[0]) else { continue }
                    counts[CovariateKey(domain: domain, conceptId: id, windowDays: window)] = count
                }
            }
        }
        return counts
    }

    /// The server's choice: covariates reported by at least `minimumSites` sites, by total count
    /// (ties by key), at most `maximum`, in a stable order.
    public static func agree(_ reports: [[CovariateKey: Int]], settings: Settings) -> [CovariateKey] {
        var sites: [CovariateKey: Int] = [:], totals: [CovariateKey: Int] = [:]
        for report in reports {
            for (key, count) in report {
                sites[key, default: 0] += 1
                totals[key, default: 0] += count
            }
        }
        return sites.filter { $0.value >= settings.minimumSites }.keys
            .sorted { totals[$0]! != totals[$1]! ? totals[$0]! > totals[$1]! : $0 < $1 }
            .prefix(settings.maximum).sorted()
    }

    /// The bytes of one site's report on the wire: per covariate a domain code (1), a concept id
    /// (8), a window (2) and a count (4), as a fixed-width record.
    public static func reportBytes(_ report: [CovariateKey: Int]) -> Int { report.count * 15 }

    /// Fills the automatic columns of rows already extracted: the age group one-hot from
    /// `age_years`, then 1 where a cohort member has the covariate's concept in its window.
    static func fill(_ db: Database, spec: FeatureSpec, rows keys: [String], ages: [Double], into features: inout [Double],
                     columns: Int, firstColumn: Int) throws {
        let ancestors = try ConceptSetTask.hasAncestors(db)
        let row = Dictionary(keys.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        for (r, age) in ages.enumerated() where age.isFinite {
            let group = min(max(Int((age / 5).rounded(.down)), 0), ageGroups - 1)
            features[r * columns + firstColumn + group] = 1
        }
        let covariateStart = firstColumn + ageGroups
        var columnOf: [CovariateKey: Int] = [:]
        for (j, key) in spec.automaticCovariates.enumerated() { columnOf[key] = covariateStart + j }
        let groups = Dictionary(grouping: spec.automaticCovariates) { "\($0.domain.rawValue)|\($0.windowDays)" }
        for key in groups.keys.sorted() {
            let members = groups[key]!
            let domain = members[0].domain, window = members[0].windowDays
            guard try db.tableExists(domain.rawValue) else { continue }
            let (from, concept) = windowSQL(domain, window: window, hasAncestors: ancestors, indexDay: includesIndexDay(spec))
            let ids = Set(members.map(\.conceptId)).sorted().map(String.init).joined(separator: ", ")
            let cursor = try Row.fetchCursor(db, sql: cohortSQL(spec, hasAncestors: ancestors) + """

                SELECT DISTINCT t.subject_id, t.cohort_start_date, \(concept) \(from) WHERE \(concept) IN (\(ids))
                """)
            while let hit = try cursor.next() {
                guard let person = Int64.fromDatabaseValue(hit[0]), let date = String.fromDatabaseValue(hit[1]),
                      let id = Int.fromDatabaseValue(hit[2]), let r = row["\(person)|\(date)"],
                      let c = columnOf[CovariateKey(domain: domain, conceptId: id, windowDays: window)] else { continue }
                features[r * columns + c] = 1
            }
        }
    }
}
