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
import SiteFitTransformer
import SiteFitTuning

/// A transformer scenario: the sites agree a vocabulary of codes, a transformer is pretrained on the
/// source population (masked codes, then the task), and its arms federate it over each patient's
/// code sequence, beside arms that train the MLP on the same patients' hand-picked features.
extension Simulation {
    /// The vocabulary: each site reports how many cohort members have each code (small cells left
    /// out), and the server keeps the codes enough sites report, the most frequent first. Rows stay home.
    static func agreeVocabulary(_ scenario: inout Scenario, fleet: any SiteFleet, logger: Logger,
                                progress: @escaping @Sendable (String) -> Void) async throws -> CovariateAgreement? {
        guard var transformer = scenario.transformer else { return nil }
        let settings = transformer.sequences
        let counted = try await fleet.codeCounts(scenario, logger: logger, progress: progress)
        let reports = counted.map(\.counts)
        let agreed = CodeSequences.agree(reports, settings: settings)
        guard !agreed.isEmpty else {
            throw UserFacingError("\(scenario.file): no code is reported by \(settings.vocabulary.minimumSites) sites with at least "
                                  + "\(settings.vocabulary.minimumCount) patients each, so the transformer would have no vocabulary; "
                                  + "lower model.vocabulary.minimum_count or minimum_sites")
        }
        transformer.vocabulary = agreed
        scenario.transformer = transformer
        progress("vocabulary: \(agreed.count) codes agreed from \(reports.map { String($0.count) }.joined(separator: ", ")) reported by the sites")
        return CovariateAgreement(
            agreed: agreed.count, minimumCount: settings.vocabulary.minimumCount, minimumSites: settings.vocabulary.minimumSites,
            maximum: settings.vocabulary.maximum,
            reported: Dictionary(uniqueKeysWithValues: zip(counted.map(\.site), reports.map(\.count))),
            bytesUp: Dictionary(uniqueKeysWithValues: zip(counted.map(\.site), reports.map(CodeSequences.reportBytes))))
    }

    /// The transformer the scenario describes, over the agreed vocabulary.
    public static func transformerConfiguration(_ t: Scenario.TransformerModel) -> TransformerConfiguration {
        TransformerConfiguration(vocabularySize: t.vocabulary.count + CodeSequences.reservedIds, timeBuckets: CodeSequences.timeBuckets,
                                 maxLength: t.sequences.maxLength, width: t.width, heads: t.heads, layers: t.layers,
                                 feedForwardWidth: t.feedForwardWidth)
    }

    /// What the transformer's pretraining produced, beside the model.
    struct TransformerPretraining {
        var model: PretrainedModel<Transformer>
        var info: PretrainingInfo
        /// Mean loss over the chosen codes, per masked-code epoch.
        var maskedLosses: [Double]
    }

    /// The transformer pretrained on the source population: the same generated patients and task
    /// as the MLP's source, read as code sequences over the sites' vocabulary; masked-code
    /// modelling on the training part (labels unused), then the task with early stopping.
    /// Streams: (seed, "pretraining", "init" | "split" | "masked" | "shuffle").
    static func pretrainTransformer(_ scenario: Scenario, cacheDirectory: URL? = nil) throws -> TransformerPretraining {
        guard let t = scenario.transformer else { preconditionFailure("not a transformer scenario") }
        guard scenario.pretraining.enabled, let cacheDirectory else { return try pretrainTransformerAfresh(scenario) }
        // Everything the MLP's pretraining depends on, and the transformer's shape, stages and vocabulary.
        let key = StableHash.hex(Array((cacheKey(scenario, spec: scenario.task) + "|transformer|\(t.layers)|\(t.width)|\(t.heads)|"
            + "\(t.feedForwardWidth)|\(t.sequences.maxLength)|\(t.sequences.lookbackDays)|\(t.maskedEpochs)|\(t.maskedLearningRate)|"
            + t.vocabulary.map(\.name).joined(separator: ",")).utf8))
        let cached = cacheDirectory.appendingPathComponent("pretrained-transformer-\(key).safetensors")
        if let data = FileManager.default.contents(atPath: cached.path),
           let (model, _, notes) = try? TransformerCheckpoint.decode(Array(data), file: cached.path), notes["cache_key"] == key {
            let losses = (notes["masked_losses"] ?? "").split(separator: ",").compactMap { Double(String($0)) }
            return TransformerPretraining(model: model, info: info(notes, scenario: scenario), maskedLosses: losses)
        }
        let pretrained = try pretrainTransformerAfresh(scenario)
        var notes = transformerNotes(pretrained)
        notes["cache_key"] = key
        try? FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
        try? Data(TransformerCheckpoint.encode(pretrained.model, vocabulary: t.vocabulary.map(\.name), notes: notes)).write(to: cached, options: .atomic)
        return pretrained
    }

    /// The checkpoint metadata of a pretrained transformer: the MLP's notes and the masked-code losses.
    static func transformerNotes(_ pretrained: TransformerPretraining) -> [String: String] {
        var notes = checkpointNotes(pretrained.info)
        notes["masked_losses"] = pretrained.maskedLosses.map { "\($0)" }.joined(separator: ",")
        return notes
    }

    static func pretrainTransformerAfresh(_ scenario: Scenario) throws -> TransformerPretraining {
        guard let t = scenario.transformer else { preconditionFailure("not a transformer scenario") }
        let network = Transformer(transformerConfiguration(t))
        let columns = CodeSequences.columnNames(maxLength: t.sequences.maxLength)
        let identity = Standardizer.identity(columns: columns.count)
        var initRandom = RandomStream(seed: scenario.seed, "pretraining", "init")
        var parameters = network.initialParameters(random: &initRandom)
        guard scenario.pretraining.enabled else {
            var info = PretrainingInfo(sourcePatients: 0, epochs: 0, validationAccuracy: 0, validationAuroc: nil)
            info.pretrained = false
            return TransformerPretraining(model: PretrainedModel(network: network, parameters: parameters, standardizer: identity, columns: columns),
                                          info: info, maskedLosses: [])
        }
        let source = scenario.pretraining.source
        let database = try DatabaseQueue()
        let extract = try database.write { db -> CohortExtract in
            try ShardGenerator.populate(db, profile: source)
            var extract = try CohortExtraction.extract(db, spec: scenario.task, site: "source", file: ":memory:")
            let keys = zip(extract.personIds, extract.indexDates).map { "\($0)|\($1)" }
            extract.features = try CodeSequences.tokens(db, spec: scenario.task, settings: t.sequences, vocabulary: t.vocabulary,
                                                        keys: keys).map(Double.init)
            extract.columns = columns
            return extract
        }
        let (trainRows, validationRows) = sourceSplit(rows: extract.rows, scenario: scenario)
        let train = Dataset(features: identity.transform(extract.features, columns: columns.count, rows: trainRows),
                            labels: trainRows.map { extract.labels[$0] }, columns: columns.count)
        let validation = Dataset(features: identity.transform(extract.features, columns: columns.count, rows: validationRows),
                                 labels: validationRows.map { extract.labels[$0] }, columns: columns.count)
        var maskedLosses: [Double] = []
        if t.maskedEpochs > 0 {
            // The decoder's bias follows the model's tensors in the pretraining layout; it is dropped after.
            var withDecoder = parameters + [Float](repeating: 0, count: network.configuration.vocabularySize)
            var random = RandomStream(seed: scenario.seed, "pretraining", "masked")
            let batchSize = scenario.pretraining.batchSize
            maskedLosses = MaskedCodePretrainer(model: network, maxBatch: batchSize).pretrain(
                parameters: &withDecoder, data: train, epochs: t.maskedEpochs, batchSize: batchSize,
                optimizer: OptimizerConfiguration(kind: .adam, learningRate: t.maskedLearningRate), random: &random)
            parameters = Array(withDecoder.prefix(network.layout.count))
        }
        let info = trainOnSource(network, parameters: &parameters, train: train, validation: validation, scenario: scenario,
                                 sourcePatients: source.patients)
        return TransformerPretraining(model: PretrainedModel(network: network, parameters: parameters, standardizer: identity, columns: columns),
                                      info: info, maskedLosses: maskedLosses)
    }

    /// One seed of a transformer scenario. At each site an MLP site actor reads the cohort as
    /// feature rows and a transformer site actor reads it as code sequences; both extract and split
    /// it the same way, so both models see exactly the same patients, and only counts leave either.
    static func runTransformerSeed(
        _ scenario: Scenario, fleet: any SiteFleet, logger: Logger, cacheDirectory: URL?,
        sequentialSites: Bool, journal: RunJournal? = nil, progress: @escaping @Sendable (String) -> Void
    ) async throws -> Result {
        guard let t = scenario.transformer else { preconditionFailure("not a transformer scenario") }
        let (mlpModel, mlpInfo) = try pretrain(scenario, spec: scenario.task, cacheDirectory: cacheDirectory)
        let pretrained = try pretrainTransformer(scenario, cacheDirectory: cacheDirectory)
        if pretrained.info.pretrained {
            progress("pretrained transformer: masked-code loss \(pretrained.maskedLosses.first.map(Format3.string) ?? "–") → "
                     + "\(pretrained.maskedLosses.last.map(Format3.string) ?? "–"), validation accuracy \(Format3.string(pretrained.info.validationAccuracy)), "
                     + "AUROC \(Format3.string(pretrained.info.validationAuroc)); the MLP: AUROC \(Format3.string(mlpInfo.validationAuroc))")
        }
        let opened = try await fleet.transformerSites(scenario, model: pretrained.model, mlp: mlpModel, logger: logger, progress: progress)
        let sites = opened.transformer, mlpSites = opened.mlp
        var lengths = SequenceSummary()
        for site in sites {
            if let summary = site.summary.sequences {
                lengths.codes += summary.codes
                lengths.full += summary.full
                lengths.sequences += summary.sequences
            }
        }
        let network = pretrained.model.network
        var modelInfo = ModelInfo(widths: mlpModel.network.configuration.widths, parameters: mlpModel.network.layout.count,
                                  tensors: mlpModel.network.layout.tensors.map { TensorInfo(name: $0.name, shape: $0.shape, role: $0.role.rawValue) },
                                  features: mlpModel.columns)
        let vocabularySize = Double(network.configuration.vocabularySize)
        modelInfo.transformer = TransformerInfo(
            layers: t.layers, width: t.width, heads: t.heads, feedForwardWidth: t.feedForwardWidth, maxLength: t.sequences.maxLength,
            lookbackDays: t.sequences.lookbackDays, parameters: network.layout.count,
            tensors: network.layout.tensors.map { TensorInfo(name: $0.name, shape: $0.shape, role: $0.role.rawValue) },
            vocabulary: CovariateAgreement(agreed: t.vocabulary.count, minimumCount: t.sequences.vocabulary.minimumCount,
                                           minimumSites: t.sequences.vocabulary.minimumSites, maximum: t.sequences.vocabulary.maximum,
                                           reported: [:], bytesUp: [:]),
            // A target is a real token's id: never padding or mask, so a uniform guess spreads over the rest.
            maskedLosses: pretrained.maskedLosses, guessingLoss: log(vocabularySize - 2),
            meanCodes: Double(lengths.codes) / Double(max(lengths.sequences, 1)),
            truncatedShare: Double(lengths.full) / Double(max(lengths.sequences, 1)),
            mlpParameters: mlpModel.network.layout.count)
        modelInfo.transformer?.mlpArms = scenario.arms.filter(\.onMLP).map(\.name)
        let checkpoint = TransformerCheckpoint.encode(pretrained.model, vocabulary: t.vocabulary.map(\.name), notes: transformerNotes(pretrained))
        return try await federate(scenario, model: pretrained.model, sites: sites, mlp: (mlpModel, mlpSites),
                                  described: mlpSites.map(DescribedSite.init), modelInfo: modelInfo, pretrainingInfo: pretrained.info,
                                  checkpoint: checkpoint, logger: logger, sequentialSites: sequentialSites, journal: journal, progress: progress)
    }
}
