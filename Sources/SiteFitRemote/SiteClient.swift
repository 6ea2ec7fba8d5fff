// The site's end of the gRPC transport (the server's is in GRPCTransport.swift).

import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOSSL
import SiteFitCore
import SiteFitIdentity
import X509

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
