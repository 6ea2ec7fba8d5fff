import SiteFitMetrics

// Test-set performance in `metrics.json`: pooled, per site, per subgroup, and how it drifted.

/// Test-set performance: pooled over every site's test patients, and per site.
public struct Evaluation: Codable, Sendable, Equatable {
    public var accuracy: Double
    public var balancedAccuracy: Double?
    /// Accuracy of always predicting the majority class on the same patients.
    public var majorityClassAccuracy: Double
    public var auroc: Double?
    /// Average precision; its no-skill level is the prevalence.
    public var auprc: Double?
    public var brier: Double
    /// Expected calibration error over 10 equal-width bins.
    public var ece: Double
    public var worstSiteAccuracy: Double
    /// The unweighted mean of the per-site accuracies (FLamby's metric: every hospital counts once).
    public var meanSiteAccuracy: Double
    public var perSite: [String: SiteEvaluation]
    /// Per attribute: each group's rates and the gaps between groups.
    public var subgroups: [SubgroupAudit]

    public init(accuracy: Double, balancedAccuracy: Double?, majorityClassAccuracy: Double, auroc: Double?, auprc: Double?,
                brier: Double, ece: Double, worstSiteAccuracy: Double, perSite: [String: SiteEvaluation], subgroups: [SubgroupAudit]) {
        self.auprc = auprc
        self.ece = ece
        self.subgroups = subgroups
        // Summed in site-id order: a dictionary's iteration order is not stable, and Double addition is not associative.
        meanSiteAccuracy = perSite.isEmpty ? 0 : perSite.sorted { $0.key < $1.key }.reduce(0) { $0 + $1.value.accuracy } / Double(perSite.count)
        self.accuracy = accuracy
        self.balancedAccuracy = balancedAccuracy
        self.majorityClassAccuracy = majorityClassAccuracy
        self.auroc = auroc
        self.brier = brier
        self.worstSiteAccuracy = worstSiteAccuracy
        self.perSite = perSite
    }

    enum CodingKeys: String, CodingKey {
        case accuracy, auroc, auprc, brier, ece, subgroups
        case balancedAccuracy = "balanced_accuracy", majorityClassAccuracy = "majority_class_accuracy"
        case worstSiteAccuracy = "worst_site_accuracy", perSite = "per_site", meanSiteAccuracy = "mean_site_accuracy"
    }

    /// The spread of per-site accuracy (best − worst): how unevenly the model serves the sites.
    public var siteAccuracySpread: Double {
        let values = perSite.values.map(\.accuracy)
        guard let low = values.min(), let high = values.max() else { return .nan }
        return high - low
    }
}

/// One site's test-set performance.
public struct SiteEvaluation: Codable, Sendable, Equatable {
    public var accuracy: Double
    public var balancedAccuracy: Double?
    public var majorityClassAccuracy: Double
    /// Absent when the site's test set holds a single class.
    public var auroc: Double?
    public var auprc: Double?
    public var brier: Double
    public var testSize: Int

    public init(accuracy: Double, balancedAccuracy: Double?, majorityClassAccuracy: Double, auroc: Double?, auprc: Double?,
                brier: Double, testSize: Int) {
        self.auprc = auprc
        self.brier = brier
        self.accuracy = accuracy
        self.balancedAccuracy = balancedAccuracy
        self.majorityClassAccuracy = majorityClassAccuracy
        self.auroc = auroc
        self.testSize = testSize
    }

    enum CodingKeys: String, CodingKey {
        case accuracy, auroc, auprc, brier
        case balancedAccuracy = "balanced_accuracy", majorityClassAccuracy = "majority_class_accuracy"
        case testSize = "test_size"
    }
}

/// One audited attribute (sex, age band, race) in one evaluation.
public struct SubgroupAudit: Codable, Sendable, Equatable {
    public var attribute: String
    public var groups: [GroupRates]
    public var gaps: FairnessGaps

    public init(attribute: String, groups: [GroupRates], gaps: FairnessGaps) {
        self.attribute = attribute
        self.groups = groups
        self.gaps = gaps
    }
}

/// How one fairness gap changed from the pretrained model (round 0) to the arm's final model, with
/// a seeded percentile-bootstrap 95 % interval over test patients.
public struct BiasDrift: Codable, Sendable, Equatable {
    public var attribute: String
    public var metric: String
    public var pretrained: Double
    public var final: Double
    public var drift: Double
    public var low: Double?
    public var high: Double?

    public init(attribute: String, metric: String, pretrained: Double, final: Double, low: Double?, high: Double?) {
        self.attribute = attribute
        self.metric = metric
        self.pretrained = pretrained
        self.final = final
        self.drift = final - pretrained
        self.low = low
        self.high = high
    }

    /// The interval excludes zero (by more than rounding): the change is unlikely to be resampling noise alone.
    public var isClear: Bool {
        guard let low, let high else { return false }
        return low > PairedDifference.negligible || high < -PairedDifference.negligible
    }
}

/// How far the shared parameters moved from their pretrained values (L2 norms).
public struct ParameterDrift: Codable, Sendable, Equatable {
    public var l2: Double
    /// ‖w − w₀‖ / ‖w₀‖.
    public var relative: Double

    public init(l2: Double, relative: Double) {
        self.l2 = l2
        self.relative = relative
    }
}
