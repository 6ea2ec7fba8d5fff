/// Rules for text that came from a file (a scenario, a profile, a `metrics.json`, a database)
/// before it reaches a path, a Markdown report or a terminal. Text that breaks a rule is refused
/// where it is read, so everything downstream may interpolate names as they are.
public enum SafeText {
    /// Longest name accepted anywhere.
    public static let maximumLength = 100

    /// A name that becomes a file or folder name (a scenario, a site id): letters, digits, `-`
    /// and `_`, not empty, so never `..`, a separator or a hidden file.
    public static func isFileName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= maximumLength
            && text.unicodeScalars.allSatisfy { ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
    }

    /// A label printed in Markdown tables and on the terminal (an arm, a hospital's name, a task):
    /// printable, without the characters that open Markdown or HTML structure (`|`, `<`, `>`, `` ` ``,
    /// `[`, `]`, `*`, `#`, `\`) and without control characters.
    public static func isLabel(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 4 * maximumLength && !text.unicodeScalars.contains { forbiddenInLabel($0) }
    }

    /// The rule of `isLabel`, for error messages.
    public static let labelRule = "use printable text of at most \(4 * maximumLength) characters without | < > ` [ ] * # \\ or control characters (it is printed in Markdown tables)"

    static func forbiddenInLabel(_ scalar: Unicode.Scalar) -> Bool {
        isControl(scalar) || "|<>`[]*#\\".unicodeScalars.contains(scalar)
    }

    /// `text` made a label: what `isLabel` forbids becomes a space, and it is cut to the label
    /// length. For text that another party chose and a report must still show (a remote site's
    /// failure reason), where refusing it would lose the event.
    public static func label(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(4 * maximumLength) {
            out.unicodeScalars.append(forbiddenInLabel(scalar) ? " " : scalar)
        }
        return out.isEmpty ? "-" : out
    }

    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned: true
        default: false
        }
    }

    /// `text` for a terminal: control characters (escape sequences, carriage returns, bidi
    /// overrides) shown as `\u{…}` so a name cannot rewrite what the user sees. Newlines and
    /// tabs stay: messages span lines.
    public static func terminal(_ text: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if scalar == "\n" || scalar == "\t" || !isControl(scalar) {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out
    }
}
