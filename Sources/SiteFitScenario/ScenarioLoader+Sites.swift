import Foundation
import SiteFitCore
import SiteFitEHR
import Yams

extension ScenarioLoader {
    /// `sites`: each entry a synthetic site's `profile` or a real hospital's `heart_disease` shard.
    /// Problems inside a profile file come back separately: they are reported after the scenario's.
    static func sites(_ node: Node?, folder: URL, reader: inout YAMLReader)
        -> (sites: [Scenario.SiteReference], profileDiagnostics: [Diagnostic]) {
        var sites: [Scenario.SiteReference] = []
        var profileDiagnostics: [Diagnostic] = []
        guard let node, let list = reader.sequence(node, "sites") else { return (sites, profileDiagnostics) }
        if list.isEmpty { reader.fail(node, "sites", "list at least one site") }
        for (i, item) in list.enumerated() {
            let field = "sites[\(i)]"
            guard let entry = reader.mapping(item, field, allowed: ["profile", "heart_disease", "omop", "omop_export"]) else { continue }
            if entry.count != 1 { reader.fail(item, field, "give exactly one of profile, heart_disease, omop or omop_export"); continue }
            if let exportNode = entry["omop_export"] {
                sites += omopExportSites(exportNode, "\(field).omop_export", folder: folder, listed: sites, reader: &reader)
            } else if let pathNode = entry["omop"] {
                if let site = omopSite(pathNode, "\(field).omop", folder: folder, listed: sites, reader: &reader) { sites.append(site) }
            } else if let shardNode = entry["heart_disease"] {
                if let site = heartDiseaseSite(shardNode, "\(field).heart_disease", folder: folder, listed: sites, reader: &reader) {
                    sites.append(site)
                }
            } else if let pathNode = entry["profile"],
                      let site = profileSite(pathNode, "\(field).profile", folder: folder, listed: sites, reader: &reader,
                                             profileDiagnostics: &profileDiagnostics) {
                sites.append(site)
            }
        }
        return (sites, profileDiagnostics)
    }

    /// A real hospital: the shard file, imported on demand from the UCI files beside it.
    static func heartDiseaseSite(_ node: Node, _ field: String, folder: URL, listed: [Scenario.SiteReference],
                                 reader: inout YAMLReader) -> Scenario.SiteReference? {
        guard let path = reader.string(node, field) else { return nil }
        let shard = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
        let id = shard.deletingPathExtension().lastPathComponent
        guard HeartDiseaseImport.sites.contains(id), shard.pathExtension == "sqlite" else {
            var problem = "expected a path to <site>.sqlite with site one of \(HeartDiseaseImport.sites.joined(separator: ", "))"
            if let guess = suggestion(for: id, among: HeartDiseaseImport.sites) { problem += "; did you mean '\(guess).sqlite'?" }
            reader.fail(node, field, problem)
            return nil
        }
        let raw = shard.deletingLastPathComponent().appendingPathComponent("processed.\(id).data")
        guard reader.sitesElsewhere || FileManager.default.fileExists(atPath: shard.path) || FileManager.default.fileExists(atPath: raw.path) else {
            reader.fail(node, field, "neither the shard nor the UCI file \(relativePath(raw)) to import it from exists")
            return nil
        }
        if listed.contains(where: { $0.profile.id == id }) { reader.fail(node, field, "site '\(id)' is listed twice"); return nil }
        var reference = Scenario.SiteReference(
            profile: SiteProfile(id: id, name: HeartDiseaseImport.hospitalNames[id] ?? id, seed: 0, patients: 0),
            profileFile: URL(fileURLWithPath: relativePath(raw)), shardFile: URL(fileURLWithPath: relativePath(shard)))
        reference.importedHeartDisease = true
        return reference
    }

    /// An OMOP CDM database (a shard `sitefit sites import omop` wrote, or any OMOP SQLite file),
    /// opened in place and read-only; never built, never rewritten.
    static func omopSite(_ node: Node, _ field: String, folder: URL, listed: [Scenario.SiteReference],
                         reader: inout YAMLReader) -> Scenario.SiteReference? {
        guard let path = reader.string(node, field) else { return nil }
        let url = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
        guard reader.sitesElsewhere || FileManager.default.fileExists(atPath: url.path) else {
            reader.fail(node, field, "no database at \(relativePath(url)); import a CSV export with "
                        + "`sitefit sites import omop --from FOLDER --to \(relativePath(url)) --name NAME`")
            return nil
        }
        let id = url.deletingPathExtension().lastPathComponent.replacingOccurrences(of: ".", with: "-")
        guard SafeText.isFileName(id) else {
            reader.fail(node, field, "the database's file name becomes the site id: use only letters, digits, '-' and '_' in it")
            return nil
        }
        if listed.contains(where: { $0.profile.id == id }) { reader.fail(node, field, "site '\(id)' is listed twice"); return nil }
        let shown = URL(fileURLWithPath: relativePath(url))
        var reference = Scenario.SiteReference(profile: SiteProfile(id: id, name: id, seed: 0, patients: 0), profileFile: shown, shardFile: shown)
        reference.omopDatabase = true
        return reference
    }

    /// `omop_export: {from: EXPORT, sites: K, name:, seed:, by:}`: K sites cut from one OHDSI
    /// export, imported and split beside it on first use (never rebuilt once there).
    static func omopExportSites(_ node: Node, _ field: String, folder: URL, listed: [Scenario.SiteReference],
                                reader: inout YAMLReader) -> [Scenario.SiteReference] {
        guard let m = reader.mapping(node, field, allowed: ["from", "sites", "name", "seed", "by"], required: ["from", "sites"]),
              let fromNode = m["from"], let path = reader.string(fromNode, "\(field).from"),
              let partsNode = m["sites"], let parts = reader.integer(partsNode, "\(field).sites", in: 2...64, what: "a number of sites from 2 to 64")
        else { return [] }
        let export = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
        guard FileManager.default.fileExists(atPath: export.path) else {
            reader.fail(fromNode, "\(field).from", "no OMOP export at \(relativePath(export)) (a folder of <table>.csv files or a .zip of one)")
            return []
        }
        var name = export.deletingPathExtension().lastPathComponent.lowercased().replacingOccurrences(of: ".", with: "-")
        if m["name"] == nil && (!SafeText.isFileName(name) || name.count > SafeText.maximumLength - 10) {
            reader.fail(fromNode, "\(field).from", "the export's file name cannot name sites (letters, digits, '-' and '_' only): give `name:`")
            return []
        }
        if let nameNode = m["name"] {
            guard let given = reader.string(nameNode, "\(field).name") else { return [] }
            guard SafeText.isFileName(given), given.count <= SafeText.maximumLength - 10 else {
                reader.fail(nameNode, "\(field).name", "use letters, digits, - and _ only, at most \(SafeText.maximumLength - 10) (it names files)")
                return []
            }
            name = given
        }
        var seed: UInt64 = 1
        if let seedNode = m["seed"] {
            guard let text = seedNode.scalar?.string, let value = UInt64(text) else {
                reader.fail(seedNode, "\(field).seed", "expected a non-negative whole number")
                return []
            }
            seed = value
        }
        var byCareSite = false
        if let byNode = m["by"] {
            guard let by = reader.choice(byNode, "\(field).by", among: ["person", "care_site"]) else { return [] }
            byCareSite = by == "care_site"
        }
        let split = Scenario.OMOPExportSplit(
            export: URL(fileURLWithPath: relativePath(export)),
            folder: URL(fileURLWithPath: relativePath(export.deletingLastPathComponent().appendingPathComponent(name))),
            name: name, parts: parts, seed: seed, byCareSite: byCareSite)
        var sites: [Scenario.SiteReference] = []
        for k in 1...parts {
            let id = "\(name)-\(k)"
            if listed.contains(where: { $0.profile.id == id }) { reader.fail(node, field, "site '\(id)' is listed twice"); return [] }
            let shard = split.folder.appendingPathComponent("\(id).sqlite")
            var reference = Scenario.SiteReference(profile: SiteProfile(id: id, name: id, seed: 0, patients: 0),
                                                   profileFile: split.export, shardFile: shard)
            reference.omopDatabase = true
            reference.omopExport = split
            sites.append(reference)
        }
        return sites
    }

    /// A synthetic site: its profile file, loaded and checked; the shard is built beside it on demand.
    static func profileSite(_ pathNode: Node, _ field: String, folder: URL, listed: [Scenario.SiteReference],
                            reader: inout YAMLReader, profileDiagnostics: inout [Diagnostic]) -> Scenario.SiteReference? {
        guard let path = reader.string(pathNode, field) else { return nil }
        let profileURL = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
        let shown = URL(fileURLWithPath: relativePath(profileURL))
        guard FileManager.default.fileExists(atPath: profileURL.path) else {
            reader.fail(pathNode, field, "site profile '\(path)' not found (looked in \(shown.relativePath))")
            return nil
        }
        do {
            let profile = try SiteProfileLoader.load(URL(fileURLWithPath: relativePath(profileURL)))
            if listed.contains(where: { $0.profile.id == profile.id }) {
                reader.fail(pathNode, field, "site '\(profile.id)' is listed twice")
                return nil
            }
            let shard = profileURL.deletingPathExtension().appendingPathExtension("sqlite")
            return Scenario.SiteReference(profile: profile, profileFile: URL(fileURLWithPath: relativePath(profileURL)),
                                          shardFile: URL(fileURLWithPath: relativePath(shard)))
        } catch let list as DiagnosticList {
            profileDiagnostics += list.diagnostics
        } catch {
            reader.fail(pathNode, field, "\(error)")
        }
        return nil
    }

    /// heart_disease: sites and `task.dataset: heart-disease` only make sense together.
    static func checkSites(_ sites: [Scenario.SiteReference], match dataset: Scenario.Dataset, node: Node?,
                           reader: inout YAMLReader) {
        let heartSites = sites.filter(\.importedHeartDisease).count
        if dataset == .heartDisease && heartSites != sites.count, let node {
            reader.fail(node, "sites", "task.dataset heart-disease needs every site to be a heart_disease: site")
        } else if dataset == .omop && heartSites > 0, let node {
            reader.fail(node, "sites", "heart_disease: sites need `task: {dataset: heart-disease}`")
        }
    }
}
