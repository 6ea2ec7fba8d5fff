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

// MARK: The site

/// A site agent's connection: dials the server over mutual TLS, says hello, answers commands
/// until the server finishes the run. The server must present the consortium's server
/// certificate for the host dialled, unrevoked; nothing is sent before that holds.
public enum SiteClient {
    public static func run(_ agent: SiteAgent, host: String, port: Int, certificates: CertificateFolder, limits: TransportLimits = TransportLimits(),
                           logger: Logger) async throws {
        let folder = certificates.folder
        let files = ConsortiumAuthorityFiles.site(agent.site, in: folder)
        let certificate = try certificates.existing(files.certificate, makeWith: "sitefit certs site \(agent.site)")
        let key = try certificates.existing(files.key, makeWith: "sitefit certs site \(agent.site)")
        _ = try certificates.existing(certificates.authority, makeWith: "sitefit certs init")
        let identity = try SiteIdentity(folder: folder, sites: [agent.site])
        let refusal = ServerRefusal()
        let security = HTTP2ClientTransport.Posix.TransportSecurity.mTLS(
            certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: key, format: .pem)
        ) { tls in
            tls.serverCertificateVerification = .fullVerification
            tls.trustRoots = .certificates([.file(path: folder.appendingPathComponent("ca.pem").path, format: .pem)])
            // Chain, role, host and revocation, all in SiteIdentity: the same rules `sitefit certs check` states.
            tls.customVerificationCallback = { presented, promise in
                guard let first = presented.first, let der = try? first.toDERBytes(), let leaf = try? Certificate(derEncoded: der) else {
                    Task {
                        await refusal.set(IdentityError("the server presented no certificate that can be read"))
                        promise.succeed(.failed)
                    }
                    return
                }
                Task {
                    switch await identity.verifyServer(leaf, host: host) {
                    case .success: promise.succeed(.certificateVerified(VerificationMetadata(nil)))
                    case .failure(let problem):
                        await refusal.set(problem)
                        promise.succeed(.failed)
                    }
                }
            }
        }
        let target: any ResolvableTarget = SiteIdentity.isIPv4(host) ? .ipv4(address: host, port: port) : .dns(host: host, port: port)
        var options = CallOptions.defaults
        options.maxRequestMessageBytes = limits.maxMessageBytes
        options.maxResponseMessageBytes = limits.maxMessageBytes
        let hello = Sitefit_V1_SiteMessage.with {
            $0.hello = Sitefit_V1_Hello.with {
                $0.protocolVersion = remoteProtocolVersion
                $0.sitefitVersion = siteFitVersion
                $0.scenarioFingerprint = agent.scenario.fingerprint
            }
        }
        // A site that has been admitted once keeps trying to come back after its connection drops
        // (the server then restores what it had opened); one never admitted fails at once, so a
        // refused certificate or scenario says so instead of retrying.
        let clock = ContinuousClock()
        let started = clock.now
        var admitted = false
        var lostSince: ContinuousClock.Instant?
        // How long an agent not yet admitted keeps trying (longer once the server says it is turning it away for a while).
        var patience = limits.staleConnectionWait
        // Failed attempts since the site was last connected.
        var attempts = 0
        while true {
            let welcomed = Flag()
            let finish: Sitefit_V1_Finish?
            do {
                var config = HTTP2ClientTransport.Posix.Config.defaults
                // Finds a server whose machine or network died, so the agent tries to reconnect instead of waiting forever.
                config.connection.keepalive = .init(time: .seconds(30), timeout: .seconds(10), allowWithoutCalls: true)
                let transport = try HTTP2ClientTransport.Posix(target: target, transportSecurity: security, config: config)
                finish = try await session(agent, transport: transport, hello: hello, options: options, welcomed: welcomed,
                                           server: "\(host):\(port)", logger: logger)
                // A connection that was admitted and then ended: the next failure is a new loss.
                if await welcomed.value { attempts = 0 }
            } catch {
                if await welcomed.value { admitted = true; attempts = 0 }
                if let problem = await refusal.problem {
                    throw UserFacingError("refused the server at \(host):\(port): \(problem)")
                }
                // A restarted agent can arrive before the server has seen its previous process go
                // (a half-open connection lasts until keepalive finds it), or while the server turns
                // away a site that was admitted too often within its window: it waits those out.
                let code = (error as? RPCError)?.code
                if code == .resourceExhausted { patience = max(patience, limits.reconnectFor) }
                let waiting = (code == .alreadyExists || code == .resourceExhausted) && clock.now - started < patience
                guard admitted || waiting, Self.mayRetry(error) else { throw error }
                // Said once when the connection goes and then every half minute, not at every
                // one-second attempt: an operator reads the log of a site that waits for hours.
                attempts += 1
                let reason = Self.describe(error)
                if attempts == 1 {
                    logger.warning(admitted
                                   ? "lost the server at \(host):\(port) (\(reason)); trying again every second for up to \(limits.reconnectFor)"
                                   : "the server at \(host):\(port) is not admitting this site yet (\(reason)); trying again every second",
                                   metadata: ["site": "\(agent.site)"])
                } else if attempts % 30 == 0 {
                    logger.warning("still trying to reach the server at \(host):\(port) (\(reason))", metadata: ["site": "\(agent.site)"])
                } else {
                    logger.info("connection attempt failed", metadata: ["site": "\(agent.site)", "error": "\(reason)"])
                }
                finish = nil
            }
            if await welcomed.value { admitted = true; lostSince = nil }
            if let finish {
                guard finish.reason == RemoteFleet.completed else { throw UserFacingError("the server stopped the run: \(finish.reason)") }
                logger.notice("the server finished the run", metadata: ["site": "\(agent.site)"])
                return
            }
            guard admitted || clock.now - started < patience else {
                throw UserFacingError("the server at \(host):\(port) closed the connection before admitting this site")
            }
            let since = lostSince ?? clock.now
            lostSince = since
            guard clock.now - since < limits.reconnectFor else {
                throw UserFacingError("lost the server at \(host):\(port) and could not connect again within \(limits.reconnectFor)")
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// A failed connection in one line: gRPC's own description nests its causes' descriptions
    /// (and their parentheses) several deep.
    static func describe(_ error: any Error) -> String {
        guard let rpc = error as? RPCError else { return "\(error)" }
        return rpc.message.isEmpty ? "\(rpc.code)" : "\(rpc.code): \(rpc.message)"
    }

    /// Whether a failed connection may be tried again: not when the server refused this site.
    static func mayRetry(_ error: any Error) -> Bool {
        if error is UserFacingError || error is CancellationError { return false }
        if let rpc = error as? RPCError { return ![.permissionDenied, .unauthenticated, .failedPrecondition].contains(rpc.code) }
        return true
    }

    /// One connection: hello, then commands answered until the server's finish (returned) or
    /// the stream's end (nil).
    private static func session(_ agent: SiteAgent, transport: HTTP2ClientTransport.Posix, hello: Sitefit_V1_SiteMessage, options: CallOptions,
                                welcomed: Flag, server: String, logger: Logger) async throws -> Sitefit_V1_Finish? {
        try await withGRPCClient(transport: transport) { client in
            defer { client.beginGracefulShutdown() }
            let federation = Sitefit_V1_Federation.Client(wrapping: client)
            let (replies, queue) = AsyncStream.makeStream(of: Sitefit_V1_SiteMessage.self)
            let request = StreamingClientRequest<Sitefit_V1_SiteMessage> { writer in
                try await writer.write(hello)
                for await reply in replies { try await writer.write(reply) }
            }
            let inFlight = Counter()
            return try await federation.join(request: request, options: options) { response in
                try await withThrowingTaskGroup(of: Void.self, returning: Sitefit_V1_Finish?.self) { group in
                    defer { queue.finish() }
                    for try await command in response.messages {
                        switch command.body {
                        case .welcome(let welcome)?:
                            guard welcome.site == agent.site else {
                                throw UserFacingError("the server admitted this certificate as site '\(welcome.site)', not '\(agent.site)'")
                            }
                            await welcomed.set()
                            logger.notice("joined the federation at \(server) as site \(agent.site)")
                        case .finish(let finish)?:
                            group.cancelAll()
                            return finish
                        default:
                            // Commands for different seeds run at once; each reply carries its call number.
                            // A server that floods the site is refused beyond a bound, not given a task each.
                            guard await inFlight.enter(limit: maxCommandsInFlight) else {
                                queue.yield(.with { $0.reply = agent.reply(command.call, failure: "too many commands in flight") })
                                continue
                            }
                            group.addTask {
                                if let reply = await agent.handle(command) { queue.yield(.with { $0.reply = reply }) }
                                await inFlight.leave()
                            }
                        }
                    }
                    group.cancelAll()
                    return nil
                }
            }
        }
    }
}

/// Commands a site agent runs at once, at most: the server sends a few per seed; more is a flood.
let maxCommandsInFlight = 256

/// A bounded count of tasks in flight.
actor Counter {
    private var value = 0
    func enter(limit: Int) -> Bool {
        guard value < limit else { return false }
        value += 1
        return true
    }
    func leave() { value -= 1 }
}

/// A flag one task sets and another reads after it.
actor Flag {
    private(set) var value = false
    func set() { value = true }
}

/// Why the site refused the server's certificate, kept for the error the agent ends with: the
/// handshake's own error is BoringSSL's, a line of library internals.
actor ServerRefusal {
    private(set) var problem: IdentityError?
    func set(_ problem: IdentityError) { self.problem = problem }
}
