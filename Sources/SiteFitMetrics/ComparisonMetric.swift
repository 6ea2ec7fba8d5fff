// The metrics a paired comparison is made on, by their metrics.json names.

/// A metric two models are compared on, by its `metrics.json` name.
public enum ComparisonMetric: Hashable, Sendable, Codable, CustomStringConvertible {
    case auroc
    case balancedAccuracy
    case accuracy
    case brier
    /// |mean predicted risk − observed event rate|: how far the model's average risk is off.
    case calibrationInTheLarge
    case worstSiteAccuracy
    /// A fairness gap (max − min over the attribute's eligible groups), as `FairnessGaps` defines it.
    case gap(GapKind, attribute: String)
    /// One group's true-positive rate (sensitivity).
    case truePositiveRate(attribute: String, group: String)

    /// The gaps of `FairnessGaps`, by their `metrics.json` names.
    public enum GapKind: String, Sendable, Hashable, CaseIterable {
        case demographicParity = "demographic_parity"
        case equalOpportunity = "equal_opportunity"
        case equalizedOdds = "equalized_odds"
        case auroc = "auroc_gap"
        case calibration = "calibration_gap"
    }

    /// Spread of true-positive rates between the groups of one attribute.
    public static func equalOpportunityGap(attribute: String) -> ComparisonMetric { .gap(.equalOpportunity, attribute: attribute) }

    /// Every gap of every attribute, in `FairnessGaps.names` order per attribute.
    public static func gaps(attributes: [String]) -> [ComparisonMetric] {
        attributes.flatMap { attribute in GapKind.allCases.map { ComparisonMetric.gap($0, attribute: attribute) } }
    }

    /// The metrics every report compares arms on.
    public static let standard: [ComparisonMetric] = [.auroc, .balancedAccuracy, .brier, .calibrationInTheLarge, .worstSiteAccuracy]

    /// "auroc", "balanced_accuracy", …, "equal_opportunity_gap:sex".
    public var name: String {
        switch self {
        case .auroc: "auroc"
        case .balancedAccuracy: "balanced_accuracy"
        case .accuracy: "accuracy"
        case .brier: "brier"
        case .calibrationInTheLarge: "calibration_in_the_large"
        case .worstSiteAccuracy: "worst_site_accuracy"
        case .gap(let kind, let attribute):
            (kind.rawValue.hasSuffix("_gap") ? kind.rawValue : kind.rawValue + "_gap") + ":\(attribute)"
        case .truePositiveRate(let attribute, let group): "true_positive_rate:\(attribute)=\(group)"
        }
    }

    public var description: String { name }

    /// The metric in prose ("AUROC", "equal-opportunity gap by sex", "TPR of female patients").
    public var words: String {
        func plain(_ text: String) -> String { text.replacingOccurrences(of: "_", with: " ") }
        switch self {
        case .auroc: return "AUROC"
        case .balancedAccuracy: return "balanced accuracy"
        case .accuracy: return "accuracy"
        case .brier: return "Brier score"
        case .calibrationInTheLarge: return "calibration error in the large"
        case .worstSiteAccuracy: return "worst-site accuracy"
        case .gap(let kind, let attribute):
            let gap = switch kind {
            case .demographicParity: "demographic-parity gap"
            case .equalOpportunity: "equal-opportunity gap"
            case .equalizedOdds: "equalised-odds gap"
            case .auroc: "AUROC gap"
            case .calibration: "calibration gap"
            }
            return "\(gap) by \(plain(attribute))"
        case .truePositiveRate(let attribute, let group): return "TPR of \(plain(attribute)) \(group)"
        }
    }

    /// The metric a name stands for; nil for a name SiteFit does not compare on.
    public init?(name: String) {
        if let colon = name.firstIndex(of: ":") {
            let head = String(name[..<colon]), tail = String(name[name.index(after: colon)...])
            guard !tail.isEmpty else { return nil }
            if head == "true_positive_rate" {
                let parts = tail.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
                self = .truePositiveRate(attribute: parts[0], group: parts[1])
                return
            }
            guard let kind = GapKind.allCases.first(where: { ComparisonMetric.gap($0, attribute: tail).name == name }) else { return nil }
            self = .gap(kind, attribute: tail)
            return
        }
        let simple: [ComparisonMetric] = [.auroc, .balancedAccuracy, .accuracy, .brier, .calibrationInTheLarge, .worstSiteAccuracy]
        guard let metric = simple.first(where: { $0.name == name }) else { return nil }
        self = metric
    }

    /// Every name `init(name:)` accepts, for error messages (the gap with its attribute placeholder).
    public static let names = ["auroc", "balanced_accuracy", "accuracy", "brier", "calibration_in_the_large",
                               "worst_site_accuracy", "demographic_parity_gap:<attribute>", "equal_opportunity_gap:<attribute>",
                               "equalized_odds_gap:<attribute>", "auroc_gap:<attribute>", "calibration_gap:<attribute>",
                               "true_positive_rate:<attribute>=<group>"]

    /// The patient attribute a gap or group rate is about (nil for whole-population metrics).
    public var attribute: String? {
        switch self {
        case .gap(_, let attribute), .truePositiveRate(let attribute, _): attribute
        default: nil
        }
    }

    /// Whether a larger value is the better model (Brier, calibration error and gaps: smaller is better).
    public var higherIsBetter: Bool {
        switch self {
        case .auroc, .balancedAccuracy, .accuracy, .worstSiteAccuracy, .truePositiveRate: true
        case .brier, .calibrationInTheLarge, .gap: false
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let metric = ComparisonMetric(name: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown metric '\(text)'"))
        }
        self = metric
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}
