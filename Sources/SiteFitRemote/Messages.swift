import Crypto
import Foundation
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitNN
import SwiftProtobuf

/// The wire protocol's version: a site and a server that disagree on it refuse each other.
public let remoteProtocolVersion: UInt32 = 1

/// A message from the other side that breaks the protocol: the stream that carried it is closed
/// with this reason (never the process).
public struct ProtocolViolation: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

// The conversions between SiteFit's values and the generated messages. Each decoder checks what
// a hostile peer could get wrong (unknown enum values, mismatched lengths, out-of-range numbers)
// and throws a `ProtocolViolation` instead of trapping.

extension Sitefit_V1_TrainingSettings {
    init(_ c: TrainingConfiguration) {
        self.init()
        optimizer = c.optimizer.kind.rawValue
        learningRate = c.optimizer.learningRate
        weightDecay = c.optimizer.weightDecay
        if let clip = c.optimizer.gradientClipNorm { gradientClipNorm = clip }
        momentum = c.optimizer.momentum
        beta1 = c.optimizer.beta1
        beta2 = c.optimizer.beta2
        epsilon = c.optimizer.epsilon
        epochs = Int64(c.epochs)
        batchSize = Int64(c.batchSize)
        positiveWeight = c.positiveWeight
        proximalMu = c.proximalMu
        if let steps = c.steps { self.steps = Int64(steps) }
    }

    func configuration() throws -> TrainingConfiguration {
        guard let kind = OptimizerKind(rawValue: optimizer) else { throw ProtocolViolation("unknown optimizer '\(optimizer)'") }
        let limit: Int64 = 1 << 31
        guard (1...limit).contains(epochs), (1...limit).contains(batchSize), !hasSteps || (1...limit).contains(steps) else {
            throw ProtocolViolation("training settings out of range (epochs \(epochs), batch \(batchSize), steps \(steps))")
        }
        var optimizer = OptimizerConfiguration(kind: kind, learningRate: learningRate, momentum: momentum,
                                               weightDecay: weightDecay, gradientClipNorm: hasGradientClipNorm ? gradientClipNorm : nil)
        optimizer.beta1 = beta1
        optimizer.beta2 = beta2
        optimizer.epsilon = epsilon
        return TrainingConfiguration(optimizer: optimizer, epochs: Int(epochs), batchSize: Int(batchSize), positiveWeight: positiveWeight,
                                     proximalMu: proximalMu, steps: hasSteps ? Int(steps) : nil)
    }
}

extension Sitefit_V1_CountEntry {
    init(_ key: CovariateKey, persons: Int) {
        self.init()
        domain = key.domain.rawValue
        conceptID = Int64(key.conceptId)
        windowDays = Int64(key.windowDays)
        self.persons = Int64(persons)
    }

    init(_ code: SequenceCode, persons: Int) {
        self.init()
        domain = code.domain.rawValue
        conceptID = Int64(code.conceptId)
        bin = code.bin?.rawValue ?? ""
        self.persons = Int64(persons)
    }

    private func eventDomain() throws -> EventDomain {
        guard let domain = EventDomain(rawValue: domain) else { throw ProtocolViolation("unknown OMOP domain '\(domain)'") }
        guard (Int64(Int32.min)...Int64(Int32.max)).contains(conceptID), persons >= 0 else {
            throw ProtocolViolation("count entry out of range (concept \(conceptID), persons \(persons))")
        }
        return domain
    }

    func covariate() throws -> CovariateKey {
        guard (0...36_500).contains(windowDays) else { throw ProtocolViolation("covariate window of \(windowDays) days") }
        return CovariateKey(domain: try eventDomain(), conceptId: Int(conceptID), windowDays: Int(windowDays))
    }

    func code() throws -> SequenceCode {
        let domain = try eventDomain()
        if bin.isEmpty { return SequenceCode(domain: domain, conceptId: Int(conceptID)) }
        guard let bin = MeasurementBin(rawValue: bin) else { throw ProtocolViolation("unknown measurement bin '\(self.bin)'") }
        return SequenceCode(domain: domain, conceptId: Int(conceptID), bin: bin)
    }
}

extension Sitefit_V1_Counts {
    /// Counts keyed by `key`, refusing a key sent twice (a merged count would be wrong silently).
    func dictionary<Key: Hashable>(_ key: (Sitefit_V1_CountEntry) throws -> Key) throws -> [Key: Int] {
        var counts: [Key: Int] = [:]
        for entry in entries {
            let k = try key(entry)
            guard counts.updateValue(Int(entry.persons), forKey: k) == nil else { throw ProtocolViolation("a key is counted twice") }
        }
        return counts
    }
}

extension Sitefit_V1_Update {
    init(_ update: LocalUpdate) {
        self.init()
        blob = Data(update.blob)
        steps = Int64(update.steps)
        loss = update.loss
        optimizerStateBytes = Int64(update.optimizerStateBytes)
        if let norm = update.updateNorm { updateNorm = norm }
    }

    func localUpdate(site: String) throws -> LocalUpdate {
        // What the report adds up and prints: counts a hostile site could make overflow or absurd are refused.
        guard (0...(1 << 40)).contains(steps), (0...(1 << 40)).contains(optimizerStateBytes) else {
            throw ProtocolViolation("step or byte count out of range in an update")
        }
        guard loss.isFinite || loss.isNaN, !hasUpdateNorm || !(updateNorm < 0) else {
            throw ProtocolViolation("an update's loss or norm is out of range")
        }
        return LocalUpdate(site: site, blob: [UInt8](blob), steps: Int(steps), loss: loss, optimizerStateBytes: Int(optimizerStateBytes),
                           updateNorm: hasUpdateNorm ? updateNorm : nil)
    }
}

extension Sitefit_V1_Predictions {
    init(_ p: SitePredictions) {
        self.init()
        personIds = p.personIds
        labels = p.labels
        scores = p.scores
        sex = p.sex
        race = p.race
        ageBand = p.ageBand
    }

    func sitePredictions(site: String, testSize: Int) throws -> SitePredictions {
        guard personIds.count == testSize, [labels.count, scores.count, sex.count, race.count, ageBand.count].allSatisfy({ $0 == testSize })
        else { throw ProtocolViolation("predictions for \(personIds.count) patients where the site has \(testSize) test patients") }
        // Labels are outcomes, scores probabilities (NaN stays: a diverged model's scores are reported as such in-process too).
        guard labels.allSatisfy({ $0 == 0 || $0 == 1 }), !scores.contains(where: { $0 < 0 || $0 > 1 }) else {
            throw ProtocolViolation("predictions with labels other than 0 and 1 or scores outside [0, 1]")
        }
        // Subgroup names reach the report's tables.
        guard Set(sex + race + ageBand).allSatisfy(SafeText.isLabel) else { throw ProtocolViolation("a subgroup name that is not a plain label") }
        return SitePredictions(site: site, personIds: personIds, labels: labels, scores: scores, sex: sex, race: race, ageBand: ageBand)
    }
}

extension Sitefit_V1_PublicKeys {
    init(_ keys: AdvertisedKeys) {
        self.init()
        encryptionKey = keys.encryptionKey.rawRepresentation
        maskingKey = keys.maskingKey.rawRepresentation
    }

    func advertised(site: String) throws -> AdvertisedKeys {
        do {
            return AdvertisedKeys(site: site, encryptionKey: try Curve25519.KeyAgreement.PublicKey(rawRepresentation: encryptionKey),
                                  maskingKey: try Curve25519.KeyAgreement.PublicKey(rawRepresentation: maskingKey))
        } catch {
            throw ProtocolViolation("a public key is not a Curve25519 key")
        }
    }
}

extension Sitefit_V1_SealedShare {
    init(_ s: SealedShares) {
        self.init()
        from = s.from
        to = s.to
        sealed = Data(s.sealed)
    }

    var sealedShares: SealedShares { SealedShares(from: from, to: to, sealed: [UInt8](sealed)) }
}

extension Sitefit_V1_RevealedShare {
    init(_ r: RevealedShare) {
        self.init()
        owner = r.owner
        secret = switch r.secret {
        case .selfMaskSeed: .selfMaskSeed
        case .maskingKey: .maskingKey
        }
        values = r.values
    }

    func revealed() throws -> RevealedShare {
        let kind: RevealedShare.Secret = switch secret {
        case .selfMaskSeed: .selfMaskSeed
        case .maskingKey: .maskingKey
        case .unspecified, .UNRECOGNIZED: throw ProtocolViolation("a revealed share names no secret")
        }
        return RevealedShare(owner: owner, secret: kind, values: values)
    }
}

/// JSON for the few rich aggregate records (a cohort summary, reconstruction scores): one Swift
/// definition instead of a second, hand-mirrored one in the schema.
enum JSONDocument {
    // Scores can be NaN or infinite (an undefined AUC, an empty subgroup): JSON has no such numbers,
    // so both ends spell them as these strings.
    static let infinity = "Infinity", negativeInfinity = "-Infinity", notANumber = "NaN"

    static func encode<T: Encodable>(_ value: T) throws -> Sitefit_V1_JsonDocument {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: infinity, negativeInfinity: negativeInfinity,
                                                                      nan: notANumber)
        var document = Sitefit_V1_JsonDocument()
        document.json = try encoder.encode(value)
        return document
    }

    static func decode<T: Decodable>(_ type: T.Type, from document: Sitefit_V1_JsonDocument, what: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: infinity, negativeInfinity: negativeInfinity,
                                                                        nan: notANumber)
        do {
            return try decoder.decode(type, from: document.json)
        } catch {
            throw ProtocolViolation("the \(what) is not valid JSON of its kind")
        }
    }
}

extension Sitefit_V1_Reply.OneOf_Body {
    /// The reply's kind, for a message that names what came instead of what was expected.
    var kind: String {
        switch self {
        case .failure: "failure"
        case .done: "done"
        case .counts: "counts"
        case .opened: "opened"
        case .update: "update"
        case .predictions: "predictions"
        case .membershipAuc: "membership AUC"
        case .reconstructionTrials: "reconstruction trials"
        case .publicKeys: "public keys"
        case .sealedShares: "sealed shares"
        case .maskedVector: "masked vector"
        case .revealedShares: "revealed shares"
        }
    }
}
