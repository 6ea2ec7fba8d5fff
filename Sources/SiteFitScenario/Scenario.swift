import Foundation
import SiteFitEHR
import SiteFitFederation
import SiteFitNN
import SiteFitTuning

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
    /// Split by index date instead of at random (`temporal_split:`).
    public var temporalSplit: TemporalSplit?
    /// The prediction task's windows and the concepts its SQL features use.
    public var task: FeatureSpec
    /// The MLP over the task's features: the scenario's model, or (with `transformer`) the one that
    /// arms with `model: mlp` train.
    public var model: MLPConfiguration
    /// `model: {kind: transformer, ...}`: arms fine-tune a transformer over each patient's code
    /// sequence instead of the MLP (nil: the MLP).
    public var transformer: TransformerModel?
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
    /// The row every other arm is compared with (`compare_to:`; nil: the first arm).
    public var compareTo: String?
    /// The lessons the scenario claims (`expect:`), checked by every run.
    public var expectations: [Expectation] = []
    /// The reconstruction experiment (`reconstruction:`): what the server recovers from one site's update.
    public var reconstruction: ReconstructionSettings?

    /// The row the comparisons use as reference: `compare_to`, else the first arm.
    public var comparisonReference: String { compareTo ?? arms.first?.name ?? "" }

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
            /// 0-17, 18-44, 45-64, 65-74, 75+ at the index date.
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

        /// The row names baselines take in reports, metrics.json and predictions.csv (the report's
        /// `ArmKind.Baseline.armName` writes them; a test keeps the two lists equal): no arm may
        /// take one, or its rows would mix with the baseline's.
        public static func reservedArmNames(siteIds: [String]) -> Set<String> {
            Set(["pretrained", "initial model", "pretrained mlp", "initial mlp", "local only", "pooled (simulation only)"] + siteIds.map { "local \($0)" })
        }

        /// The rows `baselines` add to a report, always starting with the starting model (every run
        /// scores it, listed or not), in the names `ArmKind.Baseline.armName` gives them.
        public static func rowNames(_ baselines: [Baseline], siteIds: [String], startsPretrained: Bool) -> [String] {
            var rows = [startsPretrained ? "pretrained" : "initial model"]
            for baseline in baselines {
                switch baseline {
                case .pretrained: continue
                case .local: rows.append("local only")
                case .pooled: rows.append("pooled (simulation only)")
                case .localEach: rows += siteIds.map { "local \($0)" }
                }
            }
            return rows
        }
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
        /// An OMOP CDM database named by `omop:` (imported or in place): used as it is, read-only;
        /// `profile` only carries its id.
        public var omopDatabase: Bool = false
        /// For an `omop_export:` site: the export its shard is imported and split from on demand.
        public var omopExport: OMOPExportSplit?
    }

    /// An OHDSI CSV export (a folder or a zip) imported once and split into sites on demand
    /// (`sites: [{omop_export: {from: ..., sites: K}}]`), so a scenario on real OMOP data runs
    /// from a clean clone. The files live in `folder`: `<name>.sqlite` and `<name>-<k>.sqlite`.
    public struct OMOPExportSplit: Sendable, Equatable {
        public var export: URL
        public var folder: URL
        public var name: String
        public var parts: Int
        public var seed: UInt64
        public var byCareSite: Bool

        public init(export: URL, folder: URL, name: String, parts: Int, seed: UInt64, byCareSite: Bool) {
            self.export = export
            self.folder = folder
            self.name = name
            self.parts = parts
            self.seed = seed
            self.byCareSite = byCareSite
        }

        /// The whole export imported as one shard, before the split.
        public var importedFile: URL { folder.appendingPathComponent("\(name).sqlite") }
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

    /// The transformer a scenario fine-tunes: its shape, how sequences are cut and the vocabulary
    /// agreed, and how many epochs of masked-code modelling precede the source task. The vocabulary's
    /// size is known only once the sites have agreed it, when the run starts.
    public struct TransformerModel: Sendable, Equatable {
        public var layers: Int = 2
        public var width: Int = 32
        public var heads: Int = 2
        public var feedForwardWidth: Int = 64
        /// Sequence length, look-back (the task's) and the vocabulary agreement.
        public var sequences = CodeSequences.Settings(maxLength: 32)
        /// Epochs of masked-code modelling on the source population before its prediction task.
        public var maskedEpochs: Int = 5
        /// The masked-code stage's Adam learning rate.
        public var maskedLearningRate: Double = 0.001
        /// The codes the sites agreed, set when the run starts (id k + 3 is code k).
        public var vocabulary: [SequenceCode] = []

        public init() {}
    }

    /// One compared configuration: a fine-tuning mode and optional overrides.
    public struct Arm: Sendable, Equatable {
        public var name: String
        public var mode: FineTuningMode
        /// `model: mlp` in a transformer scenario: this arm trains the MLP over the task's features,
        /// on the same sites' same patients (the transformer's yardstick).
        public var onMLP: Bool = false
        public var learningRate: Double
        public var localEpochs: Int
        /// The mode's own settings (LoRA's rank, an adapter's bottleneck, ...), given or default.
        public var modeSettings: ModeSettingValues
        /// How the server combines updates (and what a site adds to its loss): one of `StrategyRegistry.all`.
        public var strategy: StrategyDescriptor
        /// The strategy's settings by arm key (`proximal_mu`, `server_learning_rate`, ...), each as
        /// the scenario gave it or at the strategy's default.
        public var strategyOptions: [String: Double]
        /// Site-level DP-FedAvg (clip, noise, accountant), or nil.
        public var privacy: DPSettings?
        /// Pairwise-masked secure aggregation: the server only ever holds masked vectors.
        public var secureAggregation: Bool
        /// The sites that train in this arm (`training_sites:`; nil: all). Every site still scores
        /// the arm's model, so an arm without a site shows what that site's joining changes.
        public var trainingSites: [String]? = nil

        /// The arm's strategy with fresh server state; `trainedCount` is the size of the trained
        /// selection (what adaptive optimisers keep moments for, as they share all of it).
        public func makeStrategy(trainedCount: Int) -> any FederatedStrategy {
            strategy.make(options: strategyOptions, trainedCount: trainedCount)
        }

        /// The strategy's name as scenarios and reports write it (`fedavg`, `fedprox`, ...).
        public var strategyName: String { strategy.name }
    }
}
