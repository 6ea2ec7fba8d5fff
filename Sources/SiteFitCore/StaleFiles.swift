import Foundation

/// Temporary files named `<prefix><pid>-<uuid>…`: the writer's process id in the name lets a
/// later writer tell a file still being written from one a killed process left behind.
public enum StaleFiles {
    /// `<prefix><this process id>-<uuid>`.
    public static func temporaryName(_ prefix: String) -> String {
        "\(prefix)\(getpid())-\(UUID().uuidString)"
    }

    /// Removes entries of `folder` named `<prefix><pid>-…` whose process is gone; entries with
    /// no process id (an older naming) once a day old.
    public static func remove(prefix: String, in folder: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            let stale: Bool
            if let pid = rest.split(separator: "-").first.flatMap({ Int32($0) }), pid > 0 {
                stale = kill(pid, 0) != 0 && errno == ESRCH
            } else {
                let modified = (try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(name).path))?[.modificationDate] as? Date
                stale = modified.map { Date().timeIntervalSince($0) > 24 * 3600 } ?? false
            }
            if stale { try? FileManager.default.removeItem(at: folder.appendingPathComponent(name)) }
        }
    }
}
