import Foundation
import GRDB
import SiteFitCore

extension DataQualityFinding {
    static let createTable = """
        CREATE TABLE IF NOT EXISTS sitefit_data_quality (
          check_name TEXT NOT NULL, cdm_table_name TEXT NOT NULL, cdm_field_name TEXT NOT NULL,
          num_violated_rows INTEGER NOT NULL, num_denominator_rows INTEGER NOT NULL, action TEXT NOT NULL)
        """

    /// The findings an import stored in a shard (none for a generated shard).
    public static func stored(in db: Database) throws -> [DataQualityFinding] {
        guard try db.tableExists("sitefit_data_quality") else { return [] }
        return try Row.fetchAll(db, sql: """
            SELECT check_name, cdm_table_name, cdm_field_name, num_violated_rows, num_denominator_rows, action
            FROM sitefit_data_quality ORDER BY rowid
            """).map { row in
            // Decoded with errors, not GRDB's trapping subscript: a damaged table must not crash a run.
            try DataQualityFinding(check: row.decode(String.self, atIndex: 0), table: row.decode(String.self, atIndex: 1),
                                   field: row.decode(String.self, atIndex: 2), violatingRows: row.decode(Int.self, atIndex: 3),
                                   rows: row.decode(Int.self, atIndex: 4), action: Action(rawValue: String.fromDatabaseValue(row[5]) ?? "") ?? .kept)
        }
    }

    static func store(_ findings: [DataQualityFinding], in db: Database) throws {
        try db.execute(sql: createTable)
        let insert = try db.makeStatement(sql: "INSERT INTO sitefit_data_quality VALUES (?, ?, ?, ?, ?, ?)")
        for f in findings {
            try insert.execute(arguments: [f.check, f.table, f.field, f.violatingRows, f.rows, f.action.rawValue])
        }
    }
}

/// The plausibility checks run on an imported shard once every table is in: counts only, rows kept.
enum PlausibilityChecks {
    /// A check as one SQL count of failing rows over a denominator.
    struct Check {
        var check: String, table: String, field: String
        var failing: String, denominator: String
    }

    /// DQD's field-level plausibility checks on the tables SiteFit reads. Dates are ISO text, so
    /// they compare as strings; `julianday` gives the 60 days DQD allows after a death date.
    static func checks(currentYear: Int) -> [Check] {
        var checks: [Check] = [
            Check(check: "plausibleValueLow", table: "person", field: "year_of_birth",
                  failing: "SELECT COUNT(*) FROM person WHERE year_of_birth < 1850", denominator: "SELECT COUNT(*) FROM person"),
            Check(check: "plausibleValueHigh", table: "person", field: "year_of_birth",
                  failing: "SELECT COUNT(*) FROM person WHERE year_of_birth > \(currentYear + 1)", denominator: "SELECT COUNT(*) FROM person"),
            Check(check: "plausibleStartBeforeEnd", table: "observation_period", field: "observation_period_start_date",
                  failing: "SELECT COUNT(*) FROM observation_period WHERE observation_period_start_date > observation_period_end_date",
                  denominator: "SELECT COUNT(*) FROM observation_period"),
            Check(check: "plausibleStartBeforeEnd", table: "visit_occurrence", field: "visit_start_date",
                  failing: "SELECT COUNT(*) FROM visit_occurrence WHERE visit_start_date > visit_end_date",
                  denominator: "SELECT COUNT(*) FROM visit_occurrence"),
            Check(check: "plausibleStartBeforeEnd", table: "drug_exposure", field: "drug_exposure_start_date",
                  failing: "SELECT COUNT(*) FROM drug_exposure WHERE drug_exposure_start_date > drug_exposure_end_date",
                  denominator: "SELECT COUNT(*) FROM drug_exposure"),
            Check(check: "plausibleStartBeforeEnd", table: "condition_occurrence", field: "condition_start_date",
                  failing: "SELECT COUNT(*) FROM condition_occurrence WHERE condition_start_date > condition_end_date",
                  denominator: "SELECT COUNT(*) FROM condition_occurrence"),
            Check(check: "plausibleValueLow", table: "drug_exposure", field: "days_supply",
                  failing: "SELECT COUNT(*) FROM drug_exposure WHERE days_supply < 0", denominator: "SELECT COUNT(*) FROM drug_exposure"),
            Check(check: "plausibleValueLow", table: "drug_exposure", field: "quantity",
                  failing: "SELECT COUNT(*) FROM drug_exposure WHERE quantity < 0", denominator: "SELECT COUNT(*) FROM drug_exposure"),
        ]
        for (table, date) in eventDates {
            checks.append(Check(check: "plausibleAfterBirth", table: table, field: date,
                                failing: "SELECT COUNT(*) FROM \(table) e JOIN person p USING (person_id) WHERE CAST(substr(e.\(date), 1, 4) AS INTEGER) < p.year_of_birth",
                                denominator: "SELECT COUNT(*) FROM \(table)"))
            // Against the earliest death record: a person with two death rows must not count an event twice.
            checks.append(Check(check: "plausibleDuringLife", table: table, field: date,
                                failing: "SELECT COUNT(*) FROM \(table) e WHERE julianday(e.\(date)) > "
                                    + "(SELECT julianday(MIN(d.death_date)) FROM death d WHERE d.person_id = e.person_id) + 60",
                                denominator: "SELECT COUNT(*) FROM \(table)"))
        }
        // Concept-level value ranges of the labs SiteFit extracts, per unit (DQD's concept checks
        // give such ranges per measurement concept and unit).
        for range in labRanges {
            let subset = "FROM measurement WHERE measurement_concept_id = \(range.concept) AND unit_concept_id = \(range.unit) AND value_as_number IS NOT NULL"
            let field = "value_as_number (concept \(range.concept), unit \(range.unit))"
            checks.append(Check(check: "plausibleValueLow", table: "measurement", field: field,
                                failing: "SELECT COUNT(*) \(subset) AND value_as_number < \(range.low)", denominator: "SELECT COUNT(*) \(subset)"))
            checks.append(Check(check: "plausibleValueHigh", table: "measurement", field: field,
                                failing: "SELECT COUNT(*) \(subset) AND value_as_number > \(range.high)", denominator: "SELECT COUNT(*) \(subset)"))
        }
        return checks
    }

    static let eventDates = [
        ("visit_occurrence", "visit_start_date"), ("condition_occurrence", "condition_start_date"),
        ("drug_exposure", "drug_exposure_start_date"), ("procedure_occurrence", "procedure_date"),
        ("measurement", "measurement_date"), ("observation", "observation_date"),
    ]

    /// Physiologically possible ranges (wide on purpose: a finding means a unit or entry error).
    static let labRanges: [(concept: Int, unit: Int, low: Double, high: Double)] = [
        (OMOPConcept.creatinine, OMOPConcept.milligramPerDeciliter, 0.1, 25),
        (OMOPConcept.creatinine, OMOPConcept.micromolePerLiter, 9, 2200),
        (OMOPConcept.hba1c, OMOPConcept.percent, 2, 20),
        (OMOPConcept.systolicBloodPressure, OMOPConcept.millimeterMercury, 40, 300),
        (OMOPConcept.bodyMassIndex, OMOPConcept.kilogramPerSquareMeter, 8, 120),
        (OMOPConcept.cholesterolTotal, OMOPConcept.milligramPerDeciliter, 20, 1000),
        (OMOPConcept.heartRate, OMOPConcept.perMinute, 15, 350),
    ]

    /// Runs every check whose denominator is not empty; findings only for checks with failures.
    static func run(in db: Database, currentYear: Int) throws -> [DataQualityFinding] {
        var findings: [DataQualityFinding] = []
        for c in checks(currentYear: currentYear) {
            let rows = try Int.fetchOne(db, sql: c.denominator) ?? 0
            guard rows > 0 else { continue }
            let failing = try Int.fetchOne(db, sql: c.failing) ?? 0
            if failing > 0 {
                findings.append(DataQualityFinding(check: c.check, table: c.table, field: c.field, violatingRows: failing, rows: rows, action: .kept))
            }
        }
        return findings
    }
}
