import Testing
@testable import SiteFitReport

@Suite("Charts people can read")
struct ChartTests {
    @Test("y ticks fall on round steps (1, 2 or 5 × 10^k), at most six intervals", arguments: [
        (0.28, 0.05), (1.0, 0.2), (0.1, 0.02), (0.06, 0.01), (0.5, 0.1), (3.0, 0.5), (12.0, 2.0),
    ])
    func tickSteps(_ span: Double, _ step: Double) {
        #expect(abs(Charts.tickStep(span: span) - step) < 1e-12)
    }

    @Test("the range is rounded outwards to its step and stays inside the clamp")
    func ranges() {
        let r = Charts.range([0.62, 0.9], minimumSpan: 0.1, clamp: 0...1)
        #expect(abs(r.low - 0.6) < 1e-12 && abs(r.high - 0.9) < 1e-12 && abs(r.step - 0.05) < 1e-12)
        let top = Charts.range([0.97, 0.99], minimumSpan: 0.1, clamp: 0...1)
        #expect(top.high <= 1 && top.high - top.low >= 0.1 - 1e-12)
    }

    @Test("a long legend name widens the chart instead of being cut, and many entries make it taller")
    func legends() {
        let short = Charts.Frame(legend: ["full"])
        let long = Charts.Frame(legend: ["pooled, per-site standardisation (simulation only)"])
        #expect(short.width == 680 && long.width > 680)
        #expect(long.plotWidth == short.plotWidth)
        #expect(long.width - long.left - long.plotWidth >= 40 + 7 * 50)
        #expect(Charts.Frame(legend: (0..<20).map { "arm \($0)" }).height > 360)
    }

    @Test("the per-site chart marks each site's majority-class accuracy, with a legend entry")
    func majorityMarks() {
        let svg = Charts.bars(title: "t", yTitle: "accuracy", categories: ["a", "b"], series: [("arm", [0.7, 0.8])],
                              marks: ("majority class", [0.6, 0.9]))
        #expect(svg.components(separatedBy: "stroke-dasharray=\"6,3\"").count - 1 == 3)   // two marks and the legend's
        #expect(svg.contains(">majority class</text>"))
    }
}
