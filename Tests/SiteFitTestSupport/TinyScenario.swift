import Foundation

/// The tiny scenario (two generated sites, 2 rounds, a full and a BitFit arm, every baseline),
/// small enough to run twice in a test; `eastSite` is a third site for scenarios that need one.
public enum TinyScenario {
    /// `Sites/north.yaml`, `Sites/south.yaml` (creatinine in µmol/L, 30 % of labs missing) and `tiny.yaml`.
    public static let files = [
        "Sites/north.yaml": "name: North\nseed: 1\npatients: 260\noutcome_prevalence: 0.25\n",
        "Sites/south.yaml": "name: South\nseed: 2\npatients: 180\nlabs:\n  creatinine:\n    unit: umol/L\nlab_missing_rate: 0.3\n",
        "tiny.yaml": """
            seed: 5
            sites:
              - profile: Sites/north.yaml
              - profile: Sites/south.yaml
            model:
              hidden: [8]
            pretraining:
              patients: 600
              epochs: 3
            federation:
              rounds: 2
              batch_size: 16
            arms:
              - mode: full
              - mode: bitfit
                learning_rate: 0.01
            subgroups:
              min_group_size: 15
              bootstrap: 40
            """,
    ]

    /// A third site's profile, for `Sites/east.yaml`.
    public static let eastSite = "name: East\nseed: 3\npatients: 200\n"

    /// The tiny scenario over three sites (north, south and `eastSite`), as the tests of separate
    /// site processes run it: `seeds` is its seed line, `arms` lines go after the full and BitFit
    /// arms, then `baselines` and `extra` top-level lines.
    public static func threeSites(seeds: String = "seed: 5", arms: String = "", baselines: String, extra: String = "") -> String {
        """
        \(seeds)
        sites:
          - profile: Sites/north.yaml
          - profile: Sites/south.yaml
          - profile: Sites/east.yaml
        model:
          hidden: [8]
        pretraining:
          patients: 600
          epochs: 3
        federation:
          rounds: 2
          batch_size: 16
        arms:
          - mode: full
          - mode: bitfit
            learning_rate: 0.01
        \(arms)baselines: \(baselines)
        \(extra)subgroups:
          min_group_size: 15
          bootstrap: 40
        """
    }
}

/// The tiny scenario written into a fresh folder (load `tiny.yaml` from it).
public func tinyScenario(_ name: String = #function, fileID: String = #fileID) throws -> URL {
    try fixture(TinyScenario.files, name: name, fileID: fileID)
}
