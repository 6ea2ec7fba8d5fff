import SiteFitFederation
import SiteFitMetrics
import Yams

extension ScenarioLoader {
    /// Keys of `reconstruction` (the JSON Schema test checks the schema lists the same).
    static let reconstructionKeys = ["batch_sizes", "local_steps", "budget", "trials"]

    /// `reconstruction`: the attack experiment's settings (nil when the section is absent).
    static func reconstruction(_ node: Node?, reader: inout YAMLReader) -> ReconstructionSettings? {
        guard let node, let m = reader.mapping(node, "reconstruction", allowed: reconstructionKeys, required: ["batch_sizes", "local_steps"])
        else { return nil }
        func list(_ key: String, in range: ClosedRange<Int>) -> [Int] {
            guard let n = m[key], let items = reader.sequence(n, "reconstruction.\(key)") else { return [] }
            let values = items.enumerated().compactMap { i, item in
                reader.integer(item, "reconstruction.\(key)[\(i)]", in: range, what: "an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            if items.isEmpty || items.count > 8 { reader.fail(n, "reconstruction.\(key)", "list from 1 to 8 values") }
            if Set(values).count != values.count { reader.fail(n, "reconstruction.\(key)", "a value is listed twice") }
            return values
        }
        var settings = ReconstructionSettings(batchSizes: list("batch_sizes", in: 1...256), localSteps: list("local_steps", in: 1...1000),
                                              budget: 300, trials: 3)
        if let n = m["budget"], let v = reader.integer(n, "reconstruction.budget", in: 1...5000, what: "an integer from 1 to 5000") {
            settings.budget = v
        }
        if let n = m["trials"], let v = reader.integer(n, "reconstruction.trials", in: 1...100, what: "an integer from 1 to 100") {
            settings.trials = v
        }
        return settings
    }

    /// A `leaks_more_than` claim: its measure and the two settings, each one the experiment runs.
    static func leakageClaim(_ m: [String: Node], item: Node, field: String, arm: String, than: String, armNames: [String],
                             maskedArms: [String], settings: ReconstructionSettings?, reader: inout YAMLReader) -> Expectation? {
        for key in ["metric", "sites", "margin", "of", "quantity"] where m[key] != nil {
            reader.fail(m[key], "\(field).\(key)", "a leaks_more_than claim takes leakage, batch_size, local_steps (and than_batch_size, than_local_steps), not \(key)")
        }
        guard let settings else {
            reader.fail(item, field, "a leaks_more_than claim needs the scenario's `reconstruction:` experiment")
            return nil
        }
        for name in [arm, than] where !armNames.contains(name) {
            reader.fail(item, field, "'\(name)' is a baseline row: only arms send updates to attack")
            return nil
        }
        for name in [arm, than] where maskedArms.contains(name) {
            reader.fail(item, field, "'\(name)' uses secure aggregation: the server never holds one of its updates, so none is attacked")
            return nil
        }
        guard let n = m["leakage"], let measure = reader.choice(n, "\(field).leakage", LeakageMeasure.self) else {
            if m["leakage"] == nil {
                reader.fail(item, field, "a leaks_more_than claim needs leakage (one of \(LeakageMeasure.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return nil
        }
        func value(_ key: String, among allowed: [Int], default fallback: Int?) -> Int? {
            guard let n = m[key] else {
                if fallback == nil { reader.fail(item, field, "a leaks_more_than claim needs \(key)") }
                return fallback
            }
            guard let v = reader.integer(n, "\(field).\(key)", in: 1...100_000, what: "a positive integer") else { return nil }
            guard allowed.contains(v) else {
                reader.fail(n, "\(field).\(key)", "\(v) is not in the reconstruction experiment's list: \(allowed.map(String.init).joined(separator: ", "))")
                return nil
            }
            return v
        }
        guard let b = value("batch_size", among: settings.batchSizes, default: nil),
              let s = value("local_steps", among: settings.localSteps, default: nil),
              let thanB = value("than_batch_size", among: settings.batchSizes, default: b),
              let thanS = value("than_local_steps", among: settings.localSteps, default: s) else { return nil }
        if arm == than && b == thanB && s == thanS {
            reader.fail(item, field, "a claim compares two different rows, or one arm at two settings (than_batch_size, than_local_steps)")
            return nil
        }
        return Expectation(arm: arm, relation: .leaksMore(than: than, measure: measure, batchSize: b, localSteps: s,
                                                          thanBatchSize: thanB, thanLocalSteps: thanS))
    }
}
