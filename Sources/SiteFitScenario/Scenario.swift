import Foundation
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
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
    /// Reference results computed beside the arms.
    public var baselines: [Baseline]
    /// Which patient attributes the report audits for bias, and how.
    public var subgroups: Subgroups = Subgroups()
    public var dataset: Dataset = .omop
    /// How the network is initialised before pretraining (or, with `pretraining: none`, before the arms).
    public var initialization: MLP.Initialization = .he
    /// Baseline training settings (nil: the federation's, for as many epochs as the federation trains).
    public var baselineTraining: BaselineTraining?
    public var reference: Reference?

    /// Further seeds to run the whole scenario with (`seeds:` after the first); the report gives
    /// the mean and spread over all of them beside the main seed's tables.
    public var extraSeeds: [UInt64] = []

    /// The subgroup audit: attributes from `person`, the smallest group a gap may use, and the
    /// bootstrap replicates behind each drift interval.
    public struct Subgroups: Sendable, Equatable {
        public var attributes: [Attribute] = Attribute.allCases
        public var minimumGroupSize: Int = 20
        public var bootstrapReplicates: Int = 200

        public init() {}

        /// A patient attribute the audit can group by.
        public enum Attribute: String, Sendable, Equatable, CaseIterable {
            case sex
            /// 18-44, 45-64, 65-74, 75+ at the index date.
            case ageBand = "age_band"
            case race
        }
    }

    /// Baselines every report needs: the pretrained model as is, each site training alone, and
    /// centralised training on all sites' rows (simulation only).
    public enum Baseline: String, Sendable, Equatable, CaseIterable {
        case pretrained, local, pooled
        /// One row per site: a model trained on that site alone, evaluated on every site (FLamby's "Local i").
        case localEach = "local_each"
    }

    /// One participating hospital: its profile and where its shard lives.
    public struct SiteReference: Sendable {
        public var profile: SiteProfile
        public var profileFile: URL
        /// `<profile folder>/<id>.sqlite`, built on demand.
        public var shardFile: URL
        /// A real hospital's shard imported from the UCI Heart Disease files in the shard's folder
        /// (`heart_disease:` sites); `profile` then only carries its id and name.
        public var importedHeartDisease: Bool = false
    }

    /// Where the rows and the split come from.
    public enum Dataset: String, Sendable, Equatable, CaseIterable {
        /// Features by SQL over OMOP shards (`task`), a seeded stratified split, and the pretrained
        /// model's standardisation.
        case omop
        /// FLamby's Fed-Heart-Disease protocol: 13 features, FLamby's own split, each site
        /// standardised with its own train mean and standard deviation.
        case heartDisease = "heart-disease"
    }

    /// How the local and pooled baselines train when they should not copy the federation
    /// (FLamby trains them with Adam for a number of epochs, the federation with SGD by steps).
    public struct BaselineTraining: Sendable, Equatable {
        public var optimizer: OptimizerKind
        public var learningRate: Double
        /// Epochs in all (not per round).
        public var epochs: Int
    }

    /// Published numbers to print beside the arms: arm or baseline name → mean per-site accuracy.
    public struct Reference: Sendable, Equatable {
        public var source: String
        public var tolerance: Double
        public var meanSiteAccuracy: [String: Double]
    }

    /// The synthetic source population and how the model is trained on it before any site sees it.
    public struct Pretraining: Sendable, Equatable {
        public var source: SiteProfile
        /// Maximum epochs; early stopping may end sooner.
        public var epochs: Int
        public var batchSize: Int
        public var learningRate: Double
        /// Share of source patients held out for validation and early stopping.
        public var validationFraction: Double
        /// Epochs without a lower validation loss before training stops.
        public var patience: Int
        /// An existing checkpoint to use instead of pretraining (resolved against the scenario's folder).
        public var checkpoint: URL?
        /// `pretraining: none`: the model starts from its seeded initialisation (FLamby's protocol).
        public var enabled: Bool = true
        /// Real hospitals to pretrain on instead of the synthetic source (their train rows only;
        /// they take no part in the federation).
        public var heartDiseaseShards: [URL] = []
    }

    /// Rounds of federated averaging and each site's local training.
    public struct Federation: Sendable, Equatable {
        public var rounds: Int
        public var localEpochs: Int
        public var batchSize: Int
        public var optimizer: OptimizerKind
        public var learningRate: Double
        public var weightDecay: Double
        public var gradientClipNorm: Double?
        /// Weight of positive examples in the local loss.
        public var positiveWeight: Double
        /// Local mini-batch steps per round instead of `localEpochs` (FLamby counts updates).
        public var localSteps: Int?
        /// Client sampling, quorum, dropout and stragglers.
        public var participation: ParticipationSettings
    }

    /// One compared configuration: a fine-tuning mode and optional overrides.
    public struct Arm: Sendable, Equatable {
        public var name: String
        public var mode: FineTuningMode
        public var learningRate: Double
        public var localEpochs: Int
        /// LoRA settings (mode `lora`).
        public var lora: LoRAConfiguration?
        /// Whether a LoRA arm also trains the bias terms.
        public var loraTrainsBiases: Bool
        /// Adapter settings (mode `adapter`).
        public var adapter: AdapterConfiguration?
        /// How the server combines updates, and FedProx's client-side term.
        public var strategy: Strategy
        public var proximalMu: Double
        public var server: ServerOptimizerSettings
        /// Site-level DP-FedAvg (clip, noise, accountant), or nil.
        public var privacy: DPSettings?
        /// Pairwise-masked secure aggregation: the server only ever holds masked vectors.
        public var secureAggregation: Bool

        /// The arm's strategy with fresh server state; `trainedCount` is the size of the trained
        /// selection (what adaptive optimisers keep moments for, as they share all of it).
        public func makeStrategy(trainedCount: Int) -> any FederatedStrategy {
            switch strategy {
            case .fedavg: FedAvg()
            case .fedprox: FedProx(mu: proximalMu)
            case .fedadam: FedAdam(settings: server, count: trainedCount)
            case .fedyogi: FedYogi(settings: server, count: trainedCount)
            case .fedadagrad: FedAdagrad(settings: server, count: trainedCount)
            case .personalized: PersonalizedBitFit()
            }
        }
    }

    /// Federated strategies an arm can use; `Arm.makeStrategy` builds the `FederatedStrategy` of each.
    public enum Strategy: String, Sendable, Equatable, CaseIterable {
        case fedavg, fedprox, fedadam, fedyogi, fedadagrad
        /// FedAvg on everything but the bias terms, which stay at each site and are evaluated there
        /// (personalised BitFit: shared weights, site-local biases).
        case personalized
    }
}

/// Parses scenario files into `Scenario`, with `file:line:column: field: problem` diagnostics.
public enum ScenarioLoader {
    static let topKeys = ["name", "seed", "seeds", "sites", "test_fraction", "task", "model", "pretraining", "federation", "arms", "baselines",
                          "baseline_training", "subgroups", "reference"]

    /// Keys of an arm and of `federation` (the JSON Schema test checks the schema lists the same).
    static let armKeys = ["name", "mode", "learning_rate", "local_epochs", "lora", "adapter", "strategy", "proximal_mu",
                          "server_learning_rate", "server_beta1", "server_beta2", "server_tau", "dp", "secure_aggregation"]
    static let federationKeys = ["rounds", "local_epochs", "local_steps", "batch_size", "optimizer", "learning_rate", "weight_decay",
                                 "gradient_clip_norm", "positive_weight", "sampling", "quorum", "dropout", "stragglers"]

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
              let top = reader.mapping(root, "", allowed: topKeys,
                                       required: (root.mapping?.keys.contains { $0.scalar?.string == "seeds" } ?? false)
                                           ? ["sites", "arms"] : ["seed", "sites", "arms"])
        else { throw DiagnosticList(reader.diagnostics) }
        var profileDiagnostics: [Diagnostic] = []
        let folder = url.deletingLastPathComponent()

        var name = url.deletingPathExtension().lastPathComponent
        if let node = top["name"], let v = reader.string(node, "name") {
            if v.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) { name = v }
            else { reader.fail(node, "name", "use only letters, digits, '-' and '_' (it names the report file), found '\(v)'") }
        }
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
                guard let entry = reader.mapping(item, field, allowed: ["profile", "heart_disease"]) else { continue }
                if entry.count != 1 { reader.fail(item, field, "give exactly one of profile or heart_disease"); continue }
                if let node = entry["heart_disease"], let path = reader.string(node, "\(field).heart_disease") {
                    // A real hospital: the shard file, imported on demand from the UCI files beside it.
                    let shard = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
                    let id = shard.deletingPathExtension().lastPathComponent
                    guard HeartDiseaseImport.sites.contains(id), shard.pathExtension == "sqlite" else {
                        var problem = "expected a path to <site>.sqlite with site one of \(HeartDiseaseImport.sites.joined(separator: ", "))"
                        if let guess = suggestion(for: id, among: HeartDiseaseImport.sites) { problem += "; did you mean '\(guess).sqlite'?" }
                        reader.fail(node, "\(field).heart_disease", problem)
                        continue
                    }
                    let raw = shard.deletingLastPathComponent().appendingPathComponent("processed.\(id).data")
                    guard FileManager.default.fileExists(atPath: shard.path) || FileManager.default.fileExists(atPath: raw.path) else {
                        reader.fail(node, "\(field).heart_disease", "neither the shard nor the UCI file \(relativePath(raw)) to import it from exists")
                        continue
                    }
                    if sites.contains(where: { $0.profile.id == id }) { reader.fail(node, "\(field).heart_disease", "site '\(id)' is listed twice"); continue }
                    var reference = Scenario.SiteReference(
                        profile: SiteProfile(id: id, name: HeartDiseaseImport.hospitalNames[id] ?? id, seed: 0, patients: 0),
                        profileFile: URL(fileURLWithPath: relativePath(raw)), shardFile: URL(fileURLWithPath: relativePath(shard)))
                    reference.importedHeartDisease = true
                    sites.append(reference)
                    continue
                }
                guard let pathNode = entry["profile"], let path = reader.string(pathNode, "\(field).profile") else { continue }
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
        var dataset = Scenario.Dataset.omop
        if let node = top["task"], let fields = reader.mapping(node, "task", allowed: [
            "dataset", "lookback_days", "outcome_window_days", "conditions", "measurements", "drugs",
        ]) {
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
        }

        let heartSites = sites.filter(\.importedHeartDisease).count
        if dataset == .heartDisease && heartSites != sites.count, let node = top["sites"] {
            reader.fail(node, "sites", "task.dataset heart-disease needs every site to be a heart_disease: site")
        } else if dataset == .omop && heartSites > 0, let node = top["sites"] {
            reader.fail(node, "sites", "heart_disease: sites need `task: {dataset: heart-disease}`")
        }
        var initialization = MLP.Initialization.he
        var model = MLPConfiguration(inputSize: dataset == .heartDisease ? HeartDiseaseCohort.columns.count : task.columnNames.count,
                                     hiddenSizes: [32, 16])
        if let node = top["model"], let fields = reader.mapping(node, "model", allowed: ["hidden", "activation", "layer_norm", "dropout", "init"]) {
            if let n = fields["init"], let v = reader.choice(n, "model.init", MLP.Initialization.self) { initialization = v }
            if let hidden = fields["hidden"], let list = reader.sequence(hidden, "model.hidden") {
                // An empty list is logistic regression (FLamby's model for heart disease).
                model.hiddenSizes = list.enumerated().compactMap { i, n in
                    reader.integer(n, "model.hidden[\(i)]", in: 1...4096, what: "a layer width from 1 to 4096")
                }
            }
            if let n = fields["activation"], let v = reader.choice(n, "model.activation", Activation.self) { model.activation = v }
            if let n = fields["layer_norm"], let v = reader.boolean(n, "model.layer_norm") { model.layerNorm = v }
            if let n = fields["dropout"], let v = reader.number(n, "model.dropout", in: 0...0.9, what: "a probability from 0 to 0.9") { model.dropout = v }
        }

        var source = SiteProfile(id: "source", name: "Source population", seed: seed &+ 1, patients: 4000,
                                 ageMean: 58, ageStandardDeviation: 14, femaleFraction: 0.5,
                                 raceMix: RaceMix(white: 0.75, black: 0.15, asian: 0.10), outcomePrevalence: 0.12,
                                 labMissingRate: 0.05)
        var pretraining = Scenario.Pretraining(source: source, epochs: 30, batchSize: 32, learningRate: 0.003,
                                               validationFraction: 0.2, patience: 5, checkpoint: nil)
        if let node = top["pretraining"], node.scalar?.string == "none" {
            pretraining.enabled = false
        } else if let node = top["pretraining"], let fields = reader.mapping(node, "pretraining", allowed: [
            "patients", "age_mean", "female_fraction", "outcome_prevalence", "epochs", "batch_size", "learning_rate",
            "validation_fraction", "patience", "checkpoint", "heart_disease",
        ]) {
            if let n = fields["heart_disease"], let items = reader.sequence(n, "pretraining.heart_disease") {
                for (i, item) in items.enumerated() {
                    guard let path = reader.string(item, "pretraining.heart_disease[\(i)]") else { continue }
                    let shard = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
                    let id = shard.deletingPathExtension().lastPathComponent
                    let raw = shard.deletingLastPathComponent().appendingPathComponent("processed.\(id).data")
                    if !HeartDiseaseImport.sites.contains(id) || shard.pathExtension != "sqlite" {
                        reader.fail(item, "pretraining.heart_disease[\(i)]", "expected a path to <site>.sqlite with site one of \(HeartDiseaseImport.sites.joined(separator: ", "))")
                    } else if !FileManager.default.fileExists(atPath: shard.path) && !FileManager.default.fileExists(atPath: raw.path) {
                        reader.fail(item, "pretraining.heart_disease[\(i)]", "neither the shard nor the UCI file \(relativePath(raw)) to import it from exists")
                    } else if sites.contains(where: { $0.profile.id == id }) {
                        reader.fail(item, "pretraining.heart_disease[\(i)]", "site '\(id)' is also a federation site; a source site must not be fine-tuned on or tested")
                    } else {
                        pretraining.heartDiseaseShards.append(URL(fileURLWithPath: relativePath(shard)))
                    }
                }
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

        var federation = Scenario.Federation(rounds: 5, localEpochs: 1, batchSize: 32, optimizer: .adam, learningRate: 0.003,
                                             weightDecay: 0.01, gradientClipNorm: nil, positiveWeight: 1, localSteps: nil,
                                             participation: ParticipationSettings())
        if let node = top["federation"], let fields = reader.mapping(node, "federation", allowed: federationKeys) {
            federation.participation = participation(fields, siteIds: sites.map(\.profile.id), reader: &reader)
            if let n = fields["local_steps"], let v = reader.integer(n, "federation.local_steps", in: 1...1_000_000, what: "an integer from 1 to 1000000") {
                if fields["local_epochs"] != nil { reader.fail(n, "federation.local_steps", "give local_steps or local_epochs, not both") }
                federation.localSteps = v
            }
            if let n = fields["rounds"], let v = reader.integer(n, "federation.rounds", in: 1...1000, what: "an integer from 1 to 1000") { federation.rounds = v }
            if let n = fields["local_epochs"], let v = reader.integer(n, "federation.local_epochs", in: 1...1000, what: "an integer from 1 to 1000") { federation.localEpochs = v }
            if let n = fields["batch_size"], let v = reader.integer(n, "federation.batch_size", in: 1...4096, what: "an integer from 1 to 4096") { federation.batchSize = v }
            if let n = fields["optimizer"], let v = reader.choice(n, "federation.optimizer", OptimizerKind.self) { federation.optimizer = v }
            if let n = fields["learning_rate"], let v = reader.number(n, "federation.learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") { federation.learningRate = v }
            if let n = fields["weight_decay"], let v = reader.number(n, "federation.weight_decay", in: 0...1, what: "a number from 0 to 1") { federation.weightDecay = v }
            if let n = fields["gradient_clip_norm"], let v = reader.number(n, "federation.gradient_clip_norm", in: 1e-6...1e6, what: "a positive norm") { federation.gradientClipNorm = v }
            if let n = fields["positive_weight"], let v = reader.number(n, "federation.positive_weight", in: 0.01...100, what: "a weight from 0.01 to 100") { federation.positiveWeight = v }
        }

        var arms: [Scenario.Arm] = []
        if let node = top["arms"], let list = reader.sequence(node, "arms") {
            if list.isEmpty { reader.fail(node, "arms", "list at least one arm") }
            for (i, item) in list.enumerated() {
                let field = "arms[\(i)]"
                guard let fields = reader.mapping(item, field, allowed: armKeys, required: ["mode"]) else { continue }
                guard let modeNode = fields["mode"], let mode = reader.choice(modeNode, "\(field).mode", FineTuningMode.self)
                else { continue }
                var arm = Scenario.Arm(name: mode.rawValue, mode: mode, learningRate: federation.learningRate,
                                       localEpochs: federation.localEpochs, lora: nil, loraTrainsBiases: false, adapter: nil,
                                       strategy: .fedavg, proximalMu: 0,
                                       server: ServerOptimizerSettings(learningRate: 0.01, beta1: 0.9, beta2: 0.999, tau: 1e-8),
                                       privacy: nil, secureAggregation: false)
                if let n = fields["dp"], let d = reader.mapping(n, "\(field).dp", allowed: ["clip_norm", "noise_multiplier", "delta", "epsilon_budget"],
                                                                required: ["clip_norm", "noise_multiplier"]) {
                    var settings = DPSettings(clipNorm: 1, noiseMultiplier: 1)
                    if let c = d["clip_norm"], let v = reader.number(c, "\(field).dp.clip_norm", in: 1e-9...1e9, what: "a positive L2 norm") { settings.clipNorm = v }
                    if let c = d["noise_multiplier"], let v = reader.number(c, "\(field).dp.noise_multiplier", in: 0...1000, what: "a number from 0 to 1000") { settings.noiseMultiplier = v }
                    if let c = d["delta"], let v = reader.number(c, "\(field).dp.delta", in: 1e-20...0.5, what: "a probability above 0 and at most 0.5") { settings.delta = v }
                    if let c = d["epsilon_budget"], let v = reader.number(c, "\(field).dp.epsilon_budget", in: 1e-6...1e6, what: "a positive ε") { settings.epsilonBudget = v }
                    arm.privacy = settings
                    // The accountant bounds the Poisson-subsampled Gaussian mechanism. A fixed count
                    // of k sites out of K is a different mechanism; reporting its ε as Poisson with
                    // q = k/K would print a number the analysis does not back.
                    if case .count(let k) = federation.participation.sampling, k < sites.count {
                        let fraction = (Double(k) / Double(sites.count) * 1000).rounded() / 1000
                        reader.fail(n, "\(field).dp", "the privacy accountant covers Poisson sampling, not a fixed count of sites "
                                    + "(federation.sampling.count: \(k)); use federation.sampling.fraction: \(fraction) "
                                    + "(each site joins with that probability) or let every site train each round")
                    }
                }
                if let n = fields["secure_aggregation"], let v = reader.boolean(n, "\(field).secure_aggregation") { arm.secureAggregation = v }
                if let n = fields["strategy"], let v = reader.choice(n, "\(field).strategy", Scenario.Strategy.self) {
                    arm.strategy = v
                    if v == .personalized && ![FineTuningMode.full, .bitfitHead, .head].contains(mode) {
                        reader.fail(n, "\(field).strategy", "personalized keeps bias terms local and shares the rest; mode '\(mode.rawValue)' trains nothing else to share (use full, bitfit+head or head)")
                    }
                }
                if let n = fields["proximal_mu"], let v = reader.number(n, "\(field).proximal_mu", in: 0...100, what: "a number from 0 to 100") {
                    if arm.strategy == .fedprox { arm.proximalMu = v } else { reader.fail(n, "\(field).proximal_mu", "proximal_mu needs strategy 'fedprox'") }
                } else if arm.strategy == .fedprox {
                    arm.proximalMu = 0.01
                }
                let adaptive = [Scenario.Strategy.fedadam, .fedyogi, .fedadagrad].contains(arm.strategy)
                for (key, range, what) in [("server_learning_rate", 1e-6...100.0, "a positive learning rate up to 100"),
                                           ("server_beta1", 0.0...0.9999, "a number from 0 to 0.9999"),
                                           ("server_beta2", 0.0...0.999999, "a number from 0 to 0.999999"),
                                           ("server_tau", 1e-12...10.0, "a positive number up to 10")] {
                    guard let n = fields[key] else { continue }
                    guard adaptive else { reader.fail(n, "\(field).\(key)", "\(key) needs strategy fedadam, fedyogi or fedadagrad"); continue }
                    guard let v = reader.number(n, "\(field).\(key)", in: range, what: what) else { continue }
                    switch key {
                    case "server_learning_rate": arm.server.learningRate = v
                    case "server_beta1": arm.server.beta1 = v
                    case "server_beta2": arm.server.beta2 = v
                    default: arm.server.tau = v
                    }
                }
                if let n = fields["name"], let v = reader.string(n, "\(field).name") {
                    if arms.contains(where: { $0.name == v }) { reader.fail(n, "\(field).name", "arm '\(v)' is defined twice") }
                    arm.name = v
                }
                if let n = fields["learning_rate"], let v = reader.number(n, "\(field).learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") { arm.learningRate = v }
                if let n = fields["local_epochs"], let v = reader.integer(n, "\(field).local_epochs", in: 1...1000, what: "an integer from 1 to 1000") { arm.localEpochs = v }
                if mode == .lora {
                    var lora = LoRAConfiguration(rank: 4, alpha: 8)
                    if let n = fields["lora"], let l = reader.mapping(n, "\(field).lora", allowed: ["rank", "alpha", "layers", "train_biases"]) {
                        if let r = l["rank"], let v = reader.integer(r, "\(field).lora.rank", in: 1...256, what: "a rank from 1 to 256") { lora.rank = v }
                        if let a = l["alpha"], let v = reader.number(a, "\(field).lora.alpha", in: 1e-3...1e4, what: "a positive alpha") { lora.alpha = v }
                        if let list = l["layers"], let items = reader.sequence(list, "\(field).lora.layers") {
                            let count = model.hiddenSizes.count + 1
                            lora.layers = items.enumerated().compactMap { i, item in
                                reader.integer(item, "\(field).lora.layers[\(i)]", in: 0...(count - 1), what: "a layer index from 0 to \(count - 1)")
                            }
                        }
                        if let b = l["train_biases"], let v = reader.boolean(b, "\(field).lora.train_biases") { arm.loraTrainsBiases = v }
                    }
                    arm.lora = lora
                } else if let n = fields["lora"] {
                    reader.fail(n, "\(field).lora", "LoRA settings need mode 'lora'")
                }
                if mode == .adapter {
                    var adapter = AdapterConfiguration(bottleneck: 8)
                    if let n = fields["adapter"], let a = reader.mapping(n, "\(field).adapter", allowed: ["bottleneck"]),
                       let b = a["bottleneck"], let v = reader.integer(b, "\(field).adapter.bottleneck", in: 1...1024, what: "a width from 1 to 1024") {
                        adapter.bottleneck = v
                    }
                    if model.hiddenSizes.isEmpty { reader.fail(modeNode, "\(field).mode", "adapters sit after hidden layers; the model has none") }
                    arm.adapter = adapter
                } else if let n = fields["adapter"] {
                    reader.fail(n, "\(field).adapter", "adapter settings need mode 'adapter'")
                }
                arms.append(arm)
            }
        }

        var baselines: [Scenario.Baseline] = [.pretrained, .local, .pooled]
        if let node = top["baselines"], let list = reader.sequence(node, "baselines") {
            baselines = list.enumerated().compactMap { i, item in reader.choice(item, "baselines[\(i)]", Scenario.Baseline.self) }
        }

        var baselineTraining: Scenario.BaselineTraining? = nil
        if let node = top["baseline_training"], let m = reader.mapping(node, "baseline_training", allowed: ["optimizer", "learning_rate", "epochs"],
                                                                      required: ["optimizer", "learning_rate", "epochs"]),
           let o = m["optimizer"], let optimizer = reader.choice(o, "baseline_training.optimizer", OptimizerKind.self),
           let l = m["learning_rate"], let rate = reader.number(l, "baseline_training.learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10"),
           let e = m["epochs"], let epochs = reader.integer(e, "baseline_training.epochs", in: 1...10_000, what: "an integer from 1 to 10000") {
            baselineTraining = Scenario.BaselineTraining(optimizer: optimizer, learningRate: rate, epochs: epochs)
        }

        var reference: Scenario.Reference? = nil
        if let node = top["reference"], let m = reader.mapping(node, "reference", allowed: ["source", "tolerance", "mean_site_accuracy"],
                                                              required: ["source", "mean_site_accuracy"]),
           let sourceNode = m["source"], let source = reader.string(sourceNode, "reference.source"),
           let valuesNode = m["mean_site_accuracy"],
           let values = reader.mapping(valuesNode, "reference.mean_site_accuracy", allowed: valuesNode.mapping?.keys.compactMap { $0.scalar?.string } ?? []) {
            var parsed = Scenario.Reference(source: source, tolerance: 0.03, meanSiteAccuracy: [:])
            if let t = m["tolerance"], let v = reader.number(t, "reference.tolerance", in: 0...1, what: "a number from 0 to 1") { parsed.tolerance = v }
            for (key, value) in values {
                if let v = reader.number(value, "reference.mean_site_accuracy.\(key)", in: 0...1, what: "an accuracy from 0 to 1") {
                    parsed.meanSiteAccuracy[key] = v
                }
            }
            reference = parsed
        }

        var subgroups = Scenario.Subgroups()
        if let node = top["subgroups"], let m = reader.mapping(node, "subgroups", allowed: ["attributes", "min_group_size", "bootstrap"]) {
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
        }

        // In reading order: the scenario first, then each profile, each by line and column.
        let all = readingOrder(reader.diagnostics) + readingOrder(profileDiagnostics)
        guard all.isEmpty else { throw DiagnosticList(all) }
        var scenario = Scenario(name: name, file: file, fingerprint: StableHash.hex(Array(text.utf8)), seed: seed, sites: sites,
                                testFraction: testFraction, task: task, model: model, pretraining: pretraining, federation: federation,
                                arms: arms, baselines: baselines)
        scenario.subgroups = subgroups
        scenario.extraSeeds = extraSeeds
        scenario.dataset = dataset
        scenario.initialization = initialization
        scenario.baselineTraining = baselineTraining
        scenario.reference = reference
        return scenario
    }

    /// `federation.sampling`, `quorum`, `dropout` and `stragglers`; site ids are checked against the scenario's sites.
    static func participation(_ fields: [String: Node], siteIds: [String], reader: inout YAMLReader) -> ParticipationSettings {
        var settings = ParticipationSettings()
        func checkSite(_ node: Node, _ field: String) -> String? {
            guard let id = reader.string(node, field) else { return nil }
            guard siteIds.contains(id) else {
                var problem = "no site '\(id)' in this scenario"
                if let guess = suggestion(for: id, among: siteIds) { problem += "; did you mean '\(guess)'?" }
                reader.fail(node, field, problem)
                return nil
            }
            return id
        }
        if let n = fields["sampling"], let m = reader.mapping(n, "federation.sampling", allowed: ["fraction", "count"]) {
            if m.count != 1 { reader.fail(n, "federation.sampling", "give exactly one of fraction or count") }
            if let f = m["fraction"], let v = reader.number(f, "federation.sampling.fraction", in: 1e-6...1, what: "a fraction above 0 and at most 1") {
                settings.sampling = .fraction(v)
            } else if let c = m["count"], let v = reader.integer(c, "federation.sampling.count", in: 1...max(1, siteIds.count), what: "an integer from 1 to \(max(1, siteIds.count)) (the number of sites)") {
                settings.sampling = .count(v)
            }
        }
        if let n = fields["quorum"], let v = reader.integer(n, "federation.quorum", in: 1...max(1, siteIds.count), what: "an integer from 1 to \(max(1, siteIds.count)) (the number of sites)") {
            settings.quorum = v
        }
        if let n = fields["dropout"], let m = reader.mapping(n, "federation.dropout", allowed: ["probability", "schedule"]) {
            if let p = m["probability"], let v = reader.number(p, "federation.dropout.probability", in: 0...1, what: "a probability from 0 to 1") { settings.dropoutProbability = v }
            if let schedule = m["schedule"], let rounds = reader.mapping(schedule, "federation.dropout.schedule", allowed: schedule.mapping?.keys.compactMap { $0.scalar?.string } ?? []) {
                for (key, list) in rounds {
                    let field = "federation.dropout.schedule.\(key)"
                    guard let round = Int(key), round >= 1 else { reader.fail(list, field, "keys are round numbers from 1, found '\(key)'"); continue }
                    guard let items = reader.sequence(list, field) else { continue }
                    settings.dropoutSchedule[round] = Set(items.enumerated().compactMap { i, item in checkSite(item, "\(field)[\(i)]") })
                }
            }
        }
        if let n = fields["stragglers"], let m = reader.mapping(n, "federation.stragglers", allowed: ["seconds_per_step", "jitter", "deadline_seconds"]) {
            if let perStep = m["seconds_per_step"] {
                if let v = perStep.scalar.flatMap({ Double($0.string) }) {
                    if v > 0 && v.isFinite { settings.defaultSecondsPerStep = v } else { reader.fail(perStep, "federation.stragglers.seconds_per_step", "expected a positive number of seconds") }
                } else if let sitesMap = reader.mapping(perStep, "federation.stragglers.seconds_per_step", allowed: ["default"] + siteIds) {
                    for (key, value) in sitesMap {
                        guard let v = reader.number(value, "federation.stragglers.seconds_per_step.\(key)", in: 1e-12...1e6, what: "a positive number of seconds") else { continue }
                        if key == "default" { settings.defaultSecondsPerStep = v } else { settings.secondsPerStep[key] = v }
                    }
                }
            }
            if let j = m["jitter"], let v = reader.number(j, "federation.stragglers.jitter", in: 0...5, what: "a log-normal spread from 0 to 5") { settings.timeJitter = v }
            if let d = m["deadline_seconds"], let v = reader.number(d, "federation.stragglers.deadline_seconds", in: 1e-9...1e9, what: "a positive number of seconds") { settings.deadlineSeconds = v }
        }
        return settings
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
