import Foundation
import Crypto
import Logging
import SiteFitCore
import SiteFitEHR
import SiteFitMetrics
import SiteFitNN

/// A site's test-set predictions, with the subgroup attributes the report audits.
public struct SitePredictions: Sendable, Equatable, Codable {
    public var site: String
    public var personIds: [Int64]
    public var labels: [Float]
    public var scores: [Float]
    public var sex: [String]
    public var race: [String]
    /// Age band at the index date (0-17, 18-44, 45-64, 65-74, 75+).
    public var ageBand: [String]

    public init(site: String, personIds: [Int64], labels: [Float], scores: [Float], sex: [String], race: [String], ageBand: [String]) {
        self.site = site
        self.personIds = personIds
        self.labels = labels
        self.scores = scores
        self.sex = sex
        self.race = race
        self.ageBand = ageBand
    }
}

/// Aggregate statistics of a site's cohort (never rows): what "sites at a glance" shows.
public struct SiteSummary: Sendable, Equatable, Codable {
    public var cohortSize: Int
    public var outcomePrevalence: Double
    public var femaleShare: Double
    public var meanAge: Double
    /// Share of measurement features with no value in the look-back window.
    public var labMissingShare: Double
    /// Share of the cohort in each race and each age band.
    public var raceShares: [String: Double]
    public var ageBandShares: [String: Double]
    /// Per feature column, the count, sum and sum of squares of the recorded raw values over the
    /// whole cohort: enough to compare distributions across sites without sharing any row.
    public var featureCounts: [Double]
    public var featureSums: [Double]
    public var featureSquares: [Double]
    /// Persons at each step of a concept-set task's cohort (aggregate counts only).
    public var attrition: CohortAttrition? = nil
    /// The task's concept ids that match no event at this site.
    public var unmatchedConcepts: [Int] = []
    /// The OMOP import's data-quality findings (counts of records, never a value).
    public var dataQuality: [DataQualityFinding] = []
    /// For a site that reads code sequences: their lengths, as counts.
    public var sequences: SequenceSummary? = nil
}

/// A site's training rows for the pooled baseline (simulation only): standardised as the site
/// trains on them, and raw when the site standardises with its own statistics.
public struct PooledRows: Sendable {
    public var standardized: Dataset
    /// Row-major raw features, or nil when every site shares one standardiser (the source population's).
    public var raw: [Double]?

    public init(standardized: Dataset, raw: [Double]?) {
        self.standardized = standardized
        self.raw = raw
    }
}

/// What one site's local training produced in a round.
public struct LocalUpdate: Sendable {
    public var site: String
    public var blob: [UInt8]
    public var steps: Int
    public var loss: Double
    public var optimizerStateBytes: Int
    /// L2 norm of the change before DP clipping (nil without DP).
    public var updateNorm: Double?

    public init(site: String, blob: [UInt8], steps: Int, loss: Double, optimizerStateBytes: Int, updateNorm: Double?) {
        self.site = site
        self.blob = blob
        self.steps = steps
        self.loss = loss
        self.optimizerStateBytes = optimizerStateBytes
        self.updateNorm = updateNorm
    }
}

/// A hospital. Its rows never leave this actor: it opens its shard read-only, extracts and splits
/// its cohort, fine-tunes locally and answers with serialised selected parameters only.
public actor SiteActor<Network: NeuralModel> {
    public nonisolated let id: String
    public nonisolated let trainSize: Int
    public nonisolated let testSize: Int
    public nonisolated let summary: SiteSummary
    private let train: Dataset
    private let rawTrain: [Double]?
    private let test: Dataset
    private let testPersonIds: [Int64]
    private let testSex: [String]
    private let testRace: [String]
    private let testAgeBand: [String]
    let seed: UInt64
    /// The site's own trainer, or nil while it borrows from `pool`.
    private var ownTrainer: Trainer<Network>?
    private let pool: TrainerPool<Network>?
    /// The network of the current arm (what a borrowed trainer must match).
    var network: Network
    private let maxBatch: Int
    /// The site's full local model: frozen tensors stay at their pretrained values.
    var local: [Float]
    /// What the site trains.
    var selection: ParameterSelection
    /// What the site receives and sends: the trained selection, or for personalised arms the part
    /// of it that is federated (the rest stays on site).
    var shared: ParameterSelection
    private let logger: Logger
    /// Secure aggregation: this round's change from the broadcast, kept on site until masked.
    private var pendingChange: [Float] = []
    /// Binary feature columns and the standardised value of 0.5 in each (scoring reconstructions).
    let binaryColumns: [(column: Int, threshold: Float)]
    /// Secure aggregation: the site's keys, seed and held shares for the current round.
    private var secure: SecureAggregationParticipant? = nil

    /// What a site holds after extraction, standardisation and splitting: the input of `init(prepared:)`.
    struct Prepared {
        var train: Dataset
        /// The raw train features (rows, columns), kept only when the site standardises with its
        /// own statistics: the pooled baseline then standardises all sites' rows together.
        var rawTrain: [Double]? = nil
        var test: Dataset
        var testPersonIds: [Int64]
        var testSex: [String]
        var testRace: [String]
        var testAgeBand: [String]
        var summary: SiteSummary
        var binaryColumns: [(column: Int, threshold: Float)] = []
    }

    /// A site whose rows come from `source` (a generated or imported shard, the UCI heart-disease
    /// data, ...): the cohort is loaded and split by the source, then standardised with the
    /// pretrained model's statistics or the site's own train rows, as the source says.
    public init(source: some CohortSource, model: PretrainedModel<Network>, seed: UInt64, maxBatch: Int,
                logger: Logger = Logger(label: "sitefit.site")) throws {
        let cohort = try source.load(seed: seed)
        let columns = cohort.extract.columns.count
        let standardizer = switch cohort.standardization {
        case .sourcePopulation: model.standardizer
        case .siteTrainRows: Standardizer(fitting: cohort.extract.features, columns: columns, rows: cohort.split.trainRows)
        }
        var prepared = Self.prepare(cohort.extract, ages: cohort.ages, trainRows: cohort.split.trainRows,
                                    testRows: cohort.split.testRows, standardizer: standardizer)
        if cohort.standardization == .siteTrainRows {
            prepared.rawTrain = cohort.split.trainRows.flatMap { r in cohort.extract.features[(r * columns)..<((r + 1) * columns)] }
        }
        prepared.summary.attrition = cohort.attrition
        prepared.summary.unmatchedConcepts = cohort.unmatchedConcepts
        prepared.summary.dataQuality = cohort.dataQuality
        prepared.summary.sequences = cohort.sequenceSummary
        self.init(id: source.site, prepared: prepared, model: model, seed: seed, maxBatch: maxBatch, logger: logger)
    }

    /// A site from rows already in memory (benchmarks, tests): `train` and `test` are standardised
    /// features with 0/1 labels. With a `pool` the site borrows a trainer only while it trains or
    /// scores, which is what lets thousands of sites share a few workspaces.
    public init(id: String, train: Dataset, test: Dataset, model: PretrainedModel<Network>, seed: UInt64, maxBatch: Int,
                pool: TrainerPool<Network>? = nil, logger: Logger = Logger(label: "sitefit.site")) {
        let positives = Double((train.labels + test.labels).filter { $0 >= 0.5 }.count)
        let rows = train.rows + test.rows
        let prepared = Prepared(
            train: train, test: test, testPersonIds: (0..<test.rows).map { Int64($0 + 1) },
            testSex: [String](repeating: "unknown", count: test.rows), testRace: [String](repeating: "unknown", count: test.rows),
            testAgeBand: [String](repeating: "unknown", count: test.rows),
            summary: SiteSummary(cohortSize: rows, outcomePrevalence: positives / Double(max(rows, 1)), femaleShare: 0, meanAge: 0,
                                 labMissingShare: 0, raceShares: [:], ageBandShares: [:], featureCounts: [], featureSums: [], featureSquares: []))
        self.init(id: id, prepared: prepared, model: model, seed: seed, maxBatch: maxBatch, pool: pool, logger: logger)
    }

    init(id: String, prepared: Prepared, model: PretrainedModel<Network>, seed: UInt64, maxBatch: Int, pool: TrainerPool<Network>? = nil, logger: Logger) {
        self.id = id
        self.seed = seed
        self.logger = logger
        train = prepared.train
        rawTrain = prepared.rawTrain
        test = prepared.test
        testPersonIds = prepared.testPersonIds
        testSex = prepared.testSex
        testRace = prepared.testRace
        testAgeBand = prepared.testAgeBand
        summary = prepared.summary
        binaryColumns = prepared.binaryColumns
        trainSize = prepared.train.rows
        testSize = prepared.test.rows
        self.pool = pool
        self.maxBatch = maxBatch
        network = model.network
        ownTrainer = pool == nil ? Trainer(model: model.network, maxBatch: maxBatch) : nil
        local = model.parameters
        selection = ParameterSelection(layout: model.network.layout, tensorNames: [])
        shared = selection
    }

    /// Standardised train and test sets, the test patients' attributes and the cohort summary.
    static func prepare(_ extract: CohortExtract, ages: [Double], trainRows: [Int], testRows: [Int],
                        standardizer: Standardizer) -> Prepared {
        let columns = extract.columns.count
        let train = Dataset(features: standardizer.transform(extract.features, columns: columns, rows: trainRows),
                            labels: trainRows.map { extract.labels[$0] }, columns: columns)
        let test = Dataset(features: standardizer.transform(extract.features, columns: columns, rows: testRows),
                           labels: testRows.map { extract.labels[$0] }, columns: columns)
        let labColumns = extract.columns.indices.filter { extract.columns[$0].hasPrefix("measurement.") }
        // Moments of the raw values (missing ones skipped): comparable across sites whatever
        // each site's standardisation.
        var moments = (counts: [Double](repeating: 0, count: columns), sums: [Double](repeating: 0, count: columns),
                       squares: [Double](repeating: 0, count: columns))
        for r in 0..<extract.rows { for c in 0..<columns {
            let x = extract.features[r * columns + c]
            guard !x.isNaN else { continue }
            moments.counts[c] += 1
            moments.sums[c] += x
            moments.squares[c] += x * x
        } }
        var missing = 0
        for r in 0..<extract.rows { for c in labColumns where extract.features[r * columns + c].isNaN { missing += 1 } }
        let summary = SiteSummary(
            cohortSize: extract.rows,
            outcomePrevalence: Double(extract.labels.filter { $0 >= 0.5 }.count) / Double(extract.rows),
            femaleShare: Double(extract.sex.filter { $0 == "female" }.count) / Double(extract.rows),
            meanAge: ages.reduce(0, +) / Double(max(extract.rows, 1)),
            labMissingShare: labColumns.isEmpty ? 0 : Double(missing) / Double(extract.rows * labColumns.count),
            raceShares: shares(extract.race),
            ageBandShares: shares(ages.map { Fairness.ageBand(Float($0)) }),
            featureCounts: moments.counts, featureSums: moments.sums, featureSquares: moments.squares)
        // A column whose every observed value is 0 or 1 (a condition, a drug, sex) is binary.
        let binary = (0..<columns).compactMap { c -> (column: Int, threshold: Float)? in
            guard moments.counts[c] > 0,
                  (0..<extract.rows).allSatisfy({ r in let x = extract.features[r * columns + c]; return x.isNaN || x == 0 || x == 1 })
            else { return nil }
            return (c, Float((0.5 - standardizer.means[c]) / standardizer.standardDeviations[c]))
        }
        return Prepared(train: train, test: test, testPersonIds: testRows.map { extract.personIds[$0] },
                        testSex: testRows.map { extract.sex[$0] }, testRace: testRows.map { extract.race[$0] },
                        testAgeBand: testRows.map { Fairness.ageBand(Float(ages[$0])) }, summary: summary, binaryColumns: binary)
    }

    /// Resets the local model for a new arm: the arm's network (the pretrained one, or extended with
    /// LoRA factors or adapters), its starting parameters and what it trains.
    /// `shared` defaults to `selection`; a personalised arm shares less than it trains.
    public func begin(network: Network, parameters: [Float], selection: ParameterSelection, shared: ParameterSelection? = nil) {
        self.network = network
        if let own = ownTrainer, own.model.signature != network.signature { ownTrainer = Trainer(model: network, maxBatch: maxBatch) }
        local = parameters
        self.selection = selection
        self.shared = shared ?? selection
    }

    /// One round: install the broadcast, train the selected tensors, reply with them alone.
    /// Shuffling uses the stream (seed, arm, site, round, "local-training").
    /// With `clipNorm` (DP-FedAvg) the change from the broadcast is clipped to that L2 norm before
    /// it leaves the site.
    public func localUpdate(
        arm: String, round: Int, broadcast: [UInt8], configuration: TrainingConfiguration, clipNorm: Double? = nil,
        secure: Bool = false
    ) throws -> LocalUpdate {
        restoreLocal()
        do {
            _ = try WireFormat.apply(broadcast, selection: shared, to: &local)
        } catch {
            throw UserFacingError("site '\(id)': refused the server's broadcast: \(error.reason)")
        }
        // What the site received, when its change must be computed (DP clipping, masking).
        let received = clipNorm == nil && !secure ? [] : shared.gather(from: local)
        var random = RandomStream(seed: seed, "local-training", arm, id, String(round))
        let summary = withTrainer { trainer in
            trainer.train(parameters: &local, data: train, selection: selection, configuration: configuration, random: &random)
        }
        var updateNorm: Double? = nil
        if let clipNorm {
            var delta = zip(shared.gather(from: local), received).map { $0 - $1 }
            updateNorm = DPFedAvg.clip(&delta, clipNorm: clipNorm)
            shared.scatter(zip(received, delta).map { $0 + $1 }, into: &local)
        }
        if secure {
            // Nothing leaves the site in the clear: the change waits here to be masked.
            let now = shared.gather(from: local)
            pendingChange = zip(now, received).map { $0 - $1 }
            return LocalUpdate(site: id, blob: [], steps: summary.steps, loss: summary.finalLoss,
                               optimizerStateBytes: summary.optimizerStateBytes, updateNorm: updateNorm)
        }
        let blob = WireFormat.encode(parameters: local, selection: shared, metadata: [
            WireFormat.Key.kind: "update", WireFormat.Key.round: String(round),
            WireFormat.Key.site: id, WireFormat.Key.trainSize: String(trainSize),
        ])
        // When every tensor is shared, the next broadcast overwrites all of the local model: the
        // site need not keep a copy between rounds (10,000 sites × a model is gigabytes).
        if shared.count == local.count { local = [] }
        return LocalUpdate(site: id, blob: blob, steps: summary.steps, loss: summary.finalLoss,
                           optimizerStateBytes: summary.optimizerStateBytes, updateNorm: updateNorm)
    }

    /// Each distinct value's share of `values`.
    static func shares(_ values: [String]) -> [String: Double] {
        var counts: [String: Int] = [:]
        for v in values { counts[v, default: 0] += 1 }
        return counts.mapValues { Double($0) / Double(max(values.count, 1)) }
    }

    /// The model this site scores with: the broadcast over a copy of its local model (the local
    /// part is what a personalised arm keeps at home).
    private func model(under broadcast: [UInt8]) throws -> [Float] {
        // A released local model stays released: scoring 10,000 sites must not give each one
        // back a model-sized copy (it took the scale benchmark's peak from 0.3 to 1.1 GB).
        var model = local.isEmpty ? [Float](repeating: 0, count: network.layout.count) : local
        do {
            _ = try WireFormat.apply(broadcast, selection: shared, to: &model)
        } catch {
            throw UserFacingError("site '\(id)': refused the server's broadcast: \(error.reason)")
        }
        return model
    }

    /// Floats of local model this site holds now (0 once released), for the memory tests.
    var heldLocalParameters: Int { local.count }

    /// A released local model comes back as zeros: only when every tensor is shared, so the
    /// broadcast about to be applied overwrites all of it.
    func restoreLocal() {
        if local.isEmpty { local = [Float](repeating: 0, count: network.layout.count) }
    }

    /// Runs `body` with the site's trainer, or with one borrowed from the pool for the duration.
    private func withTrainer<R>(_ body: (inout Trainer<Network>) -> R) -> R {
        if let pool {
            var borrowed = pool.borrow(for: network)
            defer { pool.giveBack(borrowed) }
            return body(&borrowed)
        }
        if ownTrainer == nil { ownTrainer = Trainer(model: network, maxBatch: maxBatch) }
        return body(&ownTrainer!)
    }

    /// Secure aggregation step 1: fresh keys and seed for the round `context`.
    public func secureAdvertise(context: String) -> AdvertisedKeys {
        let participant = SecureAggregationParticipant(site: id, context: context)
        secure = participant
        return participant.advertised
    }

    /// Step 2: shares of this site's seed and masking key, sealed for every other roster site.
    public func secureShareKeys(context: String, roster: [AdvertisedKeys], threshold: Int) throws -> [SealedShares] {
        try withSecure(context) { try $0.shareKeys(roster: roster, threshold: threshold) }
    }

    /// Step 2, receiving end: what the other sites sealed for this one.
    public func secureReceive(context: String, shares: [SealedShares]) throws {
        try withSecure(context) { try $0.receive(shares) }
    }

    /// Step 3: this round's change times `weight`, quantised, the clamp count appended, and masked.
    /// Only this masked message leaves the site.
    public func maskedUpdate(context: String, round: Int, maskingSet: [String], weight: Double, scale: Double,
                             range: Double) throws -> [UInt8] {
        let contribution = pendingChange.map { Float(Double($0) * weight) }
        let (words, clamped) = SecureAggregation.quantise(contribution, scale: scale, range: range)
        let masked = try withSecure(context) { try $0.mask(words + [UInt32(clamped)], maskingSet: maskingSet) }
        return SecureAggregation.encode(masked, metadata: [
            WireFormat.Key.kind: "masked-update", WireFormat.Key.round: String(round), WireFormat.Key.site: id,
            WireFormat.Key.trainSize: String(trainSize)])
    }

    /// Step 4: the shares that let the server remove the survivors' self-masks and the dropped sites' pairwise masks.
    public func unmaskingShares(context: String, survivors: [String], dropped: [String]) throws -> [RevealedShare] {
        try withSecure(context) { try $0.unmaskingShares(survivors: survivors, dropped: dropped) }
    }

    private func withSecure<R>(_ context: String, _ body: (inout SecureAggregationParticipant) throws -> R) throws -> R {
        guard var participant = secure, participant.context == context else {
            throw UserFacingError("site '\(id)': no secure aggregation keys for \(context)")
        }
        defer { secure = participant }
        do {
            return try body(&participant)
        } catch let error as UpdateRejection {
            throw UserFacingError("site '\(id)': \(error.reason)")
        }
    }

    /// The reconstruction experiment at this site, for the current arm (after `begin`, before
    /// round 1): for every setting and trial the site draws `batchSize` of its training patients,
    /// trains `localSteps` full-batch steps on them from the model it holds, and hands the server's
    /// attacks only what the server would receive (the shared tensors' change, clipped under DP).
    /// The site alone scores the reconstructions against those patients and its held-out ones.
    ///
    /// Every stream is keyed by (seed, site, batch size, steps, trial) and not by the arm, so each
    /// arm is attacked on the same patients from the same starting guesses: differences between
    /// arms are paired.
    public func reconstructionTrials(settings: ReconstructionSettings, optimizer: OptimizerConfiguration, positiveWeight: Float,
                                     clipNorm: Double?) -> [ReconstructionTrial] {
        restoreLocal()
        let start = local
        let columns = train.columns
        var trials: [ReconstructionTrial] = []
        for batchSize in settings.batchSizes where batchSize <= train.rows {
            var trainer = Trainer(model: network, maxBatch: batchSize)
            for steps in settings.localSteps {
                for trial in 0..<settings.trials {
                    let key = [id, String(batchSize), String(steps), String(trial)]
                    var draw = RandomStream(seed: seed, components: ["reconstruction-batch"] + key)
                    var order = Array(0..<train.rows)
                    draw.shuffle(&order)
                    let batch = train.subset(Array(order.prefix(batchSize)))
                    var parameters = start
                    var training = RandomStream(seed: seed, components: ["reconstruction-training"] + key)
                    let configuration = TrainingConfiguration(optimizer: optimizer, epochs: 1, batchSize: batchSize,
                                                              positiveWeight: positiveWeight, steps: steps)
                    _ = trainer.train(parameters: &parameters, data: batch, selection: selection, configuration: configuration,
                                      random: &training)
                    var delta = zip(shared.gather(from: parameters), shared.gather(from: start)).map { $0 - $1 }
                    if let clipNorm { DPFedAvg.clip(&delta, clipNorm: clipNorm) }
                    // The update is η·S·gradient only under plain SGD on the unweighted loss, unclipped.
                    let sizeKnown = optimizer.kind == .sgd && optimizer.momentum == 0 && optimizer.gradientClipNorm == nil
                        && clipNorm == nil && positiveWeight == 1

                    // The server's side: the update and public knowledge only.
                    let knowledge = ReconstructionAttack.Knowledge(network: network, parameters: start, shared: shared,
                                                                   learningRate: optimizer.learningRate, batchSize: batchSize,
                                                                   localSteps: steps, sizeKnown: sizeKnown)
                    let candidates = ReconstructionAttack.analytic(delta, knowledge: knowledge)
                    var guesses = RandomStream(seed: seed, components: ["reconstruction-attack"] + key)
                    // The attack's first guesses, before any fitting: what matching by chance scores.
                    var prior = guesses
                    let chance = (0..<(batchSize * columns)).map { _ in Float(prior.gaussian()) }
                    let fitted = ReconstructionAttack.optimisation(delta, knowledge: knowledge,
                                                                   settings: .init(budget: settings.budget), random: &guesses)
                    let gap = ReconstructionAttack.outcomeGap(delta, knowledge: knowledge)
                    let estimatedRisk = gap.map { _ in meanRisk(start, fitted.features, rows: batchSize) }

                    // The site's side: how close the server came.
                    func scored(_ rows: [Float]) -> ReconstructionScore {
                        ReconstructionScore.score(rows, batch: batch.features, heldOut: test.features, columns: columns, binary: binaryColumns)
                    }
                    let outcomeRate = Double(batch.labels.reduce(0, +)) / Double(batchSize)
                    trials.append(ReconstructionTrial(
                        site: id, batchSize: batchSize, localSteps: steps, trial: trial,
                        analytic: candidates.map { $0.isEmpty ? scored([]) : scored($0.flatMap { $0 }) },
                        optimisation: scored(fitted.features), chance: scored(chance),
                        // Not clamped to [0, 1]: a batch of one has a rate of 0 or 1, and clamping would score a miss as a hit.
                        outcomeRateError: gap.flatMap { gap in estimatedRisk.map { abs(gap + $0 - outcomeRate) } }))
                }
            }
        }
        return trials
    }

    /// Mean predicted risk of `rows` feature rows under `parameters`.
    private func meanRisk(_ parameters: [Float], _ features: [Float], rows: Int) -> Double {
        let workspace = network.makeWorkspace(capacity: rows)
        return parameters.withUnsafeBufferPointer { p in
            features.withUnsafeBufferPointer { x in
                network.forward(parameters: p.baseAddress!, input: x.baseAddress!, batch: rows, workspace: workspace)
                var total = 0.0
                for i in 0..<rows { total += 1 / (1 + exp(-Double(workspace.logits[i]))) }
                return total / Double(rows)
            }
        }
    }

    /// The site's standardised training rows, for the pooled baseline only. Pooling patient rows is
    /// exactly what a federation avoids; the simulation offers it as an upper reference, labelled so.
    public func trainingRowsForPooledBaseline() -> PooledRows { PooledRows(standardized: train, raw: rawTrain) }

    /// Scores the site's held-out test patients with the broadcast global model (over the site's
    /// own local part, for personalised arms).
    public func evaluate(broadcast: [UInt8]) throws -> SitePredictions {
        let model = try model(under: broadcast)
        return SitePredictions(site: id, personIds: testPersonIds, labels: test.labels,
                               scores: withTrainer { $0.predict(parameters: model, data: test) }, sex: testSex, race: testRace,
                               ageBand: testAgeBand)
    }

    /// The AUC of a loss-threshold membership-inference attack on this site's patients under the
    /// broadcast model (over the site's local part, as in `evaluate`): train patients are members,
    /// held-out ones are not. Only this one number leaves the site.
    public func membershipInferenceAUC(broadcast: [UInt8]) throws -> Double? {
        let model = try model(under: broadcast)
        func losses(_ data: Dataset) -> [Double] {
            zip(withTrainer { $0.predict(parameters: model, data: data) }, data.labels).map { MembershipInference.loss(score: $0, label: $1) }
        }
        return MembershipInference.auc(memberLosses: losses(train), nonMemberLosses: losses(test))
    }
}
