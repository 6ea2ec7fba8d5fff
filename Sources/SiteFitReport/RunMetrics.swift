import SiteFitCore

// Everything `metrics.json` holds about a run as a whole: the scenario, the sites, the model,
// pretraining and published reference values; the arms' own numbers are in ArmMetrics.swift.

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
    /// Every arm against the reference arm and the starting model, over all seeds.
    public var comparisons: Comparisons?
    /// The scenario's `expect:` claims, checked (nil: the scenario claims nothing).
    public var claims: [ClaimResult]?
    /// What an honest-but-curious server reconstructed from single updates (nil: not asked for).
    public var reconstruction: ReconstructionResults?

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
    /// Where the sites' rows come from; the report words the task from it.
    public var dataset: Dataset = .omop
    /// How test patients were chosen, in words, when not at random (a temporal split).
    public var split: String?
    /// The task in words, as the scenario defines it (nil: the dataset's default task).
    public var task: String?
    /// How the sites agreed the automatic covariates (nil: hand-picked features).
    public var covariates: CovariateAgreement?

    /// Where the sites' rows come from (stored as its raw value).
    public enum Dataset: String, Codable, Sendable {
        /// Synthetic OMOP CDM shards, features by SQL over a look-back year.
        case omop
        /// FLamby's Fed-Heart-Disease protocol on the UCI files of four real hospitals.
        case heartDisease = "heart-disease"
    }

    /// What the report says is predicted from what.
    public var taskLine: String { task ?? MarkdownReport.task(dataset) }

    public init(name: String, file: String, fingerprint: String, seed: UInt64, sitefitVersion: String) {
        self.name = name
        self.file = file
        self.fingerprint = fingerprint
        self.seed = seed
        self.sitefitVersion = sitefitVersion
    }

    enum CodingKeys: String, CodingKey {
        case name, file, fingerprint, seed, task, dataset, split, covariates
        case sitefitVersion = "sitefit_version"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        file = try container.decode(String.self, forKey: .file)
        fingerprint = try container.decode(String.self, forKey: .fingerprint)
        seed = try container.decode(UInt64.self, forKey: .seed)
        sitefitVersion = try container.decode(String.self, forKey: .sitefitVersion)
        dataset = try container.decode(Dataset.self, forKey: .dataset)
        split = try container.decodeIfPresent(String.self, forKey: .split)
        // The default task's line reads back as no task of its own, so a file round-trips unchanged.
        let line = try container.decodeIfPresent(String.self, forKey: .task)
        task = line == MarkdownReport.task(dataset) ? nil : line
        covariates = try container.decodeIfPresent(CovariateAgreement.self, forKey: .covariates)
    }

    /// `task` is the report's task line, as the scenario defined the task (older files carry the
    /// line their report printed, which reads back the same).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(file, forKey: .file)
        try container.encode(fingerprint, forKey: .fingerprint)
        try container.encode(seed, forKey: .seed)
        try container.encode(sitefitVersion, forKey: .sitefitVersion)
        try container.encode(dataset, forKey: .dataset)
        try container.encodeIfPresent(split, forKey: .split)
        try container.encode(taskLine, forKey: .task)
        try container.encodeIfPresent(covariates, forKey: .covariates)
    }
}

/// How the sites agreed the automatic covariates before training: what each reported, and the rule.
public struct CovariateAgreement: Codable, Sendable, Equatable {
    /// Covariates kept.
    public var agreed: Int
    public var minimumCount: Int
    public var minimumSites: Int
    public var maximum: Int
    /// Per site: covariates it reported (after leaving out small cells).
    public var reported: [String: Int]
    /// Per site: bytes its report took up to the server.
    public var bytesUp: [String: Int]

    public init(agreed: Int, minimumCount: Int, minimumSites: Int, maximum: Int, reported: [String: Int], bytesUp: [String: Int]) {
        self.agreed = agreed
        self.minimumCount = minimumCount
        self.minimumSites = minimumSites
        self.maximum = maximum
        self.reported = reported
        self.bytesUp = bytesUp
    }

    enum CodingKeys: String, CodingKey {
        case agreed, reported, maximum
        case minimumCount = "minimum_count", minimumSites = "minimum_sites", bytesUp = "bytes_up"
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
    /// The creatinine unit the site's lab codes in (nil: not known, as for an OMOP database).
    public var creatinineUnit: String?
    /// Share of lab values missing (nil: the task has no lab features).
    public var labMissingShare: Double?
    public var raceShares: [String: Double] = [:]
    public var ageBandShares: [String: Double] = [:]
    /// Root-mean-square standardised mean difference between this site's features and the pooled
    /// cohort's (0 = same means; 0.1 is commonly read as a meaningful imbalance).
    public var featureDistance: Double = 0
    /// Persons at each step of a concept-set task's cohort (nil for a cohort table).
    public var attrition: CohortAttrition?
    /// The task's concept ids that match no event at this site (nil: none).
    public var unmatchedConcepts: [Int]?
    /// The OMOP import's data-quality findings at this site (nil: none, or not imported).
    public var dataQuality: [DataQualityFinding]?

    public init(id: String, name: String, shard: String, cohortSize: Int, trainSize: Int, testSize: Int,
                outcomePrevalence: Double, femaleShare: Double, meanAge: Double, creatinineUnit: String?, labMissingShare: Double?) {
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
        case attrition, unmatchedConcepts = "unmatched_concepts", dataQuality = "data_quality"
    }
}

/// The network and its named tensors.
public struct ModelInfo: Codable, Sendable, Equatable {
    public var widths: [Int]
    public var parameters: Int
    public var tensors: [TensorInfo]
    public var features: [String]
    /// Set when the arms fine-tune a transformer over code sequences (`widths` and `features` then
    /// describe the MLP that `model: mlp` arms train).
    public var transformer: TransformerInfo?

    public init(widths: [Int], parameters: Int, tensors: [TensorInfo], features: [String]) {
        self.widths = widths
        self.parameters = parameters
        self.tensors = tensors
        self.features = features
    }
}

/// The transformer of a sequence scenario: its shape and tensors, how its sequences were cut, the
/// vocabulary the sites agreed, and its masked-code pretraining.
public struct TransformerInfo: Codable, Sendable, Equatable {
    public var layers: Int
    public var width: Int
    public var heads: Int
    public var feedForwardWidth: Int
    public var maxLength: Int
    public var lookbackDays: Int
    public var parameters: Int
    public var tensors: [TensorInfo]
    /// How the sites agreed the vocabulary (`agreed` codes, besides padding, mask and unknown).
    public var vocabulary: CovariateAgreement
    /// Mean masked-code loss per epoch of pretraining (first seed), and the loss of guessing uniformly.
    public var maskedLosses: [Double]
    public var guessingLoss: Double
    /// Test patients' codes per sequence: mean, and the share of sequences cut at `maxLength` (first seed).
    public var meanCodes: Double
    public var truncatedShare: Double
    /// The MLP's parameters (what `model: mlp` arms train), for the size comparison.
    public var mlpParameters: Int
    /// The arms that train the MLP instead.
    public var mlpArms: [String] = []

    public init(layers: Int, width: Int, heads: Int, feedForwardWidth: Int, maxLength: Int, lookbackDays: Int, parameters: Int,
                tensors: [TensorInfo], vocabulary: CovariateAgreement, maskedLosses: [Double], guessingLoss: Double,
                meanCodes: Double, truncatedShare: Double, mlpParameters: Int) {
        self.layers = layers
        self.width = width
        self.heads = heads
        self.feedForwardWidth = feedForwardWidth
        self.maxLength = maxLength
        self.lookbackDays = lookbackDays
        self.parameters = parameters
        self.tensors = tensors
        self.vocabulary = vocabulary
        self.maskedLosses = maskedLosses
        self.guessingLoss = guessingLoss
        self.meanCodes = meanCodes
        self.truncatedShare = truncatedShare
        self.mlpParameters = mlpParameters
    }

    enum CodingKeys: String, CodingKey {
        case layers, width, heads, parameters, tensors, vocabulary
        case feedForwardWidth = "feed_forward_width", maxLength = "max_length", lookbackDays = "lookback_days"
        case maskedLosses = "masked_losses", guessingLoss = "guessing_loss", meanCodes = "mean_codes"
        case truncatedShare = "truncated_share", mlpParameters = "mlp_parameters", mlpArms = "mlp_arms"
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
public struct PredictionRow: Sendable, Equatable, Codable {
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
