import Foundation
import Logging
import NIOCore
import SiteFitIdentity
import SiteFitScenario
import SiteFitSimulation
import Synchronization

/// Bytes that crossed the server's sockets: TLS records, handshakes and HTTP/2 framing included.
/// The report's byte counts are payload (update and broadcast blobs); these are what a network
/// carried for them.
public final class WireCounter: Sendable {
    private let inbound = Atomic<Int>(0)
    private let outbound = Atomic<Int>(0)
    public init() {}

    /// Bytes the server received from sites.
    public var received: Int { inbound.load(ordering: .relaxed) }
    /// Bytes the server sent to sites.
    public var sent: Int { outbound.load(ordering: .relaxed) }

    func add(received bytes: Int) { inbound.add(bytes, ordering: .relaxed) }
    func add(sent bytes: Int) { outbound.add(bytes, ordering: .relaxed) }
}

/// Counts the bytes of one connection at the socket end of its pipeline (below TLS).
final class WireCountingHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let counter: WireCounter

    init(_ counter: WireCounter) { self.counter = counter }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        counter.add(received: unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        counter.add(sent: unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}

/// A whole distributed run on this machine: a server and one site agent per scenario site, each
/// on its own TLS connection over loopback, with a fresh consortium's certificates. What a
/// consortium would run across machines, for benchmarks and tests of the real transport.
public enum LoopbackFederation {
    /// Runs `scenario` with its sites behind TLS on 127.0.0.1; the run's result and the bytes on the wire.
    public static func run(_ scenario: Scenario, workFolder: URL, logger: Logger = Logger(label: "sitefit.loopback"),
                           cacheDirectory: URL? = nil) async throws -> (result: Simulation.Result, wire: WireCounter) {
        let folder = workFolder.appendingPathComponent("certs")
        if FileManager.default.fileExists(atPath: folder.path) { try FileManager.default.removeItem(at: folder) }
        let authority = try ConsortiumAuthority.create(in: folder, consortium: "loopback")
        _ = try authority.issueServer(hosts: ["127.0.0.1"])
        for site in scenario.sites { _ = try authority.issueSite(site.profile.id) }
        let certificates = CertificateFolder(folder)
        let agents = try scenario.sites.map { try SiteAgent(site: $0.profile.id, scenario: scenario, shard: $0.shardFile, logger: logger) }
        let wire = WireCounter()
        let result = try await FederationServer.withServer(
            host: "127.0.0.1", port: 0, certificates: certificates, sites: scenario.sites.map(\.profile.id), fingerprint: scenario.fingerprint,
            wire: wire, logger: logger
        ) { waitForSites, port in
            try await withThrowingTaskGroup(of: Simulation.Result?.self) { group in
                for agent in agents {
                    group.addTask {
                        try await SiteClient.run(agent, host: "127.0.0.1", port: port, certificates: certificates, logger: logger)
                        return nil
                    }
                }
                let fleet = RemoteFleet(slots: try await waitForSites())
                group.addTask {
                    do {
                        let result = try await Simulation.run(scenario, fleet: fleet, logger: logger, cacheDirectory: cacheDirectory)
                        await fleet.finish(reason: RemoteFleet.completed)
                        return result
                    } catch {
                        await fleet.finish(reason: "the run stopped")
                        throw error
                    }
                }
                var result: Simulation.Result?
                for try await value in group where value != nil { result = value }
                return result!
            }
        }
        return (result, wire)
    }
}
