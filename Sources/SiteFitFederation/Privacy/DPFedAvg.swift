import SiteFitCore

/// Site-level DP-FedAvg settings (McMahan, Ramage, Talwar & Zhang, "Learning Differentially
/// Private Recurrent Language Models", arXiv:1710.06963): each site's update Δ_k (its selected
/// values minus the broadcast) is clipped to L2 norm C, the server adds N(0, σ²C²) to the sum
/// and divides by the expected number of participants.
public struct DPSettings: Sendable, Equatable {
    /// C: the largest L2 norm of one site's update.
    public var clipNorm: Double
    /// σ: noise standard deviation in units of C.
    public var noiseMultiplier: Double
    /// δ of the reported (ε, δ).
    public var delta: Double
    /// Training stops before a round that would take ε past this; nil means no budget.
    public var epsilonBudget: Double?

    public init(clipNorm: Double, noiseMultiplier: Double, delta: Double = 1e-5, epsilonBudget: Double? = nil) {
        self.clipNorm = clipNorm
        self.noiseMultiplier = noiseMultiplier
        self.delta = delta
        self.epsilonBudget = epsilonBudget
    }
}

/// The maths of DP-FedAvg as pure functions.
public enum DPFedAvg {
    /// Scales `delta` in place so its L2 norm is at most `clipNorm`; returns the norm before clipping.
    @discardableResult
    public static func clip(_ delta: inout [Float], clipNorm: Double) -> Double {
        let norm = delta.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        if norm > clipNorm {
            let scale = Float(clipNorm / norm)
            for i in delta.indices { delta[i] *= scale }
        }
        return norm
    }

    /// (Σ_k Δ_k + N(0, σ²C²)) / m with m the expected participant count; the noise comes from
    /// `random`, one Gaussian per coordinate, summed in Double in the given order.
    public static func noisyMean(_ deltas: [[Float]], count: Int, settings: DPSettings, expectedParticipants m: Double,
                                 random: inout RandomStream) -> [Float] {
        var sum = Sum(count: count)
        for delta in deltas { sum.add(delta) }
        return sum.noisyMean(settings: settings, expectedParticipants: m, random: &random)
    }

    /// Σ_k Δ_k of clipped changes, one update at a time (the server never holds a round's updates).
    public struct Sum: Sendable {
        public private(set) var sums: [Double]

        public init(count: Int) { sums = [Double](repeating: 0, count: count) }

        public mutating func add(_ delta: [Float]) {
            precondition(delta.count == sums.count)
            for i in 0..<sums.count { sums[i] += Double(delta[i]) }
        }

        /// (Σ + N(0, σ²C²)) / m, one Gaussian per coordinate in order.
        public func noisyMean(settings: DPSettings, expectedParticipants m: Double, random: inout RandomStream) -> [Float] {
            let standardDeviation = settings.noiseMultiplier * settings.clipNorm
            return sums.map { Float(($0 + standardDeviation * random.gaussian()) / m) }
        }
    }
}
