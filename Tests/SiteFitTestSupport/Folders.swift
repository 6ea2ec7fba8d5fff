import Foundation

/// The repository's root folder (this file is `Tests/SiteFitTestSupport/Folders.swift`).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh, empty folder for one test: `<tmp>/sitefit-tests-<pid>/<file>-<name>`. Every test
/// bundle runs in one process and tests run in parallel, so the calling file is part of the name:
/// two suites with a test of the same name never share (or delete) each other's folder.
public func temporaryDirectory(_ name: String = #function, fileID: String = #fileID) throws -> URL {
    let file = fileID.split(separator: "/").last.map { $0.replacingOccurrences(of: ".swift", with: "") } ?? fileID
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("sitefit-tests-\(ProcessInfo.processInfo.processIdentifier)")
        .appendingPathComponent("\(file.filter { $0.isLetter || $0.isNumber })-\(name.filter { $0.isLetter || $0.isNumber })")
    try? FileManager.default.removeItem(at: url)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Writes `files` (relative path → text) into a fresh folder and returns the folder.
public func fixture(_ files: [String: String], name: String = #function, fileID: String = #fileID) throws -> URL {
    let folder = try temporaryDirectory(name, fileID: fileID)
    for (path, text) in files.sorted(by: { $0.key < $1.key }) {
        let url = folder.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }
    return folder
}
