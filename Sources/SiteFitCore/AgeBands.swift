/// The age bands reports and inspections group patients by, in one place so that a site's data
/// manager and a report reader see the same groups.
public enum AgeBands {
    /// The band labels, youngest first. Children have their own band: a paediatric hospital's
    /// patients were once counted as 18-44.
    public static let labels = ["0-17", "18-44", "45-64", "65-74", "75+"]

    /// The band of an age in years ("unknown" for a missing age).
    public static func label(_ years: Double) -> String {
        guard years.isFinite else { return "unknown" }
        switch years {
        case ..<18: return "0-17"
        case ..<45: return "18-44"
        case ..<65: return "45-64"
        case ..<75: return "65-74"
        default: return "75+"
        }
    }
}
