import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitScenario
import SiteFitTestSupport

/// Hundreds of mutated scenario files: each must load or fail with located diagnostics; none
/// may crash or hang the loader.
@Suite("Fuzzed scenario files always get a located error")
struct FuzzTests {
    static let base = """
        name: fuzz
        seed: 42
        sites:
          - profile: Sites/alpha.yaml
          - profile: Sites/beta.yaml
        test_fraction: 0.3
        task:
          lookback_days: 365
          outcome_window_days: 365
          drugs: [metformin, aspirin]
        model:
          hidden: [16, 8]
          activation: relu
        pretraining:
          patients: 800
          epochs: 4
        federation:
          rounds: 3
          local_epochs: 1
          batch_size: 32
          sampling: {fraction: 0.5}
          quorum: 1
          dropout:
            probability: 0.1
            schedule: {2: [alpha]}
          stragglers: {seconds_per_step: {default: 0.001, beta: 0.004}, deadline_seconds: 5}
        arms:
          - {name: full, mode: full}
          - name: bitfit-dp
            mode: bitfit
            strategy: fedadam
            server_learning_rate: 0.05
            dp: {clip_norm: 0.5, noise_multiplier: 1.1, delta: 1e-5, epsilon_budget: 20}
            secure_aggregation: true
          - {name: lora, mode: lora, lora: {rank: 2, alpha: 4}}
        baselines: [pretrained, local]
        subgroups: {attributes: [sex, age_band], min_group_size: 10, bootstrap: 20}

        """

    static let oddValues = ["", "-1", "0", "1e400", "-1e400", "99999999999999999999999", ".nan", ".inf", "[1, 2]", "{a: 1}",
                            "true", "\"\"", "~", "*nowhere", "&anchor x", "!!binary AAAA", "0x1F", "1_000", "'unterminated",
                            "\"\\u0000\"", "[", "}", "- x", "? complex", "%YAML", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", String(repeating: "9", count: 400)]

    static func mutate(_ text: String, _ random: inout RandomStream) -> Data {
        var lines = text.components(separatedBy: "\n")
        switch random.int(below: 8) {
        case 0: // truncate anywhere, even inside a multi-byte character
            let bytes = Array(text.utf8)
            return Data(bytes.prefix(random.int(below: bytes.count)))
        case 1: // drop a line
            lines.remove(at: random.int(below: lines.count))
        case 2: // duplicate a line (duplicate keys, repeated arms)
            let i = random.int(below: lines.count)
            lines.insert(lines[i], at: i)
        case 3: // replace a value with something odd
            let i = random.int(below: lines.count)
            if let colon = lines[i].firstIndex(of: ":") {
                lines[i] = String(lines[i][...colon]) + " " + oddValues[random.int(below: oddValues.count)]
            }
        case 4: // shift indentation
            let i = random.int(below: lines.count)
            lines[i] = (random.bernoulli(0.5) ? "   " : "\t") + lines[i]
        case 5: // odd bytes, not always valid UTF-8
            var bytes = Array(text.utf8)
            for _ in 0..<(1 + random.int(below: 4)) {
                bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: random.int(below: bytes.count + 1))
            }
            return Data(bytes)
        case 6: // misspell a key
            let i = random.int(below: lines.count)
            if let colon = lines[i].firstIndex(of: ":"), colon > lines[i].startIndex {
                var line = lines[i]
                line.insert("x", at: line.index(before: colon))
                lines[i] = line
            }
        default: // two mutations at once
            let once = mutate(text, &random)
            return mutate(String(decoding: once, as: UTF8.self), &random)
        }
        return Data(lines.joined(separator: "\n").utf8)
    }

    @Test("400 mutations of a full scenario: a scenario, or diagnostics that name the file, a line, a column and a problem")
    func fuzz() throws {
        let folder = try fixture([
            "Sites/alpha.yaml": "name: Alpha\nseed: 1\npatients: 200\n",
            "Sites/beta.yaml": "name: Beta\nseed: 2\npatients: 150\n",
            "fuzz.yaml": Self.base,
        ])
        let file = folder.appendingPathComponent("fuzz.yaml")
        // The unmutated file is valid, so every failure below comes from a mutation.
        _ = try ScenarioLoader.load(file)
        var random = RandomStream(seed: 2026, "fuzz")
        var failures = 0
        for iteration in 0..<400 {
            let mutated = Self.mutate(Self.base, &random)
            try mutated.write(to: file)
            do {
                _ = try ScenarioLoader.load(file)
            } catch let list as DiagnosticList {
                failures += 1
                #expect(!list.diagnostics.isEmpty, "iteration \(iteration): an empty diagnostic list")
                for d in list.diagnostics {
                    #expect(d.file.hasSuffix(".yaml") && d.line >= 1 && d.column >= 1 && !d.problem.isEmpty,
                            "iteration \(iteration): unlocated diagnostic \(d)")
                }
            } catch let error as UserFacingError {
                failures += 1
                #expect(error.message.contains(".yaml"), "iteration \(iteration): error names no file: \(error.message)")
            } catch {
                Issue.record("iteration \(iteration): unexpected error type \(type(of: error)): \(error)")
            }
        }
        #expect(failures > 200, "most mutations should be refused; \(failures) were")
    }
}
