/// Per-column standardisation fitted on training rows: x' = (x − mean) / sd, missing (NaN) → 0.
///
/// A pretrained model carries the source population's standardiser so every site maps its raw
/// features into the space the model was trained in; a site whose labs differ shows up as shift.
public struct Standardizer: Sendable, Equatable, Codable {
    public var means: [Double]
    public var standardDeviations: [Double]

    public init(means: [Double], standardDeviations: [Double]) {
        self.means = means
        self.standardDeviations = standardDeviations
    }

    /// Means 0 and standard deviations 1: rows pass unchanged (a model without a source population).
    public static func identity(columns: Int) -> Standardizer {
        Standardizer(means: [Double](repeating: 0, count: columns), standardDeviations: [Double](repeating: 1, count: columns))
    }

    /// Fits means and standard deviations on the observed (non-NaN) values of `rows` × `columns`.
    public init(fitting features: [Double], columns: Int, rows: [Int]) {
        var sums = [Double](repeating: 0, count: columns)
        var counts = [Int](repeating: 0, count: columns)
        for r in rows { for c in 0..<columns where !features[r * columns + c].isNaN {
            sums[c] += features[r * columns + c]; counts[c] += 1
        } }
        let means = (0..<columns).map { counts[$0] > 0 ? sums[$0] / Double(counts[$0]) : 0 }
        var squares = [Double](repeating: 0, count: columns)
        for r in rows { for c in 0..<columns where !features[r * columns + c].isNaN {
            let d = features[r * columns + c] - means[c]
            squares[c] += d * d
        } }
        // A constant column keeps sd 1 so it maps to 0 instead of dividing by zero.
        let sds = (0..<columns).map { c -> Double in
            let v = counts[c] > 1 ? squares[c] / Double(counts[c] - 1) : 0
            return v > 1e-12 ? v.squareRoot() : 1
        }
        self.init(means: means, standardDeviations: sds)
    }

    /// Standardised Float features for `rows` (all rows when nil).
    public func transform(_ features: [Double], columns: Int, rows: [Int]) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(rows.count * columns)
        for r in rows { for c in 0..<columns {
            let x = features[r * columns + c]
            out.append(x.isNaN ? 0 : Float((x - means[c]) / standardDeviations[c]))
        } }
        return out
    }
}

/// A model trained on the source population, ready to be fine-tuned at sites: the network, its
/// parameters, the standardiser that maps a site's raw features into its space, and the features.
public struct PretrainedModel<Network: NeuralModel>: Sendable {
    public var network: Network
    public var parameters: [Float]
    public var standardizer: Standardizer
    public var columns: [String]

    public init(network: Network, parameters: [Float], standardizer: Standardizer, columns: [String]) {
        self.network = network
        self.parameters = parameters
        self.standardizer = standardizer
        self.columns = columns
    }
}

extension PretrainedModel: Equatable where Network: Equatable {}
