import Foundation
import GRDB
import SiteFitCore
import SiteFitEHR
import SiteFitNN

/// What a scenario will cost before anything runs: its peak memory and its floating-point work,
/// from the sites' sizes, the model and the rounds. An estimate within a factor of about two,
/// there to stop a runaway scenario (a 4096-wide model, a million rounds) before it takes the
/// machine, not to predict a run's seconds.
public struct ResourceEstimate: Sendable, Equatable {
    /// The model's trainable parameters (the base network; LoRA and adapters add less).
    public var parameters: Int
    /// Input features (for automatic covariates: the most the agreement can keep).
    public var features: Int
    /// Patients over the sites whose size is known before the run.
    public var patients: Int
    /// Sites whose size is not known until their export is imported.
    public var unknownSites: [String]
    /// Training, pretraining, per-round evaluation and the paired bootstrap, over every seed.
    public var flops: Double
    /// At the peak: features in memory, every model copy with its optimiser state and
    /// activations, and the predictions the bootstrap resamples.
    public var memoryBytes: Double

    /// Limits a scenario's estimate must stay within (`--max-memory-gb`, `--max-tflop`).
    public struct Budget: Sendable, Equatable {
        public var memoryBytes: Double
        public var flops: Double

        /// 16 GiB and 100 TFLOP: every committed scenario needs under 1 % of either, and 100
        /// TFLOP is roughly an hour of this project's kernels on two cores.
        public static let standard = Budget(memoryBytes: 16 * 1_073_741_824, flops: 100e12)

        public init(memoryBytes: Double, flops: Double) {
            self.memoryBytes = memoryBytes
            self.flops = flops
        }
    }

    /// The estimate of `scenario` on a machine with `cores` cores. Reads only the person counts of
    /// OMOP databases that already exist (read-only), nothing else.
    public static func of(_ scenario: Scenario, cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> ResourceEstimate {
        let features = scenario.task.automatic
            ? scenario.task.baseColumnNames.count + AutomaticCovariates.ageGroups + scenario.task.covariateSettings.maximum
            : scenario.dataset == .heartDisease ? 13 : scenario.task.columnNames.count
        let widths = [features] + scenario.model.hiddenSizes + [1]
        var parameters = 0.0, activations = 0.0
        for l in 0..<(widths.count - 1) {
            let width = Double(widths[l + 1])
            let norm: Double = scenario.model.layerNorm ? 2 * width : 0
            parameters += Double(widths[l] + 1) * width + norm
            activations += width
        }
        var sizes: [Double] = [], unknown: [String] = []
        for site in scenario.sites {
            if let count = patients(of: site) { sizes.append(count) } else { unknown.append(site.profile.id) }
        }
        let patients = sizes.reduce(0, +)
        let trainShare = 1 - scenario.testFraction
        let seeds = Double(1 + scenario.extraSeeds.count)
        let rounds = Double(scenario.federation.rounds)
        // Samples one site trains on per round, by its local steps or its epochs.
        func samples(_ size: Double, epochs: Int) -> Double {
            scenario.federation.localSteps.map { Double($0 * scenario.federation.batchSize) } ?? size * trainShare * Double(epochs)
        }
        // A transformer's arms cost per patient what its S tokens cost (6 FLOP per block parameter
        // and token, plus attention's 12·S²·d per layer); its MLP arms cost what the MLP does.
        let sequence = scenario.transformer.map(TransformerCost.init)
        var trained = 0.0, sequenceTrained = 0.0
        for arm in scenario.arms {
            let work = sizes.reduce(0) { $0 + samples($1, epochs: arm.localEpochs) } * rounds
            if sequence != nil && !arm.onMLP { sequenceTrained += work } else { trained += work }
        }
        // Local, local-each and pooled each train once on every site's rows: one model per site, or
        // one on all of them. They copy the federation's rounds and local work, or train
        // `baseline_training.epochs` in all (FLamby's protocol).
        let baselineRows = Double(scenario.baselines.filter { $0 != .pretrained }.count)
        let perBaseline: Double
        if let own = scenario.baselineTraining {
            perBaseline = patients * trainShare * Double(own.epochs)
        } else {
            perBaseline = sizes.reduce(0) { $0 + samples($1, epochs: scenario.federation.localEpochs) } * rounds
        }
        if sequence != nil { sequenceTrained += baselineRows * perBaseline } else { trained += baselineRows * perBaseline }
        let source = scenario.pretraining.enabled ? Double(scenario.pretraining.source.patients) : 0
        let pretrained = source * (1 - scenario.pretraining.validationFraction) * Double(scenario.pretraining.epochs)
        // Masked-code epochs cost a training pass plus the tied decoder (6·vocabulary·d per chosen token, 15 % of them).
        let sequencePretrained = sequence.map { t in
            pretrained * t.trainingFlops + source * (1 - scenario.pretraining.validationFraction) * Double(t.maskedEpochs)
                * (t.trainingFlops + 0.15 * t.length * 6 * t.vocabulary * t.width)
        } ?? 0
        let rows = Double(scenario.arms.count + scenario.baselines.count + 1)
        let evaluated = patients * Double(scenario.arms.count) * (rounds + 1)
        // Forward and backward ≈ 6 FLOP per parameter and sample; a forward pass 2; a bootstrap
        // replicate ≈ 8 per test patient and row, at most 16,000 replicates.
        let testPatients = patients * scenario.testFraction
        // The reconstruction experiment: per arm, site, setting and trial, the local steps on the
        // batch, then the fit's budget of three passes (one with a parameter gradient, two with an
        // input gradient) on the batch's dummies; scoring is negligible beside them.
        var attacked = 0.0
        if let r = scenario.reconstruction {
            let perSite = r.batchSizes.reduce(0.0) { total, b in
                total + r.localSteps.reduce(0.0) { $0 + Double(b) * (Double($1) + 3 * Double(r.budget)) }
            } * Double(r.trials)
            attacked = perSite * Double(scenario.sites.count) * Double(scenario.arms.filter { !$0.secureAggregation }.count)
        }
        // Secure aggregation is quadratic in the sites: every pair agrees keys (X25519, counted as
        // 2·10⁵ operations), expands a mask over the update (≈ 16 per parameter) and exchanges
        // Shamir shares; counted as work so a scenario with thousands of masked sites is refused
        // before it starts rather than after hours.
        let siteCount = Double(scenario.sites.count)
        let masking = Double(scenario.arms.filter(\.secureAggregation).count) * rounds * siteCount * siteCount * (2e5 + 16 * parameters)
        let sequenceArms = Double(scenario.arms.filter { !$0.onMLP }.count)
        let sequenceWork = sequence.map { t in
            sequenceTrained * t.trainingFlops + sequencePretrained + patients * sequenceArms * (rounds + 1) * t.trainingFlops / 3
                + Double(scenario.arms.filter(\.secureAggregation).count) * rounds * siteCount * siteCount * 16 * t.parameters
        } ?? 0
        let flops = seeds * masking + seeds * (6 * parameters * (trained + pretrained + attacked) + 2 * parameters * evaluated + 8 * testPatients * rows * 16_000)
            + seeds * sequenceWork
        // Raw and standardised features (Double and Float), the source population's too; per model
        // copy the weights, gradients, two optimiser moments, the broadcast and an update (6 × 4
        // bytes), one copy per core training and one per site holding its update; activations
        // of a batch forward and backward per core; predictions of every row and seed.
        let featureBytes = (patients + source) * Double(features) * 12
        let modelBytes = parameters * 24 * Double(cores + scenario.sites.count + 2)
        let activationBytes = Double(scenario.federation.batchSize) * activations * 12 * Double(cores)
        let predictionBytes = testPatients * rows * seeds * 64
        // The runtime itself (≈ 48 MiB measured for the smallest scenario) and the bootstrap's
        // replicate results, calibrated on the committed scenarios (measured peak / estimate):
        // quickstart 66 / 83 MiB, FLamby's 20 seeds 155 / 146 MiB, heart-disease-transfer
        // 112 / 156 MiB, omop-mimic 50 / 84 MiB.
        let fixedBytes = 64.0 * 1_048_576
        let bootstrapBytes = 16_000 * rows * seeds * 32
        // A transformer site keeps its token rows and a workspace for 256 patients (the largest
        // batch a site scores), with every layer's activations and attention scores; so does each core's trainer.
        let sequenceBytes = sequence.map { t in
            (patients + source) * 3 * t.length * 12 + t.parameters * 24 * Double(cores + scenario.sites.count + 2)
                + 256 * t.activationsPerPatient * 4 * Double(cores + scenario.sites.count)
        } ?? 0
        let total = parameters + (sequence?.parameters ?? 0)
        return ResourceEstimate(parameters: Int(min(total, Double(Int.max / 2))), features: features, patients: Int(patients),
                                unknownSites: unknown, flops: flops,
                                memoryBytes: fixedBytes + featureBytes + modelBytes + activationBytes + predictionBytes + bootstrapBytes + sequenceBytes)
    }

    /// A transformer's size and per-patient work, with the vocabulary at its agreed maximum.
    struct TransformerCost {
        var width: Double, length: Double, vocabulary: Double, maskedEpochs: Int
        var parameters: Double
        /// Forward and backward FLOPs for one patient's sequence.
        var trainingFlops: Double
        /// Floats one patient's forward and backward keep.
        var activationsPerPatient: Double

        init(_ t: Scenario.TransformerModel) {
            let d = Double(t.width), f = Double(t.feedForwardWidth), layers = Double(t.layers), s = Double(t.sequences.maxLength)
            width = d
            length = s
            vocabulary = Double(t.sequences.vocabulary.maximum + 3)
            maskedEpochs = t.maskedEpochs
            let block = 4 * d * d + 2 * d * f + 9 * d + f
            parameters = layers * block + (vocabulary + 8 + s + 2) * d + 3 * d + 1
            trainingFlops = 6 * layers * block * s + 12 * layers * s * s * d
            activationsPerPatient = layers * s * (14 * d + 3 * f) + 2 * Double(t.heads) * s * s * layers
        }
    }

    /// A site's patients: the profile's count, the UCI hospital's rows, or the persons of an OMOP
    /// database that exists; nil when only an import will tell.
    static func patients(of site: Scenario.SiteReference) -> Double? {
        if site.importedHeartDisease { return 303 }  // the largest of the four UCI hospitals
        if !site.omopDatabase { return Double(site.profile.patients) }
        guard FileManager.default.fileExists(atPath: site.shardFile.path),
              let shard = try? SiteShard(site: site.profile.id, url: site.shardFile),
              let count = try? shard.reader.read({ try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM person") ?? 0 }) else { return nil }
        return Double(count)
    }

    /// The estimate in words, for `validate` and for a refusal.
    public var summary: String {
        var text = "estimated \(Self.bytes(memoryBytes)) of memory at the peak and \(Self.work(flops)) "
            + "(\(parameters.formatted()) parameters, \(features) features, \(patients.formatted()) patients)"
        if !unknownSites.isEmpty { text += "; not counted: \(unknownSites.joined(separator: ", ")), whose size is known only after import" }
        return text
    }

    /// An error with the estimate when it is above `budget`, else nil.
    public func refusal(within budget: Budget) -> UserFacingError? {
        var over: [String] = []
        if !(memoryBytes <= budget.memoryBytes) { over.append("memory above the budget of \(Self.bytes(budget.memoryBytes)) (--max-memory-gb)") }
        if !(flops <= budget.flops) { over.append("work above the budget of \(Self.work(budget.flops)) (--max-tflop)") }
        guard !over.isEmpty else { return nil }
        return UserFacingError("the scenario would need too much: \(summary); \(over.joined(separator: " and ")). "
                               + "Shrink the model, the rounds, the sites or the seeds, or raise the budget.")
    }

    static func bytes(_ b: Double) -> String {
        b >= 1_073_741_824 ? String(format: "%.1f GiB", b / 1_073_741_824) : String(format: "%.0f MiB", max(b / 1_048_576, 1))
    }

    static func work(_ f: Double) -> String {
        f >= 1e12 ? String(format: "%.1f TFLOP", f / 1e12) : String(format: "%.1f GFLOP", f / 1e9)
    }
}
