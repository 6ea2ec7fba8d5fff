import Foundation

// Why a site was missing from a round, as a type. metrics.json stores it as the text it has always
// held ("missed the deadline (0.8 s > 0.5 s)"), so committed files still read; that text is a
// frozen storage format, read back only by `init(storedText:)`. The report words reasons itself
// (MarkdownReport+Rounds.swift), so its prose can change without touching a stored file.

/// Why a site sent nothing the server used in a round.
public enum AbsenceReason: Sendable, Equatable {
    /// The round's sampling did not ask the site.
    case notSampled
    /// The site did not answer: on the scenario's dropout schedule, or by the seeded dropout draw.
    case droppedOut(scheduled: Bool)
    /// The site's update took `seconds` of simulated time against the round's `deadline` (under
    /// secure aggregation the round's `SecureAggregationRound` says how its masks were removed).
    case missedDeadline(seconds: Double, deadline: Double)
    /// A site in its own process that delivered nothing: it died, stalled past the reply
    /// deadline, disconnected or refused; `reason` is what the transport saw.
    case lost(reason: String)

    /// True when the site trained but its update came too late.
    public var missedTheDeadline: Bool {
        if case .missedDeadline = self { return true }
        return false
    }
}

/// A sampled site that sent nothing the server used in a round, and why.
public struct AbsentSite: Codable, Sendable, Equatable {
    public var site: String
    public var reason: AbsenceReason

    public init(site: String, reason: AbsenceReason) {
        self.site = site
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case site, reason
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        site = try container.decode(String.self, forKey: .site)
        let text = try container.decode(String.self, forKey: .reason)
        guard let reason = AbsenceReason(storedText: text) else {
            throw DecodingError.dataCorruptedError(forKey: .reason, in: container,
                                                   debugDescription: "'\(text)' is not an absence reason SiteFit writes")
        }
        self.reason = reason
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(site, forKey: .site)
        try container.encode(reason.storedText, forKey: .reason)
    }
}

extension AbsenceReason {
    // The stored wording, frozen (see the top of this file).
    static let storedNotSampled = "not sampled", storedDroppedOut = "dropped out", storedScheduled = "dropped out (scheduled)"
    static let storedLost = "lost: "
    static let storedLate = "missed the deadline (", storedAgainst = " s > ", storedClose = " s)"
    /// Files written before dropout recovery (re-keying) appended this; it is read and dropped.
    static let storedRekeyed = " after masking; the round re-keyed among ", storedSurvivors = " survivors"

    /// The reason as metrics.json stores it. Times keep three significant digits, as the file
    /// always has, so a reason read back equals the one written up to that rounding.
    var storedText: String {
        switch self {
        case .notSampled: Self.storedNotSampled
        case .droppedOut(let scheduled): scheduled ? Self.storedScheduled : Self.storedDroppedOut
        case .missedDeadline(let seconds, let deadline):
            Self.storedLate + String(format: "%.3g", seconds) + Self.storedAgainst + String(format: "%.3g", deadline) + Self.storedClose
        case .lost(let reason): Self.storedLost + reason
        }
    }

    /// The reason `storedText` wrote, or nil for any other text.
    init?(storedText text: String) {
        switch text {
        case Self.storedNotSampled: self = .notSampled
        case Self.storedDroppedOut: self = .droppedOut(scheduled: false)
        case Self.storedScheduled: self = .droppedOut(scheduled: true)
        case _ where text.hasPrefix(Self.storedLost): self = .lost(reason: String(text.dropFirst(Self.storedLost.count)))
        default:
            guard text.hasPrefix(Self.storedLate) else { return nil }
            let body = text.dropFirst(Self.storedLate.count)
            guard let close = body.range(of: Self.storedClose) else { return nil }
            let times = body[..<close.lowerBound].components(separatedBy: Self.storedAgainst)
            guard times.count == 2, let seconds = Double(times[0]), let deadline = Double(times[1]) else { return nil }
            let rest = body[close.upperBound...]
            if !rest.isEmpty {
                guard rest.hasPrefix(Self.storedRekeyed), rest.hasSuffix(Self.storedSurvivors),
                      Int(rest.dropFirst(Self.storedRekeyed.count).dropLast(Self.storedSurvivors.count)) != nil else { return nil }
            }
            self = .missedDeadline(seconds: seconds, deadline: deadline)
        }
    }
}
