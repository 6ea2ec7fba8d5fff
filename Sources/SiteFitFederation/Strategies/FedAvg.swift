import SiteFitKernels

/// Federated averaging (McMahan et al., arXiv:1602.05629): w ← Σ_k n_k·w_k / Σ_k n_k.
///
/// A pure function of the packed selected values and each site's train size n_k. Sums run in
/// Double in the given order, so the result is the same however the sites were scheduled.
public struct FedAvg {
    public init() {}

    /// The weighted mean of `updates`; every update must have the same length and n_k > 0.
    public static func aggregate(_ updates: [(values: [Float], trainSize: Int)]) -> [Float] {
        precondition(!updates.isEmpty, "FedAvg of no updates")
        var sum = WeightedSum(count: updates[0].values.count)
        for update in updates { sum.add(update.values, weight: update.trainSize) }
        return sum.mean()
    }

    /// Σ n_k·w_k and Σ n_k, one update at a time: the server folds each update in as it is
    /// validated instead of holding every update of the round (10,000 sites × a full model
    /// would not fit in memory). Dividing once at the end makes the streamed and the batch
    /// result the same bits.
    public struct WeightedSum: Sendable {
        public private(set) var sums: [Double]
        public private(set) var totalWeight: Int = 0

        public init(count: Int) { sums = [Double](repeating: 0, count: count) }

        public mutating func add(_ values: [Float], weight: Int) {
            add(weight: weight) { add in values.withUnsafeBufferPointer(add) }
        }

        /// Adds one site's values given as consecutive segments (the tensors of its update, read
        /// in place from the message by the server), so no site-sized copy is made.
        public mutating func add(weight: Int, segments: ((UnsafeBufferPointer<Float>) -> Void) -> Void) {
            precondition(weight > 0)
            let w = Double(weight)
            var cursor = 0
            sums.withUnsafeMutableBufferPointer { s in
                segments { v in
                    precondition(cursor + v.count <= s.count)
                    if let values = v.baseAddress {
                        Kernels.accumulateWeighted(values, weight: w, into: s.baseAddress! + cursor, count: v.count)
                    }
                    cursor += v.count
                }
            }
            precondition(cursor == sums.count, "an update must cover every selected value")
            totalWeight += weight
        }

        public func mean() -> [Float] {
            let total = Double(totalWeight)
            return sums.map { Float($0 / total) }
        }
    }
}

extension FedAvg: FederatedStrategy {
    /// How scenarios name and build it; it reads no settings.
    public static let descriptor = StrategyDescriptor(
        name: "fedavg",
        summary: "Federated averaging: the server installs the weighted mean of the updates (McMahan et al., arXiv:1602.05629).",
        make: { _, _ in FedAvg() })

    public var name: String { Self.descriptor.name }
    /// Nothing is carried between rounds.
    public var carried: [[Double]] { [] }
    public mutating func restore(carried: [[Double]]) -> Bool { carried.isEmpty }
    /// The server installs the weighted average as it is.
    public mutating func nextGlobal(current: [Float], average: [Float]) -> [Float] { average }
}
