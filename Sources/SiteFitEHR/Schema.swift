import GRDB

/// The OMOP CDM v5.4 subset a SiteFit shard holds, with its exact table and column names.
public enum ShardSchema {
    /// Tables (and the columns SiteFit reads) that a shard must have before a site may use it.
    public static let requiredColumns: [String: [String]] = [
        "person": ["person_id", "gender_concept_id", "year_of_birth", "race_concept_id", "ethnicity_concept_id"],
        "observation_period": ["observation_period_id", "person_id", "observation_period_start_date", "observation_period_end_date"],
        "visit_occurrence": ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date"],
        "condition_occurrence": ["condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date"],
        "drug_exposure": ["drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date"],
        "measurement": ["measurement_id", "person_id", "measurement_concept_id", "measurement_date", "value_as_number", "unit_concept_id"],
        "observation": ["observation_id", "person_id", "observation_concept_id", "observation_date", "value_as_number"],
        "cohort": ["cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date"],
        "concept": ["concept_id", "concept_name"],
        "cdm_source": ["cdm_source_name"],
        "metadata": ["name", "value_as_string"],
    ]

    /// What an OMOP database opened in place must have; the other tables SiteFit reads may be
    /// absent there (they read as empty).
    public static let foreignRequiredTables: Set<String> = ["person", "observation_period"]

    /// The CDM's `_id` columns that hold text, not numbers (the vocabulary's own codes).
    public static let textIds: Set<String> = ["concept.domain_id", "concept.vocabulary_id", "concept.concept_class_id"]

    /// Tables an imported export may fill that SiteFit's generator leaves empty.
    public static let otherTables = ["procedure_occurrence", "death", "care_site", "concept_ancestor"]

    /// Cohort definition holding each patient's index date (the prediction time).
    public static let targetCohort = 1
    /// Cohort definition holding the outcome event (incident heart failure) dates.
    public static let outcomeCohort = 2

    static let statements = [
        """
        CREATE TABLE person (
          person_id INTEGER PRIMARY KEY, gender_concept_id INTEGER NOT NULL, year_of_birth INTEGER NOT NULL,
          month_of_birth INTEGER, day_of_birth INTEGER, birth_datetime TEXT,
          race_concept_id INTEGER NOT NULL, ethnicity_concept_id INTEGER NOT NULL,
          location_id INTEGER, provider_id INTEGER, care_site_id INTEGER, person_source_value TEXT,
          gender_source_value TEXT, gender_source_concept_id INTEGER, race_source_value TEXT,
          race_source_concept_id INTEGER, ethnicity_source_value TEXT, ethnicity_source_concept_id INTEGER)
        """,
        """
        CREATE TABLE observation_period (
          observation_period_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL,
          observation_period_start_date TEXT NOT NULL, observation_period_end_date TEXT NOT NULL,
          period_type_concept_id INTEGER NOT NULL)
        """,
        """
        CREATE TABLE visit_occurrence (
          visit_occurrence_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL, visit_concept_id INTEGER NOT NULL,
          visit_start_date TEXT NOT NULL, visit_start_datetime TEXT, visit_end_date TEXT,
          visit_end_datetime TEXT, visit_type_concept_id INTEGER NOT NULL, provider_id INTEGER,
          care_site_id INTEGER, visit_source_value TEXT, visit_source_concept_id INTEGER,
          admitted_from_concept_id INTEGER, admitted_from_source_value TEXT, discharged_to_concept_id INTEGER,
          discharged_to_source_value TEXT, preceding_visit_occurrence_id INTEGER)
        """,
        """
        CREATE TABLE condition_occurrence (
          condition_occurrence_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL,
          condition_concept_id INTEGER NOT NULL, condition_start_date TEXT NOT NULL,
          condition_start_datetime TEXT, condition_end_date TEXT, condition_end_datetime TEXT,
          condition_type_concept_id INTEGER NOT NULL, condition_status_concept_id INTEGER, stop_reason TEXT,
          provider_id INTEGER, visit_occurrence_id INTEGER, visit_detail_id INTEGER,
          condition_source_value TEXT, condition_source_concept_id INTEGER, condition_status_source_value TEXT)
        """,
        """
        CREATE TABLE drug_exposure (
          drug_exposure_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL, drug_concept_id INTEGER NOT NULL,
          drug_exposure_start_date TEXT NOT NULL, drug_exposure_start_datetime TEXT,
          drug_exposure_end_date TEXT, drug_exposure_end_datetime TEXT, verbatim_end_date TEXT,
          drug_type_concept_id INTEGER NOT NULL, stop_reason TEXT, refills INTEGER, quantity REAL,
          days_supply INTEGER, sig TEXT, route_concept_id INTEGER, lot_number TEXT, provider_id INTEGER,
          visit_occurrence_id INTEGER, visit_detail_id INTEGER, drug_source_value TEXT,
          drug_source_concept_id INTEGER, route_source_value TEXT, dose_unit_source_value TEXT)
        """,
        """
        CREATE TABLE measurement (
          measurement_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL, measurement_concept_id INTEGER NOT NULL,
          measurement_date TEXT NOT NULL, measurement_datetime TEXT, measurement_time TEXT,
          measurement_type_concept_id INTEGER NOT NULL, operator_concept_id INTEGER, value_as_number REAL,
          value_as_concept_id INTEGER, unit_concept_id INTEGER, range_low REAL, range_high REAL,
          provider_id INTEGER, visit_occurrence_id INTEGER, visit_detail_id INTEGER,
          measurement_source_value TEXT, measurement_source_concept_id INTEGER, unit_source_value TEXT,
          unit_source_concept_id INTEGER, value_source_value TEXT, measurement_event_id INTEGER,
          meas_event_field_concept_id INTEGER)
        """,
        """
        CREATE TABLE observation (
          observation_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL, observation_concept_id INTEGER NOT NULL,
          observation_date TEXT NOT NULL, observation_datetime TEXT, observation_type_concept_id INTEGER NOT NULL,
          value_as_number REAL, value_as_string TEXT, value_as_concept_id INTEGER, qualifier_concept_id INTEGER,
          unit_concept_id INTEGER, provider_id INTEGER, visit_occurrence_id INTEGER, visit_detail_id INTEGER,
          observation_source_value TEXT, observation_source_concept_id INTEGER, unit_source_value TEXT,
          qualifier_source_value TEXT, value_source_value TEXT, observation_event_id INTEGER,
          obs_event_field_concept_id INTEGER)
        """,
        """
        CREATE TABLE cohort (
          cohort_definition_id INTEGER NOT NULL, subject_id INTEGER NOT NULL,
          cohort_start_date TEXT NOT NULL, cohort_end_date TEXT NOT NULL)
        """,
        """
        CREATE TABLE concept (
          concept_id INTEGER PRIMARY KEY, concept_name TEXT, domain_id TEXT,
          vocabulary_id TEXT, concept_class_id TEXT, standard_concept TEXT,
          concept_code TEXT, valid_start_date TEXT, valid_end_date TEXT,
          invalid_reason TEXT)
        """,
        """
        CREATE TABLE cdm_source (
          cdm_source_name TEXT, cdm_source_abbreviation TEXT, cdm_holder TEXT,
          source_description TEXT, source_documentation_reference TEXT, cdm_etl_reference TEXT,
          source_release_date TEXT, cdm_release_date TEXT, cdm_version TEXT,
          cdm_version_concept_id INTEGER, vocabulary_version TEXT)
        """,
        """
        CREATE TABLE metadata (
          metadata_id INTEGER PRIMARY KEY, metadata_concept_id INTEGER,
          metadata_type_concept_id INTEGER, name TEXT, value_as_string TEXT,
          value_as_concept_id INTEGER, value_as_number REAL, metadata_date TEXT, metadata_datetime TEXT)
        """,
        """
        CREATE TABLE procedure_occurrence (
          procedure_occurrence_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL, procedure_concept_id INTEGER NOT NULL,
          procedure_date TEXT NOT NULL, procedure_datetime TEXT, procedure_end_date TEXT, procedure_end_datetime TEXT,
          procedure_type_concept_id INTEGER NOT NULL, modifier_concept_id INTEGER, quantity INTEGER, provider_id INTEGER,
          visit_occurrence_id INTEGER, visit_detail_id INTEGER, procedure_source_value TEXT,
          procedure_source_concept_id INTEGER, modifier_source_value TEXT)
        """,
        """
        CREATE TABLE death (
          person_id INTEGER NOT NULL, death_date TEXT NOT NULL, death_datetime TEXT, death_type_concept_id INTEGER,
          cause_concept_id INTEGER, cause_source_value TEXT, cause_source_concept_id INTEGER)
        """,
        """
        CREATE TABLE care_site (
          care_site_id INTEGER PRIMARY KEY, care_site_name TEXT, place_of_service_concept_id INTEGER,
          location_id INTEGER, care_site_source_value TEXT, place_of_service_source_value TEXT)
        """,
        """
        CREATE TABLE concept_ancestor (
          ancestor_concept_id INTEGER NOT NULL, descendant_concept_id INTEGER NOT NULL,
          min_levels_of_separation INTEGER, max_levels_of_separation INTEGER,
          PRIMARY KEY (ancestor_concept_id, descendant_concept_id))
        """,
        // Indexes for the feature queries: every look-up is by person, concept and date.
        "CREATE INDEX idx_condition_person ON condition_occurrence (person_id, condition_concept_id, condition_start_date)",
        "CREATE INDEX idx_measurement_person ON measurement (person_id, measurement_concept_id, measurement_date)",
        "CREATE INDEX idx_drug_person ON drug_exposure (person_id, drug_concept_id, drug_exposure_start_date)",
        "CREATE INDEX idx_observation_person ON observation (person_id, observation_concept_id, observation_date)",
        "CREATE INDEX idx_visit_person ON visit_occurrence (person_id, visit_start_date)",
        "CREATE INDEX idx_cohort_subject ON cohort (cohort_definition_id, subject_id, cohort_start_date)",
        "CREATE INDEX idx_procedure_person ON procedure_occurrence (person_id, procedure_concept_id, procedure_date)",
    ]

    /// Creates every table and index in an empty database.
    public static func create(in db: Database) throws {
        for sql in statements { try db.execute(sql: sql) }
    }
}
