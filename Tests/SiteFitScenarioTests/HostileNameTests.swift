import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitScenario
import SiteFitTestSupport

@Suite("Names from scenario and profile files are refused where they would break a path, a table or a terminal")
struct HostileNameTests {
    @Test("an arm or task name with Markdown or HTML, a profile name with a pipe, a file name that cannot name a report")
    func refused() throws {
        var files = TinyScenario.files
        files["tiny.yaml"] = files["tiny.yaml"]!
            .replacingOccurrences(of: "  - mode: full\n", with: "  - {mode: full, name: \"full | <script>\"}\n")
            .replacingOccurrences(of: "seed: 5\n", with: "seed: 5\ntask: {name: \"see [here](javascript:x)\"}\n")
        files["Sites/north.yaml"] = "name: \"North | East\"\nseed: 1\npatients: 260\n"
        let folder = try fixture(files)
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml")) }
        #expect(Set(found.map(\.field)).isSuperset(of: ["name", "task.name", "arms[0].name"]), "\(found.map(\.field))")
        #expect(found.allSatisfy { !$0.problem.contains("script") && !$0.problem.contains("javascript") })

        let oddFile = try fixture(["a b.yaml": TinyScenario.files["tiny.yaml"]!, "Sites/north.yaml": TinyScenario.files["Sites/north.yaml"]!,
                                   "Sites/south.yaml": TinyScenario.files["Sites/south.yaml"]!], name: "odd")
        let odd = diagnostics { _ = try ScenarioLoader.load(oddFile.appendingPathComponent("a b.yaml")) }
        #expect(odd.map(\.field) == ["name"] && odd.first?.problem.contains("give the scenario a `name:`") == true)
    }

    @Test("a data file named as a scenario is not echoed: its first line is a patient's values")
    func dataFileNotEchoed() throws {
        let folder = try fixture(["patients.csv": "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n"])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("patients.csv")) }
        #expect(!found.isEmpty && found.allSatisfy { !$0.description.contains("145.0") && !$0.description.contains("63.0") })
    }

    @Test("an unknown key that is no plain word is described, not quoted: a notes file's line stays off the terminal")
    func keysNotEchoed() throws {
        let folder = try fixture(["notes.yaml": "Smith John: MRN 0042 diabetic\nseed: 1\n"])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("notes.yaml")) }
        #expect(found.contains { $0.problem.hasPrefix("unknown key of 10 characters (not shown)") })
        #expect(found.allSatisfy { !$0.description.contains("Smith") && !$0.description.contains("0042") })
    }

    @Test("terminal text shows control characters as escapes and keeps lines")
    func terminal() {
        #expect(SafeText.terminal("a\u{1B}[31mred\r\nnext\u{202E}") == "a\\u{1b}[31mred\\u{d}\nnext\\u{202e}")
        #expect(SafeText.isFileName("omop-mimic_2") && !SafeText.isFileName("..") && !SafeText.isFileName("a/b") && !SafeText.isFileName(""))
        #expect(SafeText.isLabel("pooled (simulation only)") && !SafeText.isLabel("a|b") && !SafeText.isLabel("x\u{7}"))
    }
}
