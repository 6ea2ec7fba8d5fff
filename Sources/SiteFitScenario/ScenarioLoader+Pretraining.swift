import Foundation
import SiteFitEHR
import Yams

extension ScenarioLoader {
    /// `pretraining`: the synthetic source population and how the model trains on it, `none`, a
    /// saved checkpoint, or real hospitals (`heart_disease:`) to pretrain on instead.
    static func pretraining(_ node: Node?, seed: UInt64, dataset: Scenario.Dataset, federationSites: [Scenario.SiteReference],
                            folder: URL, reader: inout YAMLReader) -> Scenario.Pretraining {
        var source = SiteProfile(id: "source", name: "Source population", seed: seed &+ 1, patients: 4000,
                                 ageMean: 58, ageStandardDeviation: 14, femaleFraction: 0.5,
                                 raceMix: RaceMix(white: 0.75, black: 0.15, asian: 0.10), outcomePrevalence: 0.12,
                                 labMissingRate: 0.05)
        var pretraining = Scenario.Pretraining(source: source, epochs: 30, batchSize: 32, learningRate: 0.003,
                                               validationFraction: 0.2, patience: 5, checkpoint: nil)
        if let node, node.scalar?.string == "none" {
            pretraining.enabled = false
        } else if let node, let fields = reader.mapping(node, "pretraining", allowed: [
            "patients", "age_mean", "female_fraction", "outcome_prevalence", "epochs", "batch_size", "learning_rate",
            "validation_fraction", "patience", "checkpoint", "heart_disease",
        ]) {
            if let n = fields["heart_disease"], let items = reader.sequence(n, "pretraining.heart_disease") {
                pretraining.heartDiseaseShards = heartDiseaseSources(items, federationSites: federationSites, folder: folder, reader: &reader)
                if dataset != .heartDisease { reader.fail(n, "pretraining.heart_disease", "pretraining on heart_disease sites needs `task: {dataset: heart-disease}`") }
            }
            if let n = fields["patients"], let v = reader.integer(n, "pretraining.patients", in: 100...1_000_000, what: "an integer from 100 to 1000000") { source.patients = v }
            if let n = fields["age_mean"], let v = reader.number(n, "pretraining.age_mean", in: 0...95, what: "an age from 0 to 95") { source.ageMean = v }
            if let n = fields["female_fraction"], let v = reader.number(n, "pretraining.female_fraction", in: 0...1, what: "a fraction from 0 to 1") { source.femaleFraction = v }
            if let n = fields["outcome_prevalence"], let v = reader.number(n, "pretraining.outcome_prevalence", in: 0.01...0.9, what: "a fraction from 0.01 to 0.9") { source.outcomePrevalence = v }
            if let n = fields["epochs"], let v = reader.integer(n, "pretraining.epochs", in: 1...1000, what: "an integer from 1 to 1000") { pretraining.epochs = v }
            if let n = fields["batch_size"], let v = reader.integer(n, "pretraining.batch_size", in: 1...4096, what: "an integer from 1 to 4096") { pretraining.batchSize = v }
            if let n = fields["learning_rate"], let v = reader.number(n, "pretraining.learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") { pretraining.learningRate = v }
            if let n = fields["validation_fraction"], let v = reader.number(n, "pretraining.validation_fraction", in: 0.05...0.5, what: "a fraction from 0.05 to 0.5") { pretraining.validationFraction = v }
            if let n = fields["patience"], let v = reader.integer(n, "pretraining.patience", in: 1...1000, what: "an integer from 1 to 1000") { pretraining.patience = v }
            if let n = fields["checkpoint"], let v = reader.string(n, "pretraining.checkpoint") {
                let url = URL(fileURLWithPath: v, relativeTo: folder).standardizedFileURL
                if FileManager.default.fileExists(atPath: url.path) { pretraining.checkpoint = URL(fileURLWithPath: relativePath(url)) }
                else { reader.fail(n, "pretraining.checkpoint", "checkpoint '\(v)' not found (looked in \(relativePath(url)))") }
            }
        }
        pretraining.source = source
        return pretraining
    }

    /// `pretraining.heart_disease`: real hospitals' shards to pretrain on; none of them may also be
    /// a federation site, whose test rows the source must never have seen.
    static func heartDiseaseSources(_ items: [Node], federationSites: [Scenario.SiteReference], folder: URL,
                                    reader: inout YAMLReader) -> [URL] {
        var shards: [URL] = []
        for (i, item) in items.enumerated() {
            guard let path = reader.string(item, "pretraining.heart_disease[\(i)]") else { continue }
            let shard = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
            let id = shard.deletingPathExtension().lastPathComponent
            let raw = shard.deletingLastPathComponent().appendingPathComponent("processed.\(id).data")
            if !HeartDiseaseImport.sites.contains(id) || shard.pathExtension != "sqlite" {
                reader.fail(item, "pretraining.heart_disease[\(i)]", "expected a path to <site>.sqlite with site one of \(HeartDiseaseImport.sites.joined(separator: ", "))")
            } else if !FileManager.default.fileExists(atPath: shard.path) && !FileManager.default.fileExists(atPath: raw.path) {
                reader.fail(item, "pretraining.heart_disease[\(i)]", "neither the shard nor the UCI file \(relativePath(raw)) to import it from exists")
            } else if federationSites.contains(where: { $0.profile.id == id }) {
                reader.fail(item, "pretraining.heart_disease[\(i)]", "site '\(id)' is also a federation site; a source site must not be fine-tuned on or tested")
            } else {
                shards.append(URL(fileURLWithPath: relativePath(shard)))
            }
        }
        return shards
    }
}
