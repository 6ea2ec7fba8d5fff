import Foundation
import SiteFitCore
import SiteFitEHR
import SiteFitNN
import SiteFitTuning
import Yams

/// A typed scenario: which sites, which model, how to pretrain, and which arms to compare.
public struct Scenario: Sendable {
    /// Report name (`Reports/<name>.md`); defaults to the file's base name.
    public var name: String
    /// The file it came from, as the user named it.
    public var file: String
    /// FNV-1a of the file's bytes, printed in the report's reproducibility block.
    public var fingerprint: String
    public var seed: UInt64
    public var sites: [SiteReference]
    public var testFraction: Double
    /// The prediction task's windows and the concepts its SQL features use.
    public var task: FeatureSpec
    public var model: MLPConfiguration
    public var pretraining: Pretraining
    public var federation: Federation
    public var arms: [Arm]

    /// One participating hospital: its profile and where its shard lives.
    public struct SiteReference: Sendable {
        public var profile: SiteProfile
        public var profileFile: URL
        /// `<profile folder>/<id>.sqlite`, built on demand.
        public var shardFile: URL
    }

    /// The synthetic source population and how the model is trained on it before any site sees it.
    public struct Pretraining: Sendable, Equatable {
        public var source: SiteProfile
        public var epochs: Int
        public var batchSize: Int
        public var learningRate: Double
    }

    /// Rounds of federated averaging and each site's local training.
    public struct Federation: Sendable, Equatable {
        public var rounds: Int
        public var localEpochs: Int
        public var batchSize: Int
        public var optimizer: OptimizerKind
        public var learningRate: Double
    }

    /// One compared configuration: a fine-tuning mode and optional overrides.
    public struct Arm: Sendable, Equatable {
        public var name: String
        public var mode: FineTuningMode
        public var learningRate: Double
        public var localEpochs: Int
    }
}

/// Parses scenario files into `Scenario`, with `file:line:column: field: problem` diagnostics.
public enum ScenarioLoader {
    static let topKeys = ["name", "seed", "sites", "test_fraction", "task", "model", "pretraining", "federation", "arms"]

    /// Named concepts a `task` may list, besides integer concept ids.
    static let drugNames = ["metformin": OMOPConcept.metformin, "lisinopril": OMOPConcept.lisinopril,
                            "atorvastatin": OMOPConcept.atorvastatin, "aspirin": OMOPConcept.aspirin]

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

    /// Loads and checks a scenario and every site profile it names.
    public static func load(_ url: URL) throws -> Scenario {
        let file = url.relativePath
        let text = try readText(url, what: "scenario file")
        var reader = YAMLReader(file: file)
        guard let root = reader.compose(text),
              let top = reader.mapping(root, "", allowed: topKeys, required: ["seed", "sites", "arms"])
        else { throw DiagnosticList(reader.diagnostics) }
        var profileDiagnostics: [Diagnostic] = []
        let folder = url.deletingLastPathComponent()

        var name = url.deletingPathExtension().lastPathComponent
        if let node = top["name"], let v = reader.string(node, "name") {
            if v.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) { name = v }
            else { reader.fail(node, "name", "use only letters, digits, '-' and '_' (it names the report file), found '\(v)'") }
        }
        var seed: UInt64 = 0
        if let node = top["seed"], let v = reader.integer(node, "seed", in: 0...Int.max, what: "a non-negative integer") {
            seed = UInt64(v)
        }
        var testFraction = 0.3
        if let node = top["test_fraction"],
           let v = reader.number(node, "test_fraction", in: 0.05...0.8, what: "a fraction from 0.05 to 0.8") {
            testFraction = v
        }

        var sites: [Scenario.SiteReference] = []
        if let node = top["sites"], let list = reader.sequence(node, "sites") {
            if list.isEmpty { reader.fail(node, "sites", "list at least one site") }
            for (i, item) in list.enumerated() {
                let field = "sites[\(i)]"
                guard let entry = reader.mapping(item, field, allowed: ["profile"], required: ["profile"]),
                      let pathNode = entry["profile"], let path = reader.string(pathNode, "\(field).profile")
                else { continue }
                let profileURL = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
                let shown = URL(fileURLWithPath: relativePath(profileURL))
                guard FileManager.default.fileExists(atPath: profileURL.path) else {
                    reader.fail(pathNode, "\(field).profile", "site profile '\(path)' not found (looked in \(shown.relativePath))")
                    continue
                }
                do {
                    let profile = try SiteProfileLoader.load(URL(fileURLWithPath: relativePath(profileURL)))
                    if sites.contains(where: { $0.profile.id == profile.id }) {
                        reader.fail(pathNode, "\(field).profile", "site '\(profile.id)' is listed twice")
                        continue
                    }
                    let shard = profileURL.deletingPathExtension().appendingPathExtension("sqlite")
                    sites.append(.init(profile: profile, profileFile: URL(fileURLWithPath: relativePath(profileURL)),
                                       shardFile: URL(fileURLWithPath: relativePath(shard))))
                } catch let list as DiagnosticList {
                    profileDiagnostics += list.diagnostics
                } catch {
                    reader.fail(pathNode, "\(field).profile", "\(error)")
                }
            }
        }

        var task = FeatureSpec.heartFailure
        if let node = top["task"], let fields = reader.mapping(node, "task", allowed: [
            "lookback_days", "outcome_window_days", "conditions", "measurements", "drugs",
        ]) {
            if let n = fields["lookback_days"], let v = reader.integer(n, "task.lookback_days", in: 1...36500, what: "a number of days from 1 to 36500") { task.lookbackDays = v }
            if let n = fields["outcome_window_days"], let v = reader.integer(n, "task.outcome_window_days", in: 1...36500, what: "a number of days from 1 to 36500") { task.outcomeWindowDays = v }
            if let n = fields["conditions"], let v = conceptList(n, "task.conditions", names: Dictionary(uniqueKeysWithValues: ConditionName.allCases.map { ($0.rawValue, $0.conceptId) }), reader: &reader) { task.conditions = v }
            if let n = fields["measurements"], let v = conceptList(n, "task.measurements", names: Dictionary(uniqueKeysWithValues: LabName.allCases.map { ($0.rawValue, $0.conceptId) }), reader: &reader) { task.measurements = v }
            if let n = fields["drugs"], let v = conceptList(n, "task.drugs", names: drugNames, reader: &reader) { task.drugs = v }
        }

        var model = MLPConfiguration(inputSize: task.columnNames.count, hiddenSizes: [32, 16])
        if let node = top["model"], let fields = reader.mapping(node, "model", allowed: ["hidden"]) {
            if let hidden = fields["hidden"], let list = reader.sequence(hidden, "model.hidden") {
                if list.isEmpty { reader.fail(hidden, "model.hidden", "list at least one hidden layer width (the brief asks for an MLP)") }
                model.hiddenSizes = list.enumerated().compactMap { i, n in
                    reader.integer(n, "model.hidden[\(i)]", in: 1...4096, what: "a layer width from 1 to 4096")
                }
            }
        }

        var source = SiteProfile(id: "source", name: "Source population", seed: seed &+ 1, patients: 4000,
                                 ageMean: 58, ageStandardDeviation: 14, femaleFraction: 0.5,
                                 raceMix: RaceMix(white: 0.75, black: 0.15, asian: 0.10), outcomePrevalence: 0.12,
                                 labMissingRate: 0.05)
        var pretraining = Scenario.Pretraining(source: source, epochs: 20, batchSize: 32, learningRate: 0.003)
        if let node = top["pretraining"], let fields = reader.mapping(node, "pretraining", allowed: [
            "patients", "age_mean", "female_fraction", "outcome_prevalence", "epochs", "batch_size", "learning_rate",
        ]) {
            if let n = fields["patients"], let v = reader.integer(n, "pretraining.patients", in: 100...1_000_000, what: "an integer from 100 to 1000000") { source.patients = v }
            if let n = fields["age_mean"], let v = reader.number(n, "pretraining.age_mean", in: 18...95, what: "an age from 18 to 95") { source.ageMean = v }
            if let n = fields["female_fraction"], let v = reader.number(n, "pretraining.female_fraction", in: 0...1, what: "a fraction from 0 to 1") { source.femaleFraction = v }
            if let n = fields["outcome_prevalence"], let v = reader.number(n, "pretraining.outcome_prevalence", in: 0.01...0.9, what: "a fraction from 0.01 to 0.9") { source.outcomePrevalence = v }
            if let n = fields["epochs"], let v = reader.integer(n, "pretraining.epochs", in: 1...1000, what: "an integer from 1 to 1000") { pretraining.epochs = v }
            if let n = fields["batch_size"], let v = reader.integer(n, "pretraining.batch_size", in: 1...4096, what: "an integer from 1 to 4096") { pretraining.batchSize = v }
            if let n = fields["learning_rate"], let v = reader.number(n, "pretraining.learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") { pretraining.learningRate = v }
        }
        pretraining.source = source

        var federation = Scenario.Federation(rounds: 5, localEpochs: 1, batchSize: 32, optimizer: .adam, learningRate: 0.003)
        if let node = top["federation"], let fields = reader.mapping(node, "federation", allowed: [
            "rounds", "local_epochs", "batch_size", "optimizer", "learning_rate",
        ]) {
            if let n = fields["rounds"], let v = reader.integer(n, "federation.rounds", in: 1...1000, what: "an integer from 1 to 1000") { federation.rounds = v }
            if let n = fields["local_epochs"], let v = reader.integer(n, "federation.local_epochs", in: 1...1000, what: "an integer from 1 to 1000") { federation.localEpochs = v }
            if let n = fields["batch_size"], let v = reader.integer(n, "federation.batch_size", in: 1...4096, what: "an integer from 1 to 4096") { federation.batchSize = v }
            if let n = fields["optimizer"], let v = reader.choice(n, "federation.optimizer", OptimizerKind.self) { federation.optimizer = v }
            if let n = fields["learning_rate"], let v = reader.number(n, "federation.learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") { federation.learningRate = v }
        }

        var arms: [Scenario.Arm] = []
        if let node = top["arms"], let list = reader.sequence(node, "arms") {
            if list.isEmpty { reader.fail(node, "arms", "list at least one arm") }
            for (i, item) in list.enumerated() {
                let field = "arms[\(i)]"
                guard let fields = reader.mapping(item, field, allowed: ["name", "mode", "learning_rate", "local_epochs"],
                                                  required: ["mode"]) else { continue }
                guard let modeNode = fields["mode"], let mode = reader.choice(modeNode, "\(field).mode", FineTuningMode.self)
                else { continue }
                var arm = Scenario.Arm(name: mode.rawValue, mode: mode, learningRate: federation.learningRate,
                                       localEpochs: federation.localEpochs)
                if let n = fields["name"], let v = reader.string(n, "\(field).name") {
                    if arms.contains(where: { $0.name == v }) { reader.fail(n, "\(field).name", "arm '\(v)' is defined twice") }
                    arm.name = v
                }
                if let n = fields["learning_rate"], let v = reader.number(n, "\(field).learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") { arm.learningRate = v }
                if let n = fields["local_epochs"], let v = reader.integer(n, "\(field).local_epochs", in: 1...1000, what: "an integer from 1 to 1000") { arm.localEpochs = v }
                arms.append(arm)
            }
        }

        let all = reader.diagnostics + profileDiagnostics
        guard all.isEmpty else { throw DiagnosticList(all) }
        return Scenario(name: name, file: file, fingerprint: StableHash.hex(Array(text.utf8)), seed: seed, sites: sites,
                        testFraction: testFraction, task: task, model: model, pretraining: pretraining, federation: federation, arms: arms)
    }

    /// A path relative to the working directory when the file lies below it, for messages users can click.
    static func relativePath(_ url: URL) -> String {
        let cwd = FileManager.default.currentDirectoryPath
        let path = url.standardizedFileURL.path
        if path.hasPrefix(cwd + "/") { return String(path.dropFirst(cwd.count + 1)) }
        return path
    }
}
