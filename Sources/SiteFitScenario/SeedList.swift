import Foundation

/// The seeds of `sitefit run --seeds`: a comma-separated list (`100,101,102`), an inclusive range
/// (`100-104`), or both (`1,5-7`), each seed once, at most 100.
public enum SeedList {
    /// The seeds in the order given, or a message naming the part that is not a seed.
    public static func parse(_ text: String) throws(SeedListError) -> [UInt64] {
        var seeds: [UInt64] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            if bounds.count == 1, let seed = UInt64(part) {
                seeds.append(seed)
            } else if bounds.count == 2, let low = UInt64(bounds[0]), let high = UInt64(bounds[1]), low <= high, high - low < 100 {
                seeds += Array(low...high)
            } else {
                throw SeedListError("'\(part)' is not a seed or a range of seeds such as 100-104")
            }
        }
        guard Set(seeds).count == seeds.count else { throw SeedListError("a seed is listed twice") }
        guard (1...100).contains(seeds.count) else { throw SeedListError("list from 1 to 100 seeds (got \(seeds.count))") }
        return seeds
    }
}

/// Why a `--seeds` value could not be read.
public struct SeedListError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension Scenario {
    /// The scenario run with these seeds instead of its own: the first gives the detailed tables,
    /// and a source population seeded from the scenario's seed follows it, as multi-seed runs do.
    public func reseeded(_ seeds: [UInt64]) -> Scenario {
        guard let first = seeds.first else { return self }
        var copy = self
        if pretraining.source.seed == seed &+ 1 { copy.pretraining.source.seed = first &+ 1 }
        copy.seed = first
        copy.extraSeeds = Array(seeds.dropFirst())
        return copy
    }
}
