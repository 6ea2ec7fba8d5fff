import Foundation
import SiteFitCore

/// A hospital's description: who its patients are and how its records deviate from the norm.
///
/// Profiles are read from `Sites/<id>.yaml` by SiteFitScenario; the generator turns one into a
/// shard deterministically (same profile, same seed ⇒ same shard).
public struct SiteProfile: Sendable, Equatable, Codable {
    /// Short identifier used in file names, reports and random-stream keys (`riverside-general`).
    public var id: String
    /// Human-readable hospital name.
    public var name: String
    public var seed: UInt64
    public var patients: Int
    public var ageMean: Double
    public var ageStandardDeviation: Double
    public var femaleFraction: Double
    /// Relative weights of White, Black or African American, Asian.
    public var raceMix: RaceMix
    /// Target share of patients whose *true* outcome is positive (before under-diagnosis, label
    /// noise and temporal drift); the generator calibrates the latent intercept to it.
    public var outcomePrevalence: Double
    /// Default probability that a lab value is not recorded (a lab's own rate overrides it).
    public var labMissingRate: Double
    /// Whether missing labs are missing at random or more often in healthier patients.
    public var labMissingness: Missingness
    /// Default probability that a present condition is never coded (a condition's own rate overrides it).
    public var underCodingRate: Double
    /// Per-condition knobs: prevalence multiplier and under-coding rate.
    public var conditions: [ConditionName: ConditionKnob]
    /// Per-lab knobs: unit, calibration offset/scale, missingness.
    public var labs: [LabName: LabKnob]
    /// True outcomes that the site never records in one subgroup (e.g. heart failure in women).
    public var underDiagnosis: UnderDiagnosis?
    /// Site-specific changes of the outcome model's risk coefficients.
    public var conceptShift: [RiskFactor: Double]
    /// From a date on, the case mix or the outcome rate changes.
    public var temporalDrift: TemporalDrift?
    /// Probability that a recorded label is flipped.
    public var labelNoise: Double

    public init(
        id: String, name: String, seed: UInt64, patients: Int, ageMean: Double = 62,
        ageStandardDeviation: Double = 13, femaleFraction: Double = 0.5,
        raceMix: RaceMix = RaceMix(white: 0.7, black: 0.2, asian: 0.1), outcomePrevalence: Double = 0.15,
        labMissingRate: Double = 0.1, labMissingness: Missingness = .random, underCodingRate: Double = 0,
        conditions: [ConditionName: ConditionKnob] = [:], labs: [LabName: LabKnob] = [:],
        underDiagnosis: UnderDiagnosis? = nil, conceptShift: [RiskFactor: Double] = [:],
        temporalDrift: TemporalDrift? = nil, labelNoise: Double = 0
    ) {
        self.id = id
        self.name = name
        self.seed = seed
        self.patients = patients
        self.ageMean = ageMean
        self.ageStandardDeviation = ageStandardDeviation
        self.femaleFraction = femaleFraction
        self.raceMix = raceMix
        self.outcomePrevalence = outcomePrevalence
        self.labMissingRate = labMissingRate
        self.labMissingness = labMissingness
        self.underCodingRate = underCodingRate
        self.conditions = conditions
        self.labs = labs
        self.underDiagnosis = underDiagnosis
        self.conceptShift = conceptShift
        self.temporalDrift = temporalDrift
        self.labelNoise = labelNoise
    }

    /// The unit this site records creatinine in.
    public var creatinineUnit: LabUnit { labs[.creatinine]?.unit ?? LabName.creatinine.canonicalUnit }

    /// A stable fingerprint of every field and the generator version, stored in the shard to
    /// detect a stale shard.
    public var fingerprint: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = (try? encoder.encode(self)) ?? Data()
        return StableHash.hex(Array(json) + Array(ShardGenerator.version.utf8))
    }
}

/// Relative weights of the race categories a site's patients are drawn from.
public struct RaceMix: Sendable, Equatable, Codable {
    public var white: Double
    public var black: Double
    public var asian: Double

    public init(white: Double, black: Double, asian: Double) {
        self.white = white
        self.black = black
        self.asian = asian
    }
}

/// How lab values go missing.
public enum Missingness: String, Sendable, Codable, CaseIterable {
    /// Every patient equally likely (MCAR).
    case random
    /// Healthier patients (fewer conditions) are tested less often (missing not at random);
    /// the site's average rate is kept.
    case healthier
}

/// The chronic conditions of the latent patient model, by short name.
public enum ConditionName: String, Sendable, Codable, CaseIterable, CodingKeyRepresentable {
    case obesity, type2Diabetes = "type_2_diabetes", hypertension, hyperlipidemia
    case chronicKidneyDisease = "chronic_kidney_disease", atrialFibrillation = "atrial_fibrillation"
    case myocardialInfarction = "myocardial_infarction", copd

    /// The OMOP standard concept id (SNOMED).
    public var conceptId: Int {
        switch self {
        case .obesity: OMOPConcept.obesity
        case .type2Diabetes: OMOPConcept.type2Diabetes
        case .hypertension: OMOPConcept.hypertension
        case .hyperlipidemia: OMOPConcept.hyperlipidemia
        case .chronicKidneyDisease: OMOPConcept.chronicKidneyDisease
        case .atrialFibrillation: OMOPConcept.atrialFibrillation
        case .myocardialInfarction: OMOPConcept.myocardialInfarction
        case .copd: OMOPConcept.copd
        }
    }
}

/// Per-condition knobs.
public struct ConditionKnob: Sendable, Equatable, Codable {
    /// Multiplies the condition's probability (capped at 0.99).
    public var prevalenceMultiplier: Double
    /// Overrides the profile's under-coding rate for this condition.
    public var underCodingRate: Double?

    public init(prevalenceMultiplier: Double = 1, underCodingRate: Double? = nil) {
        self.prevalenceMultiplier = prevalenceMultiplier
        self.underCodingRate = underCodingRate
    }
}

/// The labs of the latent patient model, by short name.
public enum LabName: String, Sendable, Codable, CaseIterable, CodingKeyRepresentable {
    case hba1c, creatinine, systolicBloodPressure = "systolic_bp", bodyMassIndex = "bmi", cholesterol
    case heartRate = "heart_rate"

    /// The OMOP standard concept id (LOINC).
    public var conceptId: Int {
        switch self {
        case .hba1c: OMOPConcept.hba1c
        case .creatinine: OMOPConcept.creatinine
        case .systolicBloodPressure: OMOPConcept.systolicBloodPressure
        case .bodyMassIndex: OMOPConcept.bodyMassIndex
        case .cholesterol: OMOPConcept.cholesterolTotal
        case .heartRate: OMOPConcept.heartRate
        }
    }

    /// The unit features are expressed in after extraction.
    public var canonicalUnit: LabUnit {
        switch self {
        case .hba1c: .percent
        case .creatinine, .cholesterol: .milligramPerDeciliter
        case .systolicBloodPressure: .millimeterMercury
        case .bodyMassIndex: .kilogramPerSquareMeter
        case .heartRate: .perMinute
        }
    }

    /// Units a site may record this lab in.
    public var allowedUnits: [LabUnit] {
        self == .creatinine ? [.milligramPerDeciliter, .micromolePerLiter] : [canonicalUnit]
    }
}

/// UCUM units SiteFit shards use.
public enum LabUnit: String, Sendable, Codable, CaseIterable {
    case milligramPerDeciliter = "mg/dL"
    case micromolePerLiter = "umol/L"
    case percent = "%"
    case millimeterMercury = "mmHg"
    case kilogramPerSquareMeter = "kg/m2"
    case perMinute = "/min"

    /// The OMOP unit concept id (UCUM).
    public var conceptId: Int {
        switch self {
        case .milligramPerDeciliter: OMOPConcept.milligramPerDeciliter
        case .micromolePerLiter: OMOPConcept.micromolePerLiter
        case .percent: OMOPConcept.percent
        case .millimeterMercury: OMOPConcept.millimeterMercury
        case .kilogramPerSquareMeter: OMOPConcept.kilogramPerSquareMeter
        case .perMinute: OMOPConcept.perMinute
        }
    }
}

/// Per-lab knobs: what the site's analyser and habits do to a true value.
public struct LabKnob: Sendable, Equatable, Codable {
    /// Recording unit (only creatinine may differ from the canonical unit).
    public var unit: LabUnit?
    /// Calibration: recorded = offset + scale × true (in the canonical unit, before unit conversion).
    public var offset: Double
    public var scale: Double
    /// Overrides the profile's lab missing rate.
    public var missingRate: Double?

    public init(unit: LabUnit? = nil, offset: Double = 0, scale: Double = 1, missingRate: Double? = nil) {
        self.unit = unit
        self.offset = offset
        self.scale = scale
        self.missingRate = missingRate
    }
}

/// Patient subgroups a profile can target.
public enum Subgroup: String, Sendable, Codable, CaseIterable {
    case female, male, white, black, asian
    case age65Plus = "age_65_plus"
    case ageUnder50 = "age_under_50"
}

/// A share of true outcomes that is never recorded in one subgroup.
public struct UnderDiagnosis: Sendable, Equatable, Codable {
    public var group: Subgroup
    public var rate: Double

    public init(group: Subgroup, rate: Double) {
        self.group = group
        self.rate = rate
    }
}

/// Terms of the shared outcome model; a concept shift adds to one coefficient at one site.
public enum RiskFactor: String, Sendable, Codable, CaseIterable, CodingKeyRepresentable {
    case ageDecade = "age_decade", male, diabetes, hypertension
    case chronicKidneyDisease = "chronic_kidney_disease", atrialFibrillation = "atrial_fibrillation"
    case myocardialInfarction = "myocardial_infarction", copd
    case systolicBloodPressure = "systolic_bp", creatinine, bodyMassIndex = "bmi"

    /// The coefficient every site shares (per unit of the term; see `ShardGenerator`).
    public var baseCoefficient: Double {
        switch self {
        case .ageDecade: 0.5
        case .male: 0.4
        case .diabetes: 0.8
        case .hypertension: 0.7
        case .chronicKidneyDisease: 1.0
        case .atrialFibrillation: 1.2
        case .myocardialInfarction: 1.3
        case .copd: 0.3
        case .systolicBloodPressure: 0.02
        case .creatinine: 0.8
        case .bodyMassIndex: 0.03
        }
    }
}

/// A change from a date on (a new guideline, a new population): patients whose index date is on
/// or after `from` are `ageShift` years older and their outcome odds are multiplied.
public struct TemporalDrift: Sendable, Equatable, Codable {
    /// Days since 1970-01-01.
    public var from: Int
    public var outcomeOddsMultiplier: Double
    public var ageShift: Double

    public init(from: Int, outcomeOddsMultiplier: Double = 1, ageShift: Double = 0) {
        self.from = from
        self.outcomeOddsMultiplier = outcomeOddsMultiplier
        self.ageShift = ageShift
    }
}
