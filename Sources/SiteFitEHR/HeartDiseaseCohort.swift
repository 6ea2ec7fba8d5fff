import Foundation
import GRDB

/// A cohort with a fixed train/test assignment that came with the data (not drawn by SiteFit).
public struct SplitCohortExtract: Sendable, Equatable {
    public var extract: CohortExtract
    /// Per row: true for a test row.
    public var isTest: [Bool]
    /// Age in years per row (for the age-band audit; also a feature).
    public var ages: [Double]
}

/// FLamby's Fed-Heart-Disease preprocessing, read back from a shard written by `HeartDiseaseImport`:
/// 13 features (age, sex, trestbps, chol, fbs, thalach, exang, oldpeak, and one-hot `cp` and
/// `restecg` without their first level; slope, ca and thal dropped), label num > 0, and FLamby's
/// own train/test rows (cohorts 10 and 11). Rows outside that split, or missing a used value,
/// are left out, as FLamby drops them.
public enum HeartDiseaseCohort {
    public static let columns = ["age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak",
                                 "cp_2", "cp_3", "cp_4", "restecg_1", "restecg_2"]

    public static func extract(_ shard: SiteShard) throws -> SplitCohortExtract {
        do {
            return try shard.reader.read { db in try extract(db, site: shard.site, file: shard.url.relativePath) }
        } catch let error as ShardError {
            throw error
        } catch {
            throw ShardError(site: shard.site, file: shard.url.relativePath,
                             problem: "not a heart-disease shard, or a damaged one (\(describe(error))); re-import it with `sitefit sites import heart-disease`")
        }
    }

    static func extract(_ db: Database, site: String, file: String) throws -> SplitCohortExtract {
        // One row per person in FLamby's split, in person order; every value read by SQL.
        let rows = try Row.fetchAll(db, sql: """
            SELECT p.person_id AS id, 1988 - p.year_of_birth AS age, p.gender_concept_id AS gender,
                   MAX(CASE WHEN c.cohort_definition_id = ? THEN 1 ELSE 0 END) AS is_test,
                   (SELECT COUNT(*) FROM cohort o WHERE o.subject_id = p.person_id AND o.cohort_definition_id = ?) AS outcome,
                   (SELECT value_as_number FROM observation WHERE person_id = p.person_id AND observation_source_value = 'cp') AS cp,
                   (SELECT value_as_number FROM observation WHERE person_id = p.person_id AND observation_source_value = 'fbs') AS fbs,
                   (SELECT value_as_number FROM observation WHERE person_id = p.person_id AND observation_source_value = 'restecg') AS restecg,
                   (SELECT value_as_number FROM observation WHERE person_id = p.person_id AND observation_source_value = 'exang') AS exang,
                   (SELECT value_as_number FROM measurement WHERE person_id = p.person_id AND measurement_source_value = 'trestbps') AS trestbps,
                   (SELECT value_as_number FROM measurement WHERE person_id = p.person_id AND measurement_source_value = 'chol') AS chol,
                   (SELECT value_as_number FROM measurement WHERE person_id = p.person_id AND measurement_source_value = 'thalach') AS thalach,
                   (SELECT value_as_number FROM measurement WHERE person_id = p.person_id AND measurement_source_value = 'oldpeak') AS oldpeak
            FROM person p JOIN cohort c ON c.subject_id = p.person_id AND c.cohort_definition_id IN (?, ?)
            GROUP BY p.person_id ORDER BY p.person_id
            """, arguments: [HeartDiseaseImport.flambyTestCohort, ShardSchema.outcomeCohort,
                             HeartDiseaseImport.flambyTrainCohort, HeartDiseaseImport.flambyTestCohort])
        var extract = CohortExtract(columns: columns, personIds: [], features: [], labels: [], sex: [], race: [])
        var isTest: [Bool] = [], ages: [Double] = []
        for row in rows {
            guard let gender = Int.fromDatabaseValue(row["gender"]), gender != 0, let age = Double.fromDatabaseValue(row["age"]),
                  let cp = Double.fromDatabaseValue(row["cp"]), let fbs = Double.fromDatabaseValue(row["fbs"]), let restecg = Double.fromDatabaseValue(row["restecg"]),
                  let exang = Double.fromDatabaseValue(row["exang"]), let trestbps = Double.fromDatabaseValue(row["trestbps"]), let chol = Double.fromDatabaseValue(row["chol"]),
                  let thalach = Double.fromDatabaseValue(row["thalach"]), let oldpeak = Double.fromDatabaseValue(row["oldpeak"]) else { continue }
            let male = gender == OMOPConcept.male
            extract.features += [age, male ? 1 : 0, trestbps, chol, fbs, thalach, exang, oldpeak,
                                 cp == 2 ? 1 : 0, cp == 3 ? 1 : 0, cp == 4 ? 1 : 0, restecg == 1 ? 1 : 0, restecg == 2 ? 1 : 0]
            extract.personIds.append(try row.required(0, "person.person_id", site: site, file: file))
            extract.labels.append((try row.required(4, "the outcome count", site: site, file: file) as Int) > 0 ? 1 : 0)
            extract.sex.append(male ? "male" : "female")
            extract.race.append("not recorded")
            isTest.append((try row.required(3, "the FLamby split", site: site, file: file) as Int) == 1)
            ages.append(age)
        }
        guard isTest.contains(true), isTest.contains(false) else {
            throw ShardError(site: site, file: file, problem: "no FLamby train/test rows (cohorts 10 and 11); re-import it with `sitefit sites import heart-disease`")
        }
        return SplitCohortExtract(extract: extract, isTest: isTest, ages: ages)
    }
}
