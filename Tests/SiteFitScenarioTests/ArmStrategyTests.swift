import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitScenario
import SiteFitFederation
import SiteFitTestSupport

/// What an arm's `strategy` and its settings parse to, and the exact errors for settings the
/// chosen strategy does not read: users see these texts, so they change only on purpose.
@Suite("An arm's strategy and its settings")
struct ArmStrategyTests {
    static func load(_ arms: String, name: String = #function) throws -> Scenario {
        let folder = try fixture(["Sites/alpha.yaml": profile,
                              "Scenarios/demo.yaml": scenario.components(separatedBy: "arms:")[0] + "arms:\n" + arms],
                             name: name)
        return try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml"))
    }

    @Test("settings left out take the defaults scenarios have always had")
    func defaults() throws {
        let s = try Self.load("""
              - {name: avg, mode: full}
              - {name: prox, mode: full, strategy: fedprox}
              - {name: adam, mode: full, strategy: fedadam}
              - {name: yogi, mode: full, strategy: fedyogi, server_beta1: 0.5}
              - {name: adagrad, mode: full, strategy: fedadagrad, server_learning_rate: 0.3, server_tau: 0.001}
            """)
        let strategies = s.arms.map { $0.makeStrategy(trainedCount: 2) }
        #expect(strategies.map(\.name) == ["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad"])
        #expect(strategies.map(\.proximalMu) == [0, 0.01, 0, 0, 0])
        #expect((strategies[2] as? FedAdam)?.settings == ServerOptimizerSettings(learningRate: 0.01, beta1: 0.9, beta2: 0.999, tau: 1e-8))
        #expect((strategies[3] as? FedYogi)?.settings == ServerOptimizerSettings(learningRate: 0.01, beta1: 0.5, beta2: 0.999, tau: 1e-8))
        #expect((strategies[4] as? FedAdagrad)?.settings == ServerOptimizerSettings(learningRate: 0.3, beta1: 0.9, beta2: 0.999, tau: 0.001))
        #expect((strategies[4] as? FedAdagrad)?.moments.first.count == 2)
        #expect(s.arms.map(\.strategyName) == ["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad"])
        // The arm carries every setting its strategy reads, given or defaulted, and no other.
        #expect(s.arms[0].strategyOptions.isEmpty)
        #expect(s.arms[1].strategyOptions == ["proximal_mu": 0.01])
        #expect(s.arms[3].strategyOptions == ["server_learning_rate": 0.01, "server_beta1": 0.5, "server_beta2": 0.999, "server_tau": 1e-8])
    }

    @Test("a setting for another strategy, a value out of range, an unknown strategy and a mode personalized cannot serve")
    func errors() {
        let found = diagnostics {
            _ = try Self.load("""
                  - {name: a, mode: full, proximal_mu: 0.5, server_tau: 0.1}
                  - {name: b, mode: full, strategy: fedprox, server_learning_rate: 2}
                  - {name: c, mode: full, strategy: fedadam, server_beta1: 3, proximal_mu: 1}
                  - {name: d, mode: full, strategy: fedadm}
                  - {name: e, mode: bitfit, strategy: personalized}
                  - {name: f, mode: full, proximal_mu: -1}
                """)
        }
        #expect(found.map { "\($0.line):\($0.column) \($0.field): \($0.problem)" } == [
            "7:40 arms[0].proximal_mu: proximal_mu needs strategy 'fedprox'",
            "7:57 arms[0].server_tau: server_tau needs strategy fedadam, fedyogi or fedadagrad",
            "8:68 arms[1].server_learning_rate: server_learning_rate needs strategy fedadam, fedyogi, fedadagrad or fedavgm",
            "9:60 arms[2].server_beta1: expected a number from 0 to 0.9999, found '3'",
            "9:76 arms[2].proximal_mu: proximal_mu needs strategy 'fedprox'",
            "10:37 arms[3].strategy: expected one of 'fedavg', 'fedprox', 'fedadam', 'fedyogi', 'fedadagrad', 'personalized', "
                + "'fedavgm', found 'fedadm'; did you mean 'fedadam'?",
            "11:39 arms[4].strategy: personalized keeps bias terms local and shares the rest; mode 'bitfit' trains nothing else "
                + "to share (use full, bitfit+head or head)",
            // Whether a strategy reads a setting is checked before its value, whose range is that strategy's.
            "12:40 arms[5].proximal_mu: proximal_mu needs strategy 'fedprox'",
        ])
    }

    @Test("two arms of one name are refused, whether named twice or left unnamed with one mode")
    func duplicateNames() {
        let found = diagnostics {
            _ = try Self.load("""
                  - {name: a, mode: full}
                  - {name: a, mode: bitfit}
                  - {mode: bitfit}
                  - {mode: bitfit}
                """)
        }
        #expect(found.map { "\($0.line):\($0.column) \($0.field): \($0.problem)" } == [
            "8:12 arms[1].name: arm 'a' is defined twice",
            "10:12 arms[3].mode: arm 'bitfit' is defined twice; give each arm of mode 'bitfit' its own `name:`",
        ])
    }

    @Test("an arm may not take a baseline's row name, and a baseline is listed once")
    func reservedNames() {
        let found = diagnostics {
            _ = try Self.load("""
                  - {name: local only, mode: full}
                  - {name: local alpha, mode: bitfit}
                  - {name: fine, mode: head}
                baselines: [pooled, local, pooled]
                """)
        }
        let problems = found.map(\.problem)
        #expect(problems.contains("'local only' names a baseline's row; give the arm another name"))
        #expect(problems.contains("'local alpha' names a baseline's row; give the arm another name"))
        #expect(problems.contains("baseline 'pooled' is listed twice"))
        #expect(problems.count == 3)
    }
}
