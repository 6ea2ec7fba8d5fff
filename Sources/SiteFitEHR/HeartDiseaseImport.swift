import Foundation
import GRDB
import Logging

/// Imports the UCI Heart Disease files (the four FLamby Fed-Heart-Disease hospitals) as OMOP shards.
///
/// Each line of `processed.<site>.data` becomes one `person` (id = the 1-based line number) with
/// one inpatient visit on 1988-01-01, the numeric findings as `measurement` rows and the
/// categorical ones as `observation` rows. Fields without a standard concept in SiteFit's
/// vocabulary carry `*_concept_id = 0` ("no matching concept", the OHDSI convention) and the UCI
/// attribute name as `*_source_value`. Missing values (`?`) produce no row. Values are carried
/// unchanged, including the zeros that stand for missing cholesterol (see the data README).
/// The outcome `num > 0` is cohort 2 (index date 1988-01-02); FLamby's train/test assignment
/// from `flamby-split.csv` is cohorts 10 (train) and 11 (test).
public enum HeartDiseaseImport {
    /// The four sites in FLamby's center order.
    public static let sites = ["cleveland", "hungarian", "switzerland", "va"]
    /// Cohort definition ids of FLamby's train and test rows.
    public static let flambyTrainCohort = 10, flambyTestCohort = 11
    static let visitDay = CivilDate.days(year: 1988, month: 1, day: 1)
    /// The hospitals behind the four files.
    public static let hospitalNames = ["cleveland": "Cleveland Clinic Foundation", "hungarian": "Hungarian Institute of Cardiology, Budapest",
                                       "switzerland": "University Hospitals Zurich and Basel", "va": "V.A. Medical Center, Long Beach"]

    /// UCI attribute order in the processed files.
    static let attributes = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
                             "oldpeak", "slope", "ca", "thal", "num"]

    /// What each attribute can be (heart-disease.names, widened): a value outside is a damaged
    /// file, refused by line and field before it can reach an integer conversion or a model.
    static let plausible: [ClosedRange<Double>] = [0...120, 0...1, 1...4, 0...400, 0...2000, 0...1, 0...2, 0...400, 0...1,
                                                   -20...20, 1...3, 0...4, 3...7, 0...4]

    /// Where each numeric attribute goes: (table, concept id, unit concept id, unit source value).
    static let measurements: [String: (concept: Int, unit: Int, unitSource: String)] = [
        "trestbps": (OMOPConcept.systolicBloodPressure, OMOPConcept.millimeterMercury, "mm Hg"),
        "chol": (OMOPConcept.cholesterolTotal, OMOPConcept.milligramPerDeciliter, "mg/dl"),
        "thalach": (0, OMOPConcept.perMinute, "beats/min"),
        "oldpeak": (0, 0, "mm"),
        "ca": (0, 0, "vessels"),
    ]
    static let observations = ["cp", "fbs", "restecg", "exang", "slope", "thal", "num"]

    /// Builds `<to>/<site>.sqlite` for each site whose file is in `from`; returns the shard URLs.
    public static func importAll(from: URL, to: URL, logger: Logger = Logger(label: "sitefit.import")) throws -> [URL] {
        try sites.map { try importSite($0, from: from, to: to, logger: logger) }
    }

    /// Builds `<to>/<site>.sqlite` from `<from>/processed.<site>.data` and `<from>/flamby-split.csv`.
    @discardableResult
    public static func importSite(_ site: String, from: URL, to: URL, logger: Logger = Logger(label: "sitefit.import")) throws -> URL {
        let split = try readSplit(from.appendingPathComponent("flamby-split.csv"))
        let file = from.appendingPathComponent("processed.\(site).data")
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw ShardError(site: site, file: file.relativePath, problem: "file not found (expected the UCI processed file)")
        }
        let rows = try parse(file, site: site)
        let target = to.appendingPathComponent("\(site).sqlite")
        try ShardBuilder.write(site: site, to: target, logger: logger) { db in
            try populate(db, site: site, rows: rows, split: split[site] ?? [:])
        }
        return target
    }

    /// The parsed values of one file: per line, 14 optional numbers.
    static func parse(_ url: URL, site: String) throws -> [[Double?]] {
        guard let data = FileManager.default.contents(atPath: url.path), let text = String(data: data, encoding: .utf8) else {
            throw ShardError(site: site, file: url.relativePath, problem: "cannot be read as text")
        }
        return try parse(text: text, file: url.relativePath, site: site)
    }

    /// The parsed values of one file's `text`; errors name `file`.
    public static func parse(text: String, file: String, site: String) throws -> [[Double?]] {
        let url = URL(fileURLWithPath: file)
        var rows: [[Double?]] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == attributes.count else {
                throw ShardError(site: site, file: url.relativePath,
                                 problem: "line \(index + 1): expected \(attributes.count) comma-separated fields, found \(fields.count)")
            }
            rows.append(try fields.enumerated().map { column, field in
                if field == "?" { return nil }
                guard let value = Double(field), value.isFinite else {
                    throw ShardError(site: site, file: url.relativePath,
                                     problem: "line \(index + 1), field \(column + 1) (\(attributes[column])): not a number or '?'")
                }
                guard plausible[column].contains(value) else {
                    throw ShardError(site: site, file: url.relativePath, problem: "line \(index + 1), field \(column + 1) (\(attributes[column])): "
                                     + "outside \(Int(plausible[column].lowerBound))…\(Int(plausible[column].upperBound)), the range the UCI files document")
                }
                return value
            })
        }
        guard rows.allSatisfy({ $0[0] != nil && $0[13] != nil }) else {
            throw ShardError(site: site, file: url.relativePath, problem: "every line needs an age and a diagnosis (num)")
        }
        return rows
    }

    /// site → (1-based line → is test).
    static func readSplit(_ url: URL) throws -> [String: [Int: Bool]] {
        guard let data = FileManager.default.contents(atPath: url.path), let text = String(data: data, encoding: .utf8) else {
            throw ShardError(site: "heart-disease", file: url.relativePath, problem: "FLamby split file not found or unreadable")
        }
        var split: [String: [Int: Bool]] = [:]
        let lines = text.split(separator: "\n")
        guard lines.first == "site,line,row,split,label" else {
            throw ShardError(site: "heart-disease", file: url.relativePath, problem: "expected the header 'site,line,row,split,label'")
        }
        for (index, line) in lines.dropFirst().enumerated() {
            let f = line.split(separator: ",")
            guard f.count == 5, let number = Int(f[1]), f[3] == "train" || f[3] == "test" else {
                throw ShardError(site: "heart-disease", file: url.relativePath, problem: "line \(index + 2) is malformed")
            }
            split[String(f[0]), default: [:]][number] = f[3] == "test"
        }
        return split
    }

    static func populate(_ db: Database, site: String, rows: [[Double?]], split: [Int: Bool]) throws {
        try ShardSchema.create(in: db)
        let type = OMOPConcept.ehrRecord
        let visitDate = CivilDate.iso(visitDay), indexDate = CivilDate.iso(visitDay + 1)
        let names = hospitalNames
        try db.execute(sql: """
            INSERT INTO cdm_source (cdm_source_name, cdm_source_abbreviation, cdm_holder, source_description,
              source_documentation_reference, cdm_etl_reference, source_release_date, cdm_release_date, cdm_version,
              cdm_version_concept_id, vocabulary_version)
            VALUES (?, ?, ?, ?, 'https://doi.org/10.24432/C52P4X', 'sitefit heart-disease import', '1988-07-01', '2022-01-01',
              'v5.4', 756265, 'sitefit-subset')
            """, arguments: [
                names[site] ?? site, site, "UCI Machine Learning Repository (CC BY 4.0)",
                "UCI Heart Disease, processed 14-attribute file for \(site). Janosi, Steinbrunn, Pfisterer, Detrano (1988). CC BY 4.0.",
            ])
        try db.execute(sql: """
            INSERT INTO metadata (metadata_concept_id, metadata_type_concept_id, name, value_as_string)
            VALUES (0, ?, 'sitefit.import', 'uci-heart-disease'), (0, ?, 'sitefit.profile_id', ?)
            """, arguments: [type, type, site])
        let person = try db.makeStatement(sql: """
            INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id,
              person_source_value, gender_source_value) VALUES (?, ?, ?, 0, 0, ?, ?)
            """)
        let period = try db.makeStatement(sql: """
            INSERT INTO observation_period (person_id, observation_period_start_date, observation_period_end_date,
              period_type_concept_id) VALUES (?, ?, ?, ?)
            """)
        let visit = try db.makeStatement(sql: """
            INSERT INTO visit_occurrence (visit_occurrence_id, person_id, visit_concept_id, visit_start_date, visit_end_date,
              visit_type_concept_id) VALUES (?, ?, ?, ?, ?, ?)
            """)
        let measurement = try db.makeStatement(sql: """
            INSERT INTO measurement (person_id, measurement_concept_id, measurement_date, measurement_type_concept_id,
              value_as_number, unit_concept_id, unit_source_value, measurement_source_value, visit_occurrence_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let observation = try db.makeStatement(sql: """
            INSERT INTO observation (person_id, observation_concept_id, observation_date, observation_type_concept_id,
              value_as_number, observation_source_value, visit_occurrence_id) VALUES (?, 0, ?, ?, ?, ?, ?)
            """)
        let cohort = try db.makeStatement(sql: """
            INSERT INTO cohort (cohort_definition_id, subject_id, cohort_start_date, cohort_end_date) VALUES (?, ?, ?, ?)
            """)
        for (index, row) in rows.enumerated() {
            let id = index + 1
            let age = Int(row[0]!)
            let male = row[1].map { $0 == 1 }
            try person.execute(arguments: [id, male.map { $0 ? OMOPConcept.male : OMOPConcept.female } ?? 0,
                                           1988 - age, "\(site)-\(id)", row[1].map { $0 == 1 ? "1" : "0" }])
            try period.execute(arguments: [id, visitDate, indexDate, type])
            try visit.execute(arguments: [id, id, OMOPConcept.inpatientVisit, visitDate, visitDate, type])
            for (column, name) in attributes.enumerated() {
                guard let value = row[column] else { continue }
                if let target = measurements[name] {
                    try measurement.execute(arguments: [id, target.concept, visitDate, type, value, target.unit,
                                                        target.unitSource, name, id])
                } else if observations.contains(name) {
                    try observation.execute(arguments: [id, visitDate, type, value, name, id])
                }
            }
            try cohort.execute(arguments: [ShardSchema.targetCohort, id, indexDate, indexDate])
            if row[13]! > 0 {
                try cohort.execute(arguments: [ShardSchema.outcomeCohort, id, CivilDate.iso(visitDay + 2), CivilDate.iso(visitDay + 2)])
            }
            if let isTest = split[id] {
                try cohort.execute(arguments: [isTest ? flambyTestCohort : flambyTrainCohort, id, indexDate, indexDate])
            }
        }
        try ShardGenerator.writeUsedConcepts(db)
    }
}
