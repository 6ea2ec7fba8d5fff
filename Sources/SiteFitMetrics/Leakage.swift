import SiteFitCore

/// What a reconstruction attack's success is measured by, in the report and in claims.
public enum LeakageMeasure: String, Sendable, Codable, CaseIterable {
    /// F1 of the binary features (conditions, drugs, sex) of the attacked patients.
    case f1 = "reconstruction_f1"
    /// Per-feature mean absolute error, in standard deviations.
    case error = "reconstruction_error"
    /// Share of attacked patients the reconstruction lies nearer to than to any held-out patient.
    case identified
    /// |estimated − true| outcome rate of the attacked batch, from the head bias.
    case outcomeRateError = "outcome_rate_error"

    /// True when a larger value means the attack recovered more.
    public var higherLeaksMore: Bool { self == .f1 || self == .identified }

    /// The measure in words.
    public var words: String {
        switch self {
        case .f1: "reconstruction F1"
        case .error: "reconstruction error"
        case .identified: "share of patients identified"
        case .outcomeRateError: "outcome-rate error"
        }
    }
}

/// A mean with its 95 % percentile-bootstrap interval over independent units (attacked updates).
public struct MeanInterval: Sendable, Codable, Equatable {
    public var estimate: Double
    public var low: Double
    public var high: Double
    /// Units the mean is over (those where the value is defined).
    public var count: Int

    public init(estimate: Double, low: Double, high: Double, count: Int) {
        self.estimate = estimate
        self.low = low
        self.high = high
        self.count = count
    }

    /// The mean of the finite `values` and its interval from `replicates` resamples drawn from
    /// `random`. Units of one `cluster` (the same seed and site: one pretrained model, one pool of
    /// patients) are not independent, so whole clusters are resampled; without clusters, units are.
    /// Undefined (NaN) with no finite value; one cluster is its own interval.
    public static func bootstrap(_ values: [Double], clusters: [String]? = nil, replicates: Int = 2000,
                                 random: inout RandomStream) -> MeanInterval {
        let keep = values.indices.filter { values[$0].isFinite }
        guard !keep.isEmpty else { return MeanInterval(estimate: .nan, low: .nan, high: .nan, count: 0) }
        // Each cluster's sum and count, in first-seen order (deterministic).
        var order: [String] = [], sums: [String: (total: Double, count: Int)] = [:]
        for i in keep {
            let key = clusters?[i] ?? String(i)
            if sums[key] == nil { order.append(key) }
            sums[key, default: (0, 0)].total += values[i]
            sums[key, default: (0, 0)].count += 1
        }
        let groups = order.map { sums[$0]! }
        let mean = groups.reduce(0) { $0 + $1.total } / Double(keep.count)
        let n = groups.count
        var means: [Double] = []
        means.reserveCapacity(replicates)
        for _ in 0..<replicates {
            var total = 0.0, count = 0
            for _ in 0..<n {
                let g = groups[Int(random.next() % UInt64(n))]
                total += g.total
                count += g.count
            }
            means.append(total / Double(count))
        }
        means.sort()
        func quantile(_ q: Double) -> Double { means[min(max(Int((q * Double(replicates - 1)).rounded()), 0), replicates - 1)] }
        return MeanInterval(estimate: mean, low: quantile(0.025), high: quantile(0.975), count: keep.count)
    }

    public static func == (a: MeanInterval, b: MeanInterval) -> Bool {
        func same(_ x: Double, _ y: Double) -> Bool { x == y || (x.isNaN && y.isNaN) }
        return same(a.estimate, b.estimate) && same(a.low, b.low) && same(a.high, b.high) && a.count == b.count
    }
}
