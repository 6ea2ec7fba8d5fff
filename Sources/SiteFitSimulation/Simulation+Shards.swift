import Foundation
import GRDB
import Logging
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitMetrics
import SiteFitNN
import SiteFitReport
import SiteFitScenario
import SiteFitTuning

extension Simulation {

    /// Makes sure every site's shard exists and matches its profile; builds missing ones.
    /// An existing shard is never rewritten by a run: a stale one is an error with the fix.
    public static func provisionShards(
        _ scenario: Scenario, logger: Logger, progress: @Sendable (String) -> Void
    ) throws -> [SiteShard] {
        try scenario.sites.map { site in
            let file = site.shardFile
            if site.importedHeartDisease {
                // A real hospital: imported once from the UCI files beside the shard, never rewritten.
                if !FileManager.default.fileExists(atPath: file.path) {
                    progress("importing UCI Heart Disease site '\(site.profile.id)' → \(file.relativePath)")
                    let folder = file.deletingLastPathComponent()
                    try HeartDiseaseImport.importSite(site.profile.id, from: folder, to: folder, logger: logger)
                }
                return try SiteShard(site: site.profile.id, url: file)
            }
            if let split = site.omopExport {
                return try exportSplitShard(site.profile.id, split: split, logger: logger, progress: progress)
            }
            if site.omopDatabase {
                // Real data: opened as it is; SiteFit never builds or rewrites it.
                return try SiteShard(site: site.profile.id, url: file)
            }
            if !FileManager.default.fileExists(atPath: file.path) {
                progress("building shard for site '\(site.profile.id)' → \(file.relativePath)")
                try ShardBuilder.build(profile: site.profile, to: file, logger: logger)
            }
            let shard = try SiteShard(site: site.profile.id, url: file)
            let fingerprint = try shard.profileFingerprint()
            guard fingerprint == site.profile.fingerprint else {
                throw ShardError(site: site.profile.id, file: file.relativePath, problem:
                    "the shard was built from a different profile than \(site.profileFile.relativePath); "
                    + "rebuild it with `sitefit sites build \(site.profileFile.relativePath)`")
            }
            return shard
        }
    }

    /// One part of an `omop_export:` split: imported and cut on first use, then only read. A part
    /// cut differently from what the scenario asks (other site count, seed or method) is an error,
    /// never silently recut: the user removes the folder to cut again.
    static func exportSplitShard(_ id: String, split: Scenario.OMOPExportSplit, logger: Logger,
                                 progress: @Sendable (String) -> Void) throws -> SiteShard {
        let files = (1...split.parts).map { split.folder.appendingPathComponent("\(split.name)-\($0).sqlite") }
        let present = files.filter { FileManager.default.fileExists(atPath: $0.path) }
        let file = split.folder.appendingPathComponent("\(id).sqlite")
        // The export's size and modification time at import, beside the shards: a newer export
        // under the same name must not be passed over silently for the old import.
        let stamp = split.folder.appendingPathComponent("\(split.name).export")
        let current = OMOPExport.stamp(of: split.export)
        if FileManager.default.fileExists(atPath: split.importedFile.path) || !present.isEmpty {
            let recorded = (try? String(contentsOf: stamp, encoding: .utf8)) ?? ""
            guard recorded == current else {
                throw ShardError(site: id, file: split.folder.relativePath, problem:
                    "\(split.export.relativePath) is not the export these sites were imported from (it changed since); "
                    + "remove \(split.folder.relativePath) to import and cut it again")
            }
        }
        if present.isEmpty {
            try FileManager.default.createDirectory(at: split.folder, withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: split.importedFile.path) {
                progress("importing OMOP export \(split.export.relativePath) → \(split.importedFile.relativePath)")
                _ = try OMOPExport.importExport(split.export, to: split.importedFile, name: split.name, logger: logger)
                try Data(current.utf8).write(to: stamp, options: .atomic)
            }
            progress("splitting \(split.importedFile.relativePath) into \(split.parts) sites in \(split.folder.relativePath)")
            _ = try ShardSplit.split(SiteShard(site: split.name, url: split.importedFile), parts: split.parts, into: split.folder,
                                     name: split.name, byCareSite: split.byCareSite, seed: split.seed, logger: logger)
        } else if present.count != files.count {
            throw ShardError(site: id, file: split.folder.relativePath, problem:
                "only \(present.count) of the \(split.parts) sites cut from \(split.export.relativePath) are here; "
                + "remove the folder to import and cut them again")
        }
        let shard = try SiteShard(site: id, url: file)
        let wanted = split.byCareSite ? ShardSplit.Method.careSite.rawValue : ShardSplit.Method.hash.rawValue
        guard let cut = try ShardSplit.recorded(in: shard), cut.parts == split.parts, cut.seed == split.seed,
              cut.by == wanted || (split.byCareSite && cut.by == ShardSplit.Method.hash.rawValue) else {
            throw ShardError(site: id, file: file.relativePath, problem:
                "this shard was not cut as the scenario asks (\(split.parts) sites, seed \(split.seed)); "
                + "remove \(split.folder.relativePath) to import and cut again")
        }
        return shard
    }

    /// Where each site's cohort comes from under the scenario's dataset.
    static func cohortSources(_ scenario: Scenario, shards: [SiteShard]) -> [any CohortSource] {
        zip(scenario.sites, shards).map { cohortSource(scenario, site: $0, shard: $1) }
    }

    /// Where one site's cohort comes from under the scenario's dataset: the one place that asks.
    public static func cohortSource(_ scenario: Scenario, site: Scenario.SiteReference, shard: SiteShard) -> any CohortSource {
        switch scenario.dataset {
        case .heartDisease: HeartDiseaseCohortSource(shard: shard)
        case .omop:
            // Real OMOP data under a model that was not pretrained has no source population
            // to borrow statistics from: each site standardises with its own train rows.
            ShardCohortSource(shard: shard, spec: scenario.task, testFraction: scenario.testFraction, temporalSplit: scenario.temporalSplit,
                              standardization: site.omopDatabase && !scenario.pretraining.enabled ? .siteTrainRows : .sourcePopulation)
        }
    }

    /// A site's existing shard at `file`, opened read-only; a generated one must match the site's
    /// profile. What a site in its own process opens: it never builds or imports anything.
    public static func openShard(for site: Scenario.SiteReference, at file: URL) throws -> SiteShard {
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw ShardError(site: site.profile.id, file: file.path, problem: "no such file")
        }
        let shard = try SiteShard(site: site.profile.id, url: file)
        if !site.importedHeartDisease, !site.omopDatabase, site.omopExport == nil {
            guard try shard.profileFingerprint() == site.profile.fingerprint else {
                throw ShardError(site: site.profile.id, file: file.path, problem:
                    "the shard was built from a different profile than the scenario's \(site.profileFile.relativePath)")
            }
        }
        return shard
    }
}
