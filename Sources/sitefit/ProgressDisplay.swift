import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress on stderr: on a terminal, one line rewritten in place with the arm, round k/N and an
/// ETA; otherwise (CI, a pipe, a log file) every message as a plain line. `--quiet` silences both.
///
/// Written here rather than taken from console-kit: it needs only isatty and a carriage return,
/// and console-kit would add a dependency tree for one line of output.
final class ProgressDisplay: @unchecked Sendable {
    private let quiet: Bool
    private let terminal: Bool
    private let totalRounds: Int
    private let lock = NSLock()
    private let start = Date()
    private var roundsDone = 0
    private var lastWidth = 0

    init(quiet: Bool, rounds: Int, arms: Int, seeds: Int) {
        self.quiet = quiet
        terminal = isatty(STDERR_FILENO) == 1
        totalRounds = max(rounds * arms * seeds, 1)
    }

    /// One message from the simulation; round messages ("[arm] round k/N: ...") advance the ETA.
    func show(_ line: String) {
        guard !quiet else { return }
        lock.lock()
        defer { lock.unlock() }
        guard terminal else {
            FileHandle.standardError.write(Data((line + "\n").utf8))
            return
        }
        if line.contains("] round ") { roundsDone = min(roundsDone + 1, totalRounds) }
        let elapsed = Date().timeIntervalSince(start)
        var status = line.split(separator: ":").first.map(String.init) ?? line
        if roundsDone > 0 {
            let remaining = elapsed / Double(roundsDone) * Double(totalRounds - roundsDone)
            status += String(format: "  [%d/%d rounds, ETA %.0f s]", roundsDone, totalRounds, remaining)
        }
        let columns = 100
        if status.count > columns { status = String(status.prefix(columns - 1)) + "…" }
        let padding = String(repeating: " ", count: max(lastWidth - status.count, 0))
        lastWidth = status.count
        FileHandle.standardError.write(Data(("\r" + status + padding).utf8))
    }

    /// Ends the in-place line so the report path prints on a line of its own.
    func finish() {
        guard !quiet, terminal else { return }
        lock.lock()
        defer { lock.unlock() }
        if lastWidth > 0 { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
