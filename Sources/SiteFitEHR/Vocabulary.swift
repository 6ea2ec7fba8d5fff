/// A row of the OMOP `concept` table (only the concepts SiteFit shards use).
public struct Concept: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var domain: String
    public var vocabulary: String
    public var conceptClass: String
    public var code: String
}

/// Standard OMOP CDM v5.4 concept ids used by SiteFit (OHDSI Athena; see DOMAIN.md).
public enum OMOPConcept {
    // Gender, race, ethnicity
    public static let male = 8507, female = 8532
    public static let white = 8527, black = 8516, asian = 8515
    public static let hispanic = 38003563, notHispanic = 38003564
    // Visits
    public static let inpatientVisit = 9201, outpatientVisit = 9202, emergencyVisit = 9203
    // Conditions (SNOMED)
    public static let type2Diabetes = 201826, hypertension = 320128, heartFailure = 316139
    public static let copd = 255573, chronicKidneyDisease = 46271022, myocardialInfarction = 4329847
    public static let atrialFibrillation = 313217, hyperlipidemia = 432867, obesity = 433736
    // Measurements (LOINC)
    public static let hba1c = 3004410, creatinine = 3016723, systolicBloodPressure = 3004249
    public static let heartRate = 3027018, bodyMassIndex = 3038553, cholesterolTotal = 3027114
    // Units (UCUM)
    public static let milligramPerDeciliter = 8840, micromolePerLiter = 8749, millimeterMercury = 8876
    public static let perMinute = 8541, percent = 8554, kilogramPerSquareMeter = 9531
    // Drugs (RxNorm ingredients)
    public static let metformin = 1503297, lisinopril = 1308216, atorvastatin = 1545958, aspirin = 1112807
    // Type concept: "EHR"
    public static let ehrRecord = 32817

    /// Every concept a shard writes into its `concept` table, so the shard explains itself.
    public static let all: [Concept] = [
        Concept(id: male, name: "MALE", domain: "Gender", vocabulary: "Gender", conceptClass: "Gender", code: "M"),
        Concept(id: female, name: "FEMALE", domain: "Gender", vocabulary: "Gender", conceptClass: "Gender", code: "F"),
        Concept(id: white, name: "White", domain: "Race", vocabulary: "Race", conceptClass: "Race", code: "5"),
        Concept(id: black, name: "Black or African American", domain: "Race", vocabulary: "Race", conceptClass: "Race", code: "3"),
        Concept(id: asian, name: "Asian", domain: "Race", vocabulary: "Race", conceptClass: "Race", code: "2"),
        Concept(id: hispanic, name: "Hispanic or Latino", domain: "Ethnicity", vocabulary: "Ethnicity", conceptClass: "Ethnicity", code: "Hispanic"),
        Concept(id: notHispanic, name: "Not Hispanic or Latino", domain: "Ethnicity", vocabulary: "Ethnicity", conceptClass: "Ethnicity", code: "Not Hispanic"),
        Concept(id: inpatientVisit, name: "Inpatient Visit", domain: "Visit", vocabulary: "Visit", conceptClass: "Visit", code: "IP"),
        Concept(id: outpatientVisit, name: "Outpatient Visit", domain: "Visit", vocabulary: "Visit", conceptClass: "Visit", code: "OP"),
        Concept(id: emergencyVisit, name: "Emergency Room Visit", domain: "Visit", vocabulary: "Visit", conceptClass: "Visit", code: "ER"),
        Concept(id: type2Diabetes, name: "Type 2 diabetes mellitus", domain: "Condition", vocabulary: "SNOMED", conceptClass: "Clinical Finding", code: "44054006"),
        Concept(id: hypertension, name: "Essential hypertension", domain: "Condition", vocabulary: "SNOMED", conceptClass: "Clinical Finding", code: "59621000"),
        Concept(id: heartFailure, name: "Heart failure", domain: "Condition", vocabulary: "SNOMED", conceptClass: "Clinical Finding", code: "84114007"),
        Concept(id: copd, name: "Chronic obstructive lung disease", domain: "Condition", vocabulary: "SNOMED", conceptClass: "Clinical Finding", code: "13645005"),
        Concept(id: chronicKidneyDisease, name: "Chronic kidney disease", domain: "Condition", vocabulary: "SNOMED", conceptClass: "Clinical Finding", code: "709044004"),
        Concept(id: myocardialInfarction, name: "Myocardial infarction", domain: "Condition", vocabulary: "SNOMED", conceptClass: "Clinical Finding", code: "22298006"),
        Concept(id: atrialFibrillation, name: "Atrial fibrillation", domain: "Condition", vocabulary: "SNOMED", conceptClass: "Clinical Finding", code: "49436004"),
        Concept(id: hyperlipidemia, name: "Hyperlipidemia", domain: "Condition", vocabulary: "SNOMED", conceptClass: "Clinical Finding", code: "55822004"),
        Concept(id: obesity, name: "Obesity", domain: "Condition", vocabulary: "SNOMED", conceptClass: "Clinical Finding", code: "414916001"),
        Concept(id: hba1c, name: "Hemoglobin A1c/Hemoglobin.total in Blood", domain: "Measurement", vocabulary: "LOINC", conceptClass: "Lab Test", code: "4548-4"),
        Concept(id: creatinine, name: "Creatinine [Mass/volume] in Serum or Plasma", domain: "Measurement", vocabulary: "LOINC", conceptClass: "Lab Test", code: "2160-0"),
        Concept(id: systolicBloodPressure, name: "Systolic blood pressure", domain: "Measurement", vocabulary: "LOINC", conceptClass: "Clinical Observation", code: "8480-6"),
        Concept(id: heartRate, name: "Heart rate", domain: "Measurement", vocabulary: "LOINC", conceptClass: "Clinical Observation", code: "8867-4"),
        Concept(id: bodyMassIndex, name: "Body mass index (BMI) [Ratio]", domain: "Measurement", vocabulary: "LOINC", conceptClass: "Clinical Observation", code: "39156-5"),
        Concept(id: cholesterolTotal, name: "Cholesterol [Mass/volume] in Serum or Plasma", domain: "Measurement", vocabulary: "LOINC", conceptClass: "Lab Test", code: "2093-3"),
        Concept(id: milligramPerDeciliter, name: "milligram per deciliter", domain: "Unit", vocabulary: "UCUM", conceptClass: "Unit", code: "mg/dL"),
        Concept(id: micromolePerLiter, name: "micromole per liter", domain: "Unit", vocabulary: "UCUM", conceptClass: "Unit", code: "umol/L"),
        Concept(id: millimeterMercury, name: "millimeter mercury column", domain: "Unit", vocabulary: "UCUM", conceptClass: "Unit", code: "mm[Hg]"),
        Concept(id: perMinute, name: "per minute", domain: "Unit", vocabulary: "UCUM", conceptClass: "Unit", code: "/min"),
        Concept(id: percent, name: "percent", domain: "Unit", vocabulary: "UCUM", conceptClass: "Unit", code: "%"),
        Concept(id: kilogramPerSquareMeter, name: "kilogram per square meter", domain: "Unit", vocabulary: "UCUM", conceptClass: "Unit", code: "kg/m2"),
        Concept(id: metformin, name: "metformin", domain: "Drug", vocabulary: "RxNorm", conceptClass: "Ingredient", code: "6809"),
        Concept(id: lisinopril, name: "lisinopril", domain: "Drug", vocabulary: "RxNorm", conceptClass: "Ingredient", code: "29046"),
        Concept(id: atorvastatin, name: "atorvastatin", domain: "Drug", vocabulary: "RxNorm", conceptClass: "Ingredient", code: "83367"),
        Concept(id: aspirin, name: "aspirin", domain: "Drug", vocabulary: "RxNorm", conceptClass: "Ingredient", code: "1191"),
        Concept(id: ehrRecord, name: "EHR", domain: "Type Concept", vocabulary: "Type Concept", conceptClass: "Type Concept", code: "OMOP4976890"),
    ]
}
