import SiteFitCore
import SiteFitNN

/// Sites held in memory: random rows and a model that needs no shard statistics.
public enum InMemory {
    /// `mlp` at `parameters` with the identity standardiser over columns named a, b, c, …
    public static func model(_ mlp: MLP, parameters: [Float]) -> PretrainedModel<MLP> {
        let columns = mlp.configuration.inputSize
        return PretrainedModel(network: mlp, parameters: parameters, standardizer: .identity(columns: columns),
                               columns: (0..<columns).map { String(UnicodeScalar(UInt8(97 + $0 % 26))) })
    }

    /// `count` rows of standard-normal features, then their Bernoulli(`positiveRate`) labels, drawn from `random`.
    public static func rows(_ count: Int, columns: Int, positiveRate: Double = 0.4, random: inout RandomStream) -> Dataset {
        let features = (0..<(count * columns)).map { _ in Float(random.gaussian()) }
        let labels: [Float] = (0..<count).map { _ in random.bernoulli(positiveRate) ? 1 : 0 }
        return Dataset(features: features, labels: labels, columns: columns)
    }
}
