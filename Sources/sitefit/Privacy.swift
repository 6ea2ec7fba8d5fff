import ArgumentParser
import Foundation
import SiteFitFederation

extension SiteFit {
    /// Privacy accounting without running a scenario.
    struct Privacy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Differential-privacy accounting for site-level DP-FedAvg.", subcommands: [Epsilon.self])

        struct Epsilon: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print ε of the Poisson-sampled Gaussian mechanism after some rounds (RDP accountant).",
                discussion: "Each round samples every site with probability --sample-rate and adds Gaussian noise of "
                    + "standard deviation (noise multiplier × clip norm) to the sum of clipped updates. The RDP of "
                    + "every order in 1.1, 1.2, …, 10.9, 11 … 63, 128, 256, 512 is summed over rounds and turned into "
                    + "(ε, δ) with the conversion of Canonne, Kamath & Steinke (2020), as Google's dp-accounting does.")

            @Option(help: "Noise standard deviation divided by the clip norm (σ).")
            var noiseMultiplier: Double

            @Option(help: "Probability that a site takes part in a round (q, 0 < q ≤ 1).")
            var sampleRate: Double

            @Option(help: "Number of rounds (T).")
            var rounds: Int

            @Option(help: "Target δ (0 < δ < 1), e.g. 1e-5.")
            var delta: Double

            func validate() throws {
                guard noiseMultiplier >= 0 else { throw ValidationError("--noise-multiplier must be ≥ 0") }
                guard sampleRate > 0 && sampleRate <= 1 else { throw ValidationError("--sample-rate must be in (0, 1]") }
                guard rounds >= 0 else { throw ValidationError("--rounds must be ≥ 0") }
                guard delta > 0 && delta < 1 else { throw ValidationError("--delta must be in (0, 1)") }
            }

            func run() throws {
                let (epsilon, order) = RDPAccountant.epsilon(
                    noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, rounds: rounds, delta: delta)
                let shown = epsilon.isFinite ? String(format: "%.4g", epsilon) : "∞ (no noise: no privacy guarantee)"
                print("ε = \(shown) at δ = \(delta) (σ = \(noiseMultiplier), q = \(sampleRate), T = \(rounds); best RDP order \(order))")
            }
        }
    }
}
