import Foundation
import GRDB
import SiteFitCore

/// Generates a site's OMOP-shaped records from its profile with one latent patient model shared
/// by every site, so that sites differ only where their profiles say so.
///
/// The prediction task is 1-year incident heart failure: each patient has an index date; features
/// come from the 365 days before it; the outcome is a heart-failure diagnosis in the 365 days after.
public enum ShardGenerator {
    /// Bumped whenever the generator's output changes, so stale shards are detected.
    public static let version = "sitefit-generator-1"

    /// Days of history recorded before each index date.
    public static let lookbackDays = 365
    /// Days after the index date in which the outcome counts.
    public static let outcomeWindowDays = 365

    struct Patient {
        var id: Int
        var female: Bool
        var race: Int
        var hispanic: Bool
        var birthYear: Int
        var age: Double
        var indexDay: Int
        var conditions: [Int: Bool] = [:]
        var labs: [Int: Double] = [:]
        var linearPredictor = 0.0
        var outcome = false
    }

    static let chronicConditions = [
        OMOPConcept.obesity, OMOPConcept.type2Diabetes, OMOPConcept.hypertension, OMOPConcept.hyperlipidemia,
        OMOPConcept.chronicKidneyDisease, OMOPConcept.atrialFibrillation, OMOPConcept.myocardialInfarction,
        OMOPConcept.copd,
    ]

    static func logistic(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    /// The latent patients of a profile, labels drawn against a calibrated intercept.
    static func patients(for profile: SiteProfile) -> [Patient] {
        var random = RandomStream(seed: profile.seed, "generator", profile.id, "patients")
        let firstIndexDay = CivilDate.days(year: 2020, month: 1, day: 1)
        var result: [Patient] = []
        result.reserveCapacity(profile.patients)
        for i in 0..<profile.patients {
            let age = min(95, max(18, random.gaussian(mean: profile.ageMean, standardDeviation: profile.ageStandardDeviation)))
            let indexDay = firstIndexDay + random.int(below: 730)
            let indexYear = Int(CivilDate.iso(indexDay).prefix(4))!
            var p = Patient(
                id: i + 1, female: random.bernoulli(profile.femaleFraction),
                race: random.categorical([profile.raceMix.white, profile.raceMix.black, profile.raceMix.asian]),
                hispanic: random.bernoulli(0.1), birthYear: indexYear - Int(age.rounded(.down)),
                age: age, indexDay: indexDay)
            let a = (age - 60) / 10          // decades from 60
            let risk = random.gaussian()      // latent cardiometabolic risk
            let male = p.female ? 0.0 : 1.0
            func has(_ logit: Double) -> Bool { random.bernoulli(logistic(logit)) }
            let obesity = has(-1.0 + 0.6 * risk)
            let diabetes = has(-1.8 + 0.35 * a + 0.8 * risk + (obesity ? 0.7 : 0))
            let hypertension = has(-0.5 + 0.5 * a + 0.6 * risk)
            let hyperlipidemia = has(-0.8 + 0.3 * a + 0.5 * risk)
            let ckd = has(-2.8 + 0.5 * a + (diabetes ? 0.8 : 0) + (hypertension ? 0.6 : 0))
            let af = has(-3.0 + 0.7 * a)
            let mi = has(-3.0 + 0.4 * a + 0.5 * risk + 0.5 * male)
            let copd = has(-2.5 + 0.3 * a)
            p.conditions = [
                OMOPConcept.obesity: obesity, OMOPConcept.type2Diabetes: diabetes,
                OMOPConcept.hypertension: hypertension, OMOPConcept.hyperlipidemia: hyperlipidemia,
                OMOPConcept.chronicKidneyDisease: ckd, OMOPConcept.atrialFibrillation: af,
                OMOPConcept.myocardialInfarction: mi, OMOPConcept.copd: copd,
            ]
            func flag(_ b: Bool) -> Double { b ? 1 : 0 }
            let hba1c = 5.4 + 1.8 * flag(diabetes) + 0.2 * risk + random.gaussian(mean: 0, standardDeviation: 0.4)
            let creatinine = max(0.3, 0.8 + 0.15 * male + 0.9 * flag(ckd) + 0.05 * a
                                 + random.gaussian(mean: 0, standardDeviation: 0.15))
            let systolic = 125 + 15 * flag(hypertension) + 3 * a + random.gaussian(mean: 0, standardDeviation: 12)
            let bmi = 27 + 6 * flag(obesity) + 1.5 * risk + random.gaussian(mean: 0, standardDeviation: 3)
            let cholesterol = 190 + 30 * flag(hyperlipidemia) + random.gaussian(mean: 0, standardDeviation: 30)
            let heartRate = 75 + 10 * flag(af) + random.gaussian(mean: 0, standardDeviation: 10)
            p.labs = [
                OMOPConcept.hba1c: hba1c, OMOPConcept.creatinine: creatinine,
                OMOPConcept.systolicBloodPressure: systolic, OMOPConcept.bodyMassIndex: bmi,
                OMOPConcept.cholesterolTotal: cholesterol, OMOPConcept.heartRate: heartRate,
            ]
            // Risk of incident heart failure (shared by all sites; the intercept is calibrated per site).
            p.linearPredictor = 0.5 * a + 0.8 * flag(diabetes) + 0.7 * flag(hypertension) + 1.0 * flag(ckd)
                + 1.2 * flag(af) + 1.3 * flag(mi) + 0.4 * male + 0.02 * (systolic - 125)
                + 0.8 * (creatinine - 1) + 0.03 * (bmi - 27) + 0.3 * flag(copd)
            result.append(p)
        }
        let intercept = calibratedIntercept(result.map(\.linearPredictor), prevalence: profile.outcomePrevalence)
        var labelRandom = RandomStream(seed: profile.seed, "generator", profile.id, "outcome")
        for i in result.indices {
            result[i].outcome = labelRandom.bernoulli(logistic(intercept + result[i].linearPredictor))
        }
        return result
    }

    /// The intercept α with mean σ(α + lp) = prevalence (bisection; the mean is monotone in α).
    static func calibratedIntercept(_ predictors: [Double], prevalence: Double) -> Double {
        var low = -30.0, high = 30.0
        for _ in 0..<100 {
            let mid = (low + high) / 2
            let mean = predictors.reduce(0) { $0 + logistic(mid + $1) } / Double(max(predictors.count, 1))
            if mean < prevalence { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }

    /// Writes a profile's records into an empty database (one transaction, prepared statements).
    public static func populate(_ db: Database, profile: SiteProfile) throws {
        try ShardSchema.create(in: db)
        let patients = patients(for: profile)
        var random = RandomStream(seed: profile.seed, "generator", profile.id, "records")
        let type = OMOPConcept.ehrRecord

        let concept = try db.makeStatement(sql: """
            INSERT INTO concept (concept_id, concept_name, domain_id, vocabulary_id, concept_class_id,
              standard_concept, concept_code, valid_start_date, valid_end_date) VALUES (?, ?, ?, ?, ?, 'S', ?, '1970-01-01', '2099-12-31')
            """)
        for c in OMOPConcept.all {
            try concept.execute(arguments: [c.id, c.name, c.domain, c.vocabulary, c.conceptClass, c.code])
        }
        try db.execute(sql: """
            INSERT INTO cdm_source (cdm_source_name, cdm_source_abbreviation, cdm_holder, source_description,
              source_release_date, cdm_release_date, cdm_version, cdm_version_concept_id, vocabulary_version)
            VALUES (?, ?, 'SiteFit (synthetic)', ?, '2022-01-01', '2022-01-01', 'v5.4', 756265, 'sitefit-subset')
            """, arguments: [profile.name, profile.id,
                             "Synthetic EHR shard generated by SiteFit from profile '\(profile.id)' with seed \(profile.seed)."])
        let metadata = try db.makeStatement(sql: """
            INSERT INTO metadata (metadata_concept_id, metadata_type_concept_id, name, value_as_string) VALUES (0, ?, ?, ?)
            """)
        for (key, value) in [("sitefit.profile_id", profile.id), ("sitefit.profile_fingerprint", profile.fingerprint),
                             ("sitefit.generator_version", version), ("sitefit.seed", String(profile.seed))] {
            try metadata.execute(arguments: [type, key, value])
        }

        let person = try db.makeStatement(sql: """
            INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id,
              person_source_value) VALUES (?, ?, ?, ?, ?, ?)
            """)
        let period = try db.makeStatement(sql: """
            INSERT INTO observation_period (person_id, observation_period_start_date, observation_period_end_date,
              period_type_concept_id) VALUES (?, ?, ?, ?)
            """)
        let visit = try db.makeStatement(sql: """
            INSERT INTO visit_occurrence (visit_occurrence_id, person_id, visit_concept_id, visit_start_date,
              visit_end_date, visit_type_concept_id) VALUES (?, ?, ?, ?, ?, ?)
            """)
        let condition = try db.makeStatement(sql: """
            INSERT INTO condition_occurrence (person_id, condition_concept_id, condition_start_date,
              condition_type_concept_id, visit_occurrence_id) VALUES (?, ?, ?, ?, ?)
            """)
        let drug = try db.makeStatement(sql: """
            INSERT INTO drug_exposure (person_id, drug_concept_id, drug_exposure_start_date, drug_exposure_end_date,
              drug_type_concept_id, days_supply) VALUES (?, ?, ?, ?, ?, 90)
            """)
        let measurement = try db.makeStatement(sql: """
            INSERT INTO measurement (person_id, measurement_concept_id, measurement_date, measurement_type_concept_id,
              value_as_number, unit_concept_id, visit_occurrence_id) VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        let cohort = try db.makeStatement(sql: """
            INSERT INTO cohort (cohort_definition_id, subject_id, cohort_start_date, cohort_end_date) VALUES (?, ?, ?, ?)
            """)

        let labUnits: [Int: Int] = [
            OMOPConcept.hba1c: OMOPConcept.percent, OMOPConcept.systolicBloodPressure: OMOPConcept.millimeterMercury,
            OMOPConcept.bodyMassIndex: OMOPConcept.kilogramPerSquareMeter,
            OMOPConcept.cholesterolTotal: OMOPConcept.milligramPerDeciliter, OMOPConcept.heartRate: OMOPConcept.perMinute,
        ]
        let drugFor: [(condition: Int, drug: Int, probability: Double)] = [
            (OMOPConcept.type2Diabetes, OMOPConcept.metformin, 0.8),
            (OMOPConcept.hypertension, OMOPConcept.lisinopril, 0.7),
            (OMOPConcept.hyperlipidemia, OMOPConcept.atorvastatin, 0.7),
            (OMOPConcept.myocardialInfarction, OMOPConcept.aspirin, 0.9),
        ]
        var visitId = 0
        for p in patients {
            let race = [OMOPConcept.white, OMOPConcept.black, OMOPConcept.asian][p.race]
            try person.execute(arguments: [
                p.id, p.female ? OMOPConcept.female : OMOPConcept.male, p.birthYear, race,
                p.hispanic ? OMOPConcept.hispanic : OMOPConcept.notHispanic, "\(profile.id)-\(p.id)",
            ])
            try period.execute(arguments: [p.id, CivilDate.iso(p.indexDay - 2 * lookbackDays),
                                           CivilDate.iso(p.indexDay + outcomeWindowDays), type])
            try cohort.execute(arguments: [ShardSchema.targetCohort, p.id, CivilDate.iso(p.indexDay),
                                           CivilDate.iso(p.indexDay + outcomeWindowDays)])
            // Visits in the look-back year: sicker patients come more often.
            let burden = p.conditions.values.filter { $0 }.count
            let outpatient = 1 + random.int(below: 2 + burden)
            var visitDays: [(id: Int, day: Int)] = []
            for v in 0..<outpatient + (random.bernoulli(0.04 + 0.04 * Double(burden)) ? 1 : 0) {
                visitId += 1
                let day = p.indexDay - 1 - random.int(below: lookbackDays)
                let kind = v < outpatient ? OMOPConcept.outpatientVisit : OMOPConcept.inpatientVisit
                let end = kind == OMOPConcept.inpatientVisit ? day + 1 + random.int(below: 6) : day
                try visit.execute(arguments: [visitId, p.id, kind, CivilDate.iso(day), CivilDate.iso(min(end, p.indexDay - 1)), type])
                visitDays.append((visitId, day))
            }
            let firstVisit = visitDays[0]
            for conceptId in chronicConditions where p.conditions[conceptId] == true {
                // Under-coding: the condition exists (and drives risk) but never reaches the record.
                if random.bernoulli(profile.underCodingRate) { continue }
                try condition.execute(arguments: [p.id, conceptId, CivilDate.iso(firstVisit.day), type, firstVisit.id])
            }
            for rule in drugFor where p.conditions[rule.condition] == true && random.bernoulli(rule.probability) {
                let start = firstVisit.day
                try drug.execute(arguments: [p.id, rule.drug, CivilDate.iso(start), CivilDate.iso(start + 90), type])
            }
            for labId in p.labs.keys.sorted() {
                if random.bernoulli(profile.labMissingRate) { continue }
                var value = p.labs[labId]!
                var unit = labUnits[labId] ?? OMOPConcept.milligramPerDeciliter
                if labId == OMOPConcept.creatinine, profile.creatinineUnit == .micromolePerLiter {
                    value *= UnitConversion.creatinineMicromolePerMilligram
                    unit = OMOPConcept.micromolePerLiter
                }
                // An older value first, then the latest one the features should pick up.
                let visitDay = visitDays[random.int(below: visitDays.count)]
                try measurement.execute(arguments: [p.id, labId, CivilDate.iso(visitDay.day - 200), type,
                                                    rounded(value * (0.95 + 0.1 * random.uniform())), unit, nil])
                try measurement.execute(arguments: [p.id, labId, CivilDate.iso(visitDay.day), type,
                                                    rounded(value), unit, visitDay.id])
            }
            if p.outcome {
                let onset = p.indexDay + 1 + random.int(below: outcomeWindowDays)
                try condition.execute(arguments: [p.id, OMOPConcept.heartFailure, CivilDate.iso(onset), type, nil])
                try cohort.execute(arguments: [ShardSchema.outcomeCohort, p.id, CivilDate.iso(onset), CivilDate.iso(onset)])
            }
        }
    }

    static func rounded(_ value: Double) -> Double { (value * 100).rounded() / 100 }
}

/// Unit factors the feature extraction applies by `unit_concept_id`.
public enum UnitConversion {
    /// 1 mg/dL of creatinine = 88.42 µmol/L.
    public static let creatinineMicromolePerMilligram = 88.42
}
