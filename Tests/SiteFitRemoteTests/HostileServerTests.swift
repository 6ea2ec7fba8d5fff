import Foundation
import Logging
import SiteFitFederation
import SiteFitNN
@testable import SiteFitRemote
import SiteFitReport
import SiteFitScenario
import SiteFitSimulation
import SiteFitTestSupport
import Testing

/// A server that asks a site for more than its operator approved: the site refuses, and the
/// refusal reaches the report (a round's dropout) or stops the run naming the site.
@Suite("A site refuses what its approved scenario does not have")
struct HostileServerTests {
    static func scenario(_ name: String = #function) throws -> Scenario {
        let files = TinyScenario.threeSiteFiles(TinyScenario.threeSites(baselines: "[pretrained]"))
        let folder = try fixture(files, name: name)
        let scenario = try ScenarioLoader.load(folder.appendingPathComponent("tiny.yaml"))
        _ = try Simulation.provisionShards(scenario, logger: Logger(label: "test")) { _ in }
        return scenario
    }

    /// Links whose commands to `site` pass through `tamper` on their way (as a hostile server would send them).
    static func links(_ scenario: Scenario, tampering site: String,
                      _ tamper: @escaping @Sendable (inout Sitefit_V1_ServerMessage) -> Void) throws -> [SiteLink] {
        try scenario.sites.map { reference in
            let agent = try SiteAgent(site: reference.profile.id, scenario: scenario, shard: reference.shardFile)
            let box = Box()
            let link = SiteLink(site: agent.site) { message in
                var sent = try Sitefit_V1_ServerMessage(serializedBytes: try message.serializedBytes() as [UInt8])
                if agent.site == site { tamper(&sent) }
                let command = sent
                Task {
                    guard let reply = await agent.handle(command), let link = box.link else { return }
                    try? await link.received(reply)
                }
            }
            box.link = link
            return link
        }
    }

    private final class Box: @unchecked Sendable {
        var link: SiteLink?
    }

    @Test("training settings other than the scenario's are refused: the site is lost in every round, the others go on")
    func otherTrainingRefused() async throws {
        let scenario = try Self.scenario()
        let links = try Self.links(scenario, tampering: "north") { message in
            if case .train(var train)? = message.body {
                train.settings.learningRate *= 10
                message.body = .train(train)
            }
        }
        let result = try await Simulation.run(scenario, fleet: await RemoteFleet(links: links))
        let federated = result.metrics.arms.filter { if case .federated = $0.kind { true } else { false } }
        #expect(federated.count == 2)
        for arm in federated {
            for round in arm.rounds where round.round > 0 {
                #expect(round.absent.map(\.site) == ["north"], "\(arm.name) round \(round.round)")
                guard case .lost(let reason)? = round.absent.first?.reason else {
                    Issue.record("north is not lost in \(arm.name) round \(round.round)")
                    continue
                }
                #expect(reason.contains("the approved scenario does not have"), "\(reason)")
                #expect(round.acceptedSites == ["south", "east"])
            }
        }
    }

    @Test("an arm that would send other tensors than the scenario's mode is refused, and the run stops naming the site")
    func otherSelectionRefused() async throws {
        let scenario = try Self.scenario()
        let links = try Self.links(scenario, tampering: "south") { message in
            if case .begin(var begin)? = message.body, begin.arm == "bitfit" {
                begin.shared = begin.selection + [begin.selection[0].replacingOccurrences(of: ".bias", with: ".weight")]
                message.body = .begin(begin)
            }
        }
        let error = await #expect(throws: SiteUnavailable.self) {
            _ = try await Simulation.run(scenario, fleet: await RemoteFleet(links: links))
        }
        #expect(error?.site == "south")
        #expect(error?.reason.contains("trains and shares other tensors") == true, "\(String(describing: error))")
    }

    @Test("a checkpoint over the scenario's features in another order is refused at opening")
    func otherCheckpointRefused() async throws {
        let scenario = try Self.scenario()
        let links = try Self.links(scenario, tampering: "east") { message in
            if case .open(var open)? = message.body {
                var (model, _) = try! Checkpoint.decode([UInt8](open.checkpoint), file: "test", as: MLP.self)
                model.columns.reverse()
                open.checkpoint = Data(Checkpoint.encode(model))
                message.body = .open(open)
            }
        }
        let error = await #expect(throws: SiteUnavailable.self) {
            _ = try await Simulation.run(scenario, fleet: await RemoteFleet(links: links))
        }
        #expect(error?.site == "east")
        #expect(error?.reason.contains("does not take the approved scenario's features") == true, "\(String(describing: error))")
    }
}
