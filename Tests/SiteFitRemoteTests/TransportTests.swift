import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SiteFitCore
import SiteFitIdentity
@testable import SiteFitRemote
import SiteFitScenario
import SiteFitSimulation
import SiteFitTestSupport
import Testing

/// The gRPC transport's admission rules, with a server and clients in this process.
@Suite("The TLS transport admits each scenario site once, and nothing in plaintext", .timeLimit(.minutes(2)))
struct TransportTests {
    /// A consortium folder with a server certificate for 127.0.0.1 and one for each of `sites`.
    static func certificates(_ sites: [String], name: String = #function) throws -> CertificateFolder {
        let folder = try temporaryDirectory(name).appendingPathComponent("certs")
        let authority = try ConsortiumAuthority.create(in: folder, consortium: "test")
        _ = try authority.issueServer(hosts: ["127.0.0.1"])
        for site in sites { _ = try authority.issueSite(site) }
        return CertificateFolder(folder)
    }

    @Test("a client without TLS never reaches the service")
    func plaintextRefused() async throws {
        let certificates = try Self.certificates(["north"])
        let outcome = try await FederationServer.withServer(
            host: "127.0.0.1", port: 0, certificates: certificates, sites: ["north"], fingerprint: "f", logger: Logger(label: "test")
        ) { _, port in
            let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
            var options = CallOptions.defaults
            options.waitForReady = false
            options.timeout = .seconds(20)
            return try await withGRPCClient(transport: transport) { client in
                let federation = Sitefit_V1_Federation.Client(wrapping: client)
                let hello = Sitefit_V1_SiteMessage.with { $0.hello = .with { $0.protocolVersion = remoteProtocolVersion; $0.scenarioFingerprint = "f" } }
                do {
                    try await federation.join(request: StreamingClientRequest { try await $0.write(hello) }, options: options) { response in
                        for try await _ in response.messages {}
                    }
                    client.beginGracefulShutdown()
                    return "admitted"
                } catch {
                    client.beginGracefulShutdown()
                    return "\(error)"
                }
            }
        }
        #expect(outcome != "admitted")
    }

    @Test("a second connection of a site that is connected is refused; the first goes on")
    func onceEach() async throws {
        let scenario = try InProcessLinkTests.scenario()
        _ = try Simulation.provisionShards(scenario, logger: Logger(label: "test")) { _ in }
        let ids = scenario.sites.map(\.profile.id)
        let certificates = try Self.certificates(ids)
        let north = scenario.sites[0]
        let second = try await FederationServer.withServer(
            host: "127.0.0.1", port: 0, certificates: certificates, sites: ids, fingerprint: scenario.fingerprint, logger: Logger(label: "test")
        ) { _, port in
            let first = Task {
                try await SiteClient.run(try SiteAgent(site: north.profile.id, scenario: scenario, shard: north.shardFile), host: "127.0.0.1",
                                         port: port, certificates: certificates, logger: Logger(label: "test"))
            }
            try await Task.sleep(for: .seconds(2))
            defer { first.cancel() }
            do {
                // Without the wait a restarted agent gives a half-open previous connection.
                var limits = TransportLimits()
                limits.staleConnectionWait = .zero
                try await SiteClient.run(try SiteAgent(site: north.profile.id, scenario: scenario, shard: north.shardFile), host: "127.0.0.1",
                                         port: port, certificates: certificates, limits: limits, logger: Logger(label: "test"))
                return "admitted twice"
            } catch {
                return "\(error)"
            }
        }
        #expect(second.contains("already connected"), "\(second)")
    }

    @Test("a site that approved another scenario is refused")
    func otherScenarioRefused() async throws {
        let scenario = try InProcessLinkTests.scenario()
        _ = try Simulation.provisionShards(scenario, logger: Logger(label: "test")) { _ in }
        let ids = scenario.sites.map(\.profile.id)
        let certificates = try Self.certificates(ids)
        let north = scenario.sites[0]
        let outcome = try await FederationServer.withServer(
            host: "127.0.0.1", port: 0, certificates: certificates, sites: ids, fingerprint: "another", logger: Logger(label: "test")
        ) { _, port in
            do {
                try await SiteClient.run(try SiteAgent(site: north.profile.id, scenario: scenario, shard: north.shardFile), host: "127.0.0.1",
                                         port: port, certificates: certificates, logger: Logger(label: "test"))
                return "admitted"
            } catch {
                return "\(error)"
            }
        }
        #expect(outcome.contains("approved scenario"), "\(outcome)")
    }

    @Test("a site refuses a server whose certificate names another host, and says so in one plain line")
    func serverForAnotherHostRefused() async throws {
        let scenario = try InProcessLinkTests.scenario()
        _ = try Simulation.provisionShards(scenario, logger: Logger(label: "test")) { _ in }
        let ids = scenario.sites.map(\.profile.id)
        let folder = try temporaryDirectory(#function).appendingPathComponent("certs")
        let authority = try ConsortiumAuthority.create(in: folder, consortium: "test")
        _ = try authority.issueServer(hosts: ["hub.example.org"])
        for site in ids { _ = try authority.issueSite(site) }
        let certificates = CertificateFolder(folder)
        let north = scenario.sites[0]
        let outcome = try await FederationServer.withServer(
            host: "127.0.0.1", port: 0, certificates: certificates, sites: ids, fingerprint: scenario.fingerprint, logger: Logger(label: "test")
        ) { _, port in
            do {
                try await SiteClient.run(try SiteAgent(site: north.profile.id, scenario: scenario, shard: north.shardFile), host: "127.0.0.1",
                                         port: port, certificates: certificates, logger: Logger(label: "test"))
                return "admitted"
            } catch let error as UserFacingError {
                return error.message
            } catch {
                return "not a plain error: \(error)"
            }
        }
        #expect(outcome.contains("not this consortium's server certificate for 127.0.0.1"), "\(outcome)")
    }

    @Test("a site that connects and drops in a loop is turned away once it has been admitted too often within the window; another site is not")
    func admissionsAreRateLimited() async throws {
        let lobby = Lobby(expected: ["north", "south"], deadlines: SiteDeadlines(), admissionsPerWindow: 3, window: .seconds(60))
        for _ in 0..<3 {
            let link = try await lobby.admit("north") { _ in }
            await link.end(reason: "disconnected")
        }
        let refusal = await #expect(throws: RPCError.self) { _ = try await lobby.admit("north") { _ in } }
        #expect(refusal?.code == .resourceExhausted)
        #expect(refusal?.message.contains("admitted 3 times") == true, "\(String(describing: refusal))")
        _ = try await lobby.admit("south") { _ in }
        // Once the window has room again, the site is admitted.
        let quick = Lobby(expected: ["north"], deadlines: SiteDeadlines(), admissionsPerWindow: 1, window: .milliseconds(200))
        await (try quick.admit("north") { _ in }).end(reason: "disconnected")
        await #expect(throws: RPCError.self) { _ = try await quick.admit("north") { _ in } }
        try await Task.sleep(for: .milliseconds(250))
        _ = try await quick.admit("north") { _ in }
    }
}
