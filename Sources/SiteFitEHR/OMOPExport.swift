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
        let root = csvFolder(in: folder)
        do {
            return try OMOPCSV.importFolder(root, to: url, name: name, currentYear: currentYear, logger: logger)
        } catch let error as ShardError {
            // Name the file inside the zip, not the temporary folder that is about to go.
            var file = error.file
            for prefix in [root.path + "/", root.path, folder.path + "/", folder.path] where file.hasPrefix(prefix) {
                file = source.relativePath + "/" + file.dropFirst(prefix.count)
                break
            }
            throw ShardError(site: error.site, file: file, problem: error.problem)
        }
    }

    /// Where the CSV files of an unpacked zip are: its top level, or the one folder it holds
    /// (a zip of a folder, the usual layout), macOS's `__MACOSX` resource forks aside.
    static func csvFolder(in folder: URL) -> URL {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
        if names.contains(where: { $0.lowercased().hasSuffix(".csv") }) { return folder }
        let folders = names.filter { name in
            var isFolder: ObjCBool = false
            return !name.hasPrefix(".") && name != "__MACOSX"
                && fm.fileExists(atPath: folder.appendingPathComponent(name).path, isDirectory: &isFolder) && isFolder.boolValue
        }
        return folders.count == 1 ? folder.appendingPathComponent(folders[0]) : folder
    }

    /// The export's total size and latest modification time, as text: what tells a later run
    /// whether the export it imported has changed.
    public static func stamp(of source: URL) -> String {
        let fm = FileManager.default
        var size = 0, latest = 0.0
        func add(_ url: URL) {
            guard let attributes = try? fm.attributesOfItem(atPath: url.path) else { return }
            size += (attributes[.size] as? Int) ?? 0
            latest = max(latest, ((attributes[.modificationDate] as? Date) ?? .distantPast).timeIntervalSince1970)
        }
        var isFolder: ObjCBool = false
        if fm.fileExists(atPath: source.path, isDirectory: &isFolder), isFolder.boolValue {
            for case let url as URL in fm.enumerator(at: source, includingPropertiesForKeys: nil) ?? FileManager.DirectoryEnumerator() { add(url) }
        } else {
            add(source)
        }
        return "size \(size), modified \(Int(latest))\n"
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
