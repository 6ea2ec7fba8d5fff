import SiteFitNN
import Yams

extension ScenarioLoader {
    /// `baselines`: the references computed beside the arms (default: pretrained, local, pooled).
    static func baselines(_ node: Node?, reader: inout YAMLReader) -> [Scenario.Baseline] {
        guard let node, let list = reader.sequence(node, "baselines") else { return [.pretrained, .local, .pooled] }
        var baselines: [Scenario.Baseline] = []
        for (i, item) in list.enumerated() {
            guard let baseline = reader.choice(item, "baselines[\(i)]", Scenario.Baseline.self) else { continue }
            // Two rows of one baseline would share its name in the report, metrics.json and predictions.csv.
            if baselines.contains(baseline) { reader.fail(item, "baselines[\(i)]", "baseline '\(baseline.rawValue)' is listed twice"); continue }
            baselines.append(baseline)
        }
        return baselines
    }

    /// `baseline_training`: how the local and pooled baselines train when they should not copy the federation.
    static func baselineTraining(_ node: Node?, reader: inout YAMLReader) -> Scenario.BaselineTraining? {
        guard let node, let m = reader.mapping(node, "baseline_training", allowed: ["optimizer", "learning_rate", "epochs"],
                                               required: ["optimizer", "learning_rate", "epochs"]),
              let o = m["optimizer"], let optimizer = reader.choice(o, "baseline_training.optimizer", OptimizerKind.self),
              let l = m["learning_rate"], let rate = reader.number(l, "baseline_training.learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10"),
              let e = m["epochs"], let epochs = reader.integer(e, "baseline_training.epochs", in: 1...10_000, what: "an integer from 1 to 10000")
        else { return nil }
        return Scenario.BaselineTraining(optimizer: optimizer, learningRate: rate, epochs: epochs)
    }

    /// `reference`: published numbers to print beside the arms, each an accuracy from 0 to 1.
    static func reference(_ node: Node?, reader: inout YAMLReader) -> Scenario.Reference? {
        guard let node, let m = reader.mapping(node, "reference", allowed: ["source", "tolerance", "mean_site_accuracy"],
                                               required: ["source", "mean_site_accuracy"]),
              let sourceNode = m["source"], let source = reader.string(sourceNode, "reference.source"),
              let valuesNode = m["mean_site_accuracy"],
              let values = reader.mapping(valuesNode, "reference.mean_site_accuracy", allowed: valuesNode.mapping?.keys.compactMap { $0.scalar?.string } ?? [])
        else { return nil }
        var parsed = Scenario.Reference(source: source, tolerance: 0.03, meanSiteAccuracy: [:])
        if let t = m["tolerance"], let v = reader.number(t, "reference.tolerance", in: 0...1, what: "a number from 0 to 1") { parsed.tolerance = v }
        for (key, value) in values {
            if let v = reader.number(value, "reference.mean_site_accuracy.\(key)", in: 0...1, what: "an accuracy from 0 to 1") {
                parsed.meanSiteAccuracy[key] = v
            }
        }
        return parsed
    }

    /// `subgroups`: the attributes the bias audit groups by, the smallest group it reports, and its bootstrap.
    static func subgroups(_ node: Node?, reader: inout YAMLReader) -> Scenario.Subgroups {
        var subgroups = Scenario.Subgroups()
        guard let node, let m = reader.mapping(node, "subgroups", allowed: ["attributes", "min_group_size", "bootstrap"]) else { return subgroups }
        if let n = m["attributes"], let items = reader.sequence(n, "subgroups.attributes") {
            subgroups.attributes = items.enumerated().compactMap { i, item in
                reader.choice(item, "subgroups.attributes[\(i)]", Scenario.Subgroups.Attribute.self)
            }
            if Set(subgroups.attributes).count != subgroups.attributes.count { reader.fail(n, "subgroups.attributes", "an attribute is listed twice") }
        }
        if let n = m["min_group_size"], let v = reader.integer(n, "subgroups.min_group_size", in: 1...1_000_000, what: "an integer from 1 to 1000000") {
            subgroups.minimumGroupSize = v
        }
        if let n = m["bootstrap"], let v = reader.integer(n, "subgroups.bootstrap", in: 0...10_000, what: "a number of replicates from 0 to 10000") {
            subgroups.bootstrapReplicates = v
        }
        return subgroups
    }
}
