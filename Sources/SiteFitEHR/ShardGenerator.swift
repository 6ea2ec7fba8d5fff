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
    public static let version = "sitefit-generator-2"

    /// Days of history recorded before each index date.
    public static let lookbackDays = 365
    /// Days after the index date in which the outcome counts.
    public static let outcomeWindowDays = 365
    /// Index dates are drawn uniformly from two years starting here.
    public static let firstIndexDay = CivilDate.days(year: 2020, month: 1, day: 1)

    /// One latent patient. Conditions and labs are indexed like `ConditionName.allCases` and
    /// `LabName.allCases`; labs are true values in canonical units.
    struct Patient {
        var id: Int
        var female: Bool
        var race: Int
        var hispanic: Bool
        var birthYear: Int
        var age: Double
        var indexDay: Int
        var conditions: [Bool]
        var labs: [Double]
        var linearPredictor = 0.0
        var trueOutcome = false
        var recordedOutcome = false

        var burden: Int { conditions.filter { $0 }.count }
        func has(_ condition: ConditionName) -> Bool { conditions[ConditionName.allCases.firstIndex(of: condition)!] }
        func lab(_ lab: LabName) -> Double { labs[LabName.allCases.firstIndex(of: lab)!] }

        func belongs(to group: Subgroup) -> Bool {
            switch group {
            case .female: female
            case .male: !female
            case .white: race == 0
            case .black: race == 1
            case .asian: race == 2
            case .age65Plus: age >= 65
            case .ageUnder50: age < 50
            }
        }
    }

    static func logistic(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    /// The latent patients of a profile with their true and recorded outcomes.
    ///
    /// The model every site shares: a latent cardiometabolic risk r ~ N(0, 1) and age drive eight
    /// chronic conditions; conditions drive six labs; the outcome (incident heart failure) has
    /// log-odds α + Σ βₖ·termₖ with β from `RiskFactor.baseCoefficient` plus the site's concept
    /// shift, and α calibrated so the mean true risk before drift equals `outcomePrevalence`.
    static func patients(for profile: SiteProfile) -> [Patient] {
        var random = RandomStream(seed: profile.seed, "generator", profile.id, "patients")
        var result: [Patient] = []
        result.reserveCapacity(profile.patients)
        func multiplier(_ c: ConditionName) -> Double { profile.conditions[c]?.prevalenceMultiplier ?? 1 }
        for i in 0..<profile.patients {
            let indexDay = firstIndexDay + random.int(below: 730)
            var age = random.gaussian(mean: profile.ageMean, standardDeviation: profile.ageStandardDeviation)
            if let drift = profile.temporalDrift, indexDay >= drift.from { age += drift.ageShift }
            age = min(100, max(0, age))
            let indexYear = Int(CivilDate.iso(indexDay).prefix(4))!
            let female = random.bernoulli(profile.femaleFraction)
            let race = random.categorical([profile.raceMix.white, profile.raceMix.black, profile.raceMix.asian])
            let hispanic = random.bernoulli(0.1)
            let a = (age - 60) / 10           // decades from 60
            let risk = random.gaussian()      // latent cardiometabolic risk
            let male = female ? 0.0 : 1.0
            func has(_ condition: ConditionName, _ logit: Double) -> Bool {
                random.bernoulli(min(0.99, multiplier(condition) * logistic(logit)))
            }
            let obesity = has(.obesity, -1.0 + 0.6 * risk)
            let diabetes = has(.type2Diabetes, -1.8 + 0.35 * a + 0.8 * risk + (obesity ? 0.7 : 0))
            let hypertension = has(.hypertension, -0.5 + 0.5 * a + 0.6 * risk)
            let hyperlipidemia = has(.hyperlipidemia, -0.8 + 0.3 * a + 0.5 * risk)
            let ckd = has(.chronicKidneyDisease, -2.8 + 0.5 * a + (diabetes ? 0.8 : 0) + (hypertension ? 0.6 : 0))
            let af = has(.atrialFibrillation, -3.0 + 0.7 * a)
            let mi = has(.myocardialInfarction, -3.0 + 0.4 * a + 0.5 * risk + 0.5 * male)
            let copd = has(.copd, -2.5 + 0.3 * a)
            func flag(_ b: Bool) -> Double { b ? 1 : 0 }
            // Labs in canonical units (order of LabName.allCases).
            let hba1c = 5.4 + 1.8 * flag(diabetes) + 0.2 * risk + random.gaussian(mean: 0, standardDeviation: 0.4)
            let creatinine = max(0.3, 0.8 + 0.15 * male + 0.9 * flag(ckd) + 0.05 * a
                                 + random.gaussian(mean: 0, standardDeviation: 0.15))
            let systolic = 125 + 15 * flag(hypertension) + 3 * a + random.gaussian(mean: 0, standardDeviation: 12)
            let bmi = 27 + 6 * flag(obesity) + 1.5 * risk + random.gaussian(mean: 0, standardDeviation: 3)
            let cholesterol = 190 + 30 * flag(hyperlipidemia) + random.gaussian(mean: 0, standardDeviation: 30)
            let heartRate = 75 + 10 * flag(af) + random.gaussian(mean: 0, standardDeviation: 10)
            var p = Patient(
                id: i + 1, female: female, race: race, hispanic: hispanic,
                birthYear: indexYear - Int(age.rounded(.down)), age: age, indexDay: indexDay,
                conditions: [obesity, diabetes, hypertension, hyperlipidemia, ckd, af, mi, copd],
                labs: [hba1c, creatinine, systolic, bmi, cholesterol, heartRate])
            let terms: [RiskFactor: Double] = [
                .ageDecade: a, .male: male, .diabetes: flag(diabetes), .hypertension: flag(hypertension),
                .chronicKidneyDisease: flag(ckd), .atrialFibrillation: flag(af), .myocardialInfarction: flag(mi),
                .copd: flag(copd), .systolicBloodPressure: systolic - 125, .creatinine: creatinine - 1,
                .bodyMassIndex: bmi - 27,
            ]
            for factor in RiskFactor.allCases {
                p.linearPredictor += (factor.baseCoefficient + (profile.conceptShift[factor] ?? 0)) * terms[factor]!
            }
            result.append(p)
        }
        let intercept = calibratedIntercept(result.map(\.linearPredictor), prevalence: profile.outcomePrevalence)
        var labelRandom = RandomStream(seed: profile.seed, "generator", profile.id, "outcome")
        for i in result.indices {
            var logit = intercept + result[i].linearPredictor
            if let drift = profile.temporalDrift, result[i].indexDay >= drift.from {
                logit += log(drift.outcomeOddsMultiplier)
            }
            let truth = labelRandom.bernoulli(logistic(logit))
            var recorded = truth
            if truth, let under = profile.underDiagnosis, result[i].belongs(to: under.group),
               labelRandom.bernoulli(under.rate) {
                recorded = false
            }
            if labelRandom.bernoulli(profile.labelNoise) { recorded.toggle() }
            result[i].trueOutcome = truth
            result[i].recordedOutcome = recorded
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

    /// Per-patient probability that each lab is missing: the site's rate, or under `.healthier`
    /// a rate proportional to exp(−0.7·conditions) rescaled so the site's mean rate is kept.
    static func missingProbabilities(_ patients: [Patient], profile: SiteProfile) -> [[Double]] {
        let weights = patients.map { profile.labMissingness == .healthier ? exp(-0.7 * Double($0.burden)) : 1 }
        let meanWeight = weights.reduce(0, +) / Double(max(weights.count, 1))
        return weights.map { w in
            LabName.allCases.map { lab in
                let rate = profile.labs[lab]?.missingRate ?? profile.labMissingRate
                return min(1, rate * w / meanWeight)
            }
        }
    }

    /// Writes a profile's records into an empty database (one transaction, prepared statements).
    public static func populate(_ db: Database, profile: SiteProfile) throws {
        try ShardSchema.create(in: db)
        let patients = patients(for: profile)
        var random = RandomStream(seed: profile.seed, "generator", profile.id, "records")
        let type = OMOPConcept.ehrRecord

        try db.execute(sql: """
            INSERT INTO cdm_source (cdm_source_name, cdm_source_abbreviation, cdm_holder, source_description,
              cdm_etl_reference, source_release_date, cdm_release_date, cdm_version, cdm_version_concept_id,
              vocabulary_version)
            VALUES (?, ?, 'SiteFit (synthetic)', ?, ?, '2022-01-01', '2022-01-01', 'v5.4', 756265, 'sitefit-subset')
            """, arguments: [profile.name, profile.id,
                             "Synthetic EHR shard generated by SiteFit from profile '\(profile.id)' with seed \(profile.seed).",
                             version])
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
        let conditionRow = try db.makeStatement(sql: """
            INSERT INTO condition_occurrence (person_id, condition_concept_id, condition_start_date,
              condition_type_concept_id, visit_occurrence_id) VALUES (?, ?, ?, ?, ?)
            """)
        let drug = try db.makeStatement(sql: """
            INSERT INTO drug_exposure (person_id, drug_concept_id, drug_exposure_start_date, drug_exposure_end_date,
              drug_type_concept_id, days_supply) VALUES (?, ?, ?, ?, ?, 90)
            """)
        let measurement = try db.makeStatement(sql: """
            INSERT INTO measurement (person_id, measurement_concept_id, measurement_date, measurement_type_concept_id,
              value_as_number, unit_concept_id, measurement_source_value, visit_occurrence_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let cohort = try db.makeStatement(sql: """
            INSERT INTO cohort (cohort_definition_id, subject_id, cohort_start_date, cohort_end_date) VALUES (?, ?, ?, ?)
            """)

        let drugFor: [(condition: ConditionName, drug: Int, probability: Double)] = [
            (.type2Diabetes, OMOPConcept.metformin, 0.8), (.hypertension, OMOPConcept.lisinopril, 0.7),
            (.hyperlipidemia, OMOPConcept.atorvastatin, 0.7), (.myocardialInfarction, OMOPConcept.aspirin, 0.9),
        ]
        let missing = missingProbabilities(patients, profile: profile)
        var visitId = 0
        for (index, p) in patients.enumerated() {
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
            let burden = p.burden
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
            for (c, condition) in ConditionName.allCases.enumerated() where p.conditions[c] {
                // Under-coding: the condition exists (and drives risk) but never reaches the record.
                let rate = profile.conditions[condition]?.underCodingRate ?? profile.underCodingRate
                if random.bernoulli(rate) { continue }
                try conditionRow.execute(arguments: [p.id, condition.conceptId, CivilDate.iso(firstVisit.day), type, firstVisit.id])
            }
            for rule in drugFor where p.has(rule.condition) && random.bernoulli(rule.probability) {
                let start = firstVisit.day
                try drug.execute(arguments: [p.id, rule.drug, CivilDate.iso(start), CivilDate.iso(start + 90), type])
            }
            for (l, lab) in LabName.allCases.enumerated() {
                if random.bernoulli(missing[index][l]) { continue }
                let knob = profile.labs[lab] ?? LabKnob()
                let unit = knob.unit ?? lab.canonicalUnit
                let recorded = UnitConversion.fromCanonical(knob.offset + knob.scale * p.labs[l], lab: lab, unit: unit)
                // An older value first, then the latest one the features should pick up.
                let visitDay = visitDays[random.int(below: visitDays.count)]
                try measurement.execute(arguments: [p.id, lab.conceptId, CivilDate.iso(visitDay.day - 200), type,
                                                    rounded(recorded * (0.95 + 0.1 * random.uniform())), unit.conceptId,
                                                    lab.rawValue, nil])
                try measurement.execute(arguments: [p.id, lab.conceptId, CivilDate.iso(visitDay.day), type,
                                                    rounded(recorded), unit.conceptId, lab.rawValue, visitDay.id])
            }
            if p.recordedOutcome {
                let onset = p.indexDay + 1 + random.int(below: outcomeWindowDays)
                try conditionRow.execute(arguments: [p.id, OMOPConcept.heartFailure, CivilDate.iso(onset), type, nil])
                try cohort.execute(arguments: [ShardSchema.outcomeCohort, p.id, CivilDate.iso(onset), CivilDate.iso(onset)])
            }
        }
        try writeUsedConcepts(db)
    }

    /// Fills the `concept` table with exactly the concepts the shard's rows use, so the shard
    /// explains itself; id 0 is OHDSI's "No matching concept".
    static func writeUsedConcepts(_ db: Database) throws {
        let used = Set(try Int.fetchAll(db, sql: """
            SELECT gender_concept_id FROM person UNION SELECT race_concept_id FROM person
            UNION SELECT ethnicity_concept_id FROM person UNION SELECT visit_concept_id FROM visit_occurrence
            UNION SELECT visit_type_concept_id FROM visit_occurrence
            UNION SELECT condition_concept_id FROM condition_occurrence UNION SELECT drug_concept_id FROM drug_exposure
            UNION SELECT measurement_concept_id FROM measurement UNION SELECT unit_concept_id FROM measurement
            UNION SELECT observation_concept_id FROM observation
            """).compactMap { $0 })
        let insert = try db.makeStatement(sql: """
            INSERT OR IGNORE INTO concept (concept_id, concept_name, domain_id, vocabulary_id, concept_class_id,
              standard_concept, concept_code, valid_start_date, valid_end_date) VALUES (?, ?, ?, ?, ?, ?, ?, '1970-01-01', '2099-12-31')
            """)
        if used.contains(0) {
            try insert.execute(arguments: [0, "No matching concept", "Metadata", "None", "Undefined", nil, "No matching concept"])
        }
        for c in OMOPConcept.all where used.contains(c.id) {
            try insert.execute(arguments: [c.id, c.name, c.domain, c.vocabulary, c.conceptClass, "S", c.code])
        }
    }

    static func rounded(_ value: Double) -> Double { (value * 100).rounded() / 100 }
}

/// Unit factors between a lab's canonical unit and the units sites record it in.
public enum UnitConversion {
    /// 1 mg/dL of creatinine = 88.42 µmol/L.
    public static let creatinineMicromolePerMilligram = 88.42

    /// A canonical-unit value expressed in `unit`.
    public static func fromCanonical(_ value: Double, lab: LabName, unit: LabUnit) -> Double {
        lab == .creatinine && unit == .micromolePerLiter ? value * creatinineMicromolePerMilligram : value
    }
}
