import Foundation

/// Small, dependency-free SVG charts: well-formed XML, a fixed palette, no clock or random ids,
/// so the same metrics give the same bytes.
enum Charts {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

    /// One named line of (x, y) points; nil values break nothing, they are skipped.
    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
    }

    /// Frame shared by every chart: size, margins and the title. The right margin holds the
    /// legend and grows with its longest name, and the chart grows taller when the legend has
    /// more entries than the plot is high, so no legend is ever cut off.
    struct Frame {
        var width = 680.0, height = 360.0
        var left = 64.0, right = 170.0, top = 34.0, bottom = 52.0
        var plotWidth: Double { width - left - right }
        var plotHeight: Double { height - top - bottom }

        init(legend names: [String] = [], bottom: Double = 52) {
            self.bottom = bottom
            // About 7 px a character at 12 px sans-serif, after a 40 px marker column.
            let longest = Double(names.map(\.count).max() ?? 0)
            right = max(170, 40 + 7 * longest + 12)
            width = 680 - 170 + right
            height = max(360, top + 10 + 20 * Double(names.count) + bottom)
        }
    }

    static func header(_ frame: Frame, title: String) -> String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(frame.width))" height="\(Int(frame.height))" \
        viewBox="0 0 \(Int(frame.width)) \(Int(frame.height))" font-family="sans-serif" font-size="12">
        <title>\(escape(title))</title>
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(frame.left))" y="20" font-size="14" font-weight="bold">\(escape(title))</text>

        """
    }

    /// A y range at least `minimumSpan` wide (within `clamp`), rounded outwards to a round tick
    /// step (1, 2 or 5 × 10^k) that gives at most six intervals; returns the range and the step.
    static func range(_ values: [Double], minimumSpan: Double, clamp: ClosedRange<Double>? = nil) -> (low: Double, high: Double, step: Double) {
        let finite = values.filter(\.isFinite)
        var low = finite.min() ?? 0, high = finite.max() ?? 1
        if high - low < minimumSpan { let middle = (high + low) / 2; low = middle - minimumSpan / 2; high = middle + minimumSpan / 2 }
        if let clamp {
            // A window pushed past one end of the clamp slides back inside rather than shrinking.
            if high > clamp.upperBound { low -= high - clamp.upperBound; high = clamp.upperBound }
            if low < clamp.lowerBound { high += clamp.lowerBound - low; low = clamp.lowerBound }
            high = min(high, clamp.upperBound)
        }
        if high <= low { high = low + minimumSpan }
        let step = tickStep(span: high - low)
        low = (low / step + 1e-9).rounded(.down) * step
        high = (high / step - 1e-9).rounded(.up) * step
        if let clamp { low = max(low, clamp.lowerBound); high = min(high, clamp.upperBound) }
        return (low, high, step)
    }

    /// The smallest of 1, 2 and 5 × 10^k that divides `span` into at most six intervals.
    static func tickStep(span: Double) -> Double {
        guard span.isFinite, span > 0 else { return 1 }
        var magnitude = pow(10, (log10(span / 6)).rounded(.down))
        while true {
            for factor in [1.0, 2, 5] where span / (factor * magnitude) <= 6 + 1e-9 { return factor * magnitude }
            magnitude *= 10
        }
    }

    /// Gridlines and y tick labels at every multiple of `step`, axes and axis titles.
    static func axes(_ frame: Frame, low: Double, high: Double, step: Double, yTitle: String, xTitle: String) -> String {
        var svg = ""
        let digits = max(0, Int(-log10(step).rounded(.down)))
        for v in stride(from: low, through: high + step / 2, by: step) {
            let y = frame.top + frame.plotHeight * (1 - (v - low) / (high - low))
            svg += "<line x1=\"\(f(frame.left))\" y1=\"\(f(y))\" x2=\"\(f(frame.left + frame.plotWidth))\" y2=\"\(f(y))\" stroke=\"#dddddd\"/>\n"
            svg += "<text x=\"\(f(frame.left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(Format.fixed(abs(v) < step / 1e6 ? 0 : v, digits))</text>\n"
        }
        svg += "<line x1=\"\(f(frame.left))\" y1=\"\(f(frame.top))\" x2=\"\(f(frame.left))\" y2=\"\(f(frame.top + frame.plotHeight))\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(f(frame.left))\" y1=\"\(f(frame.top + frame.plotHeight))\" x2=\"\(f(frame.left + frame.plotWidth))\" "
            + "y2=\"\(f(frame.top + frame.plotHeight))\" stroke=\"black\"/>\n"
        svg += "<text x=\"\(f(frame.left + frame.plotWidth / 2))\" y=\"\(f(frame.height - 10))\" text-anchor=\"middle\">\(escape(xTitle))</text>\n"
        svg += "<text transform=\"translate(14 \(f(frame.top + frame.plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yTitle))</text>\n"
        return svg
    }

    static func legend(_ frame: Frame, names: [String], marker: (Int, Double, Double) -> String) -> String {
        var svg = ""
        for (i, name) in names.enumerated() {
            let y = frame.top + 10 + 20 * Double(i)
            svg += marker(i, frame.left + frame.plotWidth + 15, y)
            svg += "<text x=\"\(f(frame.left + frame.plotWidth + 40))\" y=\"\(f(y + 4))\">\(escape(name))</text>\n"
        }
        return svg
    }

    /// Lines over integer rounds, with an optional dashed reference line.
    static func lines(title: String, yTitle: String, series: [Series], reference: (label: String, value: Double)? = nil,
                      minimumSpan: Double = 0.1, clamp: ClosedRange<Double>? = 0...1) -> String {
        let frame = Frame(legend: series.map(\.name))
        let maxX = series.flatMap { $0.points.map(\.x) }.max() ?? 1
        let (low, high, step) = range(series.flatMap { $0.points.map(\.y) } + [reference?.value ?? .nan], minimumSpan: minimumSpan, clamp: clamp)
        func x(_ v: Double) -> Double { frame.left + frame.plotWidth * v / max(maxX, 1) }
        func y(_ v: Double) -> Double { frame.top + frame.plotHeight * (1 - (v - low) / (high - low)) }
        var svg = header(frame, title: title) + axes(frame, low: low, high: high, step: step, yTitle: yTitle, xTitle: "round (0 = pretrained)")
        for r in 0...Int(maxX) {
            svg += "<text x=\"\(f(x(Double(r))))\" y=\"\(f(frame.top + frame.plotHeight + 18))\" text-anchor=\"middle\">\(r)</text>\n"
        }
        if let reference, reference.value.isFinite {
            svg += "<line x1=\"\(f(frame.left))\" y1=\"\(f(y(reference.value)))\" x2=\"\(f(frame.left + frame.plotWidth))\" "
                + "y2=\"\(f(y(reference.value)))\" stroke=\"#555555\" stroke-dasharray=\"5,4\"/>\n"
            svg += "<text x=\"\(f(frame.left + 6))\" y=\"\(f(y(reference.value) - 5))\" fill=\"#555555\">"
                + "\(escape(reference.label))</text>\n"
        }
        for (i, s) in series.enumerated() {
            let color = palette[i % palette.count]
            let points = s.points.filter { $0.y.isFinite }
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\""
                + points.map { "\(f(x($0.x))),\(f(y($0.y)))" }.joined(separator: " ") + "\"/>\n"
            for p in points { svg += "<circle cx=\"\(f(x(p.x)))\" cy=\"\(f(y(p.y)))\" r=\"3\" fill=\"\(color)\"/>\n" }
        }
        svg += legend(frame, names: series.map(\.name)) { i, x0, y0 in
            "<line x1=\"\(f(x0))\" y1=\"\(f(y0))\" x2=\"\(f(x0 + 20))\" y2=\"\(f(y0))\" stroke=\"\(palette[i % palette.count])\" stroke-width=\"2\"/>\n"
        }
        return svg + "</svg>\n"
    }

    /// Grouped vertical bars: one group per category, one bar per series.
    /// `marks` draws one black dash across each category's group at its value (e.g. each site's
    /// majority-class accuracy), with its own legend entry.
    static func bars(title: String, yTitle: String, categories: [String], series: [(name: String, values: [Double?])],
                     marks: (name: String, values: [Double?])? = nil, minimumSpan: Double = 0.1, clamp: ClosedRange<Double>? = 0...1,
                     fromZero: Bool = false) -> String {
        let frame = Frame(legend: series.map(\.name) + (marks.map { [$0.name] } ?? []), bottom: 80)
        let values = series.flatMap { $0.values.compactMap { $0 } } + (marks?.values.compactMap { $0 } ?? [])
        var (low, high, step) = range(values + (fromZero ? [0] : []), minimumSpan: minimumSpan, clamp: clamp)
        if fromZero { low = min(0, low) }
        func y(_ v: Double) -> Double { frame.top + frame.plotHeight * (1 - (v - low) / (high - low)) }
        var svg = header(frame, title: title) + axes(frame, low: low, high: high, step: step, yTitle: yTitle, xTitle: "")
        let groupWidth = frame.plotWidth / Double(max(categories.count, 1))
        let barWidth = groupWidth * 0.8 / Double(max(series.count, 1))
        for (c, category) in categories.enumerated() {
            let groupLeft = frame.left + groupWidth * Double(c) + groupWidth * 0.1
            for (i, s) in series.enumerated() {
                guard c < s.values.count, let v = s.values[c], v.isFinite else { continue }
                let top = y(min(max(v, low), high))
                svg += "<rect x=\"\(f(groupLeft + barWidth * Double(i)))\" y=\"\(f(top))\" width=\"\(f(max(barWidth - 1, 1)))\" "
                    + "height=\"\(f(max(frame.top + frame.plotHeight - top, 0)))\" fill=\"\(palette[i % palette.count])\"/>\n"
            }
            if let marks, c < marks.values.count, let v = marks.values[c], v.isFinite, v >= low - step / 1e6, v <= high + step / 1e6 {
                svg += "<line x1=\"\(f(groupLeft - 2))\" y1=\"\(f(y(v)))\" x2=\"\(f(groupLeft + groupWidth * 0.8 + 2))\" y2=\"\(f(y(v)))\" "
                    + "stroke=\"black\" stroke-width=\"2\" stroke-dasharray=\"6,3\"/>\n"
            }
            let labelX = frame.left + groupWidth * (Double(c) + 0.5), labelY = frame.top + frame.plotHeight + 14
            svg += "<text transform=\"translate(\(f(labelX)) \(f(labelY))) rotate(20)\" font-size=\"11\">\(escape(category))</text>\n"
        }
        svg += legend(frame, names: series.map(\.name) + (marks.map { [$0.name] } ?? [])) { i, x0, y0 in
            i < series.count
                ? "<rect x=\"\(f(x0))\" y=\"\(f(y0 - 6))\" width=\"20\" height=\"12\" fill=\"\(palette[i % palette.count])\"/>\n"
                : "<line x1=\"\(f(x0))\" y1=\"\(f(y0))\" x2=\"\(f(x0 + 20))\" y2=\"\(f(y0))\" stroke=\"black\" stroke-width=\"2\" stroke-dasharray=\"6,3\"/>\n"
        }
        return svg + "</svg>\n"
    }

    /// Labelled points on a log₁₀ x axis (bytes span orders of magnitude between arms).
    static func scatterLogX(title: String, xTitle: String, yTitle: String, points: [(label: String, x: Double, y: Double)]) -> String {
        let usable = points.filter { $0.x > 0 && $0.x.isFinite && $0.y.isFinite }
        let frame = Frame(legend: usable.map(\.label))
        let logs = usable.map { log10($0.x) }
        let xLow = (logs.min() ?? 0).rounded(.down), xHigh = max((logs.max() ?? 1).rounded(.up), xLow + 1)
        let (low, high, step) = range(usable.map(\.y), minimumSpan: 0.1, clamp: 0...1)
        func x(_ v: Double) -> Double { frame.left + frame.plotWidth * (log10(v) - xLow) / (xHigh - xLow) }
        func y(_ v: Double) -> Double { frame.top + frame.plotHeight * (1 - (v - low) / (high - low)) }
        var svg = header(frame, title: title) + axes(frame, low: low, high: high, step: step, yTitle: yTitle, xTitle: xTitle)
        for e in Int(xLow)...Int(xHigh) {
            let v = pow(10, Double(e))
            let label = ["1 B", "10 B", "100 B", "1 kB", "10 kB", "100 kB", "1 MB", "10 MB", "100 MB", "1 GB"][min(max(e, 0), 9)]
            svg += "<text x=\"\(f(x(v)))\" y=\"\(f(frame.top + frame.plotHeight + 18))\" text-anchor=\"middle\">\(label)</text>\n"
        }
        for (i, p) in usable.enumerated() {
            svg += "<circle cx=\"\(f(x(p.x)))\" cy=\"\(f(y(p.y)))\" r=\"5\" fill=\"\(palette[i % palette.count])\"/>\n"
        }
        svg += legend(frame, names: usable.map(\.label)) { i, x0, y0 in
            "<circle cx=\"\(f(x0 + 10))\" cy=\"\(f(y0))\" r=\"5\" fill=\"\(palette[i % palette.count])\"/>\n"
        }
        return svg + "</svg>\n"
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

/// The report's charts, each computed from `RunMetrics` alone (so `sitefit report` can redraw them).
public enum ReportCharts {
    /// File name → SVG text, in the order the report shows them.
    public static func all(_ m: RunMetrics) -> [(file: String, svg: String)] {
        let federated = m.arms.filter { !$0.kind.isBaseline }
        var charts: [(String, String)] = []
        charts.append(("accuracy-by-round.svg", Charts.lines(
            title: "Pooled test accuracy by round", yTitle: "accuracy",
            series: federated.map { arm in Charts.Series(name: arm.name, points: arm.rounds.map { (Double($0.round), $0.evaluation.accuracy) }) },
            reference: m.arms.first.map { ("majority class", $0.final.majorityClassAccuracy) })))
        for attribute in attributes(m) {
            charts.append(("bias-\(attribute)-by-round.svg", Charts.lines(
                title: "Equalised-odds gap by round: \(attribute.replacingOccurrences(of: "_", with: " "))", yTitle: "gap (max − min over groups)",
                series: federated.map { arm in Charts.Series(name: arm.name, points: arm.rounds.map { r in
                    (Double(r.round), r.evaluation.subgroups.first { $0.attribute == attribute }?.gaps.equalizedOdds ?? .nan)
                }) }, minimumSpan: 0.1, clamp: 0...1)))
        }
        charts.append(("accuracy-vs-bytes.svg", Charts.scatterLogX(
            title: "Accuracy against bytes sent up", xTitle: "bytes up, all rounds (log scale)", yTitle: "accuracy",
            points: federated.map { ($0.name, Double($0.privacy.bytesUp), $0.final.accuracy) })))
        charts.append(("per-site-accuracy.svg", Charts.bars(
            title: "Final test accuracy per site", yTitle: "accuracy", categories: m.sites.map(\.id),
            series: m.arms.map { arm in (arm.name, m.sites.map { arm.final.perSite[$0.id]?.accuracy }) },
            marks: ("majority class", m.sites.map { site in m.arms.first?.final.perSite[site.id]?.majorityClassAccuracy }))))
        if let forest = forest(m) { charts.append(("comparisons.svg", forest)) }
        var siteSeries = [("outcome prevalence", m.sites.map(\.outcomePrevalence)), ("female", m.sites.map(\.femaleShare)),
                          ("aged 65+", m.sites.map { ($0.ageBandShares["65-74"] ?? 0) + ($0.ageBandShares["75+"] ?? 0) })]
        if m.sites.contains(where: { $0.labMissingShare != nil }) {
            siteSeries.append(("labs missing", m.sites.map { $0.labMissingShare ?? 0 }))
        }
        charts.append(("sites.svg", Charts.bars(
            title: "Sites at a glance", yTitle: "share of patients", categories: m.sites.map(\.id),
            series: siteSeries,
            clamp: 0...1, fromZero: true)))
        return charts
    }

    /// Audited attributes, in the order of the first arm's final audit.
    static func attributes(_ m: RunMetrics) -> [String] {
        m.arms.first?.final.subgroups.map(\.attribute) ?? []
    }
}
