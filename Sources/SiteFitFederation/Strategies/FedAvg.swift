/// Federated averaging (McMahan et al., arXiv:1602.05629): w ← Σ_k (n_k / Σ n) · w_k.
///
/// A pure function of the packed selected values and each site's train size n_k. Sums run in
/// Double in the given order, so the result is the same however the sites were scheduled.
public struct FedAvg {
    public init() {}

    /// The weighted mean of `updates`; every update must have the same length and n_k > 0.
    public static func aggregate(_ updates: [(values: [Float], trainSize: Int)]) -> [Float] {
        precondition(!updates.isEmpty, "FedAvg of no updates")
        let length = updates[0].values.count
        precondition(updates.allSatisfy { $0.values.count == length && $0.trainSize > 0 })
        let total = Double(updates.reduce(0) { $0 + $1.trainSize })
        var sums = [Double](repeating: 0, count: length)
        for update in updates {
            let weight = Double(update.trainSize) / total
            for i in 0..<length { sums[i] += weight * Double(update.values[i]) }
        }
        return sums.map { Float($0) }
    }
}

extension FedAvg: FederatedStrategy {
    public var name: String { "fedavg" }
    /// The server installs the weighted average as it is.
    public mutating func nextGlobal(current: [Float], average: [Float]) -> [Float] { average }
}
