import Foundation
import Testing
@testable import SiteFitFederation

/// ε against Google's dp-accounting 0.6 `RdpAccountant` (Poisson-sampled Gaussian, its default
/// orders), computed once with `pip install dp-accounting==0.6.0`; the first two are the issue's.
@Suite("RDP accountant")
struct RDPAccountantTests {
    static let references: [(sigma: Double, q: Double, rounds: Int, delta: Double, epsilon: Double, order: Double)] = [
        (1.1, 0.01, 10_000, 1e-5, 5.632010670081592, 4.7),
        (1.0, 1.0, 15, 1e-5, 24.83092095026798, 2.2),
        (0.8, 0.05, 100, 1e-5, 6.6582571722378345, 3.2),
        (2.0, 0.3, 50, 1e-6, 6.61558975843257, 4.5),
        (1.3, 0.5, 15, 1e-5, 9.6757553679729, 3.0),
        (5.0, 1.0, 100, 1e-5, 10.725509696418232, 3.3),
        (0.6, 0.002, 1000, 1e-5, 3.251987175555925, 4.2),
    ]

    @Test("matches dp-accounting within 1 % (and the same optimal order)", arguments: 0..<references.count)
    func reference(index: Int) {
        let r = Self.references[index]
        let (epsilon, order) = RDPAccountant.epsilon(noiseMultiplier: r.sigma, sampleRate: r.q, rounds: r.rounds, delta: r.delta)
        #expect(abs(epsilon - r.epsilon) / r.epsilon < 0.01, "σ=\(r.sigma) q=\(r.q) T=\(r.rounds): ε \(epsilon) vs \(r.epsilon)")
        #expect(abs(epsilon - r.epsilon) < 1e-9 * r.epsilon, "σ=\(r.sigma) q=\(r.q) T=\(r.rounds): ε \(epsilon) vs \(r.epsilon)")
        #expect(order == r.order)
    }

    @Test("the Gaussian mechanism's RDP is α/(2σ²), and RDP adds up over rounds")
    func closedForm() {
        #expect(RDPAccountant.sampledGaussianRDP(q: 1, sigma: 2, order: 3) == 3.0 / 8)
        var once = RDPAccountant(orders: [2, 3.5, 8])
        once.compose(noiseMultiplier: 1.2, sampleRate: 0.1, steps: 4)
        var stepwise = RDPAccountant(orders: [2, 3.5, 8])
        for _ in 0..<4 { stepwise.compose(noiseMultiplier: 1.2, sampleRate: 0.1) }
        for (a, b) in zip(once.rdp, stepwise.rdp) { #expect(abs(a - b) <= 1e-12 * a) }
    }

    @Test("integer order 2 by hand: A₂ = (1−q)² + 2q(1−q) + q²·e^(1/σ²)")
    func integerOrderByHand() {
        let q = 0.2, sigma = 1.5
        let a2 = (1 - q) * (1 - q) + 2 * q * (1 - q) + q * q * exp(1 / (sigma * sigma))
        #expect(abs(RDPAccountant.sampledGaussianRDP(q: q, sigma: sigma, order: 2) - log(a2)) < 1e-12)
    }

    @Test("fractional orders lie between their integer neighbours")
    func fractionalBetweenIntegers() {
        let low = RDPAccountant.sampledGaussianRDP(q: 0.05, sigma: 1.0, order: 3)
        let mid = RDPAccountant.sampledGaussianRDP(q: 0.05, sigma: 1.0, order: 3.5)
        let high = RDPAccountant.sampledGaussianRDP(q: 0.05, sigma: 1.0, order: 4)
        #expect(low < mid && mid < high)
    }

    @Test("no noise is no privacy; no sampling spends nothing; more noise, less ε")
    func edges() {
        #expect(RDPAccountant.epsilon(noiseMultiplier: 0, sampleRate: 0.5, rounds: 1, delta: 1e-5).epsilon == .infinity)
        #expect(RDPAccountant.epsilon(noiseMultiplier: 1, sampleRate: 0, rounds: 100, delta: 1e-5).epsilon == 0)
        let noisy = RDPAccountant.epsilon(noiseMultiplier: 2, sampleRate: 0.5, rounds: 20, delta: 1e-5).epsilon
        let quiet = RDPAccountant.epsilon(noiseMultiplier: 1, sampleRate: 0.5, rounds: 20, delta: 1e-5).epsilon
        #expect(noisy < quiet)
    }
}
