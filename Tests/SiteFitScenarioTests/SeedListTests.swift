import Testing
@testable import SiteFitScenario
import SiteFitTestSupport

@Suite("--seeds")
struct SeedListTests {
    @Test("lists, ranges and both, in the order given")
    func parses() throws {
        #expect(try SeedList.parse("100,101,102") == [100, 101, 102])
        #expect(try SeedList.parse("100-104") == [100, 101, 102, 103, 104])
        #expect(try SeedList.parse("1, 5-7") == [1, 5, 6, 7])
        #expect(try SeedList.parse("42") == [42])
    }

    @Test("what is not a list of distinct seeds is refused with the part named", arguments: [
        ("1,,2", "'' is not a seed"), ("a", "'a' is not a seed"), ("5-3", "'5-3' is not a seed"), ("1-200", "'1-200' is not a seed"),
        ("1,2,1", "a seed is listed twice"), ("-1", "'-1' is not a seed"),
    ])
    func refuses(_ text: String, _ message: String) {
        #expect { try SeedList.parse(text) } throws: { ($0 as? SeedListError)?.description.hasPrefix(message) == true }
    }

    @Test("a reseeded scenario runs the given seeds, the first in detail, and its source population follows the first")
    func reseeded() throws {
        let scenario = try ScenarioLoader.load(try tinyScenario().appendingPathComponent("tiny.yaml"))
        let again = scenario.reseeded([7, 8, 9])
        #expect(again.seed == 7 && again.extraSeeds == [8, 9])
        #expect(again.pretraining.source.seed == 8)
        #expect(scenario.reseeded([]).seed == scenario.seed)
    }
}
