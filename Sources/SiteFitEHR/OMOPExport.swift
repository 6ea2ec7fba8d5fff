import Foundation
import Logging
import SiteFitCore

/// An OHDSI CSV export as a data team hands it over: a folder of `<table>.csv` files, or a zip
/// of one. Zips are unpacked with the system's `unzip` into a temporary folder that is removed
/// afterwards, so the export itself is only ever read.
public enum OMOPExport {
    /// Imports the export at `source` (a folder or a `.zip`) into a new shard at `url`.
    public static func importExport(_ source: URL, to url: URL, name: String, currentYear: Int = CivilDate.currentYear,
                                    logger: Logger = Logger(label: "sitefit.import")) throws -> OMOPImportSummary {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isFolder) else {
            throw ShardError(site: name, file: source.relativePath, problem: "no OMOP export here (a folder of <table>.csv files or a .zip of one)")
        }
        if isFolder.boolValue {
            return try OMOPCSV.importFolder(source, to: url, name: name, currentYear: currentYear, logger: logger)
        }
        guard source.pathExtension.lowercased() == "zip" else {
            throw ShardError(site: name, file: source.relativePath, problem: "an OMOP export is a folder of <table>.csv files or a .zip of one")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sitefit-omop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try unzip(source, into: folder, site: name)
        return try OMOPCSV.importFolder(folder, to: url, name: name, currentYear: currentYear, logger: logger)
    }

    /// Unpacks `zip` with `/usr/bin/unzip`. Its output is discarded: it would list the export's
    /// file names and, on damage, fragments of its contents.
    static func unzip(_ zip: URL, into folder: URL, site: String) throws {
        let tool = URL(fileURLWithPath: "/usr/bin/unzip")
        guard FileManager.default.isExecutableFile(atPath: tool.path) else {
            throw ShardError(site: site, file: zip.relativePath,
                             problem: "reading a zipped export needs unzip (apt-get install unzip), or unzip it and name the folder")
        }
        let process = Process()
        process.executableURL = tool
        // -n: never overwrite; unzip also strips "../" from member names, so nothing lands outside `folder`.
        process.arguments = ["-q", "-n", zip.path, "-d", folder.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ShardError(site: site, file: zip.relativePath, problem: "the zip cannot be unpacked (unzip exit status \(process.terminationStatus)); is it damaged?")
        }
    }
}
