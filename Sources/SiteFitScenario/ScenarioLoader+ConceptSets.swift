import Foundation
import SiteFitEHR
import Yams

extension ScenarioLoader {
    /// `task.target`, `task.outcome` and `task.time_at_risk`: a task as PatientLevelPrediction
    /// defines one (nil when the scenario uses the shard's cohort table instead).
    static func conceptSetTask(_ fields: [String: Node], folder: URL, reader: inout YAMLReader) -> ConceptSetTask? {
        let keys = ["target", "outcome", "time_at_risk", "exclude_prior_outcome"]
        guard keys.contains(where: { fields[$0] != nil }) else { return nil }
        for key in ["target", "outcome"] where fields[key] == nil {
            let other = keys.first { fields[$0] != nil }!
            reader.fail(fields[other], "task.\(key)", "a concept-set task needs both target and outcome")
        }
        var prior = 365
        let target = fields["target"].flatMap { criterion($0, "task.target", folder: folder, prior: &prior, reader: &reader) }
        var unused = 0
        let outcome = fields["outcome"].flatMap { criterion($0, "task.outcome", folder: folder, prior: &unused, reader: &reader) }
        var start = 1, end = 365
        var minimum: Int?
        if let n = fields["time_at_risk"], let m = reader.mapping(n, "task.time_at_risk", allowed: ["start_days", "end_days", "minimum_days"]) {
            let days = "a number of days from 0 to 36500"
            if let v = m["start_days"].flatMap({ reader.integer($0, "task.time_at_risk.start_days", in: 0...36500, what: days) }) { start = v }
            if let v = m["end_days"].flatMap({ reader.integer($0, "task.time_at_risk.end_days", in: 0...36500, what: days) }) { end = v }
            if let v = m["minimum_days"].flatMap({ reader.integer($0, "task.time_at_risk.minimum_days", in: 0...36500, what: days) }) { minimum = v }
            if end < start { reader.fail(m["end_days"] ?? n, "task.time_at_risk.end_days", "must not be before start_days (\(start))") }
            if let minimum, minimum > end - start {
                reader.fail(m["minimum_days"], "task.time_at_risk.minimum_days", "must be at most end_days − start_days (\(max(end - start, 0)))")
            }
        }
        var exclude = true
        if let n = fields["exclude_prior_outcome"], let v = reader.boolean(n, "task.exclude_prior_outcome") { exclude = v }
        guard let target, let outcome else { return nil }
        return ConceptSetTask(target: target, outcome: outcome, priorObservationDays: prior, riskStartDays: start, riskEndDays: end,
                              minimumRiskDays: minimum, excludePriorOutcome: exclude)
    }

    /// One side of a concept-set task: concepts (a list, or an ATLAS concept-set JSON file) in a domain.
    static func criterion(_ node: Node, _ field: String, folder: URL, prior: inout Int,
                          reader: inout YAMLReader) -> ConceptSetTask.Criterion? {
        let isTarget = field.hasSuffix("target")
        guard let m = reader.mapping(node, field, allowed: ["concepts", "concept_set", "domain", "descendants"]
                                     + (isTarget ? ["prior_observation_days"] : []), required: ["domain"]) else { return nil }
        var descendants = true
        if let n = m["descendants"], let v = reader.boolean(n, "\(field).descendants") { descendants = v }
        var set: ConceptSet?
        switch (m["concepts"], m["concept_set"]) {
        case (let list?, nil):
            set = conceptList(list, "\(field).concepts", names: [:], reader: &reader).map { ConceptSet(concepts: $0, descendants: descendants) }
            if set?.items.isEmpty == true { reader.fail(list, "\(field).concepts", "list at least one concept id") }
        case (nil, let file?):
            if m["descendants"] != nil {
                reader.fail(m["descendants"], "\(field).descendants", "an ATLAS concept set says per concept whether descendants count (includeDescendants)")
            }
            if let path = reader.string(file, "\(field).concept_set") {
                let url = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
                do {
                    set = try AtlasConceptSet.load(url)
                } catch let error as AtlasConceptSet.Problem {
                    reader.fail(file, "\(field).concept_set", "\(relativePath(url)): \(error.message)")
                } catch {
                    reader.fail(file, "\(field).concept_set", "\(relativePath(url)): cannot be read")
                }
            }
        default:
            reader.fail(node, field, "give either concepts (a list of concept ids) or concept_set (an ATLAS concept-set JSON file)")
        }
        let domain = m["domain"].flatMap { reader.choice($0, "\(field).domain", EventDomain.self) }
        if let n = m["prior_observation_days"],
           let v = reader.integer(n, "\(field).prior_observation_days", in: 0...36500, what: "a number of days from 0 to 36500") {
            prior = v
        }
        guard let set, let domain else { return nil }
        return ConceptSetTask.Criterion(concepts: set, domain: domain)
    }
}

/// An ATLAS concept-set export (JSON): `{"items": [...]}` or `{"expression": {"items": [...]}}`,
/// each item with `concept.CONCEPT_ID`, `includeDescendants` and `isExcluded`.
enum AtlasConceptSet {
    /// Why a file is not a concept set (no file contents are echoed).
    struct Problem: Error {
        var message: String
    }

    static func load(_ url: URL) throws -> ConceptSet {
        guard FileManager.default.fileExists(atPath: url.path) else { throw Problem(message: "file not found") }
        let data = try Data(contentsOf: url)
        guard data.count <= 16 << 20 else { throw Problem(message: "larger than 16 MiB; a concept set is a few kilobytes") }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Problem(message: "not a JSON object")
        }
        let expression = object["expression"] as? [String: Any] ?? object
        guard let items = expression["items"] as? [[String: Any]] else { throw Problem(message: "no \"items\" list (expected an ATLAS concept-set export)") }
        var result: [ConceptSet.Item] = []
        for (i, item) in items.enumerated() {
            let concept = item["concept"] as? [String: Any]
            guard let id = (concept?["CONCEPT_ID"] ?? concept?["conceptId"]).flatMap({ ($0 as? NSNumber)?.intValue }), id > 0 else {
                throw Problem(message: "items[\(i)] has no concept.CONCEPT_ID")
            }
            result.append(ConceptSet.Item(conceptId: id, includeDescendants: (item["includeDescendants"] as? Bool) ?? false,
                                          isExcluded: (item["isExcluded"] as? Bool) ?? false))
        }
        guard result.contains(where: { !$0.isExcluded }) else { throw Problem(message: "no concept is included") }
        return ConceptSet(items: result)
    }
}
