import Foundation
import SiteFitCore

// Paired comparisons of two models scored on the same test patients: the difference in a metric
// with a bootstrap interval that covers both which patients happened to be tested and (over
// several seeds) how training randomness moves the result.

/// Paired bootstrap comparisons of models scored on the same test patients, over one or more seeds.
///
/// **The estimate** is the mean over seeds of each seed's difference `metric(arm) − metric(against)`
/// on all of that seed's test patients.
///
/// **The interval** is a 95 % bias-corrected percentile interval (Efron's BC, Efron & Tibshirani
/// 1993 §14.3) of a hierarchical (two-level) bootstrap (Davison & Hinkley 1997 §3.8; Saravanan et
/// al. 2020, doi:10.46471/gigabyte.12):
/// - *patients*: a replicate resamples the test patients with replacement **within each site**
///   (every site keeps its size, as in the study design) and scores both models on that one
///   resample, so the difference is paired. When every seed tests the same patients (a fixed or
///   temporal split) one resample serves all the seeds of a replicate, because which patients
///   were tested is then common to all seeds and does not average out; when the seeds' test sets
///   differ (a random split per seed), each seed is resampled on its own.
/// - *seeds* (with k > 1 seeds): a replicate also draws k seeds with replacement and averages the
///   paired differences of the drawn seeds, so training randomness (initialisation, batch order,
///   sampling, noise) widens the interval as much as it moves the result. Resampling k values
///   understates their spread by (k − 1)/k, and a percentile of k values is too narrow for few k,
///   so the replicate's deviation from the estimate is scaled by √(k/(k − 1))·t₀.₉₇₅,ₖ₋₁/1.96, the
///   small-sample correction of a mean of k values. With random splits the seed-to-seed spread
///   already holds some patient sampling, so resampling patients as well makes the interval
///   conservative (wider), never too narrow.
/// - *bias correction*: the percentiles are shifted by z₀ = Φ⁻¹(share of replicates below the
///   estimate), so a metric whose replicates sit to one side of its estimate (an absolute value
///   such as the calibration error, a minimum such as worst-site accuracy) keeps its estimate
///   inside its interval.
///
/// **Replicates** start at `minimumReplicates` and double until the Monte Carlo standard error of
/// every interval bound is at most `targetMonteCarloError` (or `maximumReplicates` is reached;
/// secondary metrics stop driving it at `secondaryMaximumReplicates`). A bound's error is
/// estimated by batch means: the replicates are cut into 20 batches in draw order, the bound is
/// taken in each, and the standard deviation of the 20 batch bounds over √20 is the standard error
/// of the bound of all B. A hierarchical replicate draws its patient resamples from its own
/// batch's block, so the batches are independent. Unlike an order-statistic estimate it stays
/// honest when a statistic takes few distinct values (a small group's true-positive rate).
/// Patient resample r comes from a stream keyed by r, so raising B keeps the patient resamples
/// already drawn; the seed draws are made afresh for each B.
public enum PairedBootstrap {
    /// The name of the "model" whose every metric is 0: comparing a row with it gives the row's own
    /// metric with its interval (a level, not a difference).
    public static let zero = ""

    /// How many replicates to draw and which groups count in a fairness gap.
    public struct Options: Sendable {
        public var minimumReplicates: Int
        public var maximumReplicates: Int
        public var targetMonteCarloError: Double
        /// Differences in metrics that `isSecondary` selects stop driving the doubling at this many
        /// replicates (their errors are still reported): subgroup rates of small groups are noisy
        /// enough to need many times the replicates of the headline comparisons.
        public var secondaryMaximumReplicates: Int
        public var isSecondary: @Sendable (ComparisonMetric) -> Bool
        /// Groups smaller than this are left out of a gap (the scenario's minimum group size).
        public var minimumGroupSize: Int
        /// Patients of a class a group needs before its TPR enters a gap.
        public var classMinimum: Int

        public init(minimumReplicates: Int = 2000, maximumReplicates: Int = 64_000, targetMonteCarloError: Double = 0.005,
                    minimumGroupSize: Int = 30, classMinimum: Int = Fairness.defaultClassMinimum,
                    secondaryMaximumReplicates: Int = 64_000, isSecondary: @escaping @Sendable (ComparisonMetric) -> Bool = { _ in false }) {
            self.secondaryMaximumReplicates = secondaryMaximumReplicates
            self.isSecondary = isSecondary
            self.minimumReplicates = minimumReplicates
            self.maximumReplicates = maximumReplicates
            self.targetMonteCarloError = targetMonteCarloError
            self.minimumGroupSize = minimumGroupSize
            self.classMinimum = classMinimum
        }
    }

    /// One difference per (pair, metric), pair-major. `seed` and `purpose` key the resampling
    /// streams, so two calls with the same key resample the same patients.
    public static func compare(_ testSets: [ScoredTestSet], pairs: [(arm: String, against: String)], metrics: [ComparisonMetric],
                               seed: UInt64, purpose: String, options: Options = Options()) -> [PairedDifference] {
        guard !pairs.isEmpty, !metrics.isEmpty else { return [] }
        var models: [String] = []
        for (a, b) in pairs {
            for name in [a, b] where name != zero && !models.contains(name) { models.append(name) }
        }
        // The same patients at every seed (a fixed or temporal split): one patient resample per replicate.
        let shared = testSets.count > 1 && !testSets[0].patients.isEmpty
            && testSets.allSatisfy { $0.patients == testSets[0].patients && $0.sites == testSets[0].sites }
        let prepared = testSets.enumerated().map { index, set in
            PreparedSeed(set, models: models, metrics: metrics, options: options, seed: seed, purpose: purpose,
                         streamKey: shared ? "shared" : String(index))
        }
        var replicates = max(options.minimumReplicates, 1)
        while true {
            // Seeds resample independently (streams keyed by seed index and replicate), so they
            // extend in parallel with the same result as in sequence.
            let target = replicates
            let draws = seedDraws(seeds: prepared.count, replicates: replicates, shared: shared, seed: seed, purpose: purpose)
            // With several seeds a replicate reads only the (seed, patient resample) pairs it drew.
            let needed: [[Bool]]? = prepared.count > 1 ? {
                var marks = [[Bool]](repeating: [Bool](repeating: false, count: target), count: prepared.count)
                for d in stride(from: 0, to: draws.count, by: 2) { marks[Int(draws[d])][Int(draws[d + 1])] = true }
                return marks
            }() : nil
            DispatchQueue.concurrentPerform(iterations: prepared.count) { prepared[$0].extend(to: target, needed: needed?[$0]) }
            // Each difference reads the replicates and writes only its own slot, so they are
            // computed in parallel with the same result as in sequence.
            let slots = UnsafeMutableBufferPointer<PairedDifference?>.allocate(capacity: pairs.count * metrics.count)
            slots.initialize(repeating: nil)
            let output = SendableBuffer(base: slots)
            DispatchQueue.concurrentPerform(iterations: slots.count) { index in
                let pair = pairs[index / metrics.count], metric = metrics[index % metrics.count]
                output.base[index] = difference(prepared, arm: pair.arm, against: pair.against, metric: metric,
                                                replicates: target, draws: draws)
            }
            let differences = slots.map { $0! }
            slots.deallocate()
            func worst(_ secondary: Bool) -> Double {
                differences.filter { options.isSecondary($0.metric) == secondary }.map(\.monteCarloError).filter(\.isFinite).max() ?? 0
            }
            let primaryDone = worst(false) <= options.targetMonteCarloError
            let secondaryDone = worst(true) <= options.targetMonteCarloError || replicates >= options.secondaryMaximumReplicates
            if (primaryDone && secondaryDone) || replicates >= options.maximumReplicates { return differences }
            replicates = min(replicates * 2, options.maximumReplicates)
        }
    }

    static let batches = 20

    /// A buffer whose disjoint elements are written from several threads.
    private struct SendableBuffer<Element>: @unchecked Sendable {
        // @unchecked: each concurrent iteration writes only its own index.
        let base: UnsafeMutableBufferPointer<Element>
    }

    /// The block of patient resamples replicate `r` draws from: its batch's, so batches stay independent.
    static func block(_ r: Int, replicates: Int) -> Range<Int> {
        let size = max(replicates / batches, 1)
        let b = min(r / size, batches - 1)
        return (b * size)..<(b == batches - 1 ? replicates : min((b + 1) * size, replicates))
    }

    /// For each hierarchical replicate, the k (seed, patient resample) pairs it draws: shared by
    /// every difference, so all comparisons of a run use the same draws (empty for one seed).
    /// With `shared` test sets every drawn seed of a replicate uses one patient resample.
    static func seedDraws(seeds k: Int, replicates: Int, shared: Bool, seed: UInt64, purpose: String) -> [Int32] {
        guard k > 1 else { return [] }
        var draws = [Int32](repeating: 0, count: replicates * k * 2)
        for r in 0..<replicates {
            var random = RandomStream(seed: seed, "paired-bootstrap-seeds", purpose, String(r))
            let pool = block(r, replicates: replicates)
            let common = pool.lowerBound + random.int(below: pool.count)
            for j in 0..<k {
                draws[(r * k + j) * 2] = Int32(random.int(below: k))
                draws[(r * k + j) * 2 + 1] = Int32(shared ? common : pool.lowerBound + random.int(below: pool.count))
            }
        }
        return draws
    }

    /// The 97.5th percentile of Student's t with `degrees` degrees of freedom (tabulated to 30;
    /// beyond, 1.96 + 2.4/df, within 0.003 of the exact value).
    public static func studentT975(degrees: Int) -> Double {
        let table: [Double] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                               2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        guard degrees >= 1 else { return .nan }
        return degrees <= table.count ? table[degrees - 1] : 1.96 + 2.4 / Double(degrees)
    }

    /// The standard normal distribution function Φ.
    static func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }

    /// Φ⁻¹ by Acklam's rational approximation (relative error below 1.2e-9), for p in (0, 1).
    static func normalQuantile(_ p: Double) -> Double {
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        if p < low {
            let q = (-2 * log(p)).squareRoot()
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        if p > 1 - low {
            let q = (-2 * log(1 - p)).squareRoot()
            return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        let q = p - 0.5, r = q * q
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    }

    /// The percentiles of Efron's bias-corrected interval for replicates whose share below the
    /// estimate is `below` (ties counted half), clamped away from 0 and 1.
    static func biasCorrectedLevels(below: Double, count: Int) -> (low: Double, high: Double) {
        let edge = 0.5 / Double(max(count, 1))
        let z0 = normalQuantile(min(max(below, edge), 1 - edge))
        return (normalCDF(2 * z0 - 1.959964), normalCDF(2 * z0 + 1.959964))
    }

    static func difference(_ seeds: [PreparedSeed], arm: String, against: String, metric: ComparisonMetric, replicates: Int,
                           draws: [Int32]) -> PairedDifference {
        let k = seeds.count
        let perSeed = seeds.map { $0.point(arm, metric) - $0.point(against, metric) }
        let defined = perSeed.filter(\.isFinite)
        let estimate = defined.isEmpty ? .nan : defined.reduce(0, +) / Double(defined.count)
        var statistics: [Double] = []
        statistics.reserveCapacity(replicates)
        if k == 1 {
            let a = seeds[0].replicates(arm, metric), b = seeds[0].replicates(against, metric)
            for r in 0..<replicates where (a[r] - b[r]).isFinite { statistics.append(a[r] - b[r]) }
        } else if k > 1 {
            let scale = (Double(k) / Double(k - 1)).squareRoot() * studentT975(degrees: k - 1) / 1.959964
            let a = seeds.map { $0.replicates(arm, metric) }, b = seeds.map { $0.replicates(against, metric) }
            for r in 0..<replicates {
                var sum = 0.0, used = 0
                for t in 0..<k {
                    let s = Int(draws[(r * k + t) * 2]), j = Int(draws[(r * k + t) * 2 + 1])
                    let d = a[s][j] - b[s][j]
                    if d.isFinite { sum += d; used += 1 }
                }
                guard used > 0, estimate.isFinite else { continue }
                statistics.append(estimate + scale * (sum / Double(used) - estimate))
            }
        }
        guard statistics.count >= 2, estimate.isFinite else {
            return PairedDifference(arm: arm, against: against, metric: metric, estimate: estimate, perSeed: perSeed, low: .nan, high: .nan,
                                    replicates: replicates, usableReplicates: statistics.count, monteCarloError: .nan)
        }
        let below = statistics.reduce(0.0) { $0 + ($1 < estimate ? 1 : $1 == estimate ? 0.5 : 0) } / Double(statistics.count)
        let levels = biasCorrectedLevels(below: below, count: statistics.count)
        let error = max(quantileError(statistics, levels.low), quantileError(statistics, levels.high))
        statistics.sort()
        return PairedDifference(arm: arm, against: against, metric: metric, estimate: estimate, perSeed: perSeed,
                                low: Fairness.percentile(statistics, levels.low), high: Fairness.percentile(statistics, levels.high),
                                replicates: replicates, usableReplicates: statistics.count, monteCarloError: error)
    }

    /// The batch-means estimate of the standard error of the `q` percentile of `values` (in draw
    /// order, not sorted; see the type's comment).
    static func quantileError(_ values: [Double], _ q: Double, batches: Int = PairedBootstrap.batches) -> Double {
        let size = values.count / batches
        guard size >= 2 else { return .nan }
        let estimates = (0..<batches).map { b in Fairness.percentile(values[(b * size)..<((b + 1) * size)].sorted(), q) }
        let mean = estimates.reduce(0, +) / Double(batches)
        let variance = estimates.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(batches - 1)
        return (variance / Double(batches)).squareRoot()
    }
}
