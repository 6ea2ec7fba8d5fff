import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitScenario
import SiteFitFederation
import SiteFitMetrics
import SiteFitTestSupport
import SiteFitTuning

let profile = """
    name: Alpha Hospital
    seed: 1
    patients: 200
    """

let scenario = """
    seed: 42
    sites:
      - profile: ../Sites/alpha.yaml
    federation:
      rounds: 3
    arms:
      - mode: full
      - name: bitfit-fast
        mode: bitfit
        learning_rate: 0.02
    """


@Suite("Scenario files")
struct ScenarioTests {
    @Test("a valid scenario loads with its profiles, defaults and arm overrides")
    func valid() throws {
        let folder = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": scenario])
        let s = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml"))
        #expect(s.name == "demo")
        #expect(s.seed == 42)
        #expect(s.sites.map(\.profile.id) == ["alpha"])
        #expect(s.sites[0].profile.patients == 200)
        #expect(s.sites[0].shardFile.lastPathComponent == "alpha.sqlite")
        #expect(s.federation.rounds == 3)
        #expect(s.arms.map(\.name) == ["full", "bitfit-fast"])
        #expect(s.arms[1].learningRate == 0.02)
        #expect(s.arms[0].learningRate == s.federation.learningRate)
    }

    @Test("an unknown key is located and gets a did-you-mean")
    func unknownKey() throws {
        let folder = try fixture(["Sites/alpha.yaml": profile,
                                  "Scenarios/demo.yaml": scenario.replacingOccurrences(of: "  rounds: 3", with: "  rouns: 3")])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml")) }
        #expect(found.count == 1)
        #expect(found.first?.line == 5)
        #expect(found.first?.column == 3)
        #expect(found.first?.field == "federation.rouns")
        #expect(found.first?.problem == "unknown key 'rouns'; did you mean 'rounds'?")
    }

    @Test("bad values name file, line, column and field, all at once")
    func badValues() throws {
        let broken = scenario
            .replacingOccurrences(of: "seed: 42", with: "seed: -3")
            .replacingOccurrences(of: "mode: bitfit", with: "mode: bitfitt")
        let folder = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": broken])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml")) }
        #expect(found.map(\.field) == ["seed", "arms[1].mode"])
        #expect(found[0].description.hasSuffix("demo.yaml:1:7: seed: expected a non-negative integer, found '-3'"))
        #expect(found[1].problem.contains("did you mean 'bitfit'?"))
    }

    @Test("an arm that cannot be read is one error: the claims and compare_to that name it do not repeat it")
    func unreadArmDoesNotCascade() throws {
        let broken = scenario.replacingOccurrences(of: "mode: bitfit", with: "mode: bitfitt")
            + "\ncompare_to: bitfit-fast\nexpect:\n  - {arm: bitfit-fast, better_than: full, metric: auroc}\n"
            + "  - {arm: full, not_worse_than: bitfit-fast, margin: 0.1, metric: auroc}\n  - {arm: bitfit-slow, better_than: full, metric: auroc}\n"
        let folder = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": broken])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml")) }
        // The misspelled mode, and the claim on an arm the file never lists: nothing about bitfit-fast's claims.
        #expect(found.map(\.field) == ["arms[1].mode", "expect[2].arm"], "\(found)")
        #expect(found.last?.problem.hasPrefix("'bitfit-slow' is neither an arm nor a baseline row") == true)
    }

    @Test("participation, DP and secure aggregation load; their mistakes are located")
    func federationFaults() throws {
        let good = scenario.replacingOccurrences(of: "  rounds: 3", with: """
              rounds: 3
              local_steps: 100
              sampling: {fraction: 0.5}
              quorum: 1
              dropout:
                probability: 0.1
                schedule: {2: [alpha]}
              stragglers:
                seconds_per_step: {default: 0.001, alpha: 0.01}
                jitter: 0.2
                deadline_seconds: 1.5
            """) + "\n    dp: {clip_norm: 0.5, noise_multiplier: 1.1, epsilon_budget: 8}\n    secure_aggregation: true\n"
        let folder = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": good])
        let s = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml"))
        let p = s.federation.participation
        #expect(s.federation.localSteps == 100)
        #expect(p.sampling == .fraction(0.5) && p.quorum == 1 && p.dropoutProbability == 0.1)
        #expect(p.dropoutSchedule == [2: ["alpha"]])
        #expect(p.secondsPerStep == ["alpha": 0.01] && p.defaultSecondsPerStep == 0.001 && p.deadlineSeconds == 1.5)
        #expect(s.arms[1].privacy == DPSettings(clipNorm: 0.5, noiseMultiplier: 1.1, delta: 1e-5, epsilonBudget: 8))
        #expect(s.arms[1].secureAggregation && !s.arms[0].secureAggregation)

        let bad = good.replacingOccurrences(of: "schedule: {2: [alpha]}", with: "schedule: {2: [alpah]}")
            .replacingOccurrences(of: "quorum: 1", with: "quorum: 4")
            .replacingOccurrences(of: "noise_multiplier: 1.1", with: "noise: 1.1")
        let badFolder = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": bad], name: "federationFaultsBad")
        let found = diagnostics { _ = try ScenarioLoader.load(badFolder.appendingPathComponent("Scenarios/demo.yaml")) }
        #expect(found.map(\.field) == ["federation.quorum", "federation.dropout.schedule.2[0]", "arms[1].dp.noise_multiplier", "arms[1].dp.noise"])
        #expect(found[0].problem == "expected an integer from 1 to 1 (the number of sites), found '4'")
        #expect(found[1].problem == "no site 'alpah' in this scenario; did you mean 'alpha'?")
        #expect(found[2].problem == "missing required key 'noise_multiplier'")
        #expect(found[3].problem == "unknown key 'noise'; expected one of: clip_norm, noise_multiplier, delta, epsilon_budget")
    }

    @Test("DP with a fixed count of sites per round is refused: the accountant's bound is for Poisson sampling")
    func dpNeedsPoissonSampling() throws {
        let sites = "Sites/alpha.yaml"
        let three = scenario.replacingOccurrences(of: "  - profile: ../Sites/alpha.yaml", with: """
              - profile: ../Sites/alpha.yaml
              - profile: ../Sites/beta.yaml
              - profile: ../Sites/gamma.yaml
            """)
        func load(sampling: String) throws -> [Diagnostic] {
            let text = three.replacingOccurrences(of: "  rounds: 3", with: "  rounds: 3\n  sampling: \(sampling)")
                + "\n    dp: {clip_norm: 0.5, noise_multiplier: 1.1}\n"
            let folder = try fixture([sites: profile, "Sites/beta.yaml": profile.replacingOccurrences(of: "Alpha", with: "Beta"),
                                      "Sites/gamma.yaml": profile.replacingOccurrences(of: "Alpha", with: "Gamma"),
                                      "Scenarios/demo.yaml": text], name: "dpSampling\(sampling.filter(\.isNumber))")
            return diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml")) }
        }
        let refused = try load(sampling: "{count: 2}")
        #expect(refused.map(\.field) == ["arms[1].dp"])
        #expect(refused.first?.line == 14)
        #expect(refused.first?.problem.contains("use federation.sampling.fraction: 0.667") == true)
        #expect(try load(sampling: "{fraction: 0.667}").isEmpty)
        #expect(try load(sampling: "{count: 3}").isEmpty, "every site each round: nothing is subsampled")
    }

    @Test("a problem inside a site profile is reported in the profile's file")
    func profileProblem() throws {
        let folder = try fixture(["Sites/alpha.yaml": profile.replacingOccurrences(of: "patients: 200", with: "patients: many"),
                                  "Scenarios/demo.yaml": scenario])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml")) }
        #expect(found.count == 1)
        #expect(found[0].file.hasSuffix("Sites/alpha.yaml"))
        #expect(found[0].line == 3)
        #expect(found[0].problem == "expected an integer from 20 to 1000000, found 'many'")
    }

    @Test("a missing profile file is located at the scenario's profile field")
    func missingProfile() throws {
        let folder = try fixture(["Scenarios/demo.yaml": scenario])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml")) }
        #expect(found.first?.field == "sites[0].profile")
        #expect(found.first?.line == 3)
        #expect(found.first?.problem.contains("not found") == true)
    }

    @Test("invalid YAML gets the parser's line and column")
    func syntax() throws {
        let folder = try fixture(["Scenarios/demo.yaml": "seed: 1\nsites: [unclosed\narms: []\n"])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml")) }
        #expect(found.count == 1)
        #expect(found[0].problem.hasPrefix("invalid YAML"))
        #expect(found[0].line >= 2)
    }

    @Test("required keys are reported when absent")
    func required() throws {
        let folder = try fixture(["Scenarios/demo.yaml": "name: x\n"])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml")) }
        #expect(found.map(\.field) == ["seed", "sites", "arms"])
    }

    @Test("the task section takes concept names or ids, and locates unknown names")
    func task() throws {
        let withTask = scenario + """

            task:
              lookback_days: 180
              conditions: [type_2_diabetes, 4329847]
              measurements: [creatinine]
              drugs: []
            """
        let folder = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": withTask])
        let s = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml"))
        #expect(s.task.lookbackDays == 180)
        #expect(s.task.conditions == [201826, 4329847])
        #expect(s.task.measurements == [3016723])
        #expect(s.task.drugs.isEmpty)
        #expect(s.model.inputSize == 3 + 2 + 1)

        let broken = try fixture(["Sites/alpha.yaml": profile,
                                  "Scenarios/demo.yaml": withTask.replacingOccurrences(of: "[creatinine]", with: "[creatinin]")],
                             name: "taskBroken")
        let found = diagnostics { _ = try ScenarioLoader.load(broken.appendingPathComponent("Scenarios/demo.yaml")) }
        #expect(found.map(\.field) == ["task.measurements[0]"])
        #expect(found.first?.problem == "unknown concept 'creatinin'; did you mean 'creatinine'?")
    }

    @Test("a missing scenario file is a user-facing error, not a crash")
    func missingFile() throws {
        #expect(throws: UserFacingError.self) {
            try ScenarioLoader.load(URL(fileURLWithPath: "/nonexistent/scenario.yaml"))
        }
    }

    @Test("the committed quickstart scenario validates")
    func quickstart() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let s = try ScenarioLoader.load(root.appendingPathComponent("Scenarios/quickstart.yaml"))
        #expect(s.arms.map(\.mode.rawValue) == ["full", "bitfit"])
        #expect(s.sites.count == 3)
    }
}

@Suite("The JSON Schema for editors agrees with the loader")
struct SchemaTests {
    static func schema() throws -> [String: Any] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scenarios/scenario.schema.json")
        return try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    static func properties(_ object: [String: Any], _ path: [String]) -> [String: Any] {
        var node = object
        for key in path {
            let properties = node["properties"] as! [String: Any]
            node = properties[key] as! [String: Any]
            if let items = node["items"] as? [String: Any], node["type"] as? String == "array" { node = items }
        }
        return node["properties"] as! [String: Any]
    }

    @Test("top-level, federation and arm keys and every enumeration match the loader's")
    func keysAndEnums() throws {
        let schema = try Self.schema()
        #expect(Set(Self.properties(schema, []).keys) == Set(ScenarioLoader.topKeys))
        #expect(Set(Self.properties(schema, ["federation"]).keys) == Set(ScenarioLoader.federationKeys))
        #expect(Set(Self.properties(schema, ["reconstruction"]).keys) == Set(ScenarioLoader.reconstructionKeys))
        #expect(Set(Self.properties(schema, ["expect"]).keys) == Set(ScenarioLoader.expectationKeys))
        let leakage = Self.properties(schema, ["expect"])["leakage"]
        #expect(Set(((leakage as? [String: Any])?["enum"] as? [String]) ?? []) == Set(LeakageMeasure.allCases.map(\.rawValue)))
        let arm = Self.properties(schema, ["arms"])
        #expect(Set(arm.keys) == Set(ScenarioLoader.armKeys))
        func enumeration(_ node: Any?) -> Set<String> { Set(((node as? [String: Any])?["enum"] as? [String]) ?? []) }
        #expect(enumeration(arm["mode"]) == Set(FineTuningMode.allCases.map(\.rawValue)))
        #expect(enumeration(arm["strategy"]) == Set(StrategyRegistry.all.map(\.name)))
        let baselines = (Self.properties(schema, [])["baselines"] as! [String: Any])["items"]
        #expect(enumeration(baselines) == Set(Scenario.Baseline.allCases.map(\.rawValue)))
        let attributes = (Self.properties(schema, ["subgroups"])["attributes"] as! [String: Any])["items"]
        #expect(enumeration(attributes) == Set(Scenario.Subgroups.Attribute.allCases.map(\.rawValue)))
    }

    @Test("each strategy setting has one range, the schema's, and its description names every strategy that reads it")
    func strategySettings() throws {
        let arm = Self.properties(try Self.schema(), ["arms"])
        for key in StrategyRegistry.settingKeys {
            let readers = StrategyRegistry.reading(key)
            let ranges = Set(readers.compactMap { $0.setting(key)?.range })
            #expect(ranges.count == 1, "the strategies that read \(key) must accept the same values")
            let property = try #require(arm[key] as? [String: Any])
            // A half-open range [a, b) is written with exclusiveMaximum b; the loader's upper bound is then b.nextDown.
            let maximum = (property["maximum"] as? Double) ?? (property["exclusiveMaximum"] as? Double)?.nextDown
            #expect(property["minimum"] as? Double == ranges.first?.lowerBound, "\(key): minimum")
            #expect(maximum == ranges.first?.upperBound, "\(key): maximum")
            let words = Set(((property["description"] as? String) ?? "").split { !$0.isLetter }.map(String.init))
            for reader in readers { #expect(words.contains(reader.name), "the schema's \(key) should name \(reader.name)") }
        }
    }
}
