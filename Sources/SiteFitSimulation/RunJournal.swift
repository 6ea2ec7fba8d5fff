import Foundation
import Synchronization
import SiteFitCore
import SiteFitFederation
import SiteFitReport
import SiteFitScenario

/// A server run's finished work on disk, so that a restarted server goes on where the last one
/// stopped: every finished arm and baseline of every seed, and the arm in progress as of its last
/// completed round (global values, the strategy's moments, the DP accountant, the rounds' records
/// and the latest scores). Each file is replaced whole (written beside, flushed, renamed), so a
/// crash leaves the previous state or the next, never half of one.
///
/// What it does not hold: patient rows (there are none at a server) and the sites' own state. An
/// arm whose sites keep tensors of their own between rounds (a personalised strategy) therefore
/// starts again from its first round after a restart rather than going on with sites that forgot
/// them; every other arm goes on from its last completed round with the same bits.
public final class RunJournal: Sendable {
    /// The folder the state lives in (one per scenario run).
    public let folder: URL
    /// Fault drill: the process ends abruptly right after this round's state is written.
    let crashAfterRound: Int?
    /// The drill throws `DrillStop` instead of ending the process (for tests in one process).
    let drillThrows: Bool
    /// Whether a previous server had written any finished work there when this one started.
    public let resumed: Bool
    /// The open lock file (−1 once released): one server at a time uses a state folder.
    private let lock: Mutex<Int32>

    /// What the drill throws when `drillThrows`.
    public struct DrillStop: Error, Sendable {}

    static let formatVersion = 1
    static let headerName = "run.json", lockName = ".lock"

    /// What `run.json` records: which scenario, read by which SiteFit, the state belongs to.
    struct Header: Codable, Equatable {
        var format: Int
        var scenario: String
        var fingerprint: String
        var sitefitVersion: String
    }

    /// The state of `scenario` in `folder`: an existing state of the same scenario is taken up;
    /// one of another scenario (or another SiteFit) is an error unless `fresh`, which discards it.
    /// A folder that holds anything but a SiteFit state is refused, never emptied: the state's
    /// files are the only ones this removes.
    public init(folder: URL, scenario: Scenario, fresh: Bool = false, crashAfterRound: Int? = nil, drillThrows: Bool = false) throws {
        self.folder = folder
        self.crashAfterRound = crashAfterRound
        self.drillThrows = drillThrows
        let fm = FileManager.default
        let headerFile = folder.appendingPathComponent(Self.headerName)
        let header = Header(format: Self.formatVersion, scenario: scenario.name, fingerprint: scenario.fingerprint,
                            sitefitVersion: siteFitVersion)
        let entries = (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
        guard entries.isEmpty || entries.contains(Self.headerName) || entries == [Self.lockName] else {
            throw UserFacingError("\(folder.relativePath) holds files that are not a SiteFit server state: "
                                  + "give --state-dir a new or empty folder (the state's files are removed when the run ends)")
        }
        do {
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw UserFacingError("\(folder.relativePath): cannot keep the server's state there (\(error.localizedDescription))")
        }
        // Two servers writing one state would overwrite each other's rounds: the second is refused.
        let descriptor = open(folder.appendingPathComponent(Self.lockName).path, O_CREAT | O_RDWR, 0o644)
        guard descriptor >= 0 else {
            throw UserFacingError("\(folder.relativePath): cannot create its lock file (\(String(cString: strerror(errno))))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw UserFacingError("\(folder.relativePath) is in use by another `sitefit serve`; give this one another --state-dir")
        }
        lock = Mutex(descriptor)
        do {
            if fresh { try Self.removeState(in: folder) }
            if let data = fm.contents(atPath: headerFile.path) {
                guard let found = try? JSONDecoder().decode(Header.self, from: data) else {
                    throw UserFacingError("\(headerFile.relativePath): not a SiteFit server state; pass --no-resume to start over")
                }
                guard found == header else {
                    throw UserFacingError("\(folder.relativePath) holds the state of another run (scenario '\(found.scenario)', "
                                          + "fingerprint \(found.fingerprint.prefix(12))…, SiteFit \(found.sitefitVersion)); this is "
                                          + "'\(scenario.name)', fingerprint \(scenario.fingerprint.prefix(12))…, SiteFit \(siteFitVersion): "
                                          + "pass --no-resume to start over, or another --state-dir")
                }
            } else {
                try Self.replace(headerFile, with: try JSONEncoder().encode(header))
            }
            resumed = Self.holdsWork(folder)
        } catch {
            close(descriptor)
            if let error = error as? UserFacingError { throw error }
            throw UserFacingError("\(folder.relativePath): cannot keep the server's state there (\(error.localizedDescription))")
        }
    }

    deinit { release() }

    /// Lets another server (or, in a test, another journal) use the folder; the process ending does too.
    public func release() {
        lock.withLock { descriptor in
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
        }
    }

    /// Removes the state once the report is written: the run is over, nothing is left to resume.
    /// Only the state's own files go; the folder too when nothing else is left in it.
    public func discard() {
        try? Self.removeState(in: folder)
        try? FileManager.default.removeItem(at: folder.appendingPathComponent(Self.lockName))
        rmdir(folder.path)
        release()
    }

    /// `discard`, when no work was saved yet (a server that stopped before its first round ended:
    /// no certificates, a port in use, sites that never came); otherwise only lets the folder go.
    /// Why: a header left behind alone would make the next start say it goes on from a state
    /// that holds nothing.
    public func discardIfEmpty() {
        if Self.holdsWork(folder) { release() } else { discard() }
    }

    /// Whether a seed's folder holds a finished unit or a round: its `start.json` alone (written
    /// before the first round) is no work to go on from.
    static func holdsWork(_ folder: URL) -> Bool {
        let fm = FileManager.default
        return ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("seed-") }.contains { seed in
            ((try? fm.contentsOfDirectory(atPath: folder.appendingPathComponent(seed).path)) ?? [])
                .contains { $0 != "start.json" && !$0.hasPrefix(".") }
        }
    }

    /// Removes `run.json`, every seed's folder and any half-written file.
    static func removeState(in folder: URL) throws {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
        where name == headerName || name.hasPrefix("seed-") || (name.hasPrefix(".") && name.hasSuffix(".partial")) {
            try fm.removeItem(at: folder.appendingPathComponent(name))
        }
    }

    /// The starting point of `seed` (its pretrained checkpoint and the columns or vocabulary the
    /// sites agreed): a restarted server must start from the same one, or nothing saved applies.
    func checkStart(seed: UInt64, checkpoint: [UInt8]) throws {
        let file = self.file("start", seed: seed)
        let digest = ["checkpoint": StableHash.hex(checkpoint)]
        if let saved = try read([String: String].self, file) {
            guard saved == digest else {
                throw UserFacingError("\(file.relativePath): seed \(seed) started from another pretrained model than this server's "
                                      + "(a changed checkpoint, profile or pretraining input?): pass --no-resume to start over")
            }
        } else {
            try write(digest, to: file)
        }
    }

    // MARK: Finished units

    /// One finished arm or baseline: what `federate` collects from it.
    struct Finished: Codable {
        var metrics: ArmMetrics
        var rows: [PredictionRow]
        var attacked: ArmReconstruction?
    }

    /// The unit `key` of `seed` as a previous server finished it, if it did.
    func finished(_ key: String, seed: UInt64) throws -> Finished? {
        try read(Finished.self, file(key, seed: seed))
    }

    /// Records unit `key` of `seed` as finished, and drops its progress file.
    func finish(_ key: String, seed: UInt64, _ unit: Finished) throws {
        try write(unit, to: file(key, seed: seed))
        try? FileManager.default.removeItem(at: file(key + ".progress", seed: seed))
    }

    // MARK: The arm in progress

    /// An arm after its last completed round: everything `runArm` needs to go on with round + 1.
    struct Progress: Codable {
        var arm: String
        var round: Int
        var global: Bits<Float>
        var strategy: [Bits<Double>]
        var rdp: Bits<Double>?
        var rounds: [RoundMetrics]
        var trained: [[TrainedUpdate]]
        var predictions: [SitePredictions]
        var pretrainedPredictions: [SitePredictions]
        var attacked: ArmReconstruction?
    }

    func progress(_ key: String, seed: UInt64) throws -> Progress? {
        try read(Progress.self, file(key + ".progress", seed: seed))
    }

    func record(_ progress: Progress, key: String, seed: UInt64) throws {
        try write(progress, to: file(key + ".progress", seed: seed))
        if let crash = crashAfterRound, progress.round == crash {
            if drillThrows { throw DrillStop() }
            FileHandle.standardError.write(Data("fault drill: the server stops abruptly after round \(crash) of '\(progress.arm)' (its state is written)\n".utf8))
            _exit(87)
        }
    }

    // MARK: Files

    private func file(_ key: String, seed: UInt64) -> URL {
        folder.appendingPathComponent("seed-\(seed)").appendingPathComponent(key + ".json")
    }

    private func read<T: Decodable>(_ type: T.Type, _ url: URL) throws -> T? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(type, from: data)
        } catch {
            throw UserFacingError("\(url.relativePath): a server state file that cannot be read (\(Self.describe(error))); "
                                  + "pass --no-resume to start the run over")
        }
    }

    private func write<T: Encodable>(_ value: T, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Self.replace(url, with: try encoder.encode(value))
        } catch let error as UserFacingError {
            throw error
        } catch {
            throw UserFacingError("\(url.relativePath): cannot write the server's state (\(error.localizedDescription))")
        }
    }

    /// Writes `data` beside `url`, flushes it to the disk and renames it over `url`: a reader sees
    /// the old file or the new one, whenever the process stops.
    static func replace(_ url: URL, with data: Data) throws {
        let partial = url.deletingLastPathComponent().appendingPathComponent("." + url.lastPathComponent + ".partial")
        guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
            throw UserFacingError("\(partial.relativePath): cannot create the file")
        }
        let handle = try FileHandle(forWritingTo: partial)
        do {
            try handle.write(contentsOf: data)
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            throw error
        }
        guard rename(partial.path, url.path) == 0 else {
            throw UserFacingError("\(url.relativePath): cannot replace the file (\(String(cString: strerror(errno))))")
        }
        // The rename itself reaches the disk with its folder's entry: flushed too, so the state
        // survives a machine that loses power, not only a process that dies.
        let directory = open(url.deletingLastPathComponent().path, O_RDONLY)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// A decoding error in a few words (the path to the bad value), without the file's contents.
    static func describe(_ error: any Error) -> String {
        func path(_ keys: [any CodingKey]) -> String { keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".") }
        switch error {
        case DecodingError.keyNotFound(let key, let context): return "missing '\(path(context.codingPath + [key]))'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON of its kind" : "wrong value at '\(path(context.codingPath))'"
        default: return "not JSON of its kind"
        }
    }
}

/// Floating-point values kept bit for bit and compactly: their bytes in base64 (a decimal text
/// would be exact too, at three times the size). The bytes are the machine's own order, little-endian
/// on every machine SiteFit builds for (x86-64 and arm64).
struct Bits<Element: BinaryFloatingPoint & Sendable>: Codable, Sendable {
    var values: [Element]

    init(_ values: [Element]) { self.values = values }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let data = Data(base64Encoded: text), data.count % MemoryLayout<Element>.stride == 0 else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not base64 of \(Element.self) values")
        }
        var values = [Element](repeating: 0, count: data.count / MemoryLayout<Element>.stride)
        _ = values.withUnsafeMutableBytes { data.copyBytes(to: $0) }
        self.values = values
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values.withUnsafeBytes { Data($0) }.base64EncodedString())
    }
}
