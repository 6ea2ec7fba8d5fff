import Foundation

/// Small, dependency-free SVG charts (well-formed XML, fixed palette, no clock or random ids).
enum Charts {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    /// Pooled test accuracy per round, one line per arm; round 0 is the pretrained model.
    static func accuracyByRound(_ all: RunMetrics) -> String {
        // Baselines have no rounds to plot; the chart shows the federations.
        var metrics = all
        metrics.arms = all.arms.filter { $0.strategy != "baseline" }
        let width = 640.0, height = 360.0
        let left = 60.0, right = 150.0, top = 30.0, bottom = 50.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let rounds = metrics.arms.map { $0.rounds.count - 1 }.max() ?? 1
        let floor = metrics.arms.first?.final.majorityClassAccuracy
        let values = (metrics.arms.flatMap { $0.rounds.map(\.evaluation.accuracy) } + [floor ?? .nan]).filter(\.isFinite)
        var low = ((values.min() ?? 0) * 20).rounded(.down) / 20
        var high = ((values.max() ?? 1) * 20).rounded(.up) / 20
        if high - low < 0.1 { low = max(0, low - 0.05); high = min(1, high + 0.05) }
        func x(_ round: Int) -> Double { left + plotWidth * Double(round) / Double(max(rounds, 1)) }
        func y(_ value: Double) -> Double { top + plotHeight * (1 - (value - low) / max(high - low, 1e-9)) }

        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <title>Test accuracy by round</title>
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(left))" y="18" font-size="14" font-weight="bold">Pooled test accuracy by round</text>

            """
        let ticks = 5
        for i in 0...ticks {
            let v = low + (high - low) * Double(i) / Double(ticks)
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y(v)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y(v)))\" stroke=\"#dddddd\"/>\n"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(Format.fixed(v, 2))</text>\n"
        }
        for r in 0...rounds {
            svg += "<text x=\"\(f(x(r)))\" y=\"\(f(top + plotHeight + 18))\" text-anchor=\"middle\">\(r)</text>\n"
        }
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">round (0 = pretrained)</text>\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotHeight))\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(top + plotHeight))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(top + plotHeight))\" stroke=\"black\"/>\n"
        // The majority-class rate: the accuracy of predicting "no outcome" for everyone.
        if let floor, floor.isFinite {
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y(floor)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y(floor)))\" "
                + "stroke=\"#555555\" stroke-dasharray=\"5,4\"/>\n"
            svg += "<text x=\"\(f(left + plotWidth + 15))\" y=\"\(f(y(floor) + 4))\" fill=\"#555555\">majority class</text>\n"
        }
        for (i, arm) in metrics.arms.enumerated() {
            let color = palette[i % palette.count]
            let points = arm.rounds.map { "\(f(x($0.round))),\(f(y($0.evaluation.accuracy)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
            for round in arm.rounds {
                svg += "<circle cx=\"\(f(x(round.round)))\" cy=\"\(f(y(round.evaluation.accuracy)))\" r=\"3\" fill=\"\(color)\"/>\n"
            }
            let legendY = top + 10 + 20 * Double(i)
            svg += "<line x1=\"\(f(left + plotWidth + 15))\" y1=\"\(f(legendY))\" x2=\"\(f(left + plotWidth + 35))\" y2=\"\(f(legendY))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            svg += "<text x=\"\(f(left + plotWidth + 40))\" y=\"\(f(legendY + 4))\">\(escape(arm.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
