import SiteFitMetrics

/// Everything a run measured: the content of `metrics.json` and the input of the Markdown report.
public struct RunMetrics: Codable, Sendable, Equatable {
    public var scenario: ScenarioInfo
    public var sites: [SiteInfo]
    public var model: ModelInfo
    public var pretraining: PretrainingInfo
    public var arms: [ArmMetrics]
    /// Mean and spread over every seed of a multi-seed scenario (nil for one seed).
    public var seeds: SeedSummary?
    /// Published numbers the scenario compares itself with.
    public var reference: ReferenceValues?

    public init(scenario: ScenarioInfo, sites: [SiteInfo], model: ModelInfo, pretraining: PretrainingInfo, arms: [ArmMetrics]) {
        self.scenario = scenario
        self.sites = sites
        self.model = model
        self.pretraining = pretraining
        self.arms = arms
    }
}

/// Where the numbers came from (no clock time: the same seed gives the same file).
public struct ScenarioInfo: Codable, Sendable, Equatable {
    public var name: String
    public var file: String
    public var fingerprint: String
    public var seed: UInt64
    public var sitefitVersion: String
    /// One line on what is predicted from what, for the report's opening.
    public var task: String = "1-year incident heart failure from a year of EHR history (OMOP CDM shards)"
    /// `omop` or `heart-disease` (FLamby's protocol on the UCI files).
    public var dataset: String = "omop"

    public init(name: String, file: String, fingerprint: String, seed: UInt64, sitefitVersion: String) {
        self.name = name
        self.file = file
        self.fingerprint = fingerprint
        self.seed = seed
        self.sitefitVersion = sitefitVersion
    }

    enum CodingKeys: String, CodingKey {
        case name, file, fingerprint, seed, task, dataset
        case sitefitVersion = "sitefit_version"
    }
}

/// One hospital as it looks before any training: size, prevalence, mix, coding habits.
public struct SiteInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var shard: String
    public var cohortSize: Int
    public var trainSize: Int
    public var testSize: Int
    public var outcomePrevalence: Double
    public var femaleShare: Double
    public var meanAge: Double
    public var creatinineUnit: String
    public var labMissingShare: Double
    public var raceShares: [String: Double] = [:]
    public var ageBandShares: [String: Double] = [:]
    /// Root-mean-square standardised mean difference between this site's features and the pooled
    /// cohort's (0 = same means; 0.1 is commonly read as a meaningful imbalance).
    public var featureDistance: Double = 0

    public init(id: String, name: String, shard: String, cohortSize: Int, trainSize: Int, testSize: Int,
                outcomePrevalence: Double, femaleShare: Double, meanAge: Double, creatinineUnit: String, labMissingShare: Double) {
        self.id = id
        self.name = name
        self.shard = shard
        self.cohortSize = cohortSize
        self.trainSize = trainSize
        self.testSize = testSize
        self.outcomePrevalence = outcomePrevalence
        self.femaleShare = femaleShare
        self.meanAge = meanAge
        self.creatinineUnit = creatinineUnit
        self.labMissingShare = labMissingShare
    }

    enum CodingKeys: String, CodingKey {
        case id, name, shard
        case cohortSize = "cohort_size", trainSize = "train_size", testSize = "test_size"
        case outcomePrevalence = "outcome_prevalence", femaleShare = "female_share", meanAge = "mean_age"
        case creatinineUnit = "creatinine_unit", labMissingShare = "lab_missing_share"
        case raceShares = "race_shares", ageBandShares = "age_band_shares", featureDistance = "feature_distance"
    }
}

/// The network and its named tensors.
public struct ModelInfo: Codable, Sendable, Equatable {
    public var widths: [Int]
    public var parameters: Int
    public var tensors: [TensorInfo]
    public var features: [String]

    public init(widths: [Int], parameters: Int, tensors: [TensorInfo], features: [String]) {
        self.widths = widths
        self.parameters = parameters
        self.tensors = tensors
        self.features = features
    }
}

/// A tensor's dotted key, shape and role.
public struct TensorInfo: Codable, Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var role: String

    public init(name: String, shape: [Int], role: String) {
        self.name = name
        self.shape = shape
        self.role = role
    }
}

/// How the source model was trained and how good it was on held-out source patients.
public struct PretrainingInfo: Codable, Sendable, Equatable {
    public var sourcePatients: Int
    public var epochs: Int
    public var validationAccuracy: Double
    public var validationAuroc: Double?
    /// False under `pretraining: none`: every arm starts from the seeded initialisation.
    public var pretrained: Bool = true
    /// What the model was pretrained on, in words (nil: the synthetic source population).
    public var source: String?

    public init(sourcePatients: Int, epochs: Int, validationAccuracy: Double, validationAuroc: Double?) {
        self.sourcePatients = sourcePatients
        self.epochs = epochs
        self.validationAccuracy = validationAccuracy
        self.validationAuroc = validationAuroc
    }

    enum CodingKeys: String, CodingKey {
        case epochs, pretrained, source
        case sourcePatients = "source_patients"
        case validationAccuracy = "validation_accuracy", validationAuroc = "validation_auroc"
    }
}

/// Test-set performance: pooled over every site's test patients, and per site.
public struct Evaluation: Codable, Sendable, Equatable {
    public var accuracy: Double
    public var balancedAccuracy: Double?
    /// Accuracy of always predicting the majority class on the same patients.
    public var majorityClassAccuracy: Double
    public var auroc: Double?
    /// Average precision; its no-skill level is the prevalence.
    public var auprc: Double?
    public var brier: Double
    /// Expected calibration error over 10 equal-width bins.
    public var ece: Double
    public var worstSiteAccuracy: Double
    /// The unweighted mean of the per-site accuracies (FLamby's metric: every hospital counts once).
    public var meanSiteAccuracy: Double
    public var perSite: [String: SiteEvaluation]
    /// Per attribute: each group's rates and the gaps between groups.
    public var subgroups: [SubgroupAudit]

    public init(accuracy: Double, balancedAccuracy: Double?, majorityClassAccuracy: Double, auroc: Double?, auprc: Double?,
                brier: Double, ece: Double, worstSiteAccuracy: Double, perSite: [String: SiteEvaluation], subgroups: [SubgroupAudit]) {
        self.auprc = auprc
        self.ece = ece
        self.subgroups = subgroups
        // Summed in site-id order: a dictionary's iteration order is not stable, and Double addition is not associative.
        meanSiteAccuracy = perSite.isEmpty ? 0 : perSite.keys.sorted().reduce(0) { $0 + perSite[$1]!.accuracy } / Double(perSite.count)
        self.accuracy = accuracy
        self.balancedAccuracy = balancedAccuracy
        self.majorityClassAccuracy = majorityClassAccuracy
        self.auroc = auroc
        self.brier = brier
        self.worstSiteAccuracy = worstSiteAccuracy
        self.perSite = perSite
    }

    enum CodingKeys: String, CodingKey {
        case accuracy, auroc, auprc, brier, ece, subgroups
        case balancedAccuracy = "balanced_accuracy", majorityClassAccuracy = "majority_class_accuracy"
        case worstSiteAccuracy = "worst_site_accuracy", perSite = "per_site", meanSiteAccuracy = "mean_site_accuracy"
    }

    /// The spread of per-site accuracy (best − worst): how unevenly the model serves the sites.
    public var siteAccuracySpread: Double {
        let values = perSite.values.map(\.accuracy)
        guard let low = values.min(), let high = values.max() else { return .nan }
        return high - low
    }
}

/// One audited attribute (sex, age band, race) in one evaluation.
public struct SubgroupAudit: Codable, Sendable, Equatable {
    public var attribute: String
    public var groups: [GroupRates]
    public var gaps: FairnessGaps

    public init(attribute: String, groups: [GroupRates], gaps: FairnessGaps) {
        self.attribute = attribute
        self.groups = groups
        self.gaps = gaps
    }
}

/// How one fairness gap changed from the pretrained model (round 0) to the arm's final model, with
/// a seeded percentile-bootstrap 95 % interval over test patients.
public struct BiasDrift: Codable, Sendable, Equatable {
    public var attribute: String
    public var metric: String
    public var pretrained: Double
    public var final: Double
    public var drift: Double
    public var low: Double?
    public var high: Double?

    public init(attribute: String, metric: String, pretrained: Double, final: Double, low: Double?, high: Double?) {
        self.attribute = attribute
        self.metric = metric
        self.pretrained = pretrained
        self.final = final
        self.drift = final - pretrained
        self.low = low
        self.high = high
    }

    /// The interval excludes zero: the change is unlikely to be resampling noise alone.
    public var isClear: Bool {
        guard let low, let high else { return false }
        return low > 0 || high < 0
    }
}

/// How far the shared parameters moved from their pretrained values (L2 norms).
public struct ParameterDrift: Codable, Sendable, Equatable {
    public var l2: Double
    /// ‖w − w₀‖ / ‖w₀‖.
    public var relative: Double

    public init(l2: Double, relative: Double) {
        self.l2 = l2
        self.relative = relative
    }
}

/// One site's test-set performance.
public struct SiteEvaluation: Codable, Sendable, Equatable {
    public var accuracy: Double
    public var balancedAccuracy: Double?
    public var majorityClassAccuracy: Double
    /// Absent when the site's test set holds a single class.
    public var auroc: Double?
    public var auprc: Double?
    public var brier: Double
    public var testSize: Int

    public init(accuracy: Double, balancedAccuracy: Double?, majorityClassAccuracy: Double, auroc: Double?, auprc: Double?,
                brier: Double, testSize: Int) {
        self.auprc = auprc
        self.brier = brier
        self.accuracy = accuracy
        self.balancedAccuracy = balancedAccuracy
        self.majorityClassAccuracy = majorityClassAccuracy
        self.auroc = auroc
        self.testSize = testSize
    }

    enum CodingKeys: String, CodingKey {
        case accuracy, auroc, auprc, brier
        case balancedAccuracy = "balanced_accuracy", majorityClassAccuracy = "majority_class_accuracy"
        case testSize = "test_size"
    }
}

/// One round of one arm: the global model's evaluation after aggregation, and the traffic.
public struct RoundMetrics: Codable, Sendable, Equatable {
    public var round: Int
    public var evaluation: Evaluation
    public var bytesUp: Int
    public var bytesDown: Int
    public var acceptedSites: [String]
    public var rejected: [Rejection]
    public var meanLocalLoss: Double?
    /// Sites asked for an update this round (all of them unless the scenario samples).
    public var sampledSites: [String]
    /// Sampled sites that sent nothing the server could use, and why (dropped out, missed the deadline).
    public var absent: [Rejection]
    /// Fewer accepted updates than the quorum: the global model did not change this round.
    public var skipped: Bool
    /// Cumulative ε at the arm's δ after this round (DP arms only).
    public var epsilon: Double?
    /// How far the shared parameters are from the pretrained ones after this round (federated arms).
    public var parameterDrift: ParameterDrift?

    public init(round: Int, evaluation: Evaluation, bytesUp: Int, bytesDown: Int, acceptedSites: [String],
                rejected: [Rejection], meanLocalLoss: Double?, sampledSites: [String] = [], absent: [Rejection] = [],
                skipped: Bool = false, epsilon: Double? = nil) {
        self.sampledSites = sampledSites
        self.absent = absent
        self.skipped = skipped
        self.epsilon = epsilon
        self.round = round
        self.evaluation = evaluation
        self.bytesUp = bytesUp
        self.bytesDown = bytesDown
        self.acceptedSites = acceptedSites
        self.rejected = rejected
        self.meanLocalLoss = meanLocalLoss
    }

    enum CodingKeys: String, CodingKey {
        case round, evaluation, rejected
        case bytesUp = "bytes_up", bytesDown = "bytes_down", acceptedSites = "accepted_sites"
        case meanLocalLoss = "mean_local_loss"
        case sampledSites = "sampled_sites", absent, skipped, epsilon, parameterDrift = "parameter_drift"
    }
}

/// An update the server refused and why.
public struct Rejection: Codable, Sendable, Equatable {
    public var site: String
    public var reason: String

    public init(site: String, reason: String) {
        self.site = site
        self.reason = reason
    }
}

/// What an arm exposed: bytes actually serialised, parameters per update.
public struct PrivacyFootprint: Codable, Sendable, Equatable {
    public var bytesUp: Int
    public var bytesDown: Int
    public var bytesUpPerUpdate: Int
    public var parametersExposed: Int
    public var parametersTotal: Int
    public var exposedShare: Double
    public var tensorsExposed: [String]
    /// Site-level DP: ε reached at `delta` (nil without DP), σ and C.
    public var epsilon: Double?
    public var delta: Double?
    public var noiseMultiplier: Double?
    public var clipNorm: Double?
    /// Rounds the ε budget allowed (training stopped before the next would exceed it), when it stopped early.
    public var stoppedByBudgetAfterRound: Int?
    /// Updates travelled pairwise-masked; the server never held one site's values.
    public var secureAggregation: Bool = false

    public init(bytesUp: Int, bytesDown: Int, bytesUpPerUpdate: Int, parametersExposed: Int, parametersTotal: Int,
                tensorsExposed: [String]) {
        self.bytesUp = bytesUp
        self.bytesDown = bytesDown
        self.bytesUpPerUpdate = bytesUpPerUpdate
        self.parametersExposed = parametersExposed
        self.parametersTotal = parametersTotal
        self.exposedShare = Double(parametersExposed) / Double(max(parametersTotal, 1))
        self.tensorsExposed = tensorsExposed
    }

    enum CodingKeys: String, CodingKey {
        case bytesUp = "bytes_up", bytesDown = "bytes_down", bytesUpPerUpdate = "bytes_up_per_update"
        case parametersExposed = "parameters_exposed", parametersTotal = "parameters_total"
        case exposedShare = "exposed_share", tensorsExposed = "tensors_exposed"
        case epsilon, delta, noiseMultiplier = "noise_multiplier", clipNorm = "clip_norm"
        case stoppedByBudgetAfterRound = "stopped_by_budget_after_round", secureAggregation = "secure_aggregation"
    }
}

/// Local compute per site and round, counted (not timed, so reports stay reproducible).
public struct ComputeFootprint: Codable, Sendable, Equatable {
    /// Optimiser steps per site per round (mean over sites).
    public var stepsPerSiteRound: Double
    /// Multiply-add FLOPs of local training per site per round (mean), counting only the
    /// products the mode needs (a frozen weight has no weight-gradient product).
    public var trainingFlopsPerSiteRound: Double
    /// Bytes of optimiser state a site holds.
    public var optimizerStateBytes: Int
    /// Simulated seconds of local training per site per round (mean), from the scenario's
    /// per-step compute speeds: a modelled time, so reports stay byte-identical.
    public var simulatedSecondsPerSiteRound: Double = 0

    public init(stepsPerSiteRound: Double, trainingFlopsPerSiteRound: Double, optimizerStateBytes: Int) {
        self.stepsPerSiteRound = stepsPerSiteRound
        self.trainingFlopsPerSiteRound = trainingFlopsPerSiteRound
        self.optimizerStateBytes = optimizerStateBytes
    }

    enum CodingKeys: String, CodingKey {
        case stepsPerSiteRound = "steps_per_site_round"
        case trainingFlopsPerSiteRound = "training_flops_per_site_round"
        case optimizerStateBytes = "optimizer_state_bytes"
        case simulatedSecondsPerSiteRound = "simulated_seconds_per_site_round"
    }
}

/// One compared arm: its rounds, final evaluation and footprints.
public struct ArmMetrics: Codable, Sendable, Equatable {
    public var name: String
    public var mode: String
    /// fedavg, fedprox, fedadam, fedyogi or fedadagrad.
    public var strategy: String
    public var learningRate: Double
    public var localEpochs: Int
    /// Round 0 is the pretrained model before any fine-tuning.
    public var rounds: [RoundMetrics]
    public var final: Evaluation
    public var privacy: PrivacyFootprint
    public var compute: ComputeFootprint
    /// Every audited gap's change since the pretrained model, with its bootstrap interval.
    public var biasDrift: [BiasDrift] = []
    /// Loss-threshold membership-inference AUC per site (train vs held-out patients, final model).
    public var membershipInference: [String: Double] = [:]

    /// The audited change with the largest magnitude.
    public var largestBiasDrift: BiasDrift? { biasDrift.max { abs($0.drift) < abs($1.drift) } }

    /// Mean over sites of the membership-inference AUC.
    public var meanMembershipInference: Double? {
        membershipInference.isEmpty ? nil
            : membershipInference.keys.sorted().reduce(0) { $0 + membershipInference[$1]! } / Double(membershipInference.count)
    }

    public init(name: String, mode: String, strategy: String, learningRate: Double, localEpochs: Int, rounds: [RoundMetrics],
                final: Evaluation, privacy: PrivacyFootprint, compute: ComputeFootprint) {
        self.name = name
        self.mode = mode
        self.strategy = strategy
        self.learningRate = learningRate
        self.localEpochs = localEpochs
        self.rounds = rounds
        self.final = final
        self.privacy = privacy
        self.compute = compute
    }

    enum CodingKeys: String, CodingKey {
        case name, mode, strategy, rounds, final, privacy, compute
        case learningRate = "learning_rate", localEpochs = "local_epochs"
        case biasDrift = "bias_drift", membershipInference = "membership_inference"
    }
}

/// Published mean per-site accuracies by arm name, the source and the agreement tolerance.
public struct ReferenceValues: Codable, Sendable, Equatable {
    public var source: String
    public var tolerance: Double
    public var meanSiteAccuracy: [String: Double]

    public init(source: String, tolerance: Double, meanSiteAccuracy: [String: Double]) {
        self.source = source
        self.tolerance = tolerance
        self.meanSiteAccuracy = meanSiteAccuracy
    }

    enum CodingKeys: String, CodingKey {
        case source, tolerance, meanSiteAccuracy = "mean_site_accuracy"
    }
}

/// One test patient's final score, for `predictions.csv`.
public struct PredictionRow: Sendable, Equatable {
    public var arm: String
    public var site: String
    public var personId: Int64
    public var label: Int
    public var score: Float
    public var sex: String
    public var race: String
    public var ageBand: String
    /// The scenario seed of the run (multi-seed scenarios write every seed's scores).
    public var seed: UInt64 = 0

    public init(arm: String, site: String, personId: Int64, label: Int, score: Float, sex: String, race: String, ageBand: String) {
        self.ageBand = ageBand
        self.arm = arm
        self.site = site
        self.personId = personId
        self.label = label
        self.score = score
        self.sex = sex
        self.race = race
    }
}

/// A mean and a sample standard deviation over seeds.
public struct Spread: Codable, Sendable, Equatable {
    public var mean: Double
    public var standardDeviation: Double
    public var count: Int

    /// Over the finite values (AUROC is undefined on a single-class split).
    public init(_ values: [Double?]) {
        let finite = values.compactMap { $0 }.filter(\.isFinite)
        count = finite.count
        mean = finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count)
        let m = mean
        standardDeviation = finite.count < 2 ? 0 : (finite.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(finite.count - 1)).squareRoot()
    }

    /// "0.874 ± 0.006".
    public var text: String {
        guard mean.isFinite else { return "n/a" }
        return String(format: "%.3f ± %.3f", mean, standardDeviation)
    }

    enum CodingKeys: String, CodingKey {
        case mean, count, standardDeviation = "standard_deviation"
    }
}

/// Every seed's headline numbers per arm, summarised.
public struct SeedSummary: Codable, Sendable, Equatable {
    public var seeds: [UInt64]
    public var arms: [ArmSeedSummary]

    public init(seeds: [UInt64], runs: [[ArmMetrics]]) {
        self.seeds = seeds
        arms = (runs.first ?? []).map { first in
            let same = runs.compactMap { run in run.first { $0.name == first.name } }
            return ArmSeedSummary(name: first.name,
                                  accuracy: Spread(same.map(\.final.accuracy)),
                                  meanSiteAccuracy: Spread(same.map(\.final.meanSiteAccuracy)),
                                  worstSiteAccuracy: Spread(same.map(\.final.worstSiteAccuracy)),
                                  auroc: Spread(same.map(\.final.auroc)), auprc: Spread(same.map(\.final.auprc)),
                                  membershipInference: Spread(same.map(\.meanMembershipInference)))
        }
    }
}

/// One arm's headline numbers over seeds.
public struct ArmSeedSummary: Codable, Sendable, Equatable {
    public var name: String
    public var accuracy: Spread
    public var meanSiteAccuracy: Spread
    public var worstSiteAccuracy: Spread
    public var auroc: Spread
    public var auprc: Spread
    public var membershipInference: Spread

    enum CodingKeys: String, CodingKey {
        case name, accuracy, auroc, auprc
        case worstSiteAccuracy = "worst_site_accuracy", membershipInference = "membership_inference"
        case meanSiteAccuracy = "mean_site_accuracy"
    }
}
