import Foundation

/// Renders `RunMetrics` as the Markdown report a user reads first.
public enum MarkdownReport {
    /// ε with its δ for a DP arm; "no DP" otherwise (no formal guarantee, whatever else limits exposure).
    static func epsilonCell(_ p: PrivacyFootprint) -> String {
        guard let epsilon = p.epsilon, let delta = p.delta else { return "no DP" }
        return "\(Format.fixed(epsilon, 2)) (δ \(delta))"
    }

    /// The whole report: its sections in reading order, each in its own `MarkdownReport+Section.swift`.
    public static func render(_ m: RunMetrics) -> String {
        [opening(m), summarySection(m), claimsSection(m), comparisonsSection(m), sitesSection(m), modelSection(m), accuracySection(m), biasSection(m),
         privacySection(m), roundsSection(m), howToReadSection(m), reproducibilitySection(m)].joined()
    }

    /// A gap's name in prose.
    static func gapName(_ metric: String) -> String {
        switch metric {
        case "demographic_parity": "demographic-parity gap"
        case "equal_opportunity": "equal-opportunity gap"
        case "equalized_odds": "equalised-odds gap"
        case "auroc_gap": "AUROC gap"
        case "calibration_gap": "calibration gap"
        default: metric.replacingOccurrences(of: "_", with: " ")
        }
    }

    /// What round 0 is: the pretrained model, or the seeded initialisation without pretraining.
    static func start(_ m: RunMetrics) -> String { m.pretraining.pretrained ? "pretrained model" : "initial model" }

    /// An interval bound: like `signed`, but a bound that is not 0 and would round to 0.000 keeps
    /// four decimals, so an interval that excludes 0 never prints as touching it.
    static func bound(_ value: Double) -> String {
        guard value.isFinite, value != 0, abs(value) < 0.0005 else { return signed(value) }
        return (value > 0 ? "+" : "−") + Format.fixed(abs(value), 4)
    }

    /// "+0.041" or "−0.041" (a true minus sign); "n/a" when not finite.
    static func signed(_ value: Double) -> String {
        guard value.isFinite else { return "n/a" }
        // A value that rounds to zero has no sign worth printing ("−0.000" would claim one).
        if abs(value) < 0.0005 { return "0.000" }
        return (value >= 0 ? "+" : "−") + Format.fixed(abs(value))
    }
}
