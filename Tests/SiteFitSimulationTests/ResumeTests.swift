import Foundation
import Synchronization
import Testing
@testable import SiteFitCore
@testable import SiteFitScenario
@testable import SiteFitSimulation
import SiteFitFederation
import SiteFitTestSupport

/// A server's state on disk: a run stopped after a round and started again gives the uninterrupted
/// run's numbers, from where it stopped; another run's state or a damaged file is refused by name.
@Suite("server state and resume")
struct ResumeTests {
    /// Two seeds; the stateful arms first so the drill stops inside them: FedAdam's moments and the
    /// DP accountant must come back; the personalised arm (its sites keep bias terms) starts again.
    static func scenario(_ name: String = #function) throws -> Scenario {
        var files = TinyScenario.files
        files["tiny.yaml"] = try #require(files["tiny.yaml"]).replacingOccurrences(of: "seed: 5", with: "seeds: [5, 6]")
            .replacingOccurrences(of: "rounds: 2", with: "rounds: 3")
            .replacingOccurrences(of: """
                  - mode: full
                  - mode: bitfit
                    learning_rate: 0.01
                """, with: """
                  - {name: adam-dp, mode: bitfit, learning_rate: 0.01, strategy: fedadam, server_learning_rate: 0.01,
                     dp: {clip_norm: 0.5, noise_multiplier: 1.0, delta: 1.0e-5}}
                  - {name: personal, mode: full, strategy: personalized}
                """)
        let folder = try fixture(files, name: name)
        return try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
    }

    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func add(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test("a run stopped after round 2 goes on from round 3 with the same numbers, seeds and all; a finished arm is taken from the state")
    func stoppedRunResumes() async throws {
        let scenario = try Self.scenario()
        let reference = try await Simulation.run(scenario)
        let state = scenario.sites[0].shardFile.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("state")
        let stopping = try RunJournal(folder: state, scenario: scenario, crashAfterRound: 2, drillThrows: true)
        #expect(!stopping.resumed)
        await #expect(throws: RunJournal.DrillStop.self) { _ = try await Simulation.run(scenario, journal: stopping) }
        stopping.release()
        #expect(FileManager.default.fileExists(atPath: state.appendingPathComponent("seed-5/arm-0.progress.json").path))

        let lines = Lines()
        let going = try RunJournal(folder: state, scenario: scenario)
        #expect(going.resumed)
        let resumed = try await Simulation.run(scenario, journal: going) { lines.add($0) }
        going.release()
        #expect(resumed.metrics == reference.metrics)
        #expect(resumed.predictions == reference.predictions)
        #expect(lines.all.contains("[adam-dp] goes on after round 2, where the previous server stopped"), "\(lines.all)")
        // Seed 5 went on at round 3; seed 6 had not started, so it ran from round 1.
        // (The second seed's lines name it: seeds run side by side.)
        #expect(!lines.all.contains { $0.hasPrefix("[adam-dp] round 1/3") }, "\(lines.all)")
        #expect(lines.all.filter { $0.hasPrefix("seed 6 [adam-dp] round 1/3") }.count == 1, "\(lines.all)")
        #expect(lines.all.filter { $0.hasPrefix("[adam-dp] round 3/3") }.count == 1, "\(lines.all)")
        #expect(lines.all.filter { $0.hasPrefix("seed 6 [adam-dp] round 3/3") }.count == 1, "\(lines.all)")
        // The personalised arm never writes a round's state: it runs whole or not at all.
        #expect(!FileManager.default.fileExists(atPath: state.appendingPathComponent("seed-5/arm-1.progress.json").path))

        // Every unit is now finished in the state: a third start takes them all from it.
        let again = Lines()
        let finished = try await Simulation.run(scenario, journal: try RunJournal(folder: state, scenario: scenario)) { again.add($0) }
        #expect(finished.metrics == reference.metrics)
        #expect(finished.predictions == reference.predictions)
        #expect(again.all.contains("[adam-dp] finished before the server restarted: taken from its state"))
        #expect(!again.all.contains { $0.contains("round 1/3") })
    }

    @Test("another scenario's state, or a damaged state file, is refused with the folder or file named; --no-resume starts over")
    func foreignOrDamagedStateIsRefused() async throws {
        let scenario = try Self.scenario()
        let state = scenario.sites[0].shardFile.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("state")
        let journal = try RunJournal(folder: state, scenario: scenario, crashAfterRound: 1, drillThrows: true)
        await #expect(throws: RunJournal.DrillStop.self) { _ = try await Simulation.run(scenario, journal: journal) }
        journal.release()

        var other = scenario
        other.fingerprint = String(repeating: "0", count: 64)
        let foreign = #expect(throws: UserFacingError.self) { try RunJournal(folder: state, scenario: other) }
        #expect(foreign?.description.contains("holds the state of another run") == true, "\(String(describing: foreign))")
        #expect(foreign?.description.contains("--no-resume") == true)

        let progress = state.appendingPathComponent("seed-5/arm-0.progress.json")
        try Data(#"{"arm": "adam-dp", "round": "two"}"#.utf8).write(to: progress)
        let reading = try RunJournal(folder: state, scenario: scenario)
        let damaged = await #expect(throws: UserFacingError.self) { _ = try await Simulation.run(scenario, journal: reading) }
        reading.release()
        #expect(damaged?.description.contains("arm-0.progress.json") == true, "\(String(describing: damaged))")

        // Starting over discards it all.
        let fresh = try RunJournal(folder: state, scenario: other, fresh: true)
        #expect(!fresh.resumed)
        #expect(!FileManager.default.fileExists(atPath: progress.path))
    }

    @Test("a seed's starting point alone is no work: a next start does not go on from it, and a failed start removes it; a round kept is kept")
    func startAloneIsNoWork() throws {
        let scenario = try Self.scenario()
        let state = try temporaryDirectory(#function).appendingPathComponent("state")
        let first = try RunJournal(folder: state, scenario: scenario)
        try first.checkStart(seed: 5, checkpoint: [1, 2, 3])
        first.release()
        let second = try RunJournal(folder: state, scenario: scenario)
        #expect(!second.resumed)
        second.discardIfEmpty()
        #expect(!FileManager.default.fileExists(atPath: state.path))

        let third = try RunJournal(folder: state, scenario: scenario)
        try third.checkStart(seed: 5, checkpoint: [1, 2, 3])
        let unit = state.appendingPathComponent("seed-5/baseline-0.json")
        try Data("{}".utf8).write(to: unit)
        third.discardIfEmpty()
        #expect(FileManager.default.fileExists(atPath: unit.path))
        #expect(try RunJournal(folder: state, scenario: scenario).resumed)
    }

    @Test("a folder that holds other files is refused and left as it was; a state folder in use by another server is refused; discard removes only the state")
    func stateFolderIsGuarded() throws {
        let scenario = try Self.scenario()
        let root = scenario.sites[0].shardFile.deletingLastPathComponent().deletingLastPathComponent()
        // The scenario's own folder (the file, the profiles, the shards): not a state folder.
        let refused = #expect(throws: UserFacingError.self) { try RunJournal(folder: root, scenario: scenario, fresh: true) }
        #expect(refused?.description.contains("not a SiteFit server state") == true, "\(String(describing: refused))")
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("tiny.yaml").path))

        let state = root.appendingPathComponent("state")
        let first = try RunJournal(folder: state, scenario: scenario)
        let busy = #expect(throws: UserFacingError.self) { try RunJournal(folder: state, scenario: scenario) }
        #expect(busy?.description.contains("in use by another") == true, "\(String(describing: busy))")
        first.discard()
        #expect(!FileManager.default.fileExists(atPath: state.path))
    }

    @Test("stopped after an arm's last round (its state written, the arm not yet marked finished), the run goes on with no round to run and the same numbers")
    func stoppedAfterLastRound() async throws {
        let scenario = try Self.scenario()
        let reference = try await Simulation.run(scenario)
        let state = scenario.sites[0].shardFile.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("state")
        let stopping = try RunJournal(folder: state, scenario: scenario, crashAfterRound: 3, drillThrows: true)
        await #expect(throws: RunJournal.DrillStop.self) { _ = try await Simulation.run(scenario, journal: stopping) }
        stopping.release()
        let lines = Lines()
        let resumed = try await Simulation.run(scenario, journal: try RunJournal(folder: state, scenario: scenario)) { lines.add($0) }
        #expect(resumed.metrics == reference.metrics)
        #expect(resumed.predictions == reference.predictions)
        #expect(lines.all.contains("[adam-dp] goes on after round 3, where the previous server stopped"), "\(lines.all)")
    }
}
