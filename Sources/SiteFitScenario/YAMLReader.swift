import Foundation
import SiteFitCore
import Yams

/// Reads typed values out of a composed YAML tree, collecting every problem as a located
/// `Diagnostic` instead of stopping at the first, so `sitefit validate` can list them all.
struct YAMLReader {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []
    /// The hospitals' databases live at their sites, not here (`ScenarioLoader.load(_:sitesElsewhere:)`).
    var sitesElsewhere = false

    init(file: String) {
        self.file = file
    }

    /// Composes `text`; a syntax error becomes one diagnostic with Yams' line and column.
    mutating func compose(_ text: String) -> Node? {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                diagnostics.append(Diagnostic(file: file, line: 1, column: 1, field: "", problem: "the file is empty"))
                return nil
            }
            return node
        } catch let error as YamlError {
            diagnostics.append(Self.diagnostic(for: error, file: file))
            return nil
        } catch {
            diagnostics.append(Diagnostic(file: file, line: 1, column: 1, field: "", problem: "not valid YAML"))
            return nil
        }
    }

    static func diagnostic(for error: YamlError, file: String) -> Diagnostic {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let prefix = context.map { "\($0.text) " } ?? ""
            return Diagnostic(file: file, line: mark.line, column: mark.column, field: "",
                              problem: "invalid YAML: \(prefix)\(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return Diagnostic(file: file, line: context.mark.line, column: context.mark.column, field: "",
                              problem: "duplicate key \(duplicates.map { isPlain($0) ? "'\($0)'" : "(not shown)" }.joined(separator: ", "))")
        case .reader:
            return Diagnostic(file: file, line: 1, column: 1, field: "", problem: "not readable as UTF-8 text")
        default:
            return Diagnostic(file: file, line: 1, column: 1, field: "", problem: "invalid YAML")
        }
    }

    mutating func fail(_ node: Node?, _ field: String, _ problem: String) {
        let mark = node?.mark
        diagnostics.append(Diagnostic(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1,
                                      field: field, problem: problem))
    }

    /// A mapping's values by key; unknown keys are diagnosed with a did-you-mean, and `required`
    /// keys that are absent are diagnosed at the mapping itself.
    mutating func mapping(_ node: Node, _ field: String, allowed: [String], required: [String] = []) -> [String: Node]? {
        guard let mapping = node.mapping else {
            fail(node, field, "expected a mapping of keys to values, found \(describe(node))")
            return nil
        }
        var values: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else {
                fail(key, field, "keys must be plain names")
                continue
            }
            guard allowed.contains(name) else {
                // A key that is no plain word may be a line of a data file: described, not shown.
                guard Self.isPlain(name) else {
                    fail(key, field, "unknown key of \(name.count) characters (not shown); expected one of: \(allowed.joined(separator: ", "))")
                    continue
                }
                let path = field.isEmpty ? name : "\(field).\(name)"
                var problem = "unknown key '\(name)'"
                if let guess = suggestion(for: name, among: allowed) { problem += "; did you mean '\(guess)'?" }
                else { problem += "; expected one of: \(allowed.joined(separator: ", "))" }
                fail(key, path, problem)
                continue
            }
            values[name] = value
        }
        for name in required where values[name] == nil {
            fail(node, field.isEmpty ? name : "\(field).\(name)", "missing required key '\(name)'")
        }
        return values
    }

    mutating func sequence(_ node: Node, _ field: String) -> [Node]? {
        guard let sequence = node.sequence else {
            fail(node, field, "expected a list, found \(describe(node))")
            return nil
        }
        return Array(sequence)
    }

    mutating func string(_ node: Node, _ field: String) -> String? {
        guard let scalar = node.scalar, !scalar.string.isEmpty else {
            fail(node, field, "expected text, found \(describe(node))")
            return nil
        }
        return scalar.string
    }

    mutating func integer(_ node: Node, _ field: String, in range: ClosedRange<Int>, what: String) -> Int? {
        guard let text = node.scalar?.string, let value = Int(text), range.contains(value) else {
            fail(node, field, "expected \(what), found \(describe(node))")
            return nil
        }
        return value
    }

    mutating func number(_ node: Node, _ field: String, in range: ClosedRange<Double>, what: String) -> Double? {
        guard let text = node.scalar?.string, let value = Double(text), value.isFinite, range.contains(value) else {
            fail(node, field, "expected \(what), found \(describe(node))")
            return nil
        }
        return value
    }

    mutating func boolean(_ node: Node, _ field: String) -> Bool? {
        switch node.scalar?.string {
        case "true": return true
        case "false": return false
        default:
            fail(node, field, "expected true or false, found \(describe(node))")
            return nil
        }
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ field: String, _ type: T.Type) -> T?
    where T.RawValue == String {
        choice(node, field, among: T.allCases.map(\.rawValue)).flatMap(T.init(rawValue:))
    }

    /// One of `options` (names from a registry rather than an enum), or a did-you-mean diagnostic.
    mutating func choice(_ node: Node, _ field: String, among options: [String]) -> String? {
        guard let text = node.scalar?.string, options.contains(text) else {
            var problem = "expected one of \(options.map { "'\($0)'" }.joined(separator: ", ")), found \(describe(node))"
            if let text = node.scalar?.string, let guess = suggestion(for: text, among: options) {
                problem += "; did you mean '\(guess)'?"
            }
            fail(node, field, problem)
            return nil
        }
        return text
    }

    /// Short text of letters, digits and `._-+`, without spaces: a setting's value or key, safe
    /// to quote back (a patient's name and record number, spaced, are not).
    static func isPlain(_ text: String) -> Bool {
        text.count <= 24 && text.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-+".unicodeScalars.contains($0))
        }
    }

    /// How a node is quoted back to the user: a scalar's text, or its kind.
    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            // Echoed only when it looks like a setting (a short word or number); anything longer
            // may be a line of a data file named by mistake, and a file's contents never go to
            // the terminal.
            let text = scalar.string
            return Self.isPlain(text) ? "'\(text)'" : "text of \(text.count) characters (not shown)"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

/// Reads a file as UTF-8 text for a loader, with a user-facing error when it cannot.
func readText(_ url: URL, what: String) throws -> String {
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw UserFacingError("\(what) '\(url.relativePath)' does not exist")
    }
    guard let data = FileManager.default.contents(atPath: url.path) else {
        throw UserFacingError("\(what) '\(url.relativePath)' cannot be read")
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw DiagnosticList([Diagnostic(file: url.relativePath, line: 1, column: 1, field: "", problem: "not UTF-8 text")])
    }
    return text
}
