import Foundation

/// Temporary files named `<prefix><pid>-<uuid>…`: the writer's process id in the name lets a
/// later writer tell a file still being written from one a killed process left behind.
public enum StaleFiles {
    /// `<prefix><this process id>-<uuid>`.
    public static func temporaryName(_ prefix: String) -> String {
        "\(prefix)\(getpid())-\(UUID().uuidString)"
    }

    /// Removes entries of `folder` named `<prefix><pid>-…` whose process is gone, and any such
    /// entry over six hours old: a process id can be alive again in another process (in a
    /// container every run may be process 1), and no build or report takes hours to write.
    public static func remove(prefix: String, in folder: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where name.hasPrefix(prefix) {
            let url = folder.appendingPathComponent(name)
            let modified = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date
            var stale = modified.map { Date().timeIntervalSince($0) > 6 * 3600 } ?? false
            if let pid = name.dropFirst(prefix.count).split(separator: "-").first.flatMap({ Int32($0) }), pid > 0,
               kill(pid, 0) != 0 && errno == ESRCH {
                stale = true
            }
            if stale { try? FileManager.default.removeItem(at: url) }
        }
    }
}
