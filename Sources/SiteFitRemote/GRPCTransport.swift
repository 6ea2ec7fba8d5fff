import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOSSL
import SiteFitCore
import SiteFitIdentity
import X509

/// Where a consortium's certificates are, as `sitefit certs` lays them out: `ca.pem`,
/// `revoked.txt`, `server.pem`/`server.key` and `sites/NAME.pem`/`sites/NAME.key`. A machine needs
/// only its own pair beside `ca.pem` (and `revoked.txt`, when anything was revoked).
public struct CertificateFolder: Sendable {
    public var folder: URL
    public init(_ folder: URL) { self.folder = folder }

    var authority: URL { folder.appendingPathComponent("ca.pem") }

    /// A file that must be there, or an error that says which and how to make it.
    func existing(_ file: URL, makeWith command: String) throws -> String {
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw UserFacingError("\(file.path): no such file (make it with `\(command)`)")
        }
        return file.path
    }
}

/// Limits on what one site may send the server and the server a site: a message over the size
/// ends that site's stream (gRPC's RESOURCE_EXHAUSTED), never the server.
public struct TransportLimits: Sendable {
    /// Largest single message, in bytes, either way (an update, a checkpoint, a broadcast).
    public var maxMessageBytes = 64 << 20
    /// How long the server waits for every site of the scenario to connect.
    public var joinTimeout: Duration = .seconds(600)
    /// How long the server waits for an answer, and for a site that left to come back.
    public var deadlines = SiteDeadlines()
    /// How long a site agent whose connection dropped keeps trying to connect again.
    public var reconnectFor: Duration = .seconds(600)
    /// How long a newly started agent retries while the server still holds its previous
    /// process's connection (until keepalive finds it dead: about 40 s).
    public var staleConnectionWait: Duration = .seconds(60)
    /// How often one site may be admitted within `admissionWindow`. Each admission after the first
    /// costs the server a replay (the seeds' checkpoints, the arm's starting values), so a site
    /// that connects and drops in a loop is turned away (RESOURCE_EXHAUSTED) until the window
    /// has room again; its agent keeps retrying once a second, as after any dropped connection.
    public var admissionsPerWindow = 12
    public var admissionWindow: Duration = .seconds(60)
    public init() {}
}

// MARK: The server

/// The sites that may join a run, each with its slot: a site is admitted once at a time (a
/// second stream while the first is open is refused), and again after its stream ended.
actor Lobby {
    let expected: [String]
    let slots: [String: SiteSlot]
    /// The newest stream of each site that has connected.
    private var live: [String: SiteLink] = [:]
    /// Sites whose admission is under way (the check below suspends; a second stream must not slip in).
    private var admitting: Set<String> = []
    private var sealed = false
    /// When each site was admitted, within the last `window` (the rate limit).
    private var admissions: [String: [ContinuousClock.Instant]] = [:]
    let admissionsPerWindow: Int
    let window: Duration

    init(expected: [String], deadlines: SiteDeadlines, admissionsPerWindow: Int = 12, window: Duration = .seconds(60)) {
        self.expected = expected
        slots = Dictionary(uniqueKeysWithValues: expected.map { ($0, SiteSlot(site: $0, deadlines: deadlines)) })
        self.admissionsPerWindow = max(1, admissionsPerWindow)
        self.window = window
    }

    /// Admits `site`'s stream, or says why not (another stream of the same site is still open, or the run is over).
    func admit(_ site: String, send: @escaping @Sendable (Sitefit_V1_ServerMessage) async throws -> Void) async throws -> SiteLink {
        guard !sealed else { throw RPCError(code: .failedPrecondition, message: "the run is over") }
        guard slots[site] != nil, admitting.insert(site).inserted else {
            throw RPCError(code: .alreadyExists, message: "site '\(site)' is already connecting")
        }
        defer { admitting.remove(site) }
        if let current = live[site], await current.endReason == nil {
            throw RPCError(code: .alreadyExists, message: "site '\(site)' is already connected")
        }
        guard !sealed else { throw RPCError(code: .failedPrecondition, message: "the run is over") }
        let now = ContinuousClock.now
        var recent = (admissions[site] ?? []).filter { now - $0 < window }
        guard recent.count < admissionsPerWindow else {
            admissions[site] = recent
            throw RPCError(code: .resourceExhausted,
                           message: "site '\(site)' was admitted \(recent.count) times within \(window); try again later")
        }
        recent.append(now)
        admissions[site] = recent
        let link = SiteLink(site: site, send: send)
        live[site] = link
        return link
    }

    /// Commands may go to `link` now (its welcome is out): the site's slot uses it from here.
    func activate(_ link: SiteLink) async {
        guard !sealed, live[link.site] === link else { return }
        await slots[link.site]?.connect(link)
    }

    /// No site is admitted any more: the run is over.
    func seal() { sealed = true }

    /// Tells every connected site the run is over.
    func finishAll(reason: String) async {
        for site in expected { await slots[site]?.finish(reason: reason) }
    }

    var allJoined: Bool { expected.allSatisfy { live[$0] != nil } }
    var joined: [String] { expected.filter { live[$0] != nil } }

    /// Waits until every expected site has joined; the slots in the scenario's order.
    func all() async throws -> [SiteSlot] {
        // Polling keeps the wait cancellable (the join timeout cancels it).
        while !allJoined { try await Task.sleep(for: .milliseconds(50)) }
        return expected.map { slots[$0]! }
    }
}


/// The Join service: admits a site by its certificate and hello, then relays commands and replies
/// until the run finishes or the site goes away.
struct FederationService: Sitefit_V1_Federation.SimpleServiceProtocol {
    let identity: SiteIdentity
    let fingerprint: String
    let lobby: Lobby
    let logger: Logger

    func join(request: RPCAsyncSequence<Sitefit_V1_SiteMessage, any Error>, response: RPCWriter<Sitefit_V1_ServerMessage>,
              context: ServerContext) async throws {
        let peer = context.remotePeer
        guard let leaf = (context.transportSpecific as? HTTP2ServerTransport.Posix.Context)?.peerCertificate else {
            logger.warning("refused a connection without a client certificate", metadata: ["peer": "\(peer)"])
            throw RPCError(code: .unauthenticated, message: "no client certificate")
        }
        let site: String
        switch await identity.admit(leaf) {
        case .success(let name): site = name
        case .failure(let problem):
            logger.warning("refused a site", metadata: ["peer": "\(peer)", "reason": "\(problem)"])
            throw RPCError(code: .permissionDenied, message: "\(problem)")
        }
        var messages = request.makeAsyncIterator()
        guard case .hello(let hello)? = try await messages.next()?.body else {
            throw RPCError(code: .failedPrecondition, message: "the first message must be a hello")
        }
        guard hello.protocolVersion == remoteProtocolVersion else {
            throw RPCError(code: .failedPrecondition, message: "protocol version \(hello.protocolVersion); this server speaks \(remoteProtocolVersion)")
        }
        guard hello.scenarioFingerprint == fingerprint else {
            logger.warning("refused a site that approved another scenario", metadata: ["site": "\(site)"])
            throw RPCError(code: .failedPrecondition, message: "the site approved scenario \(hello.scenarioFingerprint), the server runs \(fingerprint)")
        }
        // Commands leave through one writer, in the order the link sends them.
        let (outbound, queue) = AsyncStream.makeStream(of: Sitefit_V1_ServerMessage.self)
        let link = try await lobby.admit(site) { message in
            guard case .enqueued = queue.yield(message) else { throw RPCError(code: .unavailable, message: "stream closed") }
        }
        logger.info("site joined", metadata: ["site": "\(site)", "peer": "\(peer)", "version": "\(hello.sitefitVersion)"])
        var welcome = Sitefit_V1_Welcome()
        welcome.site = site
        welcome.scenarioFingerprint = fingerprint
        try await link.notify(.welcome(welcome))
        await lobby.activate(link)
        // The reader task takes the iterator over from here (nothing here touches it again), so
        // that the finish the writer sends can end the stream by cancelling the reader.
        let reading = Handoff(messages)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in outbound {
                    try await response.write(message)
                    if case .finish = message.body { return }
                }
            }
            group.addTask {
                // The reason goes into the report when it costs the site a round, so it names the
                // kind of ending only; the transport's details go to the log.
                var reason = "disconnected"
                var messages = reading.value
                do {
                    while let message = try await messages.next() {
                        guard case .reply(let reply)? = message.body else { throw ProtocolViolation("a second hello") }
                        try await link.received(reply)
                    }
                } catch let violation as ProtocolViolation {
                    reason = "broke the protocol"
                    logger.warning("a site broke the protocol", metadata: ["site": "\(site)", "reason": "\(violation.reason)"])
                } catch where !Task.isCancelled {
                    logger.warning("a site's stream failed", metadata: ["site": "\(site)", "error": "\(error)"])
                } catch {
                    // Cancelled: the run finished and the writer ended the stream.
                }
                if !Task.isCancelled { logger.warning("a site left", metadata: ["site": "\(site)", "reason": "\(reason)"]) }
                await link.end(reason: reason)
                queue.finish()
            }
            try await group.next()
            group.cancelAll()
        }
        await link.end(reason: "the run finished")
        queue.finish()
    }
}

/// Moves a value that is not Sendable into one child task, which is then its only user.
private final class Handoff<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Runs `body` with a TLS server listening at `host:port` that admits the scenario's sites by
/// their certificates; `body` receives the lobby (to wait for the sites) and the bound port.
public enum FederationServer {
    public static func withServer<Result: Sendable>(
        host: String, port: Int, certificates: CertificateFolder, sites: [String], fingerprint: String, limits: TransportLimits = TransportLimits(),
        wire: WireCounter? = nil, logger: Logger, body: @Sendable (_ sites: @Sendable () async throws -> [SiteSlot], _ port: Int) async throws -> Result
    ) async throws -> Result {
        let folder = certificates.folder
        let identity = try SiteIdentity(folder: folder, sites: sites)
        let files = ConsortiumAuthorityFiles.server(in: folder)
        let certificate = try certificates.existing(files.certificate, makeWith: "sitefit certs server --host \(host)")
        let key = try certificates.existing(files.key, makeWith: "sitefit certs server --host \(host)")
        let authority = try certificates.existing(certificates.authority, makeWith: "sitefit certs init")
        let security = HTTP2ServerTransport.Posix.TransportSecurity.mTLS(
            certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: key, format: .pem)
        ) { tls in
            // The consortium's authority is the only trust root: a certificate from anywhere else
            // fails the handshake. Revocation and the site's name are checked once admitted.
            tls.trustRoots = .certificates([.file(path: authority, format: .pem)])
            tls.clientCertificateVerification = .noHostnameVerification
        }
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = limits.maxMessageBytes
        // Keepalive finds a site whose machine or network died (a half-open connection) within
        // about 40 s, so it becomes a dropout and can be admitted again; the grace time bounds
        // shutdown when a stalled site never reads its finish.
        config.connection.keepalive = .init(time: .seconds(30), timeout: .seconds(10),
                                            clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(20), allowWithoutCalls: true))
        config.connection.maxGraceTime = .seconds(10)
        if let wire {
            // Runs on the connection's event loop once its pipeline is set up; first = nearest the socket, below TLS.
            config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(WireCountingHandler(wire), position: .first)
                }
            }
        }
        let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: host, port: port), transportSecurity: security, config: config)
        let lobby = Lobby(expected: sites, deadlines: limits.deadlines, admissionsPerWindow: limits.admissionsPerWindow,
                          window: limits.admissionWindow)
        let service = FederationService(identity: identity, fingerprint: fingerprint, lobby: lobby, logger: logger)
        return try await withGRPCServer(transport: transport, services: [service]) { server in
            guard let bound = try await transport.listeningAddress.ipv4 else {
                throw UserFacingError("the server did not bind an IPv4 address at \(host):\(port)")
            }
            let timeout = limits.joinTimeout
            let wait: @Sendable () async throws -> [SiteSlot] = {
                try await withThrowingTaskGroup(of: [SiteSlot]?.self) { group in
                    group.addTask { try await lobby.all() }
                    group.addTask { try await Task.sleep(for: timeout); return nil }
                    guard let first = try await group.next(), let links = first else {
                        group.cancelAll()
                        let missing = Set(sites).subtracting(await lobby.joined).sorted()
                        throw UserFacingError("sites \(missing.joined(separator: ", ")) did not connect within \(timeout)")
                    }
                    group.cancelAll()
                    return links
                }
            }
            defer { server.beginGracefulShutdown() }
            do {
                let result = try await body(wait, bound.port)
                // Sealed first, then every stream told again: a site that reconnected after the
                // body's finish still hears that the run is over.
                await lobby.seal()
                await lobby.finishAll(reason: RemoteFleet.completed)
                return result
            } catch {
                // Sites that joined before the run stopped (or before others failed to join) are
                // told, so that their streams end and the server can shut down.
                await lobby.seal()
                await lobby.finishAll(reason: "the run stopped")
                throw error
            }
        }
    }
}

/// The file names `sitefit certs` uses (restated from `ConsortiumAuthority` so the transport
/// reads exactly those).
enum ConsortiumAuthorityFiles {
    static func server(in folder: URL) -> (certificate: URL, key: URL) { ConsortiumAuthority.serverFiles(in: folder) }
    static func site(_ name: String, in folder: URL) -> (certificate: URL, key: URL) { ConsortiumAuthority.siteFiles(name, in: folder) }
}
