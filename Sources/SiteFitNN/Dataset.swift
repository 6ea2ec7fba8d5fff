/// A feature matrix and binary labels, row-major (rows, columns), contiguous.
public struct Dataset: Sendable, Equatable {
    public var features: [Float]
    public var labels: [Float]
    public let columns: Int

    public init(features: [Float], labels: [Float], columns: Int) {
        precondition(features.count == labels.count * columns)
        self.features = features
        self.labels = labels
        self.columns = columns
    }

    public var rows: Int { labels.count }

    /// The rows at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Dataset {
        var features: [Float] = []
        features.reserveCapacity(indices.count * columns)
        for i in indices { features.append(contentsOf: self.features[(i * columns)..<((i + 1) * columns)]) }
        return Dataset(features: features, labels: indices.map { labels[$0] }, columns: columns)
    }
}
