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

    /// Where each site's cohort comes from under the scenario's dataset: the one place that asks.
    static func cohortSources(_ scenario: Scenario, shards: [SiteShard]) -> [any CohortSource] {
        zip(scenario.sites, shards).map { site, shard -> any CohortSource in
            switch scenario.dataset {
            case .heartDisease: HeartDiseaseCohortSource(shard: shard)
            case .omop:
                // Real OMOP data under a model that was not pretrained has no source population
                // to borrow statistics from: each site standardises with its own train rows.
                ShardCohortSource(shard: shard, spec: scenario.task, testFraction: scenario.testFraction, temporalSplit: scenario.temporalSplit,
                                  standardization: site.omopDatabase && !scenario.pretraining.enabled ? .siteTrainRows : .sourcePopulation)
            }
        }
    }
}
