import Foundation

/// Rényi-DP accountant for the Poisson-sampled Gaussian mechanism (site-level DP-FedAvg).
///
/// Each round samples every site independently with probability q and adds Gaussian noise of
/// standard deviation σ·C to the sum of updates clipped to L2 norm C. Its RDP at order α is
/// log(A_α)/(α−1) (Mironov, Talwar & Zhang, "Rényi Differential Privacy of the Sampled Gaussian
/// Mechanism", arXiv:1908.10530, §3.3): a finite binomial sum for integer α and a two-sided series
/// with erfc tails for fractional α. RDP adds up over rounds, and (ε, δ) is the best over orders
/// of ε = r + log(1 − 1/α) − log(δ·α)/(α − 1) (Canonne, Kamath & Steinke, arXiv:2004.00010,
/// Prop. 12; the conversion Google's dp-accounting 0.6 uses, with its default order set).
public struct RDPAccountant: Sendable, Equatable {
    /// dp-accounting's default orders: 1.1, 1.2, …, 10.9, then 11 … 63, 128, 256, 512.
    public static let defaultOrders: [Double] = {
        let fractional: [Double] = (1...99).map { (n: Int) -> Double in 1 + Double(n) / 10 }
        let integral: [Double] = (11...63).map { (n: Int) -> Double in Double(n) }
        return fractional + integral + [128, 256, 512]
    }()

    public let orders: [Double]
    /// Accumulated RDP at each order (+∞ where an order's series did not converge).
    public private(set) var rdp: [Double]

    public init(orders: [Double] = RDPAccountant.defaultOrders) {
        self.orders = orders
        rdp = [Double](repeating: 0, count: orders.count)
    }

    /// Takes back accumulated RDP (a restarted server's); false when the orders' count differs
    /// or a value is negative or NaN (RDP is never either; +∞ is allowed, as `rdp` holds it).
    public mutating func restore(rdp: [Double]) -> Bool {
        guard rdp.count == orders.count, rdp.allSatisfy({ $0 >= 0 }) else { return false }
        self.rdp = rdp
        return true
    }

    /// Adds `steps` rounds of the sampled Gaussian mechanism.
    public mutating func compose(noiseMultiplier sigma: Double, sampleRate q: Double, steps: Int = 1) {
        precondition(q >= 0 && q <= 1 && steps >= 0)
        for (index, order) in orders.enumerated() {
            rdp[index] += Double(steps) * Self.sampledGaussianRDP(q: q, sigma: sigma, order: order)
        }
    }

    /// The smallest ε over the orders for this δ, and the order that gives it.
    public func epsilon(delta: Double) -> (epsilon: Double, order: Double) {
        precondition(delta > 0 && delta < 1)
        var best = (epsilon: Double.infinity, order: orders.first ?? 0)
        for (order, r) in zip(orders, rdp) where r.isFinite {
            let epsilon: Double
            if delta * delta + expm1(-r) > 0 {
                epsilon = 0                                   // r is so small that δ alone covers it
            } else if order > 1.01 {
                epsilon = r + log1p(-1 / order) - log(delta * order) / (order - 1)
            } else {
                continue
            }
            if epsilon < best.epsilon { best = (epsilon, order) }
        }
        return (max(0, best.epsilon), best.order)
    }

    /// ε after `rounds` rounds at noise multiplier σ and sample rate q.
    public static func epsilon(noiseMultiplier sigma: Double, sampleRate q: Double, rounds: Int, delta: Double,
                               orders: [Double] = defaultOrders) -> (epsilon: Double, order: Double) {
        var accountant = RDPAccountant(orders: orders)
        accountant.compose(noiseMultiplier: sigma, sampleRate: q, steps: rounds)
        return accountant.epsilon(delta: delta)
    }

    /// RDP of one round at `order`.
    static func sampledGaussianRDP(q: Double, sigma: Double, order: Double) -> Double {
        if q == 0 { return 0 }
        if sigma == 0 { return .infinity }
        if q == 1 { return order / (2 * sigma * sigma) }         // the plain Gaussian mechanism
        if order.isInfinite { return .infinity }
        let logA = order == order.rounded() ? logAInteger(q: q, sigma: sigma, order: Int(order))
                                            : logAFractional(q: q, sigma: sigma, order: order)
        return logA / (order - 1)
    }

    /// log A_α for integer α: log Σ_i C(α,i) q^i (1−q)^(α−i) exp((i² − i)/(2σ²)).
    static func logAInteger(q: Double, sigma: Double, order: Int) -> Double {
        var logA = -Double.infinity
        let logQ = log(q), log1mQ = log1p(-q)
        for i in 0...order {
            let term = logBinomial(Double(order), i) + Double(i) * logQ + Double(order - i) * log1mQ
                + Double(i * i - i) / (2 * sigma * sigma)
            logA = logAdd(logA, term)
        }
        return logA
    }

    /// log A_α for fractional α: the series split at z₀ = σ²·log(1/q − 1) + ½. Terms use |C(α, i)|
    /// (the generalised binomial turns negative past i = α + 1), which bounds A_α from above, so
    /// ε can only be overstated; dp-accounting 0.6 does the same, and this matches it to 1e-12.
    /// The series stops when both halves' terms fall and are e^30 below the total; an order still
    /// running after 1,000 terms is left out (+∞), as there. Such orders are never the optimum.
    static func logAFractional(q: Double, sigma: Double, order alpha: Double) -> Double {
        var logA0 = -Double.infinity, logA1 = -Double.infinity
        var lastS0 = -Double.infinity, lastS1 = -Double.infinity
        let z0 = sigma * sigma * log(1 / q - 1) + 0.5
        let logQ = log(q), log1mQ = log1p(-q), root2Sigma = 2.0.squareRoot() * sigma
        for i in 0..<1000 {
            let di = Double(i), j = alpha - di
            let logCoefficient = logBinomial(alpha, i)
            let logT0 = logCoefficient + di * logQ + j * log1mQ
            let logT1 = logCoefficient + j * logQ + di * log1mQ
            let logE0 = log(0.5) + logErfc((di - z0) / root2Sigma)
            let logE1 = log(0.5) + logErfc((z0 - j) / root2Sigma)
            let logS0 = logT0 + (di * di - di) / (2 * sigma * sigma) + logE0
            let logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1
            logA0 = logAdd(logA0, logS0)
            logA1 = logAdd(logA1, logS1)
            let total = logAdd(logA0, logA1)
            if logS0 < lastS0 && logS1 < lastS1 && max(logS0, logS1) < total - 30 { return total }
            lastS0 = logS0
            lastS1 = logS1
        }
        return .infinity
    }

    /// log |C(n, k)| for real n (lgamma is log |Γ|).
    static func logBinomial(_ n: Double, _ k: Int) -> Double {
        lgamma(n + 1) - lgamma(Double(k) + 1) - lgamma(n - Double(k) + 1)
    }

    static func logAdd(_ x: Double, _ y: Double) -> Double {
        let (a, b) = (max(x, y), min(x, y))
        if a == -.infinity { return b }
        return a + log1p(exp(b - a))
    }

    /// log(erfc(x)), accurate where erfc underflows (x ≳ 26): the asymptotic series
    /// erfc(x) ≈ e^(−x²)/(x√π)·(1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶)).
    static func logErfc(_ x: Double) -> Double {
        if x < 20 { return log(erfc(x)) }
        let inverseSquare = 1 / (x * x)
        return -x * x - log(x) - 0.5 * log(Double.pi)
            + log1p(inverseSquare * (-0.5 + inverseSquare * (0.75 - inverseSquare * 1.875)))
    }
}
