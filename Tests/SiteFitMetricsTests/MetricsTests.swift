import Testing
@testable import SiteFitMetrics

@Suite("Metrics against hand-computed values")
struct MetricsTests {
    @Test("the expected calibration error is worked out by hand, and is undefined (NaN), not a crash, for a non-finite score")
    func calibrationError() {
        // Bins of 0.5: {0.2, 0.4} with 1 positive: |0.6 − 1| = 0.4; {0.8} with 1 positive: |0.8 − 1| = 0.2 → (0.4 + 0.2) / 3.
        #expect(abs(Metrics.expectedCalibrationError(scores: [0.2, 0.4, 0.8], labels: [0, 1, 1], bins: 2) - 0.2) < 1e-7)
        #expect(Metrics.expectedCalibrationError(scores: [0.2, .nan, 0.8], labels: [0, 1, 1]).isNaN)
        #expect(Metrics.expectedCalibrationError(scores: [0.2, .infinity], labels: [0, 1]).isNaN)
    }

    @Test("accuracy at threshold 0.5 counts s ≥ 0.5 as positive")
    func accuracy() {
        // decisions 1,0,1,1 vs labels 1,0,0,1 → 3 of 4 correct
        #expect(Metrics.accuracy(scores: [0.9, 0.2, 0.5, 0.7], labels: [1, 0, 0, 1]) == 0.75)
    }

    @Test("AUROC without ties is the share of correctly ordered pairs")
    func aurocNoTies() {
        // positives 0.8, 0.4; negatives 0.6, 0.1 → pairs (0.8>0.6)(0.8>0.1)(0.4<0.6)(0.4>0.1) = 3/4
        #expect(Metrics.auroc(scores: [0.8, 0.6, 0.4, 0.1], labels: [1, 0, 1, 0]) == 0.75)
    }

    @Test("AUROC counts a tied positive–negative pair as one half")
    func aurocTies() {
        // positives 0.5, 0.9; negatives 0.5, 0.2 → (0.5=0.5 → ½)(0.5>0.2)(0.9>0.5)(0.9>0.2) = 3.5/4
        #expect(Metrics.auroc(scores: [0.5, 0.5, 0.9, 0.2], labels: [1, 0, 1, 0]) == 0.875)
        // all scores equal → 0.5
        #expect(Metrics.auroc(scores: [0.3, 0.3, 0.3], labels: [1, 0, 0]) == 0.5)
    }

    @Test("AUROC is undefined for a single-class set")
    func aurocSingleClass() {
        #expect(Metrics.auroc(scores: [0.1, 0.9], labels: [1, 1]) == nil)
        #expect(Metrics.auroc(scores: [0.1, 0.9], labels: [0, 0]) == nil)
    }

    @Test("Brier score is the mean squared error of the probabilities")
    func brier() {
        // (0.9−1)² + (0.2−0)² + (0.6−0)² = 0.01 + 0.04 + 0.36 = 0.41 → /3
        #expect(abs(Metrics.brier(scores: [0.9, 0.2, 0.6], labels: [1, 0, 0]) - 0.41 / 3) < 1e-7)
    }

    @Test("balanced accuracy averages sensitivity and specificity")
    func balancedAccuracy() {
        // labels 1,1,0,0,0; decisions 1,0,0,0,1 → TPR 1/2, TNR 2/3 → (0.5 + 0.6667)/2 = 7/12
        let value = Metrics.balancedAccuracy(scores: [0.9, 0.1, 0.2, 0.3, 0.8], labels: [1, 1, 0, 0, 0])
        #expect(abs(value! - 7.0 / 12.0) < 1e-12)
        // always predicting negative: TPR 0, TNR 1 → 0.5 even though accuracy is 0.8
        #expect(Metrics.balancedAccuracy(scores: [0, 0, 0, 0, 0], labels: [1, 0, 0, 0, 0]) == 0.5)
        #expect(Metrics.balancedAccuracy(scores: [0.2], labels: [1]) == nil)
        #expect(Metrics.majorityClassAccuracy([1, 0, 0, 0, 0]) == 0.8)
    }

    @Test("prevalence is the share of positive labels")
    func prevalence() {
        #expect(Metrics.prevalence([1, 0, 0, 1, 0]) == 0.4)
    }
}
