import Foundation
import SiteFitCore
import SiteFitEHR
import Yams

/// Parses scenario files into `Scenario`, with `file:line:column: field: problem` diagnostics.
///
/// `load` reads the file and hands each top-level section to its parser, one file per section
/// (`ScenarioLoader+Sites.swift`, `+Task`, `+Model`, `+Pretraining`, `+Federation`, `+Arms`,
/// `+Baselines`). A parser records every problem on the reader and returns its typed values with
/// the defaults filled in, so one pass lists all the problems of a file. The order of the calls is
/// the order in which later sections depend on earlier ones (the arms need the sites, the model
/// and the federation).
public enum ScenarioLoader {
    static let topKeys = ["name", "seed", "seeds", "sites", "test_fraction", "temporal_split", "task", "model", "pretraining", "federation", "arms", "baselines",
                          "baseline_training", "subgroups", "reference", "compare_to", "expect", "reconstruction"]

    /// Loads and checks a scenario and every site profile it names. With `sitesElsewhere` the
    /// hospitals' databases (`omop:`, `heart_disease:`) need not be here: in a distributed run
    /// each lives at its own site, and neither the server nor another site ever opens it.
    public static func load(_ url: URL, sitesElsewhere: Bool = false) throws -> Scenario {
        try load(text: try readText(url, what: "scenario file"), url: url, sitesElsewhere: sitesElsewhere)
    }

    /// Loads scenario `text` as if read from `url` (whose folder relative paths start from).
    public static func load(text: String, url: URL, sitesElsewhere: Bool = false) throws -> Scenario {
        let file = url.relativePath
        var reader = YAMLReader(file: file)
        reader.sitesElsewhere = sitesElsewhere
        guard let root = reader.compose(text),
              let top = reader.mapping(root, "", allowed: topKeys,
                                       required: (root.mapping?.keys.contains { $0.scalar?.string == "seeds" } ?? false)
                                           ? ["sites", "arms"] : ["seed", "sites", "arms"])
        else { throw DiagnosticList(reader.diagnostics) }
        let folder = url.deletingLastPathComponent()

        let name = name(top["name"], default: url.deletingPathExtension().lastPathComponent, reader: &reader)
        let (seed, extraSeeds) = seeds(top, reader: &reader)
        let testFraction = testFraction(top["test_fraction"], reader: &reader)
        let temporalSplit = temporalSplit(top["temporal_split"], reader: &reader)
        if top["temporal_split"] != nil, let n = top["test_fraction"] {
            reader.fail(n, "test_fraction", "give either test_fraction (a random split) or temporal_split (by index date), not both")
        }
        let (sites, profileDiagnostics) = sites(top["sites"], folder: folder, reader: &reader)
        // Counted as written: a site whose profile or database failed has its own error, and
        // counting only the sites that loaded added a false one about too few sites.
        let siteCount = max(sites.count, top["sites"]?.sequence?.count ?? 0)
        let (task, dataset) = task(top["task"], folder: folder, reader: &reader)
        if temporalSplit != nil && dataset == .heartDisease {
            reader.fail(top["temporal_split"], "temporal_split", "the heart-disease data keep FLamby's own split and have no index dates")
        }
        checkSites(sites, match: dataset, node: top["sites"], reader: &reader)
        let (model, initialization, transformer) = model(top["model"], dataset: dataset, task: task, reader: &reader)
        let pretraining = pretraining(top["pretraining"], seed: seed, dataset: dataset, federationSites: sites, folder: folder,
                                      reader: &reader)
        if task.automatic {
            // The sites agree the covariates when the run starts; a pretrained model would need them before.
            if pretraining.enabled {
                reader.fail(top["pretraining"] ?? top["task"], "pretraining", "automatic covariates are agreed by the sites when the run starts; "
                            + "use `pretraining: none`, or list the features (covariates: hand_picked)")
            }
            if task.covariateSettings.minimumSites > siteCount {
                reader.fail(top["task"]?.mapping?["covariates"]?.mapping?["minimum_sites"] ?? top["task"], "task.covariates.minimum_sites",
                            "\(task.covariateSettings.minimumSites) sites must report a covariate, but the scenario has \(siteCount)")
            }
        }
        if let transformer {
            if pretraining.checkpoint != nil {
                reader.fail(top["pretraining"], "pretraining.checkpoint", "a transformer scenario pretrains its own model on the vocabulary its sites agree; "
                            + "leave checkpoint out")
            }
            if transformer.sequences.vocabulary.minimumSites > siteCount {
                reader.fail(top["model"]?.mapping?["vocabulary"]?.mapping?["minimum_sites"] ?? top["model"], "model.vocabulary.minimum_sites",
                            "\(transformer.sequences.vocabulary.minimumSites) sites must report a code, but the scenario has \(siteCount)")
            }
            if !pretraining.enabled, let model = top["model"]?.mapping {
                for key in ["masked_epochs", "masked_learning_rate"] where model[key] != nil {
                    reader.fail(model[key], "model.\(key)", "masked-code modelling is a pretraining stage; with `pretraining: none` it never runs")
                }
            }
                        if top["reconstruction"] != nil {
                reader.fail(top["reconstruction"], "reconstruction", "the reconstruction experiment attacks the MLP's feature rows; "
                            + "it does not run on a transformer scenario")
            }
        }
        let federation = federation(top["federation"], siteIds: sites.map(\.profile.id), reader: &reader)
        let arms = arms(top["arms"], federation: federation, model: model, transformer: transformer, siteCount: sites.count, siteIds: sites.map(\.profile.id),
                        reserved: Scenario.Baseline.reservedArmNames(siteIds: sites.map(\.profile.id)), reader: &reader)
        let baselines = baselines(top["baselines"], reader: &reader)
        let baselineTraining = baselineTraining(top["baseline_training"], reader: &reader)
        let reference = reference(top["reference"], reader: &reader)
        let subgroups = subgroups(top["subgroups"], reader: &reader)
        // Claims and comparisons may name any row the report will have: an arm, a listed baseline,
        // and the starting model, which every run scores.
        var rows = arms.map(\.name)
        for row in Scenario.Baseline.rowNames(baselines, siteIds: sites.map(\.profile.id), startsPretrained: pretraining.enabled)
        where !rows.contains(row) { rows.append(row) }
        // A transformer scenario's MLP arms are also scored against the MLP they start from.
        if transformer != nil && arms.contains(where: \.onMLP) { rows.append(pretraining.enabled ? "pretrained mlp" : "initial mlp") }
        // An arm that could not be read has its error already: every claim naming it would only
        // repeat that error under another field, so its written name counts as a row here. The
        // scenario still fails to load on the arm's own error.
        for item in top["arms"]?.sequence ?? [] {
            guard let written = (item.mapping?["name"] ?? item.mapping?["mode"])?.scalar?.string, !rows.contains(written),
                  !arms.contains(where: { $0.name == written }) else { continue }
            rows.append(written)
        }
        let compareTo = compareTo(top["compare_to"], rows: rows, reader: &reader)
        let reconstruction = reconstruction(top["reconstruction"], reader: &reader)
        let expectations = expectations(top["expect"], rows: rows, siteIds: sites.map(\.profile.id),
                                        attributes: subgroups.attributes.map(\.rawValue), armNames: arms.map(\.name),
                                        maskedArms: arms.filter(\.secureAggregation).map(\.name), reconstruction: reconstruction, reader: &reader)

        // In reading order: the scenario first, then each profile, each by line and column.
        let all = readingOrder(reader.diagnostics) + readingOrder(profileDiagnostics)
        guard all.isEmpty else { throw DiagnosticList(all) }
        var scenario = Scenario(name: name, file: file, fingerprint: StableHash.hex(Array(text.utf8)), seed: seed, sites: sites,
                                testFraction: testFraction, task: task, model: model, transformer: transformer, pretraining: pretraining, federation: federation,
                                arms: arms, baselines: baselines)
        scenario.subgroups = subgroups
        scenario.extraSeeds = extraSeeds
        scenario.dataset = dataset
        scenario.initialization = initialization
        scenario.baselineTraining = baselineTraining
        scenario.reference = reference
        scenario.compareTo = compareTo
        scenario.temporalSplit = temporalSplit

        scenario.expectations = expectations
        scenario.reconstruction = reconstruction
        return scenario
    }

    /// `name`, or the file's base name; it names the report file, so only safe characters.
    static func name(_ node: Node?, default fileName: String, reader: inout YAMLReader) -> String {
        guard let node else {
            if !SafeText.isFileName(fileName) {
                reader.fail(nil, "name", "the file's base name cannot name a report (letters, digits, '-' and '_' only): give the scenario a `name:`")
            }
            return fileName
        }
        guard let v = reader.string(node, "name") else { return fileName }
        if SafeText.isFileName(v) { return v }
        reader.fail(node, "name", "use only letters, digits, '-' and '_', at most \(SafeText.maximumLength) (it names the report file)")
        return fileName
    }

    /// `seed`, or `seeds`: the first seed and the further ones to run the whole scenario with.
    static func seeds(_ top: [String: Node], reader: inout YAMLReader) -> (seed: UInt64, extraSeeds: [UInt64]) {
        var seed: UInt64 = 0
        var extraSeeds: [UInt64] = []
        if let node = top["seed"], let v = reader.integer(node, "seed", in: 0...Int.max, what: "a non-negative integer") {
            seed = UInt64(v)
        }
        // `seeds: [a, b, ...]` runs the scenario once per seed; the first gives the detailed tables.
        if let node = top["seeds"] {
            if top["seed"] != nil {
                reader.fail(node, "seeds", "give either seed or seeds, not both")
            } else if let items = reader.sequence(node, "seeds") {
                let values = items.enumerated().compactMap { i, item in
                    reader.integer(item, "seeds[\(i)]", in: 0...Int.max, what: "a non-negative integer").map(UInt64.init)
                }
                if items.isEmpty || items.count > 100 { reader.fail(node, "seeds", "list from 1 to 100 seeds") }
                if Set(values).count != values.count { reader.fail(node, "seeds", "a seed is listed twice") }
                if let first = values.first { seed = first; extraSeeds = Array(values.dropFirst()) }
            }
        }
        return (seed, extraSeeds)
    }

    /// `test_fraction`: the share of each site's patients held out for evaluation (default 0.3).
    static func testFraction(_ node: Node?, reader: inout YAMLReader) -> Double {
        guard let node, let v = reader.number(node, "test_fraction", in: 0.05...0.8, what: "a fraction from 0.05 to 0.8") else { return 0.3 }
        return v
    }

    /// `temporal_split`: test on patients indexed from `test_from` on, train on the earlier ones
    /// (from `train_from`, when given).
    static func temporalSplit(_ node: Node?, reader: inout YAMLReader) -> TemporalSplit? {
        guard let node, let m = reader.mapping(node, "temporal_split", allowed: ["test_from", "train_from"], required: ["test_from"]) else { return nil }
        func date(_ key: String) -> String? {
            guard let n = m[key], let text = reader.string(n, "temporal_split.\(key)") else { return nil }
            let parts = text.split(separator: "-").compactMap { Int($0) }
            guard text.count == 10, parts.count == 3, (1...12).contains(parts[1]), (1...31).contains(parts[2]),
                  CivilDate.iso(CivilDate.days(year: parts[0], month: parts[1], day: parts[2])) == text else {
                reader.fail(n, "temporal_split.\(key)", "expected a date YYYY-MM-DD, found '\(text)'")
                return nil
            }
            return text
        }
        guard let testFrom = date("test_from") else { return nil }
        let trainFrom = date("train_from")
        if let trainFrom, trainFrom >= testFrom {
            reader.fail(m["train_from"], "temporal_split.train_from", "train_from (\(trainFrom)) must come before test_from (\(testFrom))")
            return nil
        }
        return TemporalSplit(trainFrom: trainFrom, testFrom: testFrom)
    }

    /// Diagnostics by file, line and column; ties keep the order they were found in.
    static func readingOrder(_ diagnostics: [Diagnostic]) -> [Diagnostic] {
        diagnostics.enumerated()
            .sorted { ($0.element.file, $0.element.line, $0.element.column, $0.offset) < ($1.element.file, $1.element.line, $1.element.column, $1.offset) }
            .map(\.element)
    }

    /// A path relative to the working directory when the file lies below it, for messages users can click.
    static func relativePath(_ url: URL) -> String {
        let cwd = FileManager.default.currentDirectoryPath
        let path = url.standardizedFileURL.path
        if path.hasPrefix(cwd + "/") { return String(path.dropFirst(cwd.count + 1)) }
        return path
    }
}
