import Foundation
import GRDB
import SiteFitCore

/// A set of OMOP concepts as OHDSI's ATLAS defines one: items, each with or without its
/// descendants (through `concept_ancestor`), some of them excluded.
public struct ConceptSet: Sendable, Equatable {
    /// One concept of the set.
    public struct Item: Sendable, Equatable {
        public var conceptId: Int
        public var includeDescendants: Bool
        public var isExcluded: Bool

        public init(conceptId: Int, includeDescendants: Bool = true, isExcluded: Bool = false) {
            self.conceptId = conceptId
            self.includeDescendants = includeDescendants
            self.isExcluded = isExcluded
        }
    }

    public var items: [Item]

    public init(items: [Item]) {
        self.items = items
    }

    /// Every listed concept, each with its descendants when asked.
    public init(concepts: [Int], descendants: Bool = true) {
        items = concepts.map { Item(conceptId: $0, includeDescendants: descendants) }
    }

    /// The included concepts (listed ids, as integers).
    public var includedIds: [Int] { items.filter { !$0.isExcluded }.map(\.conceptId) }

    /// A SELECT of the set's concept ids: the included concepts and, where asked, their
    /// descendants, minus the excluded ones and theirs. Without a `concept_ancestor` table (or
    /// with an empty one) only the listed ids match. Ids are integers, never user text.
    func sql(hasAncestors: Bool) -> String {
        func select(_ items: [Item]) -> String {
            let ids = items.map { String($0.conceptId) }
            var parts = ["SELECT concept_id FROM (SELECT \(ids.first ?? "NULL") AS concept_id"
                         + ids.dropFirst().map { " UNION ALL SELECT \($0)" }.joined() + ")"]
            let withDescendants = items.filter(\.includeDescendants).map { String($0.conceptId) }
            if hasAncestors && !withDescendants.isEmpty {
                parts.append("SELECT descendant_concept_id FROM concept_ancestor WHERE ancestor_concept_id IN (\(withDescendants.joined(separator: ", ")))")
            }
            return parts.joined(separator: " UNION ")
        }
        // Each side in its own subquery: SQLite applies UNION and EXCEPT left to right, so
        // `A UNION B EXCEPT C UNION D` would add the excluded concepts' descendants back.
        let included = items.filter { !$0.isExcluded }, excluded = items.filter(\.isExcluded)
        return excluded.isEmpty ? select(included)
            : "SELECT concept_id FROM (\(select(included))) EXCEPT SELECT concept_id FROM (\(select(excluded)))"
    }
}

/// The event tables a concept set is looked up in, with their concept and date columns.
public enum EventDomain: String, Sendable, Equatable, CaseIterable {
    case conditionOccurrence = "condition_occurrence", drugExposure = "drug_exposure"
    case procedureOccurrence = "procedure_occurrence", measurement, observation, visitOccurrence = "visit_occurrence"

    var conceptColumn: String {
        switch self {
        case .conditionOccurrence: "condition_concept_id"
        case .drugExposure: "drug_concept_id"
        case .procedureOccurrence: "procedure_concept_id"
        case .measurement: "measurement_concept_id"
        case .observation: "observation_concept_id"
        case .visitOccurrence: "visit_concept_id"
        }
    }

    var dateColumn: String {
        switch self {
        case .conditionOccurrence: "condition_start_date"
        case .drugExposure: "drug_exposure_start_date"
        case .procedureOccurrence: "procedure_date"
        case .measurement: "measurement_date"
        case .observation: "observation_date"
        case .visitOccurrence: "visit_start_date"
        }
    }
}

/// A prediction task defined as OHDSI's PatientLevelPrediction defines one: a target cohort
/// (each person's first qualifying event, with enough observation before it), an outcome, and a
/// time at risk after the index date.
public struct ConceptSetTask: Sendable, Equatable {
    /// Concepts in one event table.
    public struct Criterion: Sendable, Equatable {
        public var concepts: ConceptSet
        public var domain: EventDomain

        public init(concepts: ConceptSet, domain: EventDomain) {
            self.concepts = concepts
            self.domain = domain
        }
    }

    public var target: Criterion
    public var outcome: Criterion
    /// Days of observation a person needs before the index date.
    public var priorObservationDays: Int
    /// The time at risk: days after the index date, capped at the end of observation.
    public var riskStartDays: Int
    public var riskEndDays: Int
    /// Persons observed for fewer days at risk leave the cohort, unless they have the outcome
    /// (PatientLevelPrediction's `minTimeAtRisk` with `includeAllOutcomes`).
    public var minimumRiskDays: Int
    /// Persons whose outcome comes before the time at risk leave the cohort.
    public var excludePriorOutcome: Bool

    public init(target: Criterion, outcome: Criterion, priorObservationDays: Int = 365, riskStartDays: Int = 1, riskEndDays: Int = 365,
                minimumRiskDays: Int? = nil, excludePriorOutcome: Bool = true) {
        self.target = target
        self.outcome = outcome
        self.priorObservationDays = priorObservationDays
        self.riskStartDays = riskStartDays
        self.riskEndDays = riskEndDays
        self.minimumRiskDays = minimumRiskDays ?? max(riskEndDays - riskStartDays, 0)
        self.excludePriorOutcome = excludePriorOutcome
    }

    /// The WITH clause that ends in `t(subject_id, cohort_start_date, outcome)`, one row per cohort
    /// member. Every step is its own CTE so that the attrition counts read the same definition.
    func cohortSQL(hasAncestors: Bool) -> String {
        let start = riskStartDays, end = riskEndDays
        return """
            WITH target_concepts(concept_id) AS (\(target.concepts.sql(hasAncestors: hasAncestors))),
            outcome_concepts(concept_id) AS (\(outcome.concepts.sql(hasAncestors: hasAncestors))),
            first_event AS (
              SELECT e.person_id, MIN(e.\(target.domain.dateColumn)) AS index_date FROM \(target.domain.rawValue) e
              WHERE e.\(target.domain.conceptColumn) IN (SELECT concept_id FROM target_concepts)
                AND EXISTS (SELECT 1 FROM observation_period op WHERE op.person_id = e.person_id
                  AND e.\(target.domain.dateColumn) BETWEEN op.observation_period_start_date AND op.observation_period_end_date)
              GROUP BY e.person_id),
            observed AS (
              SELECT f.person_id, f.index_date, MAX(op.observation_period_end_date) AS observation_end
              FROM first_event f JOIN observation_period op ON op.person_id = f.person_id
                AND op.observation_period_start_date <= date(f.index_date, '-\(priorObservationDays) days')
                AND op.observation_period_end_date >= f.index_date
              GROUP BY f.person_id, f.index_date),
            outcome_events AS (
              SELECT e.person_id, e.\(outcome.domain.dateColumn) AS outcome_date FROM \(outcome.domain.rawValue) e
              WHERE e.\(outcome.domain.conceptColumn) IN (SELECT concept_id FROM outcome_concepts)),
            without_prior_outcome AS (
              SELECT o.* FROM observed o WHERE \(excludePriorOutcome ? "" : "1 OR ")NOT EXISTS (
                SELECT 1 FROM outcome_events x WHERE x.person_id = o.person_id AND x.outcome_date < date(o.index_date, '+\(start) days'))),
            labelled AS (
              SELECT w.person_id, w.index_date, w.observation_end,
                EXISTS (SELECT 1 FROM outcome_events x WHERE x.person_id = w.person_id
                  AND x.outcome_date >= date(w.index_date, '+\(start) days')
                  AND x.outcome_date <= min(date(w.index_date, '+\(end) days'), w.observation_end)) AS outcome
              FROM without_prior_outcome w),
            t AS (
              SELECT person_id AS subject_id, index_date AS cohort_start_date, outcome FROM labelled
              WHERE outcome = 1 OR julianday(min(date(index_date, '+\(end) days'), observation_end))
                - julianday(date(index_date, '+\(start) days')) >= \(minimumRiskDays))
            """
    }
}

extension ConceptSetTask {
    /// Whether the database has a `concept_ancestor` table with rows (descendants can be found).
    static func hasAncestors(_ db: Database) throws -> Bool {
        guard try db.tableExists("concept_ancestor") else { return false }
        return try Int.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM concept_ancestor)") == 1
    }

    /// The attrition of this task's cohort in `db`.
    public func attrition(_ db: Database) throws -> CohortAttrition {
        let row = try Row.fetchOne(db, sql: cohortSQL(hasAncestors: try Self.hasAncestors(db)) + """

            SELECT (SELECT COUNT(*) FROM first_event), (SELECT COUNT(*) FROM observed), (SELECT COUNT(*) FROM without_prior_outcome),
              (SELECT COUNT(*) FROM t), (SELECT COALESCE(SUM(outcome), 0) FROM t)
            """)
        guard let row else { return CohortAttrition(withTargetEvent: 0, withPriorObservation: 0, withoutPriorOutcome: 0, cohort: 0, outcomes: 0) }
        return CohortAttrition(withTargetEvent: row[0], withPriorObservation: row[1], withoutPriorOutcome: row[2], cohort: row[3], outcomes: row[4])
    }

    /// The listed concept ids (target, then outcome) that match no event in their table, even
    /// with their descendants: a typo, or a vocabulary the site does not use.
    public func unmatchedConcepts(_ db: Database) throws -> [Int] {
        let ancestors = try Self.hasAncestors(db)
        var unmatched: [Int] = []
        for criterion in [target, outcome] {
            for item in criterion.concepts.items where !item.isExcluded {
                let single = ConceptSet(items: [ConceptSet.Item(conceptId: item.conceptId, includeDescendants: item.includeDescendants)])
                let found = try Int.fetchOne(db, sql: """
                    SELECT EXISTS (SELECT 1 FROM \(criterion.domain.rawValue)
                    WHERE \(criterion.domain.conceptColumn) IN (\(single.sql(hasAncestors: ancestors))))
                    """) == 1
                if !found && !unmatched.contains(item.conceptId) { unmatched.append(item.conceptId) }
            }
        }
        return unmatched
    }
}

extension ConceptSetTask {
    /// The definition in words, for the report: who is in, from when, and what counts as the outcome.
    public var words: String {
        func concepts(_ c: Criterion) -> String {
            let included = c.concepts.items.filter { !$0.isExcluded }.map { "\($0.conceptId)\($0.includeDescendants ? "+" : "")" }
            let excluded = c.concepts.items.filter(\.isExcluded).map { String($0.conceptId) }
            return "concept\(included.count == 1 ? "" : "s") \(included.joined(separator: ", "))"
                + (excluded.isEmpty ? "" : " except \(excluded.joined(separator: ", "))") + " in \(c.domain.rawValue)"
        }
        var out = "target: each person's first event of \(concepts(target))"
        out += priorObservationDays > 0 ? ", with \(priorObservationDays) days of observation before it" : ", inside an observation period"
        out += "; outcome: \(concepts(outcome)) from day \(riskStartDays) to day \(riskEndDays) after the index date, capped at the end of observation"
        if minimumRiskDays > 0 { out += " (persons observed under \(minimumRiskDays) days at risk without the outcome are left out)" }
        if excludePriorOutcome { out += "; persons with the outcome before that left out" }
        let descendants = (target.concepts.items + outcome.concepts.items).contains { $0.includeDescendants && !$0.isExcluded }
        return out + (descendants ? "; + marks a concept counted with its descendants through concept_ancestor" : "")
    }
}

extension FeatureSpec {
    /// The task in words for the report, or nil for the default task (1-year incident heart failure from a year of history).
    public var description: String? {
        switch cohort {
        case .cohortTable:
            let defaultIds = targetCohortId == ShardSchema.targetCohort && outcomeCohortId == ShardSchema.outcomeCohort
            if name == nil && lookbackDays == 365 && outcomeWindowDays == 365 && defaultIds { return nil }
            let outcome = defaultIds ? "incident heart failure (cohort \(outcomeCohortId))" : "an event of outcome cohort \(outcomeCohortId)"
            return (name.map { "\($0): " } ?? "") + "\(outcome) within \(outcomeWindowDays) days of the index date (cohort \(targetCohortId)), "
                + "from \(lookbackDays) days of EHR history (OMOP CDM shards)"
        case .conceptSets(let task):
            return (name.map { "\($0) (" } ?? "(") + task.words + "); features from \(lookbackDays) days of EHR history (OMOP CDM)"
        }
    }
}
