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
            "name", "target", "outcome", "time_at_risk", "exclude_prior_outcome",
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
        if let n = fields["name"], let v = reader.string(n, "task.name") { task.name = v }
        if let definition = conceptSetTask(fields, folder: folder, reader: &reader) {
            task.cohort = .conceptSets(definition)
            if let n = fields["outcome_window_days"] {
                reader.fail(n, "task.outcome_window_days", "a concept-set task sets its window with time_at_risk")
            }
            // The outcome's own concepts must not be features: they would give the label away.
            let outcome = Set(definition.outcome.concepts.includedIds)
            for (key, ids) in [("conditions", task.conditions), ("measurements", task.measurements), ("drugs", task.drugs)]
            where !outcome.isDisjoint(with: ids) {
                reader.fail(fields[key] ?? node, "task.\(key)", "concept \(outcome.intersection(ids).sorted().map(String.init).joined(separator: ", ")) "
                            + "is in the outcome's concept set; the outcome's concepts are never features")
            }
        }
        return (task, dataset)
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
