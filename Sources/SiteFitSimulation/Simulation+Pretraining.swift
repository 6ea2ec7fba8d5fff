import Foundation
import GRDB
import Logging
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitMetrics
import SiteFitNN
import SiteFitReport
import SiteFitScenario
import SiteFitTuning

extension Simulation {

    /// Trains the MLP on a synthetic source population held in an in-memory database, with the
    /// same OMOP tables and feature SQL as the sites, a validation split and early stopping.
    /// Streams: (seed, "pretraining", ...). A scenario's named checkpoint is used instead, and a
    /// model cached under `cacheDirectory` is reused when configuration and seed match.
    public static func pretrain(
        _ scenario: Scenario, spec: FeatureSpec, cacheDirectory: URL? = nil
    ) throws -> (PretrainedModel<MLP>, PretrainingInfo) {
        if !scenario.pretraining.enabled {
            // No source model: the seeded initialisation, and an identity standardiser (each site
            // standardises its own rows under the heart-disease protocol).
            let columns = columnNames(scenario, spec: spec)
            var configuration = scenario.model
            configuration.inputSize = columns.count
            let mlp = MLP(configuration)
            var initRandom = RandomStream(seed: scenario.seed, "pretraining", "init")
            let model = PretrainedModel(network: mlp, parameters: mlp.initialParameters(random: &initRandom, scheme: scenario.initialization),
                                        standardizer: .identity(columns: columns.count),
                                        columns: columns)
            var info = PretrainingInfo(sourcePatients: 0, epochs: 0, validationAccuracy: 0, validationAuroc: nil)
            info.pretrained = false
            return (model, info)
        }
        if !scenario.pretraining.heartDiseaseShards.isEmpty {
            return try heartDiseaseSource(scenario, logger: Logger(label: "sitefit.pretraining"))
        }
        if let file = scenario.pretraining.checkpoint {
            let (model, notes) = try loadCheckpoint(file)
            guard model.columns == spec.columnNames else {
                throw UserFacingError("\(file.relativePath): the checkpoint's features differ from the scenario's task; "
                                      + "pretrain again or change the task")
            }
            return (model, info(notes, scenario: scenario))
        }
        let key = cacheKey(scenario, spec: spec)
        let cached = cacheDirectory?.appendingPathComponent("pretrained-\(key).safetensors")
        if let cached, FileManager.default.fileExists(atPath: cached.path),
           let (model, notes) = try? loadCheckpoint(cached), notes["cache_key"] == key {
            return (model, info(notes, scenario: scenario))
        }
        let source = scenario.pretraining.source
        let database = try DatabaseQueue()
        let extract = try database.write { db -> CohortExtract in
            try ShardGenerator.populate(db, profile: source)
            return try CohortExtraction.extract(db, spec: spec, site: "source", file: ":memory:")
        }
        let (model, info) = fit(extract, scenario: scenario, standardize: true, sourcePatients: source.patients)
        var notes = checkpointNotes(info)
        notes["cache_key"] = key
        if let cached {
            try? FileManager.default.createDirectory(at: cached.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? Data(Checkpoint.encode(model, notes: notes)).write(to: cached, options: .atomic)
        }
        return (model, info)
    }

    /// Pretraining proper: a seeded validation split of the source rows, (optionally) a
    /// standardiser fitted on the training part, Adam with early stopping on the validation loss.
    static func fit(_ extract: CohortExtract, scenario: Scenario, standardize: Bool, sourcePatients: Int) -> (PretrainedModel<MLP>, PretrainingInfo) {
        let (trainRows, validationRows) = sourceSplit(rows: extract.rows, scenario: scenario)
        let columns = extract.columns.count
        let standardizer = standardize ? Standardizer(fitting: extract.features, columns: columns, rows: trainRows)
            : .identity(columns: columns)
        let train = Dataset(features: standardizer.transform(extract.features, columns: columns, rows: trainRows),
                            labels: trainRows.map { extract.labels[$0] }, columns: columns)
        let validation = Dataset(features: standardizer.transform(extract.features, columns: columns, rows: validationRows),
                                 labels: validationRows.map { extract.labels[$0] }, columns: columns)
        var configuration = scenario.model
        configuration.inputSize = columns
        let mlp = MLP(configuration)
        var initRandom = RandomStream(seed: scenario.seed, "pretraining", "init")
        var parameters = mlp.initialParameters(random: &initRandom, scheme: scenario.initialization)
        let info = trainOnSource(mlp, parameters: &parameters, train: train, validation: validation, scenario: scenario,
                                 sourcePatients: sourcePatients)
        return (PretrainedModel(network: mlp, parameters: parameters, standardizer: standardizer, columns: extract.columns), info)
    }

    /// The source's rows split for pretraining: a seeded share held out for validation, each part in row order.
    static func sourceSplit(rows: Int, scenario: Scenario) -> (train: [Int], validation: [Int]) {
        var random = RandomStream(seed: scenario.seed, "pretraining", "split")
        var order = Array(0..<rows)
        random.shuffle(&order)
        let validationCount = Int(Double(rows) * scenario.pretraining.validationFraction)
        return (Array(order.dropFirst(validationCount)).sorted(), Array(order.prefix(validationCount)).sorted())
    }

    /// Supervised training on the source task, every tensor, Adam with early stopping on the
    /// validation loss; the validation scores then describe the pretrained model.
    static func trainOnSource<Network: NeuralModel>(_ network: Network, parameters: inout [Float], train: Dataset, validation: Dataset,
                                                    scenario: Scenario, sourcePatients: Int) -> PretrainingInfo {
        var trainer = Trainer(model: network, maxBatch: max(scenario.pretraining.batchSize, 256))
        var shuffle = RandomStream(seed: scenario.seed, "pretraining", "shuffle")
        let summary = trainer.train(
            parameters: &parameters, data: train, selection: FineTuningMode.full.selection(for: network.layout),
            configuration: TrainingConfiguration(
                optimizer: OptimizerConfiguration(kind: .adam, learningRate: scenario.pretraining.learningRate),
                epochs: scenario.pretraining.epochs, batchSize: scenario.pretraining.batchSize),
            random: &shuffle, earlyStopping: EarlyStopping(validation: validation, patience: scenario.pretraining.patience))
        let scores = trainer.predict(parameters: parameters, data: validation)
        return PretrainingInfo(sourcePatients: sourcePatients, epochs: summary.epochs,
                               validationAccuracy: Metrics.accuracy(scores: scores, labels: validation.labels),
                               validationAuroc: Metrics.auroc(scores: scores, labels: validation.labels))
    }

    /// Real hospitals as the source: each one's FLamby train rows, standardised with that site's own
    /// train statistics (as its federated peers standardise theirs), pooled for pretraining.
    static func heartDiseaseSource(_ scenario: Scenario, logger: Logger) throws -> (PretrainedModel<MLP>, PretrainingInfo) {
        var pooled = CohortExtract(columns: HeartDiseaseCohort.columns, personIds: [], features: [], labels: [], sex: [], race: [])
        var names: [String] = []
        for shard in scenario.pretraining.heartDiseaseShards {
            let id = shard.deletingPathExtension().lastPathComponent
            if !FileManager.default.fileExists(atPath: shard.path) {
                try HeartDiseaseImport.importSite(id, from: shard.deletingLastPathComponent(), to: shard.deletingLastPathComponent(), logger: logger)
            }
            let cohort = try HeartDiseaseCohortSource(shard: SiteShard(site: id, url: shard)).load(seed: scenario.seed)
            let (extract, trainRows) = (cohort.extract, cohort.split.trainRows)
            let columns = extract.columns.count
            let own = Standardizer(fitting: extract.features, columns: columns, rows: trainRows)
            pooled.features += own.transform(extract.features, columns: columns, rows: trainRows).map(Double.init)
            pooled.labels += trainRows.map { extract.labels[$0] }
            pooled.personIds += trainRows.map { extract.personIds[$0] }
            pooled.sex += trainRows.map { extract.sex[$0] }
            pooled.race += trainRows.map { extract.race[$0] }
            names.append("\(HeartDiseaseImport.hospitalNames[id] ?? id) (\(trainRows.count))")
        }
        var (model, info) = fit(pooled, scenario: scenario, standardize: false, sourcePatients: pooled.rows)
        info.source = "the FLamby train patients of " + names.joined(separator: " and ")
        return (model, info)
    }

    /// The model's input columns under the scenario's dataset.
    public static func columnNames(_ scenario: Scenario, spec: FeatureSpec) -> [String] {
        scenario.dataset == .heartDisease ? HeartDiseaseCohort.columns : spec.columnNames
    }

    /// The checkpoint metadata that records how the model was pretrained (read back by `info`).
    static func checkpointNotes(_ info: PretrainingInfo) -> [String: String] {
        ["source_patients": String(info.sourcePatients), "epochs_run": String(info.epochs),
         "validation_accuracy": "\(info.validationAccuracy)", "validation_auroc": info.validationAuroc.map { "\($0)" } ?? ""]
    }

    static func loadCheckpoint(_ url: URL) throws -> (PretrainedModel<MLP>, [String: String]) {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw UserFacingError("checkpoint '\(url.relativePath)' cannot be read")
        }
        do {
            return try Checkpoint.decode(Array(data), file: url.relativePath)
        } catch {
            throw UserFacingError(error.description)
        }
    }

    static func info(_ notes: [String: String], scenario: Scenario) -> PretrainingInfo {
        PretrainingInfo(sourcePatients: notes["source_patients"].flatMap(Int.init) ?? 0,
                        epochs: notes["epochs_run"].flatMap(Int.init) ?? 0,
                        validationAccuracy: notes["validation_accuracy"].flatMap(Double.init) ?? .nan,
                        validationAuroc: notes["validation_auroc"].flatMap(Double.init))
    }

    /// Everything pretraining depends on, hashed: the same key means the same model.
    static func cacheKey(_ scenario: Scenario, spec: FeatureSpec) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let p = scenario.pretraining
        let parts: [String] = [
            String(decoding: (try? encoder.encode(scenario.model)) ?? Data(), as: UTF8.self),
            String(decoding: (try? encoder.encode(p.source)) ?? Data(), as: UTF8.self),
            spec.columnNames.joined(separator: ","), "\(spec.lookbackDays)", "\(spec.outcomeWindowDays)",
            // Who is in the cohort and what the outcome is decide the source's rows and labels.
            String(describing: spec.cohort), "\(spec.targetCohortId)|\(spec.outcomeCohortId)",
            "\(p.epochs)", "\(p.batchSize)", "\(p.learningRate)", "\(p.validationFraction)", "\(p.patience)",
            String(scenario.seed), ShardGenerator.version, siteFitVersion,
        ]
        return StableHash.hex(Array(parts.joined(separator: "|").utf8))
    }
}
