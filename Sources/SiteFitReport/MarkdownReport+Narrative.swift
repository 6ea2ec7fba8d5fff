// "What this shows": the findings of `Findings`, as bullets.
extension MarkdownReport {
    /// Plain-language findings computed from the numbers (see `Findings`); nothing here is canned.
    static func narrative(_ m: RunMetrics) -> String {
        Findings.lines(m).map { "- " + $0 }.joined(separator: "\n") + "\n"
    }
}
