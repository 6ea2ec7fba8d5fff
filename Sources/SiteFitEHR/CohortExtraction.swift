import Foundation
import GRDB

/// Which features to extract for the prediction task, and over which windows.
public struct FeatureSpec: Sendable, Equatable {
    public var lookbackDays: Int
    public var outcomeWindowDays: Int
    /// Condition concept ids whose presence in the look-back window becomes a 0/1 feature.
    public var conditions: [Int]
    /// Measurement concept ids whose latest value in the window becomes a feature (in canonical units).
    public var measurements: [Int]
    /// Drug ingredient concept ids whose exposure in the window becomes a 0/1 feature.
    public var drugs: [Int]
    /// Who is in the cohort, from when, and who has the outcome.
    public var cohort: CohortDefinition = .cohortTable
    /// The task in words, as the scenario names it (nil: worded from the definition).
    public var name: String?
    /// FeatureExtraction-style covariates: 5-year age groups and `automaticCovariates` after the
    /// base columns (the sites agree the list before extraction; see `AutomaticCovariates`).
    public var automatic = false
    public var automaticCovariates: [CovariateKey] = []
    /// How the sites agree the automatic covariates.
    public var covariateSettings = AutomaticCovariates.Settings()
    /// With the cohort table: the definition that holds index dates and the one that holds
    /// outcome events (an ATLAS or PatientLevelPrediction cohort table uses its own ids).
    public var targetCohortId = ShardSchema.targetCohort
    public var outcomeCohortId = ShardSchema.outcomeCohort

    /// Where a task's cohort comes from.
    public enum CohortDefinition: Sendable, Equatable {
        /// The shard's `cohort` table: definition 1 holds index dates, definition 2 outcome events
        /// (counted within `outcomeWindowDays` after the index date).
        case cohortTable
        /// Concept sets over the event tables, as PatientLevelPrediction defines a task.
        case conceptSets(ConceptSetTask)
    }

    public init(lookbackDays: Int, outcomeWindowDays: Int, conditions: [Int], measurements: [Int], drugs: [Int]) {
        self.lookbackDays = lookbackDays
        self.outcomeWindowDays = outcomeWindowDays
        self.conditions = conditions
        self.measurements = measurements
        self.drugs = drugs
    }

    /// The default task: 1-year incident heart failure from a year of history.
    public static let heartFailure = FeatureSpec(
        lookbackDays: 365, outcomeWindowDays: 365,
        conditions: [OMOPConcept.type2Diabetes, OMOPConcept.hypertension, OMOPConcept.hyperlipidemia,
                     OMOPConcept.chronicKidneyDisease, OMOPConcept.atrialFibrillation,
                     OMOPConcept.myocardialInfarction, OMOPConcept.copd, OMOPConcept.obesity],
        measurements: [OMOPConcept.hba1c, OMOPConcept.creatinine, OMOPConcept.systolicBloodPressure,
                       OMOPConcept.bodyMassIndex, OMOPConcept.cholesterolTotal, OMOPConcept.heartRate],
        drugs: [OMOPConcept.metformin, OMOPConcept.lisinopril, OMOPConcept.atorvastatin, OMOPConcept.aspirin])

    /// Column names of the feature matrix, in order.
    public var columnNames: [String] {
        guard automatic else { return baseColumnNames }
        let groups = (0..<AutomaticCovariates.ageGroups).map { g in
            g == AutomaticCovariates.ageGroups - 1 ? "age_group.\(g * 5)+" : "age_group.\(g * 5)-\(g * 5 + 4)"
        }
        return baseColumnNames + groups + automaticCovariates.map(\.column)
    }

    /// The columns the feature SQL computes: age, sex, visit count and the hand-picked concepts.
    public var baseColumnNames: [String] {
        let names = Dictionary(uniqueKeysWithValues: OMOPConcept.all.map { ($0.id, $0.name) })
        func slug(_ id: Int) -> String {
            (names[id] ?? "concept_\(id)").lowercased()
                .map { $0.isLetter || $0.isNumber ? $0 : "_" }
                .reduce(into: "") { $0.append($1) }
        }
        return ["age_years", "male", "visit_count"]
            + conditions.map { "condition." + slug($0) }
            + measurements.map { "measurement." + slug($0) }
            + drugs.map { "drug." + slug($0) }
    }

    /// The SQL that turns relational records into one row per cohort member. Concept ids are
    /// integers from this spec, never user text; the outcome is read from the outcome cohort, or
    /// from the concept-set task's time at risk.
    func sql(hasAncestors: Bool) -> String {
        let window = "AND %@ < t.cohort_start_date AND %@ >= date(t.cohort_start_date, '-\(lookbackDays) days')"
        func within(_ column: String) -> String {
            window.replacingOccurrences(of: "%@", with: column)
        }
        var columns = [
            "t.subject_id AS person_id",
            "p.gender_concept_id AS gender_concept_id",
            "p.race_concept_id AS race_concept_id",
            "CAST(strftime('%Y', t.cohort_start_date) AS INTEGER) - p.year_of_birth AS age_years",
            "CASE p.gender_concept_id WHEN \(OMOPConcept.male) THEN 1 ELSE 0 END AS male",
            "(SELECT COUNT(*) FROM visit_occurrence v WHERE v.person_id = t.subject_id \(within("v.visit_start_date"))) AS visit_count",
        ]
        for id in conditions {
            columns.append("""
                EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = t.subject_id \
                AND c.condition_concept_id = \(id) \(within("c.condition_start_date")))
                """)
        }
        for id in measurements {
            // Values are converted to the canonical unit by unit_concept_id: creatinine in µmol/L ÷ 88.42.
            let factor = id == OMOPConcept.creatinine
                ? "CASE m.unit_concept_id WHEN \(OMOPConcept.micromolePerLiter) THEN \(1 / UnitConversion.creatinineMicromolePerMilligram) ELSE 1 END"
                : "1"
            columns.append("""
                (SELECT m.value_as_number * \(factor) FROM measurement m \
                WHERE m.person_id = t.subject_id AND m.measurement_concept_id = \(id) \
                \(within("m.measurement_date")) ORDER BY m.measurement_date DESC, m.measurement_id DESC LIMIT 1)
                """)
        }
        for id in drugs {
            columns.append("""
                EXISTS (SELECT 1 FROM drug_exposure d WHERE d.person_id = t.subject_id \
                AND d.drug_concept_id = \(id) \(within("d.drug_exposure_start_date")))
                """)
        }
        switch cohort {
        case .cohortTable:
            columns.append("""
                EXISTS (SELECT 1 FROM cohort o WHERE o.cohort_definition_id = \(outcomeCohortId) \
                AND o.subject_id = t.subject_id AND o.cohort_start_date > t.cohort_start_date \
                AND o.cohort_start_date <= date(t.cohort_start_date, '+\(outcomeWindowDays) days')) AS outcome
                """)
            columns.append("t.cohort_start_date AS index_date")
            return """
                SELECT \(columns.joined(separator: ",\n  "))
                FROM (\(Self.firstEntrySQL(targetCohortId))) t JOIN person p ON p.person_id = t.subject_id
                ORDER BY t.subject_id
                """
        case .conceptSets(let task):
            columns.append("t.outcome AS outcome")
            columns.append("t.cohort_start_date AS index_date")
            return task.cohortSQL(hasAncestors: hasAncestors) + """

                SELECT \(columns.joined(separator: ",\n  "))
                FROM t JOIN person p ON p.person_id = t.subject_id
                ORDER BY t.subject_id
                """
        }
    }
}

extension FeatureSpec {
    /// Each subject's first entry in a cohort. A cohort table ATLAS fills may hold several
    /// entries per person (one per era); counting each would put one person in both the train
    /// and the test split.
    static func firstEntrySQL(_ cohortId: Int) -> String {
        "SELECT subject_id, MIN(cohort_start_date) AS cohort_start_date FROM cohort WHERE cohort_definition_id = \(cohortId) GROUP BY subject_id"
    }
}

/// One row per cohort member: raw features (NaN where a lab is missing), label and subgroup attributes.
public struct CohortExtract: Sendable, Equatable {
    public var columns: [String]
    public var personIds: [Int64]
    /// Row-major (rows, columns); NaN marks a missing measurement.
    public var features: [Double]
    public var labels: [Float]
    /// "female" / "male" from `person.gender_concept_id`.
    public var sex: [String]
    /// Concept name from `person.race_concept_id`.
    public var race: [String]
    /// Each row's index date (`cohort_start_date`, ISO `YYYY-MM-DD`), for a temporal split.
    public var indexDates: [String] = []

    public init(columns: [String], personIds: [Int64], features: [Double], labels: [Float], sex: [String], race: [String]) {
        self.columns = columns
        self.personIds = personIds
        self.features = features
        self.labels = labels
        self.sex = sex
        self.race = race
    }

    public var rows: Int { personIds.count }
}

extension SiteShard {
    /// Runs the feature SQL on the read-only shard. An empty cohort is an error naming the site.
    public func extractCohort(_ spec: FeatureSpec) throws -> CohortExtract {
        do {
            return try reader.read { db in try CohortExtraction.extract(db, spec: spec, site: site, file: url.relativePath) }
        } catch let error as ShardError {
            throw error
        } catch {
            throw ShardError(site: site, file: url.relativePath, problem: "feature extraction failed: \(describe(error))")
        }
    }
}

/// Feature extraction against any database (a shard, or the in-memory source population).
public enum CohortExtraction {
    /// The largest magnitude a feature value may have (a lab value, an age, a count).
    public static let maximumValue = 1e9

    public static func extract(_ db: Database, spec: FeatureSpec, site: String, file: String) throws -> CohortExtract {
        let columns = spec.columnNames, base = spec.baseColumnNames.count
        let extra = columns.count - base
        var result = CohortExtract(columns: columns, personIds: [], features: [], labels: [], sex: [], race: [])
        let raceNames = [OMOPConcept.white: "White", OMOPConcept.black: "Black", OMOPConcept.asian: "Asian"]
        let cursor = try Row.fetchCursor(db, sql: spec.sql(hasAncestors: try ConceptSetTask.hasAncestors(db)))
        var absurd = [Int](repeating: 0, count: base)
        while let row = try cursor.next() {
            result.personIds.append(try row.required(0, "person.person_id", site: site, file: file))
            // An empty gender or race (the CDM requires them; the import counts them as isRequired)
            // is an unknown group, not a reason to stop.
            let gender: Int? = Int.fromDatabaseValue(row[1])
            result.sex.append(gender == OMOPConcept.female ? "female" : gender == OMOPConcept.male ? "male" : "unknown")
            let race = Int.fromDatabaseValue(row[2]) ?? 0
            result.race.append(raceNames[race] ?? (race == 0 ? "Unknown" : "Other"))
            for c in 0..<base {
                // A text or blob where a number belongs reads as missing, like a NULL.
                let value = Double.fromDatabaseValue(row[3 + c]) ?? .nan
                if !value.isNaN && !(abs(value) <= maximumValue) { absurd[c] += 1 }
                result.features.append(value)
            }
            if extra > 0 { result.features.append(contentsOf: repeatElement(0, count: extra)) }
            let outcome: Bool = try row.required(3 + base, "the outcome", site: site, file: file)
            result.labels.append(outcome ? 1 : 0)
            let indexDate = String.fromDatabaseValue(row[4 + base])
            result.indexDates.append(indexDate ?? "")
        }
        // Refused here, before a value can overflow a standardised feature into a NaN score: the
        // column and a count, never the value.
        if let c = absurd.firstIndex(where: { $0 > 0 }) {
            throw ShardError(site: site, file: file, problem: "\(absurd[c]) cohort member(s) have a \(columns[c]) that is infinite or beyond "
                             + "±\(Int(maximumValue)); correct the source rows (SiteFit does not guess what they meant)")
        }
        if let ageColumn = columns.firstIndex(of: "age_years"), ageColumn < base {
            let unknown = (0..<result.rows).filter { result.features[$0 * columns.count + ageColumn].isNaN }.count
            if unknown > 0 {
                throw ShardError(site: site, file: file, problem: "the age of \(unknown) cohort member(s) cannot be computed: "
                                 + "their year_of_birth or index date is not a valid date")
            }
        }
        if spec.automatic && result.rows > 0 {
            let keys = zip(result.personIds, result.indexDates).map { "\($0)|\($1)" }
            let ages = (0..<result.rows).map { result.features[$0 * columns.count] }
            try AutomaticCovariates.fill(db, spec: spec, rows: keys, ages: ages, into: &result.features, columns: columns.count, firstColumn: base)
        }
        guard result.rows > 0 else {
            switch spec.cohort {
            case .cohortTable:
                throw ShardError(site: site, file: file, problem: "the cohort is empty (no rows with cohort_definition_id = \(spec.targetCohortId))")
            case .conceptSets:
                throw ShardError(site: site, file: file, problem: "the task's cohort is empty here: no person has a target event with "
                                 + "enough prior observation, no earlier outcome and enough time at risk (check the task's concept ids, domains and windows)")
            }
        }
        return result
    }
}
