import Foundation

// Headline numbers over every seed of a multi-seed scenario, in `metrics.json`.

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
