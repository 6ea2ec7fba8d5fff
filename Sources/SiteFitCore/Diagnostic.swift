/// A problem in a user's input file, located by file, line, column and field path.
///
/// Renders as `Scenarios/demo.yaml:14:5: sites[2].patients: expected a positive integer, found '-3'`,
/// the format editors and CI logs link to.
public struct Diagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var field: String
    public var problem: String

    public init(file: String, line: Int, column: Int, field: String, problem: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.problem = problem
    }

    public var description: String {
        field.isEmpty ? "\(file):\(line):\(column): \(problem)" : "\(file):\(line):\(column): \(field): \(problem)"
    }
}

/// Several located problems found in one pass, so a user fixes them all at once.
public struct DiagnosticList: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

/// An error with a message fit to show a user as it is (no patient values, no stack trace).
public struct UserFacingError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Levenshtein distance, for did-you-mean suggestions on unknown keys.
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

/// The closest candidate to `word` if it is plausibly a typo of it.
public func suggestion(for word: String, among candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(2, word.count / 3) ? best.0 : nil
}

/// The SiteFit version, written into reports and shards.
public let siteFitVersion = "0.1.0"
