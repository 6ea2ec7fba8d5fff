import Foundation

/// The tiny scenario (two generated sites, 2 rounds, a full and a BitFit arm, every baseline),
/// small enough to run twice in a test; `eastSite` is a third site for scenarios that need one.
public enum TinyScenario {
    /// `Sites/north.yaml`, `Sites/south.yaml` (creatinine in µmol/L, 30 % of labs missing) and `tiny.yaml`.
    public static let files = [
        "Sites/north.yaml": "name: North\nseed: 1\npatients: 260\noutcome_prevalence: 0.25\n",
        "Sites/south.yaml": "name: South\nseed: 2\npatients: 180\nlabs:\n  creatinine:\n    unit: umol/L\nlab_missing_rate: 0.3\n",
        "tiny.yaml": scenario(),
    ]

    /// A third site's profile, for `Sites/east.yaml`.
    public static let eastSite = "name: East\nseed: 3\npatients: 200\n"

    /// The full and BitFit arms of the tiny scenario, as `arms:` lines.
    public static let fullAndBitFit = "  - mode: full\n  - mode: bitfit\n    learning_rate: 0.01\n"

    /// The tiny scenario's text over the named sites (`Sites/NAME.yaml`): `seeds` is its seed line,
    /// `federation` its federation lines (unindented), `arms` its arm lines, then a `baselines:`
    /// line when given, the `extra` top-level lines and, unless `subgroups` is false, the subgroup
    /// settings (a block without its last line break gets one). Every test scenario is built here, so they differ only where a test says so.
    public static func scenario(
        sites: [String] = ["north", "south"], seeds: String = "seed: 5", federation: String = "rounds: 2\nbatch_size: 16",
        arms: String = fullAndBitFit, baselines: String? = nil, extra: String = "", subgroups: Bool = true
    ) -> String {
        var lines = [seeds, "sites:"] + sites.map { "  - profile: Sites/\($0).yaml" }
        lines += ["model:", "  hidden: [8]", "pretraining:", "  patients: 600", "  epochs: 3", "federation:"]
        lines += federation.split(separator: "\n").map { "  " + $0 }
        func line(_ block: String) -> String { block.isEmpty || block.hasSuffix("\n") ? block : block + "\n" }
        var text = lines.joined(separator: "\n") + "\narms:\n" + line(arms)
        if let baselines { text += "baselines: \(baselines)\n" }
        text += line(extra)
        if subgroups { text += "subgroups:\n  min_group_size: 15\n  bootstrap: 40" }
        return text
    }

    /// The tiny scenario over three sites (north, south and `eastSite`), as the tests of separate
    /// site processes run it: `arms` lines go after the full and BitFit arms.
    public static func threeSites(seeds: String = "seed: 5", arms: String = "", baselines: String, extra: String = "") -> String {
        scenario(sites: ["north", "south", "east"], seeds: seeds, arms: fullAndBitFit + arms, baselines: baselines, extra: extra)
    }
}

extension TinyScenario {
    /// The tiny scenario's files with `Sites/east.yaml` added and `tiny.yaml` replaced by `scenario`.
    public static func threeSiteFiles(_ scenario: String) -> [String: String] {
        var files = TinyScenario.files
        files["Sites/east.yaml"] = eastSite
        files["tiny.yaml"] = scenario
        return files
    }
}

/// The tiny scenario written into a fresh folder (load `tiny.yaml` from it).
public func tinyScenario(_ name: String = #function, fileID: String = #fileID) throws -> URL {
    try fixture(TinyScenario.files, name: name, fileID: fileID)
}
