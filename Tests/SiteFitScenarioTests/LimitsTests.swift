import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitScenario
import SiteFitTestSupport

@Suite("Limits: the schema and the loader agree, and validate refuses a runaway scenario before any work")
struct LimitsTests {
    /// The tiny scenario as JSON (YAML's subset), so one setting can be swapped in.
    static func base() -> [String: Any] {
        ["seed": 5, "sites": [["profile": "Sites/north.yaml"], ["profile": "Sites/south.yaml"]],
         "model": ["hidden": [8]], "pretraining": ["patients": 600, "epochs": 3],
         "federation": ["rounds": 2, "batch_size": 16], "arms": [["mode": "full"]]]
    }

    static func load(_ scenario: [String: Any], in folder: URL, _ name: String) -> [Diagnostic] {
        let url = folder.appendingPathComponent("\(name).yaml")
        // Numbers go through JSONSerialization as written; a YAML reader reads JSON unchanged.
        try? JSONSerialization.data(withJSONObject: scenario, options: [.sortedKeys]).write(to: url)
        return diagnostics { _ = try ScenarioLoader.load(url) }
    }

    /// The schema's top-level properties.
    static func schemaProperties() throws -> [String: Any] {
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: repositoryRoot.appendingPathComponent(
            "Scenarios/scenario.schema.json"))) as? [String: Any])
        return try #require(schema["properties"] as? [String: Any])
    }

    /// For every integer or number field of `fields` with a bound: the bound itself loads without
    /// a problem at `path(key)`, one step past it with one. `place` puts a value into the base
    /// scenario. Returns how many values were checked.
    static func checkBounds(_ fields: [String: Any], path: (String) -> String, skip: (String) -> Bool = { _ in false },
                            place: (inout [String: Any], String, NSNumber) -> Void) throws -> Int {
        var files = TinyScenario.files
        files.removeValue(forKey: "tiny.yaml")
        let folder = try fixture(files, name: "bounds-\(path("x"))")
        var checked = 0
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) where !skip(key) {
            guard let field = value as? [String: Any], let type = field["type"] as? String, ["integer", "number"].contains(type) else { continue }
            for (bound, beyond) in [("maximum", 1.0), ("minimum", -1.0)] {
                guard let limit = (field[bound] as? NSNumber)?.doubleValue else { continue }
                let past = type == "integer" ? limit + beyond : limit + beyond * max(abs(limit) * 0.01, 1e-6)
                for (value, refused) in [(limit, false), (past, true)] {
                    var scenario = base()
                    place(&scenario, key, type == "integer" ? NSNumber(value: Int(value)) : NSNumber(value: value))
                    let found = load(scenario, in: folder, "\(path(key))-\(bound)-\(refused)").filter { $0.field == path(key) }
                    #expect(found.isEmpty != refused,
                            "\(path(key)) = \(value): the schema says \(refused ? "refused" : "accepted"); the loader: \(found.map(\.problem))")
                    checked += 1
                }
            }
        }
        return checked
    }

    @Test("every bounded number of the model, federation, pretraining and subgroup sections: the schema's bound is accepted, one past it refused")
    func schemaBoundsAreTheLoaders() throws {
        let properties = try Self.schemaProperties()
        var checked = 0
        for section in ["model", "federation", "pretraining", "subgroups"] {
            // `pretraining` is `none` or an object (oneOf): its object branch holds the fields.
            let object = properties[section] as? [String: Any]
            let branches = [object] + ((object?["oneOf"] as? [[String: Any]]) ?? [])
            let found = branches.compactMap { $0?["properties"] as? [String: Any] }.first
            let fields = try #require(found)
            checked += try Self.checkBounds(fields, path: { "\(section).\($0)" }) { scenario, key, number in
                var part = scenario[section] as? [String: Any] ?? [:]
                part[key] = number
                // The transformer's keys need its kind (the MLP's refuse them, by name).
                if section == "model" && ScenarioLoader.transformerKeys.contains(key) { part["kind"] = "transformer" }
                scenario[section] = part
            }
        }
        #expect(checked >= 30, "\(checked) bounds checked")
    }

    @Test("the top level's, the task's and an arm's bounded numbers: the schema's bound is accepted, one past it refused")
    func armAndTaskBoundsAreTheLoaders() throws {
        let properties = try Self.schemaProperties()
        var checked = try Self.checkBounds(properties, path: { $0 }, skip: { $0 == "seed" }) { $0[$1] = $2 }
        let task = try #require((properties["task"] as? [String: Any])?["properties"] as? [String: Any])
        // The cohort ids only come in pairs; their one bound (0) is the loader's too (ConceptSetScenarioTests).
        checked += try Self.checkBounds(task, path: { "task.\($0)" }, skip: { $0.hasSuffix("_cohort_id") }) { $0["task"] = [$1: $2] }
        let arm = try #require(((properties["arms"] as? [String: Any])?["items"] as? [String: Any])?["properties"] as? [String: Any])
        // Arm settings that belong to a strategy are checked under it.
        let strategyOf = ["proximal_mu": "fedprox", "server_momentum": "fedavgm"]
        checked += try Self.checkBounds(arm, path: { "arms[0].\($0)" }) { scenario, key, number in
            var fields: [String: Any] = ["mode": "full", key: number]
            if key.hasPrefix("server_") || strategyOf[key] != nil { fields["strategy"] = strategyOf[key] ?? "fedadam" }
            scenario["arms"] = [fields]
        }
        #expect(checked >= 20, "\(checked) bounds checked")
    }

    @Test("the reconstruction experiment's bounded numbers and list items: the schema's bound is accepted, one past it refused")
    func reconstructionBoundsAreTheLoaders() throws {
        let section = try #require(try Self.schemaProperties()["reconstruction"] as? [String: Any])
        let fields = try #require(section["properties"] as? [String: Any])
        var checked = try Self.checkBounds(fields, path: { "reconstruction.\($0)" }) { scenario, key, number in
            scenario["reconstruction"] = ["batch_sizes": [1], "local_steps": [1], key: number]
        }
        // Each list's items carry the bound; the loader reports the item.
        var items: [String: Any] = [:]
        for key in ["batch_sizes", "local_steps"] { items[key] = (fields[key] as? [String: Any])?["items"] }
        checked += try Self.checkBounds(items, path: { "reconstruction.\($0)[0]" }) { scenario, key, number in
            var part: [String: Any] = ["batch_sizes": [1], "local_steps": [1]]
            part[key] = [number]
            scenario["reconstruction"] = part
        }
        #expect(checked == 16, "\(checked) bounds checked")
    }

    @Test("a 16 × 4096 model over 1000 rounds passes the loader's per-field limits but not the budget; the refusal states the estimate")
    func runaway() throws {
        var files = TinyScenario.files
        files["tiny.yaml"] = files["tiny.yaml"]!
            .replacingOccurrences(of: "  hidden: [8]", with: "  hidden: [\(Array(repeating: "4096", count: 16).joined(separator: ", "))]")
            .replacingOccurrences(of: "  rounds: 2", with: "  rounds: 1000")
        let folder = try fixture(files)
        let scenario = try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
        let estimate = ResourceEstimate.of(scenario, cores: 2)
        #expect(estimate.parameters > 250_000_000 && estimate.memoryBytes > 16 * 1_073_741_824)
        let refusal = try #require(estimate.refusal(within: .standard))
        #expect(refusal.message.contains("GiB of memory") && refusal.message.contains("TFLOP") && refusal.message.contains("--max-memory-gb"))

        let tiny = try ScenarioLoader.load(try fixture(TinyScenario.files, name: "tiny").appendingPathComponent("tiny.yaml"))
        #expect(ResourceEstimate.of(tiny).refusal(within: .standard) == nil)
        #expect(ResourceEstimate.of(tiny).refusal(within: .init(memoryBytes: 1_048_576, flops: 1e6)) != nil, "a smaller budget refuses it")

        let seventeen = files["tiny.yaml"]!.replacingOccurrences(of: "4096, 4096]", with: "4096, 4096, 8]")
        let tooDeep = try fixture(files.merging(["tiny.yaml": seventeen]) { $1 }, name: "deep")
        let found = diagnostics { _ = try ScenarioLoader.load(tooDeep.appendingPathComponent("tiny.yaml")) }
        #expect(found.map(\.field) == ["model.hidden"])
    }

    @Test("secure aggregation's pairwise work and the reconstruction experiment count in the estimate")
    func secureAndAttacksCount() throws {
        var files = TinyScenario.files
        let plain = try ScenarioLoader.load(try fixture(files, name: "plain").appendingPathComponent("tiny.yaml"))
        files["tiny.yaml"] = files["tiny.yaml"]! + "\nreconstruction: {batch_sizes: [1, 4], local_steps: [1], budget: 100, trials: 2}\n"
        let attacked = try ScenarioLoader.load(try fixture(files, name: "attacked").appendingPathComponent("tiny.yaml"))
        let secureText = TinyScenario.files["tiny.yaml"]!.replacingOccurrences(of: "  - mode: full", with: "  - mode: full\n    secure_aggregation: true")
        let secure = try ScenarioLoader.load(try fixture(["tiny.yaml": secureText].merging(TinyScenario.files) { a, _ in a }, name: "secure")
            .appendingPathComponent("tiny.yaml"))
        let base = ResourceEstimate.of(plain)
        let parameters = Double(base.parameters)
        // Two sites, two arms: (1 + 3·100)·1 + (1 + 3·100)·4 sample-passes per trial, 2 trials, 6 FLOP per parameter.
        #expect(abs(ResourceEstimate.of(attacked).flops - base.flops - 6 * parameters * (301 + 4 * 301) * 2 * 2 * 2) < 1)
        // One secure arm, 2 rounds, 2² pairs.
        #expect(abs(ResourceEstimate.of(secure).flops - base.flops - 2 * 4 * (2e5 + 16 * parameters)) < 1)
    }
}
