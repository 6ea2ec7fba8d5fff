import Foundation
import GRDB
import SiteFitCore

/// One word of the sequence model's vocabulary: a concept of one event domain, a measurement
/// split by where its value falls (BEHRT and Med-BERT use codes; binning values is how EHR
/// transformers carry labs).
public struct SequenceCode: Sendable, Hashable, Comparable, Codable {
    public var domain: EventDomain
    public var conceptId: Int
    /// Measurements with a value and a reference range: below, within or above it.
    public var bin: MeasurementBin?

    public init(domain: EventDomain, conceptId: Int, bin: MeasurementBin? = nil) {
        self.domain = domain
        self.conceptId = conceptId
        self.bin = bin
    }

    /// The word as checkpoints and reports write it: `measurement:3004410:high`, `condition_occurrence:201826`.
    public var name: String { "\(domain.rawValue):\(conceptId)" + (bin.map { ":\($0.rawValue)" } ?? "") }

    /// The word `name` wrote, or nil.
    public init?(name: String) {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, let domain = EventDomain(rawValue: String(parts[0])),
              let id = Int(parts[1]) else { return nil }
        let bin = parts.count == 3 ? MeasurementBin(rawValue: String(parts[2])) : nil
        guard parts.count == 2 || bin != nil else { return nil }
        self.init(domain: domain, conceptId: id, bin: bin)
    }

    public static func < (a: SequenceCode, b: SequenceCode) -> Bool {
        (a.domain.rawValue, a.conceptId, a.bin?.order ?? -1) < (b.domain.rawValue, b.conceptId, b.bin?.order ?? -1)
    }

    enum CodingKeys: String, CodingKey { case domain, conceptId = "concept_id", bin }
}

/// Where a measurement's value falls against its reference range.
public enum MeasurementBin: String, Sendable, Codable, CaseIterable {
    case low, normal, high
    var order: Int { MeasurementBin.allCases.firstIndex(of: self)! }
}

/// Each cohort member's history before the index date as a sequence of codes, for the transformer.
///
/// Events of the condition, drug (rolled up to ingredients where the vocabulary allows),
/// procedure and measurement tables in the look-back window, ordered by date; events of one day
/// form one visit, and the segment alternates from visit to visit (BEHRT's grouping). Time is the
/// bucket of days before the index date. Only the `maxLength` most recent events are kept. The
/// vocabulary is agreed across sites as the automatic covariates are: each site reports how many
/// cohort members have each code, small cells left out, and the server keeps codes enough sites
/// report, the most frequent first.
/// How long a site's sequences are, in counts only (what the report may say about them).
public struct SequenceSummary: Sendable, Equatable, Codable {
    /// Real codes over all the sequences counted.
    public var codes = 0
    /// Sequences that fill every place (cut at the maximum length, or exactly that long).
    public var full = 0
    public var sequences = 0

    public init() {}
}

public enum CodeSequences {
    /// Upper bounds (days before the index date) of the time buckets; one more bucket holds anything older.
    public static let bucketUpperDays = [0, 7, 30, 90, 180, 365, 730]
    public static var timeBuckets: Int { bucketUpperDays.count + 1 }
    /// The reserved ids before the first code: padding, mask, unknown (the transformer's `Token`).
    public static let reservedIds = 3

    /// How sequences are cut, and how sites agree their vocabulary.
    public struct Settings: Sendable, Equatable {
        public var maxLength: Int
        public var lookbackDays: Int
        public var vocabulary: AutomaticCovariates.Settings

        public init(maxLength: Int = 64, lookbackDays: Int = 730,
                    vocabulary: AutomaticCovariates.Settings = .init(minimumCount: 11, minimumSites: 2, maximum: 500)) {
            self.maxLength = maxLength
            self.lookbackDays = lookbackDays
            self.vocabulary = vocabulary
        }
    }

    /// Reference ranges SiteFit knows for labs whose rows carry none (the generator writes none,
    /// and many exports leave `range_low`/`range_high` empty): adult ranges in the canonical units
    /// of `FeatureSpec`'s measurements.
    static let knownRanges: [Int: (low: Double, high: Double, unit: Int)] = [
        OMOPConcept.hba1c: (4.0, 5.6, OMOPConcept.percent), OMOPConcept.creatinine: (0.6, 1.3, OMOPConcept.milligramPerDeciliter),
        OMOPConcept.systolicBloodPressure: (90, 129, OMOPConcept.millimeterMercury),
        OMOPConcept.bodyMassIndex: (18.5, 24.9, OMOPConcept.kilogramPerSquareMeter),
        OMOPConcept.cholesterolTotal: (125, 199, OMOPConcept.milligramPerDeciliter), OMOPConcept.heartRate: (60, 100, OMOPConcept.perMinute),
    ]

    /// The bucket of an event `days` before the index date.
    public static func bucket(daysBefore days: Int) -> Int {
        bucketUpperDays.firstIndex { days <= $0 } ?? bucketUpperDays.count
    }

    /// The bin of a measurement value: the row's own range when it has both ends, else SiteFit's
    /// known range for the concept when the value is in that range's unit (or has none recorded;
    /// creatinine in µmol/L is converted to mg/dL first), else none: an HbA1c in mmol/mol is not
    /// compared with a range in percent.
    static func bin(concept: Int, value: Double?, unit: Int?, rangeLow: Double?, rangeHigh: Double?) -> MeasurementBin? {
        guard let value, value.isFinite else { return nil }
        var range: (low: Double, high: Double)?
        var v = value
        if let low = rangeLow, let high = rangeHigh, low.isFinite, high.isFinite, low <= high {
            range = (low, high)
        } else if let known = knownRanges[concept] {
            if concept == OMOPConcept.creatinine && unit == OMOPConcept.micromolePerLiter {
                v /= UnitConversion.creatinineMicromolePerMilligram
                range = (known.low, known.high)
            } else if unit == nil || unit == 0 || unit == known.unit {
                range = (known.low, known.high)
            }
        }
        guard let range else { return nil }
        return v < range.low ? .low : v > range.high ? .high : .normal
    }

    /// One event of a cohort member's history.
    struct Event {
        var row: Int
        var daysBefore: Int
        var code: SequenceCode
    }

    /// Every event in the look-back window of each cohort row (`keys` are "person|index date";
    /// without them `row` is the person id), domain by domain. Concept 0 never appears, nor, in a
    /// concept-set task, the outcome's concepts as recorded (a drug outcome's rolled-up ingredient can).
    static func events(_ db: Database, spec: FeatureSpec, settings: Settings, keys: [String]?) throws -> [Event] {
        var found: [Event] = []
        let ancestors = try ConceptSetTask.hasAncestors(db)
        var excluded = "SELECT 0"
        if case .conceptSets(let task) = spec.cohort {
            excluded = "SELECT 0 UNION SELECT concept_id FROM (\(task.outcome.concepts.sql(hasAncestors: ancestors)))"
        }
        // Counting needs no rows: the person id stands in for the row.
        let counting = keys == nil
        var row: [String: Int] = [:]
        for (r, key) in (keys ?? []).enumerated() where row[key] == nil { row[key] = r }
        for domain in AutomaticCovariates.domains where try db.tableExists(domain.rawValue) {
            let (from, concept) = AutomaticCovariates.windowSQL(domain, window: settings.lookbackDays, hasAncestors: ancestors,
                                                                indexDay: AutomaticCovariates.includesIndexDay(spec))
            let values = domain == .measurement
                ? [storage("e.value_as_number", real: true), storage("e.unit_concept_id"), storage("e.range_low", real: true),
                   storage("e.range_high", real: true)].joined(separator: ", ")
                : "NULL, NULL, NULL, NULL"
            let cursor = try Row.fetchCursor(db, sql: AutomaticCovariates.cohortSQL(spec, hasAncestors: ancestors) + """

                SELECT \(storage("t.subject_id")), CAST(t.cohort_start_date AS TEXT), \(storage(concept)),
                  CAST(julianday(t.cohort_start_date) - julianday(e.\(domain.dateColumn)) AS INTEGER), \(values)
                \(from) WHERE \(concept) NOT IN (\(excluded))
                """)
            while let hit = try cursor.next() {
                if let event = Self.event(hit, domain: domain, row: counting ? nil : row) { found.append(event) }
            }
        }
        return found
    }

    /// The event of one result row, or nil when a value is missing or it belongs to no cohort row.
    /// (Its own function, reading `DatabaseValue`s: the Swift 6.3 optimiser crashed on the
    /// existential `row[i]` form inside the cursor loop.)
    static func event(_ hit: Row, domain: EventDomain, row: [String: Int]?) -> Event? {
        // Typed reads are safe here: the query hands over only integers, reals, texts or NULL in
        // each column (`storage` below), never a value GRDB would trap converting.
        let personValue: Int64? = hit[0], dateValue: String? = hit[1], idValue: Int? = hit[2], daysValue: Int? = hit[3]
        guard let person = personValue, let date = dateValue, let id = idValue, let days = daysValue, days >= 0 else { return nil }
        var r = Int(truncatingIfNeeded: person)
        if let row {
            guard let found = row["\(person)|\(date)"] else { return nil }
            r = found
        }
        var bin: MeasurementBin? = nil
        if domain == .measurement {
            let value: Double? = hit[4], unit: Int? = hit[5], low: Double? = hit[6], high: Double? = hit[7]
            bin = Self.bin(concept: id, value: value, unit: unit, rangeLow: low, rangeHigh: high)
        }
        return Event(row: r, daysBefore: days, code: SequenceCode(domain: domain, conceptId: id, bin: bin))
    }

    /// `expression` when SQLite stores it as an integer (or, with `real`, a number), else NULL:
    /// a text where a number belongs reads as missing.
    static func storage(_ expression: String, real: Bool = false) -> String {
        "CASE WHEN typeof(\(expression)) IN ('integer'\(real ? ", 'real'" : "")) THEN \(expression) END"
    }

    /// One site's report: for each code, how many cohort members have it in the window, small cells left out.
    public static func siteCounts(_ db: Database, spec: FeatureSpec, settings: Settings) throws -> [SequenceCode: Int] {
        var persons: [SequenceCode: Set<Int>] = [:]
        for event in try events(db, spec: spec, settings: settings, keys: nil) { persons[event.code, default: []].insert(event.row) }
        return persons.compactMapValues { $0.count >= settings.vocabulary.minimumCount ? $0.count : nil }
    }

    /// The server's vocabulary: codes at least `minimumSites` sites report, by total count (ties
    /// by code), at most `maximum`, in a stable order. Code k of the result has id k + 3.
    public static func agree(_ reports: [[SequenceCode: Int]], settings: Settings) -> [SequenceCode] {
        var sites: [SequenceCode: Int] = [:], totals: [SequenceCode: Int] = [:]
        for report in reports {
            for (code, count) in report {
                sites[code, default: 0] += 1
                totals[code, default: 0] += count
            }
        }
        return sites.filter { $0.value >= settings.vocabulary.minimumSites }.keys
            .sorted { totals[$0]! != totals[$1]! ? totals[$0]! > totals[$1]! : $0 < $1 }
            .prefix(settings.vocabulary.maximum).sorted()
    }

    /// The bytes of one site's report on the wire: per code a domain (1), a concept id (8), a bin (1) and a count (4).
    public static func reportBytes(_ report: [SequenceCode: Int]) -> Int { report.count * 14 }

    /// The sequences of the cohort rows `keys` ("person|index date"), as the transformer reads
    /// them: per row `maxLength` tokens of (code id, time bucket, segment), oldest kept event
    /// first, padding (0, 0, 0) after the last. Codes outside `vocabulary` get the unknown id.
    public static func tokens(_ db: Database, spec: FeatureSpec, settings: Settings, vocabulary: [SequenceCode], keys: [String]) throws -> [Float] {
        // A code listed twice keeps its first id (a vocabulary SiteFit agrees never repeats one).
        let ids = Dictionary(vocabulary.enumerated().map { ($1, $0 + reservedIds) }, uniquingKeysWith: { first, _ in first })
        var history = [[Event]](repeating: [], count: keys.count)
        for event in try events(db, spec: spec, settings: settings, keys: keys) { history[event.row].append(event) }
        let s = settings.maxLength
        var result = [Float](repeating: 0, count: keys.count * 3 * s)
        for (r, events) in history.enumerated() {
            // Oldest first; within a day by code, so the order never depends on the shard's row order.
            let ordered = events.sorted { ($0.daysBefore, $1.code) > ($1.daysBefore, $0.code) }.suffix(s)
            var segment = 0, previousDay: Int? = nil
            for (t, event) in ordered.enumerated() {
                if let previousDay, previousDay != event.daysBefore { segment = 1 - segment }
                previousDay = event.daysBefore
                let base = (r * s + t) * 3
                result[base] = Float(ids[event.code] ?? 2)
                result[base + 1] = Float(bucket(daysBefore: event.daysBefore))
                result[base + 2] = Float(segment)
            }
        }
        return result
    }

    /// Column names of a token matrix: `t0.code`, `t0.time`, `t0.segment`, `t1.code`, …
    public static func columnNames(maxLength: Int) -> [String] {
        (0..<maxLength).flatMap { ["t\($0).code", "t\($0).time", "t\($0).segment"] }
    }
}

extension SiteShard {
    /// The cohort as code sequences: the extraction's persons, labels and subgroups, with the
    /// token matrix in place of the feature columns.
    public func extractSequences(_ spec: FeatureSpec, settings: CodeSequences.Settings, vocabulary: [SequenceCode]) throws -> CohortExtract {
        try sequences(of: extractCohort(spec), spec: spec, settings: settings, vocabulary: vocabulary)
    }

    /// `extract` (this shard's cohort under `spec`) with its feature columns replaced by each row's
    /// code sequence: one extraction serves both the MLP's features and the transformer's tokens.
    public func sequences(of extract: CohortExtract, spec: FeatureSpec, settings: CodeSequences.Settings,
                          vocabulary: [SequenceCode]) throws -> CohortExtract {
        do {
            return try reader.read { db in
                var extract = extract
                let keys = zip(extract.personIds, extract.indexDates).map { "\($0)|\($1)" }
                extract.features = try CodeSequences.tokens(db, spec: spec, settings: settings, vocabulary: vocabulary, keys: keys).map(Double.init)
                extract.columns = CodeSequences.columnNames(maxLength: settings.maxLength)
                return extract
            }
        } catch let error as ShardError {
            throw error
        } catch {
            throw ShardError(site: site, file: url.relativePath, problem: "sequence extraction failed: \(describe(error))")
        }
    }

    /// This site's vocabulary report (small cells suppressed): what leaves the site to agree the vocabulary.
    public func sequenceCodeCounts(_ spec: FeatureSpec, settings: CodeSequences.Settings) throws -> [SequenceCode: Int] {
        do {
            return try reader.read { db in try CodeSequences.siteCounts(db, spec: spec, settings: settings) }
        } catch {
            throw ShardError(site: site, file: url.relativePath, problem: "counting sequence codes failed: \(describe(error))")
        }
    }
}
