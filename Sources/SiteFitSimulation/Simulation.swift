import Crypto
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

/// Runs a scenario end to end: shards → pretraining → one federation per arm → metrics.
public enum Simulation {
    /// The result of a run, ready for `ReportWriter`.
    public struct Result: Sendable {
        public var metrics: RunMetrics
        public var predictions: [PredictionRow]
        /// The pretrained model as a safetensors checkpoint (written next to the report).
        public var checkpoint: [UInt8]
    }

    /// Makes sure every site's shard exists and matches its profile; builds missing ones.
    /// An existing shard is never rewritten by a run: a stale one is an error with the fix.
    public static func provisionShards(
        _ scenario: Scenario, logger: Logger, progress: @Sendable (String) -> Void
    ) throws -> [SiteShard] {
        try scenario.sites.map { site in
            let file = site.shardFile
            if site.importedHeartDisease {
                // A real hospital: imported once from the UCI files beside the shard, never rewritten.
                if !FileManager.default.fileExists(atPath: file.path) {
                    progress("importing UCI Heart Disease site '\(site.profile.id)' → \(file.relativePath)")
                    let folder = file.deletingLastPathComponent()
                    try HeartDiseaseImport.importSite(site.profile.id, from: folder, to: folder, logger: logger)
                }
                return try SiteShard(site: site.profile.id, url: file)
            }
            if !FileManager.default.fileExists(atPath: file.path) {
                progress("building shard for site '\(site.profile.id)' → \(file.relativePath)")
                try ShardBuilder.build(profile: site.profile, to: file, logger: logger)
            }
            let shard = try SiteShard(site: site.profile.id, url: file)
            let fingerprint = try shard.profileFingerprint()
            guard fingerprint == site.profile.fingerprint else {
                throw ShardError(site: site.profile.id, file: file.relativePath, problem:
                    "the shard was built from a different profile than \(site.profileFile.relativePath); "
                    + "rebuild it with `sitefit sites build \(site.profileFile.relativePath)`")
            }
            return shard
        }
    }

    /// Trains the MLP on a synthetic source population held in an in-memory database, with the
    /// same OMOP tables and feature SQL as the sites, a validation split and early stopping.
    /// Streams: (seed, "pretraining", ...). A scenario's named checkpoint is used instead, and a
    /// model cached under `cacheDirectory` is reused when configuration and seed match.
    public static func pretrain(
        _ scenario: Scenario, spec: FeatureSpec, cacheDirectory: URL? = nil
    ) throws -> (PretrainedModel, PretrainingInfo) {
        if !scenario.pretraining.enabled {
            // No source model: the seeded initialisation, and an identity standardiser (each site
            // standardises its own rows under the heart-disease protocol).
            let columns = columnNames(scenario, spec: spec)
            var configuration = scenario.model
            configuration.inputSize = columns.count
            let mlp = MLP(configuration.base)
            var initRandom = RandomStream(seed: scenario.seed, "pretraining", "init")
            let model = PretrainedModel(mlp: mlp, parameters: mlp.initialParameters(random: &initRandom, scheme: scenario.initialization),
                                        standardizer: Standardizer(means: [Double](repeating: 0, count: columns.count),
                                                                   standardDeviations: [Double](repeating: 1, count: columns.count)),
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
    static func fit(_ extract: CohortExtract, scenario: Scenario, standardize: Bool, sourcePatients: Int) -> (PretrainedModel, PretrainingInfo) {
        var random = RandomStream(seed: scenario.seed, "pretraining", "split")
        var order = Array(0..<extract.rows)
        random.shuffle(&order)
        let validationCount = Int(Double(extract.rows) * scenario.pretraining.validationFraction)
        let validationRows = Array(order.prefix(validationCount)).sorted()
        let trainRows = Array(order.dropFirst(validationCount)).sorted()
        let columns = extract.columns.count
        let standardizer = standardize ? Standardizer(fitting: extract.features, columns: columns, rows: trainRows)
            : Standardizer(means: [Double](repeating: 0, count: columns), standardDeviations: [Double](repeating: 1, count: columns))
        let train = Dataset(features: standardizer.transform(extract.features, columns: columns, rows: trainRows),
                            labels: trainRows.map { extract.labels[$0] }, columns: columns)
        let validation = Dataset(features: standardizer.transform(extract.features, columns: columns, rows: validationRows),
                                 labels: validationRows.map { extract.labels[$0] }, columns: columns)
        var configuration = scenario.model
        configuration.inputSize = columns
        let mlp = MLP(configuration.base)
        var initRandom = RandomStream(seed: scenario.seed, "pretraining", "init")
        var parameters = mlp.initialParameters(random: &initRandom, scheme: scenario.initialization)
        var trainer = Trainer(mlp: mlp, maxBatch: max(scenario.pretraining.batchSize, 256))
        var shuffle = RandomStream(seed: scenario.seed, "pretraining", "shuffle")
        let summary = trainer.train(
            parameters: &parameters, data: train, selection: FineTuningMode.full.selection(for: mlp.layout),
            configuration: TrainingConfiguration(
                optimizer: OptimizerConfiguration(kind: .adam, learningRate: scenario.pretraining.learningRate),
                epochs: scenario.pretraining.epochs, batchSize: scenario.pretraining.batchSize),
            random: &shuffle, earlyStopping: EarlyStopping(validation: validation, patience: scenario.pretraining.patience))
        let scores = trainer.predict(parameters: parameters, data: validation)
        let model = PretrainedModel(mlp: mlp, parameters: parameters, standardizer: standardizer, columns: extract.columns)
        let info = PretrainingInfo(sourcePatients: sourcePatients, epochs: summary.epochs,
                                   validationAccuracy: Metrics.accuracy(scores: scores, labels: validation.labels),
                                   validationAuroc: Metrics.auroc(scores: scores, labels: validation.labels))
        return (model, info)
    }

    /// Real hospitals as the source: each one's FLamby train rows, standardised with that site's own
    /// train statistics (as its federated peers standardise theirs), pooled for pretraining.
    static func heartDiseaseSource(_ scenario: Scenario, logger: Logger) throws -> (PretrainedModel, PretrainingInfo) {
        var pooled = CohortExtract(columns: HeartDiseaseCohort.columns, personIds: [], features: [], labels: [], sex: [], race: [])
        var names: [String] = []
        for shard in scenario.pretraining.heartDiseaseShards {
            let id = shard.deletingPathExtension().lastPathComponent
            if !FileManager.default.fileExists(atPath: shard.path) {
                try HeartDiseaseImport.importSite(id, from: shard.deletingLastPathComponent(), to: shard.deletingLastPathComponent(), logger: logger)
            }
            let split = try HeartDiseaseCohort.extract(SiteShard(site: id, url: shard))
            let columns = split.extract.columns.count
            let trainRows = split.isTest.indices.filter { !split.isTest[$0] }
            let own = Standardizer(fitting: split.extract.features, columns: columns, rows: trainRows)
            pooled.features += own.transform(split.extract.features, columns: columns, rows: trainRows).map(Double.init)
            pooled.labels += trainRows.map { split.extract.labels[$0] }
            pooled.personIds += trainRows.map { split.extract.personIds[$0] }
            pooled.sex += trainRows.map { split.extract.sex[$0] }
            pooled.race += trainRows.map { split.extract.race[$0] }
            names.append("\(HeartDiseaseImport.hospitalNames[id] ?? id) (\(trainRows.count))")
        }
        var (model, info) = fit(pooled, scenario: scenario, standardize: false, sourcePatients: pooled.rows)
        info.source = "the FLamby train patients of " + names.joined(separator: " and ")
        return (model, info)
    }

    /// The model's input columns under the scenario's dataset.
    static func columnNames(_ scenario: Scenario, spec: FeatureSpec) -> [String] {
        scenario.dataset == .heartDisease ? HeartDiseaseCohort.columns : spec.columnNames
    }

    /// The checkpoint metadata that records how the model was pretrained (read back by `info`).
    static func checkpointNotes(_ info: PretrainingInfo) -> [String: String] {
        ["source_patients": String(info.sourcePatients), "epochs_run": String(info.epochs),
         "validation_accuracy": "\(info.validationAccuracy)", "validation_auroc": info.validationAuroc.map { "\($0)" } ?? ""]
    }

    static func loadCheckpoint(_ url: URL) throws -> (PretrainedModel, [String: String]) {
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
            String(decoding: (try? encoder.encode(scenario.model.base)) ?? Data(), as: UTF8.self),
            String(decoding: (try? encoder.encode(p.source)) ?? Data(), as: UTF8.self),
            spec.columnNames.joined(separator: ","), "\(spec.lookbackDays)", "\(spec.outcomeWindowDays)",
            "\(p.epochs)", "\(p.batchSize)", "\(p.learningRate)", "\(p.validationFraction)", "\(p.patience)",
            String(scenario.seed), ShardGenerator.version, siteFitVersion,
        ]
        return StableHash.hex(Array(parts.joined(separator: "|").utf8))
    }

    /// Runs every arm of `scenario`; `progress` receives one line per step worth telling a user.
    /// `sequentialSites` trains one site at a time (a check that results do not depend on scheduling).
    /// With several seeds the whole scenario runs once per seed; the first seed's run is the
    /// result, and `metrics.seeds` holds every seed's headline numbers.
    public static func run(
        _ scenario: Scenario, logger: Logger = Logger(label: "sitefit.simulation"), cacheDirectory: URL? = nil,
        sequentialSites: Bool = false, progress: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> Result {
        var result = try await runSeed(scenario, logger: logger, cacheDirectory: cacheDirectory,
                                       sequentialSites: sequentialSites, progress: progress)
        guard !scenario.extraSeeds.isEmpty else { return result }
        var runs = [result.metrics.arms]
        result.predictions = result.predictions.map { var row = $0; row.seed = scenario.seed; return row }
        // The other seeds are independent runs: they go concurrently, a few at a time (each holds
        // its own sites' rows), and are put back in seed order. The first seed ran alone, so every
        // shard it built or imported exists before the others start.
        let seeds = scenario.extraSeeds
        let width = max(1, ProcessInfo.processInfo.activeProcessorCount)
        var finished: [Int: Result] = [:]
        try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            var next = 0
            func start(_ index: Int) {
                var again = scenario
                again.seed = seeds[index]
                // A source population derived from the scenario seed follows it, as `--seed` does.
                if scenario.pretraining.source.seed == scenario.seed &+ 1 { again.pretraining.source.seed = seeds[index] &+ 1 }
                let reseeded = again
                progress("seed \(seeds[index]) (\(index + 2) of \(seeds.count + 1))")
                group.addTask {
                    (index, try await runSeed(reseeded, logger: logger, cacheDirectory: cacheDirectory,
                                              sequentialSites: sequentialSites, progress: progress))
                }
            }
            while next < min(width, seeds.count) { start(next); next += 1 }
            for try await (index, run) in group {
                finished[index] = run
                if next < seeds.count { start(next); next += 1 }
            }
        }
        for index in seeds.indices {
            let run = finished[index]!
            runs.append(run.metrics.arms)
            result.predictions += run.predictions.map { var row = $0; row.seed = seeds[index]; return row }
        }
        result.metrics.seeds = SeedSummary(seeds: [scenario.seed] + scenario.extraSeeds, runs: runs)
        return result
    }

    static func runSeed(
        _ scenario: Scenario, logger: Logger, cacheDirectory: URL?,
        sequentialSites: Bool, progress: @escaping @Sendable (String) -> Void
    ) async throws -> Result {
        let spec = scenario.task
        let shards = try provisionShards(scenario, logger: logger, progress: progress)
        if !scenario.pretraining.enabled {
            progress("no pretraining: every arm starts from the seeded initialisation (seed \(scenario.seed))")
        } else if !scenario.pretraining.heartDiseaseShards.isEmpty {
            progress("pretraining on the train patients of " + scenario.pretraining.heartDiseaseShards.map { $0.deletingPathExtension().lastPathComponent }
                .joined(separator: ", "))
        } else if let checkpoint = scenario.pretraining.checkpoint {
            progress("using the pretrained checkpoint \(checkpoint.relativePath)")
        } else {
            progress("pretraining on \(scenario.pretraining.source.patients) source patients (up to \(scenario.pretraining.epochs) epochs)")
        }
        let (model, pretrainingInfo) = try pretrain(scenario, spec: spec, cacheDirectory: cacheDirectory)
        if pretrainingInfo.pretrained {
            progress("pretrained model: validation accuracy \(Format3.string(pretrainingInfo.validationAccuracy)), "
                     + "AUROC \(Format3.string(pretrainingInfo.validationAuroc))")
        }
        let maxBatch = max(scenario.federation.batchSize, 256)
        let sites = try shards.map {
            scenario.dataset == .heartDisease
                ? try SiteActor(heartDisease: $0, model: model, seed: scenario.seed, maxBatch: maxBatch, logger: logger)
                : try SiteActor(shard: $0, spec: spec, model: model, seed: scenario.seed, testFraction: scenario.testFraction,
                                maxBatch: maxBatch, logger: logger)
        }
        var arms: [ArmMetrics] = []
        var predictions: [PredictionRow] = []
        let bootstrap = BootstrapCache()
        for arm in scenario.arms {
            let (metrics, rows) = try await runArm(arm, scenario: scenario, model: model, sites: sites, logger: logger,
                                                   sequentialSites: sequentialSites, bootstrap: bootstrap,
                                                   progress: progress)
            arms.append(metrics)
            predictions += rows
        }
        for baseline in scenario.baselines {
            if baseline == .localEach {
                for index in sites.indices {
                    let (metrics, rows) = try await runLocalEach(index, scenario: scenario, model: model, sites: sites,
                                                                 bootstrap: bootstrap, progress: progress)
                    arms.append(metrics)
                    predictions += rows
                }
                continue
            }
            let (metrics, rows) = try await runBaseline(baseline, scenario: scenario, model: model, sites: sites,
                                                        bootstrap: bootstrap, progress: progress)
            arms.append(metrics)
            predictions += rows
        }
        var siteInfos: [SiteInfo] = []
        let distances = featureDistances(sites.map(\.summary))
        for ((reference, site), distance) in zip(zip(scenario.sites, sites), distances) {
            let summary = site.summary
            var info = SiteInfo(
                id: reference.profile.id, name: reference.profile.name, shard: reference.shardFile.relativePath,
                cohortSize: summary.cohortSize, trainSize: site.trainSize, testSize: site.testSize,
                outcomePrevalence: summary.outcomePrevalence, femaleShare: summary.femaleShare, meanAge: summary.meanAge,
                creatinineUnit: reference.profile.creatinineUnit.rawValue, labMissingShare: summary.labMissingShare)
            info.raceShares = summary.raceShares
            info.ageBandShares = summary.ageBandShares
            info.featureDistance = distance
            siteInfos.append(info)
        }
        var info = ScenarioInfo(name: scenario.name, file: scenario.file, fingerprint: scenario.fingerprint,
                                seed: scenario.seed, sitefitVersion: siteFitVersion)
        info.dataset = scenario.dataset.rawValue
        if scenario.dataset == .heartDisease {
            info.task = "heart disease (num > 0) from 13 clinical findings, FLamby's Fed-Heart-Disease protocol on the UCI data of four real hospitals"
        }
        var metrics = RunMetrics(
            scenario: info,
            sites: siteInfos,
            model: ModelInfo(widths: model.mlp.configuration.widths, parameters: model.mlp.layout.count,
                             tensors: model.mlp.layout.tensors.map { TensorInfo(name: $0.name, shape: $0.shape, role: $0.role.rawValue) },
                             features: model.columns),
            pretraining: pretrainingInfo, arms: arms)
        metrics.reference = scenario.reference.map {
            ReferenceValues(source: $0.source, tolerance: $0.tolerance, meanSiteAccuracy: $0.meanSiteAccuracy)
        }
        return Result(metrics: metrics, predictions: predictions,
                      checkpoint: Checkpoint.encode(model, notes: checkpointNotes(pretrainingInfo)))
    }

    static func runArm(
        _ arm: Scenario.Arm, scenario: Scenario, model: PretrainedModel, sites: [SiteActor], logger: Logger,
        sequentialSites: Bool = false, bootstrap: BootstrapCache, progress: @escaping @Sendable (String) -> Void
    ) async throws -> (ArmMetrics, [PredictionRow]) {
        // LoRA and adapter arms extend the pretrained network; the new tensors start as the identity change.
        var armConfiguration = model.mlp.configuration
        armConfiguration.lora = arm.mode == .lora ? arm.lora : nil
        armConfiguration.adapter = arm.mode == .adapter ? arm.adapter : nil
        let mlp = MLP(armConfiguration)
        var extensionRandom = RandomStream(seed: scenario.seed, "extension", arm.name)
        let start = mlp.parameters(extending: model.parameters, of: model.mlp, random: &extensionRandom)
        let selection = arm.mode.selection(for: mlp.layout, withBiases: arm.loraTrainsBiases)
        // The strategy decides what leaves a site: personalised arms keep their bias terms at home.
        let strategy = arm.makeStrategy(trainedCount: selection.count)
        let shared = strategy.shared(from: selection)
        let server = FederatedServer(pretrained: start, selection: shared, strategy: strategy, logger: logger)
        for site in sites { await site.begin(mlp: mlp, parameters: start, selection: selection, shared: shared) }
        let federation = scenario.federation
        let configuration = TrainingConfiguration(
            optimizer: OptimizerConfiguration(kind: federation.optimizer, learningRate: arm.learningRate,
                                              weightDecay: federation.weightDecay, gradientClipNorm: federation.gradientClipNorm),
            epochs: arm.localEpochs, batchSize: federation.batchSize, positiveWeight: Float(federation.positiveWeight),
            proximalMu: strategy.proximalMu, steps: federation.localSteps)
        let participation = federation.participation
        let siteIds = sites.map(\.id)
        let sampleRate = participation.sampleRate(siteCount: sites.count)
        // The loader refuses this too; checked here as well for scenarios built in code, since the
        // accountant's ε holds for Poisson sampling only.
        if arm.privacy != nil, case .count(let k) = participation.sampling, k < sites.count {
            throw UserFacingError("arm '\(arm.name)': DP needs Poisson sampling (federation.sampling.fraction) or every site "
                                  + "each round; a fixed count of \(k) of \(sites.count) sites is not covered by the accountant")
        }
        var accountant = RDPAccountant()
        var stoppedByBudget: Int? = nil

        var rounds: [RoundMetrics] = []
        var broadcast = await server.broadcast(round: 0)
        var predictions = try await evaluate(sites, broadcast: broadcast)
        let pretrainedPredictions = predictions
        let sharedStart = shared.gather(from: start)
        var round0 = RoundMetrics(round: 0, evaluation: evaluation(predictions, subgroups: scenario.subgroups), bytesUp: 0, bytesDown: 0,
                                  acceptedSites: [], rejected: [], meanLocalLoss: nil)
        round0.parameterDrift = ParameterDrift(l2: 0, relative: 0)
        rounds.append(round0)
        var totalSteps = 0, totalExamples = 0, stateBytes = 0, updateBytes = 0, siteRoundsTrained = 0
        var totalSimulatedSeconds = 0.0
        for round in 1...federation.rounds {
            // The budget is checked before a round runs: a round that would overspend never starts.
            if let privacy = arm.privacy {
                var next = accountant
                next.compose(noiseMultiplier: privacy.noiseMultiplier, sampleRate: sampleRate)
                if let budget = privacy.epsilonBudget, next.epsilon(delta: privacy.delta).epsilon > budget {
                    stoppedByBudget = round - 1
                    progress("[\(arm.name)] stopped before round \(round): it would take ε past the budget of \(budget)")
                    break
                }
                accountant = next
            }
            broadcast = await server.broadcast(round: round)
            let message = broadcast
            // Participation is keyed by round and site, not by arm: every arm meets the same
            // samples, dropouts and slow sites, so differences between arms are the arms' own.
            let sampled = RoundPlanner.sampled(siteIds: siteIds, settings: participation, seed: scenario.seed, arm: "", round: round)
            var absent: [Rejection] = []
            var training: [Int] = []
            for index in sampled {
                if let absence = RoundPlanner.dropsOut(site: siteIds[index], settings: participation, seed: scenario.seed,
                                                       arm: "", round: round) {
                    absent.append(Rejection(site: siteIds[index], reason: describe(absence)))
                } else {
                    training.append(index)
                }
            }
            // Sites train concurrently; results are put back in site order before aggregation so
            // the average (and everything after it) does not depend on which site finished first.
            let clipNorm = arm.privacy?.clipNorm
            let updates = sequentialSites ? try await {
                var collected: [(Int, LocalUpdate)] = []
                for index in training {
                    collected.append((index, try await sites[index].localUpdate(
                        arm: arm.name, round: round, broadcast: message, configuration: configuration,
                        clipNorm: clipNorm, secure: arm.secureAggregation)))
                }
                return collected
            }() : try await withThrowingTaskGroup(of: (Int, LocalUpdate).self) { group in
                for index in training {
                    let site = sites[index]
                    group.addTask {
                        (index, try await site.localUpdate(arm: arm.name, round: round, broadcast: message,
                                                           configuration: configuration, clipNorm: clipNorm,
                                                           secure: arm.secureAggregation))
                    }
                }
                var collected: [(Int, LocalUpdate)] = []
                for try await result in group { collected.append(result) }
                return collected.sorted { $0.0 < $1.0 }
            }
            var arrived: [LocalUpdate] = []
            for (index, update) in updates {
                let site = sites[index]
                totalSteps += update.steps
                totalExamples += federation.localSteps.map { min($0 * federation.batchSize, $0 * site.trainSize) }
                    ?? site.trainSize * arm.localEpochs
                siteRoundsTrained += 1
                stateBytes = max(stateBytes, update.optimizerStateBytes)
                updateBytes = max(updateBytes, arm.secureAggregation ? maskedUpdateBytes(count: shared.count) : update.blob.count)
                let seconds = RoundPlanner.simulatedSeconds(site: site.id, steps: update.steps, settings: participation,
                                                            seed: scenario.seed, arm: "", round: round)
                totalSimulatedSeconds += seconds
                if let deadline = participation.deadlineSeconds, seconds > deadline {
                    absent.append(Rejection(site: site.id, reason: describe(.missedDeadline(seconds: seconds, deadline: deadline))))
                } else {
                    arrived.append(update)
                }
            }
            // Dropouts were found before training and late sites after it: list them in site order.
            let position = Dictionary(uniqueKeysWithValues: sampled.map { (siteIds[$0], $0) })
            absent.sort { position[$0.site]! < position[$1.site]! }
            let privateAggregation = arm.privacy.map {
                PrivateAggregation(settings: $0, expectedParticipants: participation.expectedParticipants(siteCount: sites.count),
                                   noise: RandomStream(seed: scenario.seed, "dp-noise", arm.name, String(round)))
            }
            let outcome: AggregationOutcome
            var secureBytesUp = 0, secureBytesDown = 0
            if arm.secureAggregation {
                let result = try await secureAggregate(
                    arm: arm, round: round, masking: updates.map { sites[$0.0] }, arrived: Set(arrived.map(\.site)),
                    server: server, quorum: participation.quorum, privacy: privateAggregation)
                outcome = result.outcome
                secureBytesUp = result.bytesUp
                secureBytesDown = result.bytesDown
                if let survivors = result.rekeyedAmong {
                    absent = absent.map { a in
                        guard a.reason.hasPrefix("missed the deadline") else { return a }
                        return Rejection(site: a.site, reason: a.reason + " after masking; the round re-keyed among \(survivors) survivors")
                    }
                }
            } else {
                outcome = await server.aggregate(round: round, updates: arrived.map { ($0.site, $0.blob) },
                                                 quorum: participation.quorum, privacy: privateAggregation)
            }
            let after = await server.broadcast(round: round)
            predictions = try await evaluate(sites, broadcast: after)
            let evaluation = evaluation(predictions, subgroups: scenario.subgroups)
            let bytesUp = updates.reduce(0) { $0 + $1.1.blob.count } + secureBytesUp
            let epsilon = arm.privacy.map { accountant.epsilon(delta: $0.delta).epsilon }
            rounds.append(RoundMetrics(
                round: round, evaluation: evaluation, bytesUp: bytesUp, bytesDown: message.count * sampled.count + secureBytesDown,
                acceptedSites: outcome.acceptedSites,
                rejected: outcome.rejected.map { Rejection(site: $0.site, reason: $0.reason) },
                meanLocalLoss: updates.isEmpty ? nil : updates.reduce(0) { $0 + $1.1.loss } / Double(updates.count),
                sampledSites: sampled.map { siteIds[$0] }, absent: absent, skipped: outcome.skipped, epsilon: epsilon))
            rounds[rounds.count - 1].parameterDrift = parameterDrift(await server.globalValues(), from: sharedStart)
            var line = "[\(arm.name)] round \(round)/\(federation.rounds): accuracy \(Format3.string(evaluation.accuracy)), "
                + "AUROC \(Format3.string(evaluation.auroc)), \(outcome.acceptedSites.count)/\(sampled.count) updates accepted, "
                + "\(bytesUp) bytes up"
            if outcome.skipped { line += ", skipped (quorum \(participation.quorum))" }
            if let epsilon { line += ", ε = \(Format3.string(epsilon))" }
            progress(line)
        }
        let mask = TrainableMask(mlp: mlp, selection: selection)
        let siteRounds = Double(max(siteRoundsTrained, 1))
        var privacy = PrivacyFootprint(
            bytesUp: rounds.reduce(0) { $0 + $1.bytesUp }, bytesDown: rounds.reduce(0) { $0 + $1.bytesDown },
            bytesUpPerUpdate: updateBytes, parametersExposed: shared.count, parametersTotal: mlp.layout.count,
            tensorsExposed: shared.tensorNames)
        privacy.secureAggregation = arm.secureAggregation
        if let dp = arm.privacy {
            privacy.epsilon = accountant.epsilon(delta: dp.delta).epsilon
            privacy.delta = dp.delta
            privacy.noiseMultiplier = dp.noiseMultiplier
            privacy.clipNorm = dp.clipNorm
            privacy.stoppedByBudgetAfterRound = stoppedByBudget
        }
        var compute = ComputeFootprint(
            stepsPerSiteRound: Double(totalSteps) / siteRounds,
            trainingFlopsPerSiteRound: Double(totalExamples) * mlp.trainingFlopsPerExample(mask) / siteRounds,
            optimizerStateBytes: stateBytes)
        compute.simulatedSecondsPerSiteRound = totalSimulatedSeconds / siteRounds
        var metrics = ArmMetrics(name: arm.name, mode: arm.mode.rawValue, strategy: arm.strategyName, learningRate: arm.learningRate,
                                 localEpochs: arm.localEpochs, rounds: rounds, final: rounds.last!.evaluation,
                                 privacy: privacy, compute: compute)
        metrics.biasDrift = biasDrift(before: pretrainedPredictions, after: predictions, subgroups: scenario.subgroups,
                                      seed: scenario.seed, bootstrap: bootstrap)
        let finalBroadcast = await server.broadcast(round: rounds.last!.round)
        metrics.membershipInference = try await membershipInference(sites, broadcasts: sites.map { _ in finalBroadcast })
        let rows = predictionRows(arm: arm.name, predictions)
        return (metrics, rows)
    }

    /// A baseline as an arm of strategy "baseline": round 0 is the pretrained model, the last round
    /// the baseline's final model; no update crosses the network, so nothing is exposed.
    static func runBaseline(
        _ baseline: Scenario.Baseline, scenario: Scenario, model: PretrainedModel, sites: [SiteActor],
        bootstrap: BootstrapCache, progress: @escaping @Sendable (String) -> Void
    ) async throws -> (ArmMetrics, [PredictionRow]) {
        let federation = scenario.federation
        let (selection, configuration, localRounds, pretrainedBlob) = await beginBaseline(scenario, model: model, sites: sites)
        let start = try await evaluate(sites, broadcast: pretrainedBlob)
        var final = start
        var finalBlobs = sites.map { _ in pretrainedBlob }
        let name: String
        var steps = 0.0
        switch baseline {
        case .localEach:
            preconditionFailure("local_each runs through runLocalEach")
        case .pretrained:
            name = scenario.pretraining.enabled ? "pretrained" : "initial model"
        case .local:
            name = "local only"
            // Each site trains alone for as many epochs as a federated site would, from its own model.
            let trained = try await withThrowingTaskGroup(of: (Int, SitePredictions, Int, [UInt8]).self) { group in
                for (index, site) in sites.enumerated() {
                    group.addTask {
                        var blob = pretrainedBlob
                        var siteSteps = 0
                        for round in 1...localRounds {
                            let update = try await site.localUpdate(arm: "baseline-local", round: round, broadcast: blob,
                                                                    configuration: configuration)
                            blob = update.blob
                            siteSteps += update.steps
                        }
                        return (index, try await site.evaluate(broadcast: blob), siteSteps, blob)
                    }
                }
                var collected: [(Int, SitePredictions, Int, [UInt8])] = []
                for try await result in group { collected.append(result) }
                return collected.sorted { $0.0 < $1.0 }
            }
            steps = Double(trained.reduce(0) { $0 + $1.2 }) / Double(sites.count * federation.rounds)
            final = trained.map(\.1)
            finalBlobs = trained.map(\.3)
        case .pooled:
            name = "pooled (simulation only)"
            var pooledFeatures: [Float] = [], pooledLabels: [Float] = []
            for site in sites {
                let rows = await site.trainingRowsForPooledBaseline()
                pooledFeatures += rows.features
                pooledLabels += rows.labels
            }
            let pooled = Dataset(features: pooledFeatures, labels: pooledLabels, columns: model.mlp.configuration.inputSize)
            var parameters = model.parameters
            var trainer = Trainer(mlp: model.mlp, maxBatch: max(federation.batchSize, 1))
            var random = RandomStream(seed: scenario.seed, "baseline-pooled")
            var pooledConfiguration = configuration
            if scenario.baselineTraining == nil {
                pooledConfiguration.epochs = federation.localEpochs * federation.rounds
                pooledConfiguration.steps = federation.localSteps.map { $0 * federation.rounds }
            }
            let summary = trainer.train(parameters: &parameters, data: pooled, selection: selection,
                                        configuration: pooledConfiguration, random: &random)
            steps = Double(summary.steps) / Double(federation.rounds)
            let pooledBlob = WireFormat.encode(
                parameters: parameters, selection: selection, metadata: [WireFormat.Key.kind: "baseline", WireFormat.Key.round: "final"])
            final = try await evaluate(sites, broadcast: pooledBlob)
            finalBlobs = sites.map { _ in pooledBlob }
        }
        let startEvaluation = evaluation(start, subgroups: scenario.subgroups), finalEvaluation = evaluation(final, subgroups: scenario.subgroups)
        progress("[\(name)] accuracy \(Format3.string(finalEvaluation.accuracy)), AUROC \(Format3.string(finalEvaluation.auroc))")
        let rounds = [
            RoundMetrics(round: 0, evaluation: startEvaluation, bytesUp: 0, bytesDown: 0, acceptedSites: [], rejected: [], meanLocalLoss: nil),
            RoundMetrics(round: baseline == .pretrained ? 0 : federation.rounds, evaluation: finalEvaluation, bytesUp: 0, bytesDown: 0,
                         acceptedSites: [], rejected: [], meanLocalLoss: nil),
        ]
        let mask = TrainableMask(mlp: model.mlp, selection: selection)
        var metrics = ArmMetrics(
            name: name, mode: baseline == .pretrained ? "none" : "full", strategy: "baseline",
            learningRate: baseline == .pretrained ? 0 : federation.learningRate, localEpochs: federation.localEpochs,
            rounds: baseline == .pretrained ? [rounds[0]] : rounds, final: finalEvaluation,
            privacy: PrivacyFootprint(bytesUp: 0, bytesDown: 0, bytesUpPerUpdate: 0, parametersExposed: 0,
                                      parametersTotal: model.mlp.layout.count, tensorsExposed: []),
            compute: ComputeFootprint(stepsPerSiteRound: steps,
                                      trainingFlopsPerSiteRound: steps * Double(federation.batchSize) * model.mlp.trainingFlopsPerExample(mask),
                                      optimizerStateBytes: baseline == .pretrained ? 0 : 2 * 4 * model.mlp.layout.count))
        let participation = federation.participation
        let meanSecondsPerStep = sites.reduce(0.0) { $0 + (participation.secondsPerStep[$1.id] ?? participation.defaultSecondsPerStep) }
            / Double(max(sites.count, 1))
        metrics.compute.simulatedSecondsPerSiteRound = steps * meanSecondsPerStep
        metrics.biasDrift = baseline == .pretrained ? [] : biasDrift(before: start, after: final, subgroups: scenario.subgroups, seed: scenario.seed, bootstrap: bootstrap)
        metrics.membershipInference = try await membershipInference(sites, broadcasts: finalBlobs)
        let rows = predictionRows(arm: name, final)
        return (metrics, rows)
    }

    /// One `predictions.csv` row per scored test patient.
    static func predictionRows(arm: String, _ predictions: [SitePredictions]) -> [PredictionRow] {
        predictions.flatMap { site in
            site.personIds.indices.map { i in
                PredictionRow(arm: arm, site: site.site, personId: site.personIds[i], label: Int(site.labels[i]),
                              score: site.scores[i], sex: site.sex[i], race: site.race[i], ageBand: site.ageBand[i])
            }
        }
    }

    /// What every baseline starts from: all sites on the pretrained model with every tensor
    /// trainable, the baseline training settings, how many training calls a site makes (one when
    /// `baseline_training` gives the epochs in all, else one per federated round), and the
    /// pretrained model as a message.
    static func beginBaseline(_ scenario: Scenario, model: PretrainedModel, sites: [SiteActor]) async
        -> (selection: ParameterSelection, configuration: TrainingConfiguration, rounds: Int, blob: [UInt8]) {
        let selection = FineTuningMode.full.selection(for: model.mlp.layout)
        for site in sites { await site.begin(mlp: model.mlp, parameters: model.parameters, selection: selection) }
        let blob = WireFormat.encode(parameters: model.parameters, selection: selection,
                                     metadata: [WireFormat.Key.kind: "baseline", WireFormat.Key.round: "0"])
        return (selection, baselineConfiguration(scenario), scenario.baselineTraining == nil ? scenario.federation.rounds : 1, blob)
    }

    /// How local and pooled baselines train: the scenario's `baseline_training`, or the federation's settings.
    static func baselineConfiguration(_ scenario: Scenario) -> TrainingConfiguration {
        let federation = scenario.federation
        if let own = scenario.baselineTraining {
            return TrainingConfiguration(
                optimizer: OptimizerConfiguration(kind: own.optimizer, learningRate: own.learningRate,
                                                  weightDecay: federation.weightDecay, gradientClipNorm: federation.gradientClipNorm),
                epochs: own.epochs, batchSize: federation.batchSize, positiveWeight: Float(federation.positiveWeight))
        }
        return TrainingConfiguration(
            optimizer: OptimizerConfiguration(kind: federation.optimizer, learningRate: federation.learningRate,
                                              weightDecay: federation.weightDecay, gradientClipNorm: federation.gradientClipNorm),
            epochs: federation.localEpochs, batchSize: federation.batchSize, positiveWeight: Float(federation.positiveWeight),
            steps: federation.localSteps)
    }

    /// FLamby's "Local i": a model trained on site `index` alone, then scored on every site's test
    /// patients (the other sites receive it as a broadcast; no patient row moves).
    static func runLocalEach(
        _ index: Int, scenario: Scenario, model: PretrainedModel, sites: [SiteActor],
        bootstrap: BootstrapCache, progress: @escaping @Sendable (String) -> Void
    ) async throws -> (ArmMetrics, [PredictionRow]) {
        let federation = scenario.federation
        let (selection, configuration, rounds, startBlob) = await beginBaseline(scenario, model: model, sites: sites)
        var blob = startBlob
        let start = try await evaluate(sites, broadcast: blob)
        var steps = 0
        for round in 1...rounds {
            let update = try await sites[index].localUpdate(arm: "baseline-local", round: round, broadcast: blob, configuration: configuration)
            blob = update.blob
            steps += update.steps
        }
        let final = try await evaluate(sites, broadcast: blob)
        let name = "local \(sites[index].id)"
        let startEvaluation = evaluation(start, subgroups: scenario.subgroups), finalEvaluation = evaluation(final, subgroups: scenario.subgroups)
        progress("[\(name)] mean site accuracy \(Format3.string(finalEvaluation.meanSiteAccuracy)), AUROC \(Format3.string(finalEvaluation.auroc))")
        let mask = TrainableMask(mlp: model.mlp, selection: selection)
        var metrics = ArmMetrics(
            name: name, mode: "full", strategy: "baseline", learningRate: configuration.optimizer.learningRate,
            localEpochs: configuration.epochs,
            rounds: [RoundMetrics(round: 0, evaluation: startEvaluation, bytesUp: 0, bytesDown: 0, acceptedSites: [], rejected: [], meanLocalLoss: nil),
                     RoundMetrics(round: rounds, evaluation: finalEvaluation, bytesUp: 0, bytesDown: 0, acceptedSites: [], rejected: [], meanLocalLoss: nil)],
            final: finalEvaluation,
            privacy: PrivacyFootprint(bytesUp: 0, bytesDown: 0, bytesUpPerUpdate: 0, parametersExposed: 0,
                                      parametersTotal: model.mlp.layout.count, tensorsExposed: []),
            compute: ComputeFootprint(stepsPerSiteRound: Double(steps) / Double(rounds),
                                      trainingFlopsPerSiteRound: Double(steps * federation.batchSize) / Double(rounds) * model.mlp.trainingFlopsPerExample(mask),
                                      optimizerStateBytes: 2 * 4 * model.mlp.layout.count))
        let participation = federation.participation
        metrics.compute.simulatedSecondsPerSiteRound = Double(steps) / Double(rounds)
            * (participation.secondsPerStep[sites[index].id] ?? participation.defaultSecondsPerStep)
        metrics.biasDrift = biasDrift(before: start, after: final, subgroups: scenario.subgroups, seed: scenario.seed, bootstrap: bootstrap)
        // Members are the training site's patients only; other sites' train rows never met this model.
        if let auc = try await sites[index].membershipInferenceAUC(broadcast: blob) { metrics.membershipInference = [sites[index].id: auc] }
        let rows = predictionRows(arm: name, final)
        return (metrics, rows)
    }

    /// Size of one masked message (the selection as 32-bit words plus its header), for the footprint.
    static func maskedUpdateBytes(count: Int) -> Int {
        SecureAggregation.encode([UInt32](repeating: 0, count: count), metadata: [
            WireFormat.Key.kind: "masked-update", WireFormat.Key.round: "0", WireFormat.Key.site: "", WireFormat.Key.trainSize: "0"]).count
    }

    /// Values within ±this are quantised exactly; a weighted change beyond it is clamped (and counted).
    static let secureRange = 8.0

    /// One round of secure aggregation over the sites that trained (the masking set). Each of them
    /// publishes a fresh X25519 key (32 bytes up) and receives the others' (32 bytes each, down);
    /// those whose update arrives in time send a masked vector. If one did not, the server refuses
    /// to unmask and the survivors re-key and mask again among themselves; every byte is counted.
    static func secureAggregate(
        arm: Scenario.Arm, round: Int, masking: [SiteActor], arrived: Set<String>, server: FederatedServer,
        quorum: Int, privacy: PrivateAggregation?
    ) async throws -> (outcome: AggregationOutcome, bytesUp: Int, bytesDown: Int, rekeyedAmong: Int?) {
        var participants = masking
        var bytesUp = 0, bytesDown = 0
        var rekeyedAmong: Int? = nil
        for attempt in 0..<2 {
            let context = "\(arm.name)|\(round)|\(attempt)"
            var peers: [(site: String, publicKey: Curve25519.KeyAgreement.PublicKey)] = []
            for site in participants { peers.append((site.id, await site.maskingPublicKey(context: context))) }
            bytesUp += 32 * participants.count
            bytesDown += 32 * participants.count * max(participants.count - 1, 0)
            let totalTrain = Double(participants.reduce(0) { $0 + $1.trainSize })
            let scale = SecureAggregation.scale(range: secureRange, participants: participants.count)
            var masked: [(site: String, blob: [UInt8])] = []
            for site in participants where arrived.contains(site.id) {
                // FedAvg weights are applied on site; DP sums unweighted clipped changes.
                let weight = privacy == nil ? Double(site.trainSize) / totalTrain : 1
                let (blob, _) = try await site.maskedUpdate(context: context, round: round, peers: peers, weight: weight,
                                                            scale: scale, range: secureRange)
                masked.append((site.id, blob))
                bytesUp += blob.count
            }
            let result = await server.aggregateMasked(round: round, masked: masked, participants: participants.map(\.id),
                                                      scale: scale, quorum: quorum, privacy: privacy)
            guard let survivors = result.rekeyWith, attempt == 0 else { return (result.outcome, bytesUp, bytesDown, rekeyedAmong) }
            participants = participants.filter { survivors.contains($0.id) }
            rekeyedAmong = participants.count
            if participants.isEmpty { break }
        }
        return (AggregationOutcome(acceptedSites: [], rejected: [], skipped: true), bytesUp, bytesDown, rekeyedAmong)
    }

    /// How an absence reads in the report.
    static func describe(_ absence: Absence) -> String {
        switch absence {
        case .notSampled: return "not sampled"
        case .droppedOut(let scheduled): return scheduled ? "dropped out (scheduled)" : "dropped out"
        case .missedDeadline(let seconds, let deadline):
            return String(format: "missed the deadline (%.3g s > %.3g s)", seconds, deadline)
        }
    }

    static func evaluate(_ sites: [SiteActor], broadcast: [UInt8]) async throws -> [SitePredictions] {
        try await withThrowingTaskGroup(of: (Int, SitePredictions).self) { group in
            for (index, site) in sites.enumerated() {
                group.addTask { (index, try await site.evaluate(broadcast: broadcast)) }
            }
            var collected: [(Int, SitePredictions)] = []
            for try await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// Pooled and per-site metrics of one evaluation, with the subgroup audit.
    static func evaluation(_ predictions: [SitePredictions], subgroups: Scenario.Subgroups) -> Evaluation {
        let scores = predictions.flatMap(\.scores), labels = predictions.flatMap(\.labels)
        var perSite: [String: SiteEvaluation] = [:]
        for p in predictions {
            perSite[p.site] = SiteEvaluation(
                accuracy: Metrics.accuracy(scores: p.scores, labels: p.labels),
                balancedAccuracy: Metrics.balancedAccuracy(scores: p.scores, labels: p.labels),
                majorityClassAccuracy: Metrics.majorityClassAccuracy(p.labels),
                auroc: Metrics.auroc(scores: p.scores, labels: p.labels),
                auprc: Metrics.auprc(scores: p.scores, labels: p.labels),
                brier: Metrics.brier(scores: p.scores, labels: p.labels), testSize: p.labels.count)
        }
        let audits = subgroups.attributes.map { attribute in
            let rates = Fairness.groupRates(scores: scores, labels: labels, groups: groupValues(predictions, attribute),
                                            minimumSize: subgroups.minimumGroupSize)
            return SubgroupAudit(attribute: attribute.rawValue, groups: rates, gaps: Fairness.gaps(rates))
        }
        return Evaluation(accuracy: Metrics.accuracy(scores: scores, labels: labels),
                          balancedAccuracy: Metrics.balancedAccuracy(scores: scores, labels: labels),
                          majorityClassAccuracy: Metrics.majorityClassAccuracy(labels),
                          auroc: Metrics.auroc(scores: scores, labels: labels),
                          auprc: Metrics.auprc(scores: scores, labels: labels),
                          brier: Metrics.brier(scores: scores, labels: labels),
                          ece: Metrics.expectedCalibrationError(scores: scores, labels: labels),
                          worstSiteAccuracy: perSite.values.map(\.accuracy).min() ?? .nan, perSite: perSite,
                          subgroups: audits)
    }

    /// Every test patient's group for one attribute, in prediction order.
    static func groupValues(_ predictions: [SitePredictions], _ attribute: Scenario.Subgroups.Attribute) -> [String] {
        switch attribute {
        case .sex: predictions.flatMap(\.sex)
        case .race: predictions.flatMap(\.race)
        case .ageBand: predictions.flatMap(\.ageBand)
        }
    }

    /// Each audited gap's change from `before` (the pretrained model) to `after`, on the same
    /// patients, with a bootstrap interval. The resamples come from the stream (seed, "bootstrap",
    /// attribute) and are shared by every arm of the run, so arms are compared on the same
    /// resamples and the pretrained side of each is computed once.
    static func biasDrift(before: [SitePredictions], after: [SitePredictions], subgroups: Scenario.Subgroups,
                          seed: UInt64, bootstrap: BootstrapCache) -> [BiasDrift] {
        let labels = before.flatMap(\.labels)
        let scoresBefore = before.flatMap(\.scores), scoresAfter = after.flatMap(\.scores)
        var drifts: [BiasDrift] = []
        for attribute in subgroups.attributes {
            let groups = groupValues(before, attribute)
            let gapsBefore = Fairness.gaps(Fairness.groupRates(scores: scoresBefore, labels: labels, groups: groups,
                                                               minimumSize: subgroups.minimumGroupSize))
            let gapsAfter = Fairness.gaps(Fairness.groupRates(scores: scoresAfter, labels: labels, groups: groups,
                                                              minimumSize: subgroups.minimumGroupSize))
            let reference = bootstrap.reference(attribute.rawValue, before: scoresBefore) {
                var random = RandomStream(seed: seed, "bootstrap", attribute.rawValue)
                return BootstrapReference(before: scoresBefore, labels: labels, groups: groups, minimumSize: subgroups.minimumGroupSize,
                                          replicates: subgroups.bootstrapReplicates, random: &random)
            }
            let intervals = reference.drift(after: scoresAfter)
            for metric in FairnessGaps.names {
                guard let x = gapsBefore[metric], let z = gapsAfter[metric] else { continue }
                drifts.append(BiasDrift(attribute: attribute.rawValue, metric: metric, pretrained: x, final: z,
                                        low: intervals[metric]?.low, high: intervals[metric]?.high))
            }
        }
        return drifts
    }

    /// The membership-inference AUC at every site for the model each site evaluates with.
    static func membershipInference(_ sites: [SiteActor], broadcasts: [[UInt8]]) async throws -> [String: Double] {
        var result: [String: Double] = [:]
        for (site, blob) in zip(sites, broadcasts) {
            if let auc = try await site.membershipInferenceAUC(broadcast: blob) { result[site.id] = auc }
        }
        return result
    }

    /// Each site's RMS standardised mean difference from the pooled cohort, over feature columns,
    /// from the sites' column sums alone. Columns without spread in the pool are skipped.
    static func featureDistances(_ summaries: [SiteSummary]) -> [Double] {
        let columns = summaries.first?.featureSums.count ?? 0
        guard columns > 0 else { return summaries.map { _ in 0 } }
        var mean = [Double](repeating: 0, count: columns), sd = mean
        for c in 0..<columns {
            let n = summaries.reduce(0.0) { $0 + $1.featureCounts[c] }
            guard n > 1 else { continue }
            mean[c] = summaries.reduce(0.0) { $0 + $1.featureSums[c] } / n
            let square = summaries.reduce(0.0) { $0 + $1.featureSquares[c] } / n
            sd[c] = max(square - mean[c] * mean[c], 0).squareRoot()
        }
        let used = (0..<columns).filter { sd[$0] > 1e-9 }
        return summaries.map { s in
            let observed = used.filter { s.featureCounts[$0] > 0 }
            guard !observed.isEmpty else { return 0 }
            let squares = observed.reduce(0.0) { sum, c in
                let difference = (s.featureSums[c] / s.featureCounts[c] - mean[c]) / sd[c]
                return sum + difference * difference
            }
            return (squares / Double(observed.count)).squareRoot()
        }
    }

    /// ‖w − w₀‖ and ‖w − w₀‖/‖w₀‖ of packed shared values.
    static func parameterDrift(_ current: [Float], from start: [Float]) -> ParameterDrift {
        var change = 0.0, base = 0.0
        for (w, w0) in zip(current, start) {
            change += Double(w - w0) * Double(w - w0)
            base += Double(w0) * Double(w0)
        }
        return ParameterDrift(l2: change.squareRoot(), relative: base > 0 ? (change / base).squareRoot() : 0)
    }
}

/// One run's bootstrap resamples per audited attribute, shared by its arms and baselines.
final class BootstrapCache: @unchecked Sendable {
    // @unchecked: `references` is only touched under `lock`.
    private let lock = NSLock()
    private var references: [String: BootstrapReference] = [:]

    /// The reference for `attribute`, built by `make` the first time; rebuilt (not shared) if an
    /// arm's round-0 scores differ from the cached reference's.
    func reference(_ attribute: String, before: [Float], make: () -> BootstrapReference) -> BootstrapReference {
        lock.lock()
        defer { lock.unlock() }
        if let cached = references[attribute], cached.before == before { return cached }
        let fresh = make()
        if references[attribute] == nil { references[attribute] = fresh }
        return fresh
    }
}

enum Format3 {
    static func string(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "n/a" }
        return String(format: "%.3f", value)
    }
}
