import Foundation

extension Charts {
    /// One row of a forest plot: a difference with its interval, and which side (if any) it calls.
    struct ForestRow {
        var label: String
        var estimate: Double
        var low: Double
        var high: Double
        /// +1: the row's arm is better; −1: worse; 0: indistinguishable.
        var verdict: Int
    }

    /// One column of a forest plot: a metric's differences on its own x axis, 0 marked.
    struct ForestPanel {
        var title: String
        /// Whether a positive difference is the better model (the panel's title says which way).
        var higherIsBetter: Bool
        var rows: [ForestRow]
    }

    /// A forest plot: one line per comparison (labels on the left), one panel per metric, each
    /// difference a point with its interval as a whisker; green where the interval calls the arm
    /// better, red where it calls it worse, grey where it includes 0.
    static func forest(title: String, labels: [String], panels: [ForestPanel]) -> String {
        let rowHeight = 20.0, panelWidth = 180.0, gap = 40.0, top = 62.0, bottom = 44.0
        let labelWidth = max(120, 7 * Double(labels.map(\.count).max() ?? 0) + 16)
        let width = labelWidth + Double(panels.count) * (panelWidth + gap) + 10
        let height = top + rowHeight * Double(max(labels.count, 1)) + bottom
        var frame = Frame()
        frame.width = width
        frame.height = height
        frame.left = 10
        var svg = header(frame, title: title)
        let plotBottom = top + rowHeight * Double(labels.count)
        for (i, label) in labels.enumerated() {
            let y = top + rowHeight * (Double(i) + 0.5)
            svg += "<text x=\"\(f(labelWidth - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(escape(label))</text>\n"
            if i % 2 == 1 {
                svg += "<rect x=\"\(f(labelWidth))\" y=\"\(f(y - rowHeight / 2))\" width=\"\(f(width - labelWidth - 10))\" height=\"\(f(rowHeight))\" "
                    + "fill=\"#f4f4f4\"/>\n"
            }
        }
        for (p, panel) in panels.enumerated() {
            let left = labelWidth + Double(p) * (panelWidth + gap)
            let values: [Double] = panel.rows.flatMap { row -> [Double] in [row.low, row.high, row.estimate] } + [0]
            let (low, high, step) = range(values, minimumSpan: 0.01)
            func x(_ v: Double) -> Double { left + panelWidth * (v - low) / (high - low) }
            svg += "<text x=\"\(f(left + panelWidth / 2))\" y=\"\(f(top - 24))\" text-anchor=\"middle\" font-weight=\"bold\">\(escape(panel.title))</text>\n"
            svg += "<text x=\"\(f(left + panelWidth / 2))\" y=\"\(f(top - 8))\" text-anchor=\"middle\" fill=\"#555555\">"
                + (panel.higherIsBetter ? "better →" : "← better") + "</text>\n"
            let digits = max(0, Int(-log10(step).rounded(.down)))
            // Tick labels at every other step when the steps are too narrow for their text.
            let every = panelWidth / ((high - low) / step) < 44 ? 2 : 1
            for (k, v) in stride(from: low, through: high + step / 2, by: step).enumerated() {
                svg += "<line x1=\"\(f(x(v)))\" y1=\"\(f(top))\" x2=\"\(f(x(v)))\" y2=\"\(f(plotBottom))\" stroke=\"#e4e4e4\"/>\n"
                if k % every == 0 {
                    svg += "<text x=\"\(f(x(v)))\" y=\"\(f(plotBottom + 16))\" text-anchor=\"middle\" font-size=\"10\">"
                        + "\(Format.fixed(abs(v) < step / 1e6 ? 0 : v, digits))</text>\n"
                }
            }
            svg += "<line x1=\"\(f(x(0)))\" y1=\"\(f(top))\" x2=\"\(f(x(0)))\" y2=\"\(f(plotBottom))\" stroke=\"black\"/>\n"
            for row in panel.rows {
                guard let i = labels.firstIndex(of: row.label), row.estimate.isFinite else { continue }
                let y = top + rowHeight * (Double(i) + 0.5)
                let color = row.verdict > 0 ? "#2ca02c" : row.verdict < 0 ? "#d62728" : "#555555"
                if row.low.isFinite && row.high.isFinite {
                    svg += "<line x1=\"\(f(x(row.low)))\" y1=\"\(f(y))\" x2=\"\(f(x(row.high)))\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                }
                svg += "<circle cx=\"\(f(x(row.estimate)))\" cy=\"\(f(y))\" r=\"4\" fill=\"\(color)\"/>\n"
            }
        }
        svg += "<text x=\"\(f(labelWidth))\" y=\"\(f(height - 10))\" fill=\"#555555\">Difference (row − reference), mean over seeds; "
            + "whiskers: 95 % interval. Green: better, red: worse, grey: indistinguishable.</text>\n"
        return svg + "</svg>\n"
    }
}
