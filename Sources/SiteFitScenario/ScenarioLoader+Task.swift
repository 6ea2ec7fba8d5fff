import Foundation
import SiteFitCore
import SiteFitEHR
import Yams

extension ScenarioLoader {
    /// Named concepts a `task` may list, besides integer concept ids.
    static let drugNames = ["metformin": OMOPConcept.metformin, "lisinopril": OMOPConcept.lisinopril,
                            "atorvastatin": OMOPConcept.atorvastatin, "aspirin": OMOPConcept.aspirin]

    /// `task`: the dataset, the prediction windows and the concepts the feature SQL reads
    /// (default: the heart-failure task on OMOP shards).
    static func task(_ node: Node?, folder: URL, reader: inout YAMLReader) -> (task: FeatureSpec, dataset: Scenario.Dataset) {
        var task = FeatureSpec.heartFailure
        var dataset = Scenario.Dataset.omop
        guard let node, let fields = reader.mapping(node, "task", allowed: [
            "dataset", "lookback_days", "outcome_window_days", "conditions", "measurements", "drugs",
            "name", "target", "outcome", "time_at_risk", "exclude_prior_outcome", "covariates",
            "target_cohort_id", "outcome_cohort_id",
        ]) else { return (task, dataset) }
        if let n = fields["dataset"], let v = reader.choice(n, "task.dataset", Scenario.Dataset.self) {
            dataset = v
            if v == .heartDisease, let other = fields.keys.sorted().first(where: { $0 != "dataset" }), let o = fields[other] {
                reader.fail(o, "task.\(other)", "the heart-disease dataset has FLamby's 13 fixed features; remove '\(other)'")
            }
        }
        if let n = fields["lookback_days"], let v = reader.integer(n, "task.lookback_days", in: 1...36500, what: "a number of days from 1 to 36500") { task.lookbackDays = v }
        if let n = fields["outcome_window_days"], let v = reader.integer(n, "task.outcome_window_days", in: 1...36500, what: "a number of days from 1 to 36500") { task.outcomeWindowDays = v }
        if let n = fields["conditions"], let v = conceptList(n, "task.conditions", names: Dictionary(uniqueKeysWithValues: ConditionName.allCases.map { ($0.rawValue, $0.conceptId) }), reader: &reader) { task.conditions = v }
        if let n = fields["measurements"], let v = conceptList(n, "task.measurements", names: Dictionary(uniqueKeysWithValues: LabName.allCases.map { ($0.rawValue, $0.conceptId) }), reader: &reader) { task.measurements = v }
        if let n = fields["drugs"], let v = conceptList(n, "task.drugs", names: drugNames, reader: &reader) { task.drugs = v }
        if let n = fields["name"], let v = reader.string(n, "task.name") {
            if SafeText.isLabel(v) { task.name = v } else { reader.fail(n, "task.name", SafeText.labelRule) }
        }
        // Existing cohorts by id (an ATLAS-generated cohort table) instead of SiteFit's 1 and 2.
        let ids = ["target_cohort_id", "outcome_cohort_id"].filter { fields[$0] != nil }
        if !ids.isEmpty {
            if ids.count == 1 { reader.fail(fields[ids[0]], "task.\(ids[0])", "give both target_cohort_id and outcome_cohort_id") }
            if let clash = ["target", "outcome", "time_at_risk"].first(where: { fields[$0] != nil }) {
                reader.fail(fields[clash], "task.\(clash)", "give either concept sets (target, outcome) or existing cohorts (target_cohort_id, outcome_cohort_id)")
            }
            let what = "a cohort_definition_id (a non-negative integer)"
            if let v = fields["target_cohort_id"].flatMap({ reader.integer($0, "task.target_cohort_id", in: 0...Int(Int32.max), what: what) }) { task.targetCohortId = v }
            if let v = fields["outcome_cohort_id"].flatMap({ reader.integer($0, "task.outcome_cohort_id", in: 0...Int(Int32.max), what: what) }) { task.outcomeCohortId = v }
            if ids.count == 2 && task.targetCohortId == task.outcomeCohortId {
                reader.fail(fields["outcome_cohort_id"], "task.outcome_cohort_id", "the outcome cohort must differ from the target cohort")
            }
        }
        if let definition = conceptSetTask(fields, folder: folder, reader: &reader) {
            task.cohort = .conceptSets(definition)
            if let n = fields["outcome_window_days"] {
                reader.fail(n, "task.outcome_window_days", "a concept-set task sets its window with time_at_risk")
            }
            // With a concept-set task the covariates are automatic unless features are listed.
            let listed = ["conditions", "measurements", "drugs"].filter { fields[$0] != nil }
            let automatic = covariates(fields["covariates"], default: listed.isEmpty, reader: &reader)
            if let settings = automatic {
                for key in listed { reader.fail(fields[key], "task.\(key)", "automatic covariates choose their own features; remove '\(key)' or set covariates: hand_picked") }
                (task.conditions, task.measurements, task.drugs) = ([], [], [])
                task.automatic = true
                task.covariateSettings = settings
            }
            // The outcome's own concepts must not be features: they would give the label away.
            let outcome = Set(definition.outcome.concepts.includedIds)
            for (key, ids) in [("conditions", task.conditions), ("measurements", task.measurements), ("drugs", task.drugs)]
            where !outcome.isDisjoint(with: ids) {
                reader.fail(fields[key] ?? node, "task.\(key)", "concept \(outcome.intersection(ids).sorted().map(String.init).joined(separator: ", ")) "
                            + "is in the outcome's concept set; the outcome's concepts are never features")
            }
        }
        if fields["covariates"] != nil, case .cohortTable = task.cohort {
            reader.fail(fields["covariates"], "task.covariates", "automatic covariates need a concept-set task (target and outcome)")
        }
        return (task, dataset)
    }

    /// `task.covariates`: `automatic` (FeatureExtraction-style, agreed by the sites), a mapping of
    /// the agreement's settings, or `hand_picked`; nil when the features are hand-picked.
    static func covariates(_ node: Node?, default automatic: Bool, reader: inout YAMLReader) -> AutomaticCovariates.Settings? {
        guard let node else { return automatic ? AutomaticCovariates.Settings() : nil }
        if let text = node.scalar?.string {
            switch text {
            case "automatic": return AutomaticCovariates.Settings()
            case "hand_picked": return nil
            default:
                reader.fail(node, "task.covariates", "expected automatic, hand_picked or a mapping of minimum_count, minimum_sites and maximum")
                return nil
            }
        }
        guard let m = reader.mapping(node, "task.covariates", allowed: ["minimum_count", "minimum_sites", "maximum"]) else { return nil }
        var settings = AutomaticCovariates.Settings()
        if let v = m["minimum_count"].flatMap({ reader.integer($0, "task.covariates.minimum_count", in: 1...1_000_000, what: "a count from 1") }) { settings.minimumCount = v }
        if let v = m["minimum_sites"].flatMap({ reader.integer($0, "task.covariates.minimum_sites", in: 1...10_000, what: "a number of sites from 1") }) { settings.minimumSites = v }
        if let v = m["maximum"].flatMap({ reader.integer($0, "task.covariates.maximum", in: 1...100_000, what: "a number of covariates from 1") }) { settings.maximum = v }
        return settings
    }

    /// Concept lists of a task: each item a known short name or an integer concept id.
    static func conceptList(_ node: Node, _ field: String, names: [String: Int], reader: inout YAMLReader) -> [Int]? {
        guard let items = reader.sequence(node, field) else { return nil }
        var ids: [Int] = []
        for (i, item) in items.enumerated() {
            guard let text = item.scalar?.string else {
                reader.fail(item, "\(field)[\(i)]", "expected a concept name or id, found \(reader.describe(item))")
                continue
            }
            if let id = Int(text), id > 0 { ids.append(id); continue }
            if let id = names[text] { ids.append(id); continue }
            var problem = "unknown concept '\(text)'; use an OMOP concept id or one of: \(names.keys.sorted().joined(separator: ", "))"
            if let guess = suggestion(for: text, among: Array(names.keys)) { problem = "unknown concept '\(text)'; did you mean '\(guess)'?" }
            reader.fail(item, "\(field)[\(i)]", problem)
        }
        if Set(ids).count != ids.count { reader.fail(node, field, "a concept is listed twice") }
        return ids
    }
}
