import Foundation
import SiteFitCore

/// A site's cohort as its site actor receives it: the extracted rows, each row's age (for the
/// age-band audit), the train/test split, and whose statistics standardise the features.
public struct SiteCohort: Sendable, Equatable {
    public var extract: CohortExtract
    /// Age in years per row.
    public var ages: [Double]
    public var split: CohortSplit
    public var standardization: Standardization
    /// Persons at each step of a concept-set task's cohort (nil for a cohort table).
    public var attrition: CohortAttrition?
    /// Listed concept ids of the task that match no event here.
    public var unmatchedConcepts: [Int] = []
    /// What the OMOP import found in this site's data (empty for a generated shard).
    public var dataQuality: [DataQualityFinding] = []
    /// For code sequences: their lengths over the test patients, as counts.
    public var sequenceSummary: SequenceSummary?

    /// Whose mean and standard deviation put a site's raw features into the model's space.
    public enum Standardization: Sendable, Equatable {
        /// The pretrained model's (its source population's): a site whose labs differ shows up as shift.
        case sourcePopulation
        /// The site's own train rows (FLamby's protocol): nothing about them leaves the site.
        case siteTrainRows
    }

    public init(extract: CohortExtract, ages: [Double], split: CohortSplit, standardization: Standardization) {
        self.extract = extract
        self.ages = ages
        self.split = split
        self.standardization = standardization
    }
}

/// Prepares one site's cohort from its data, whatever kind of data it is; the site actor holds
/// whichever source it is given and never asks which kind. One conformer per kind of data.
public protocol CohortSource: Sendable {
    /// The site's id.
    var site: String { get }
    /// The file the rows come from, as the user named it (for messages).
    var file: String { get }
    /// Reads the cohort and splits it; `seed` keys any random split (seed, "split", site).
    func load(seed: UInt64) throws -> SiteCohort
}

/// A split by time: patients indexed on or after `testFrom` are tested, earlier ones (from
/// `trainFrom`, when given) train, so a model is always scored on patients later than any it learnt from.
public struct TemporalSplit: Sendable, Equatable {
    /// ISO `YYYY-MM-DD`; rows indexed before it are left out (nil: none).
    public var trainFrom: String?
    /// ISO `YYYY-MM-DD`; rows indexed on or after it are the test set.
    public var testFrom: String

    public init(trainFrom: String? = nil, testFrom: String) {
        self.trainFrom = trainFrom
        self.testFrom = testFrom
    }
}

/// Rows by SQL from an OMOP-shaped shard (`FeatureSpec`), split train/test at random, stratified
/// by outcome (or by index date), and standardised with the pretrained model's statistics.
public struct ShardCohortSource: CohortSource {
    public let shard: SiteShard
    public let spec: FeatureSpec
    public let testFraction: Double
    /// When set, the split is by index date instead of at random.
    public let temporalSplit: TemporalSplit?
    /// Whose statistics standardise the features: the pretrained model's, or (for real data and
    /// a model that was not pretrained) the site's own train rows.
    public let standardization: SiteCohort.Standardization

    public init(shard: SiteShard, spec: FeatureSpec, testFraction: Double, temporalSplit: TemporalSplit? = nil,
                standardization: SiteCohort.Standardization = .sourcePopulation) {
        self.shard = shard
        self.spec = spec
        self.testFraction = testFraction
        self.temporalSplit = temporalSplit
        self.standardization = standardization
    }

    public var site: String { shard.site }
    public var file: String { shard.url.relativePath }

    /// What this site reports for the covariate agreement: persons per covariate, small cells left out.
    public func covariateCounts() throws -> [CovariateKey: Int] {
        do {
            return try shard.reader.read { db in try AutomaticCovariates.siteCounts(db, spec: spec, settings: spec.covariateSettings) }
        } catch let error as ShardError {
            throw error
        } catch {
            throw ShardError(site: site, file: file, problem: "counting covariates failed: \(describe(error))")
        }
    }

    public func load(seed: UInt64) throws -> SiteCohort {
        let extract = try shard.extractCohort(spec)
        let split: CohortSplit
        if let temporalSplit {
            split = CohortSplit.temporal(indexDates: extract.indexDates, temporalSplit)
            guard !split.trainRows.isEmpty, !split.testRows.isEmpty else {
                let window = temporalSplit.trainFrom.map { "from \($0) " } ?? ""
                throw ShardError(site: shard.site, file: file, problem: "the temporal split leaves \(split.trainRows.count) patients indexed "
                                 + "\(window)before \(temporalSplit.testFrom) to train and \(split.testRows.count) from it on to test; "
                                 + "move temporal_split's dates inside the shard's index dates")
            }
        } else {
            var random = RandomStream(seed: seed, "split", shard.site)
            split = CohortSplit.stratified(labels: extract.labels, testFraction: testFraction, random: &random)
            guard !split.trainRows.isEmpty, !split.testRows.isEmpty else {
                throw ShardError(site: shard.site, file: file, problem: "\(extract.rows) cohort rows are too few to split into train and test")
            }
        }
        let ageColumn = extract.columns.firstIndex(of: "age_years") ?? 0
        let ages = (0..<extract.rows).map { extract.features[$0 * extract.columns.count + ageColumn] }
        var cohort = SiteCohort(extract: extract, ages: ages, split: split, standardization: standardization)
        cohort.dataQuality = try shard.reader.read { db in try DataQualityFinding.stored(in: db) }
        if case .conceptSets(let task) = spec.cohort {
            (cohort.attrition, cohort.unmatchedConcepts) = try shard.reader.read { db in
                (try task.attrition(db), try task.unmatchedConcepts(db))
            }
        }
        return cohort
    }
}

/// A real hospital under FLamby's Fed-Heart-Disease protocol: FLamby's own split, and features
/// standardised with the site's own train statistics.
public struct HeartDiseaseCohortSource: CohortSource {
    public let shard: SiteShard

    public init(shard: SiteShard) {
        self.shard = shard
    }

    public var site: String { shard.site }
    public var file: String { shard.url.relativePath }

    public func load(seed: UInt64) throws -> SiteCohort {
        let split = try HeartDiseaseCohort.extract(shard)
        return SiteCohort(extract: split.extract, ages: split.ages,
                          split: CohortSplit(isTest: split.isTest), standardization: .siteTrainRows)
    }
}

/// Which rows of a cohort train and which test, each list in row order.
public struct CohortSplit: Sendable, Equatable {
    public var trainRows: [Int]
    public var testRows: [Int]

    public init(trainRows: [Int], testRows: [Int]) {
        self.trainRows = trainRows
        self.testRows = testRows
    }

    /// A fixed assignment that came with the data (true: a test row).
    public init(isTest: [Bool]) {
        trainRows = isTest.indices.filter { !isTest[$0] }
        testRows = isTest.indices.filter { isTest[$0] }
    }

    /// Rows indexed on or after `split.testFrom` test; rows before it (and from `split.trainFrom`,
    /// when given) train. ISO dates order as strings.
    public static func temporal(indexDates: [String], _ split: TemporalSplit) -> CohortSplit {
        // A row without an index date (empty) belongs to neither side: it cannot be placed in time.
        CohortSplit(trainRows: indexDates.indices.filter { !indexDates[$0].isEmpty && indexDates[$0] < split.testFrom
                                                          && indexDates[$0] >= (split.trainFrom ?? "") },
                    testRows: indexDates.indices.filter { indexDates[$0] >= split.testFrom })
    }

    /// A split stratified by outcome: round(fraction × count) of the positive rows and of the
    /// negative rows, each class shuffled by `random` (positives first), go to test.
    public static func stratified(labels: [Float], testFraction: Double, random: inout RandomStream) -> CohortSplit {
        var positives = labels.indices.filter { labels[$0] >= 0.5 }
        var negatives = labels.indices.filter { labels[$0] < 0.5 }
        random.shuffle(&positives)
        random.shuffle(&negatives)
        let testPositives = Int((Double(positives.count) * testFraction).rounded())
        let testNegatives = Int((Double(negatives.count) * testFraction).rounded())
        return CohortSplit(
            trainRows: (Array(positives.dropFirst(testPositives)) + Array(negatives.dropFirst(testNegatives))).sorted(),
            testRows: (Array(positives.prefix(testPositives)) + Array(negatives.prefix(testNegatives))).sorted())
    }
}

/// A cohort as code sequences, read inside the site actor like any cohort: `base` extracts and
/// splits the patients exactly as it does for the MLP (same rows, same split), then each row's
/// features are replaced by its tokens, which are never standardised.
public struct SequenceCohortSource: CohortSource {
    public let base: ShardCohortSource
    public let settings: CodeSequences.Settings
    public let vocabulary: [SequenceCode]

    public init(base: ShardCohortSource, settings: CodeSequences.Settings, vocabulary: [SequenceCode]) {
        self.base = base
        self.settings = settings
        self.vocabulary = vocabulary
    }

    public var site: String { base.site }
    public var file: String { base.file }

    public func load(seed: UInt64) throws -> SiteCohort {
        var cohort = try base.load(seed: seed)
        cohort.extract = try base.shard.sequences(of: cohort.extract, spec: base.spec, settings: settings, vocabulary: vocabulary)
        cohort.standardization = .sourcePopulation
        let s = settings.maxLength
        var summary = SequenceSummary()
        for row in cohort.split.testRows {
            let length = (0..<s).count { cohort.extract.features[row * 3 * s + 3 * $0] != 0 }
            summary.codes += length
            summary.full += length == s ? 1 : 0
            summary.sequences += 1
        }
        cohort.sequenceSummary = summary
        return cohort
    }
}
