import Foundation
import SiteFitCore
import SiteFitFederation

/// The server's end of one admitted site's stream: commands go out numbered, and each reply is
/// matched to the call that waits for it by its number. Replies may come back in any order (a
/// site answers different seeds' commands concurrently); every waiting call fails, naming the
/// site, once the stream ends.
public actor SiteLink {
    public nonisolated let site: String
    private let send: @Sendable (Sitefit_V1_ServerMessage) async throws -> Void
    private var nextCall: UInt64 = 1
    private var waiting: [UInt64: CheckedContinuation<Sitefit_V1_Reply.OneOf_Body, any Error>] = [:]
    private var ended: String?
    /// Deadline timers of calls still waiting.
    private var timers: [UInt64: Task<Void, any Error>] = [:]
    /// Calls given up on at their deadline: their replies, if they come, are dropped.
    private var abandoned: Set<UInt64> = []

    /// `send` writes one message on the stream; it may suspend while the transport applies back-pressure.
    init(site: String, send: @escaping @Sendable (Sitefit_V1_ServerMessage) async throws -> Void) {
        self.site = site
        self.send = send
    }

    /// Sends a command and waits for its reply; a site's `failure` reply is thrown as `SiteUnavailable`.
    /// With a `deadline`, a site that has not answered by then is given up on for this call (a
    /// stalled site): the call fails, and the late reply, should it come, is dropped.
    func call(_ body: Sitefit_V1_ServerMessage.OneOf_Body, deadline: Duration? = nil) async throws -> Sitefit_V1_Reply.OneOf_Body {
        if let ended { throw SiteUnavailable(site: site, reason: ended) }
        let number = nextCall
        nextCall += 1
        var message = Sitefit_V1_ServerMessage()
        message.call = number
        message.body = body
        // A run that stops elsewhere cancels its calls: they end now, not at their deadline.
        let reply = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                waiting[number] = continuation
                Task { await self.write(message, call: number) }
                if let deadline {
                    timers[number] = Task { [weak self] in
                        try await Task.sleep(for: deadline)
                        await self?.expire(number, reason: "no answer within \(deadline)")
                    }
                }
            }
        } onCancel: {
            Task { await self.expire(number, reason: "cancelled") }
        }
        // The site's words reach metrics.json and the report: plain and short.
        if case .failure(let failure) = reply { throw SiteUnavailable(site: site, reason: "refused: " + SafeText.label(String(failure.reason.prefix(200)))) }
        return reply
    }

    private func expire(_ call: UInt64, reason: String) {
        timers.removeValue(forKey: call)?.cancel()
        guard let continuation = waiting.removeValue(forKey: call) else { return }
        abandoned.insert(call)
        continuation.resume(throwing: SiteUnavailable(site: site, reason: reason))
    }

    /// Sends a message that needs no reply (welcome, finish).
    func notify(_ body: Sitefit_V1_ServerMessage.OneOf_Body) async throws {
        if let ended { throw SiteUnavailable(site: site, reason: ended) }
        var message = Sitefit_V1_ServerMessage()
        message.body = body
        try await send(message)
    }

    private func write(_ message: Sitefit_V1_ServerMessage, call: UInt64) async {
        do {
            try await send(message)
        } catch {
            timers.removeValue(forKey: call)?.cancel()
            waiting.removeValue(forKey: call)?.resume(throwing: SiteUnavailable(site: site, reason: "disconnected"))
        }
    }

    /// A reply arrived on the stream. One that answers no waiting call breaks the protocol.
    func received(_ reply: Sitefit_V1_Reply) throws {
        timers.removeValue(forKey: reply.call)?.cancel()
        if abandoned.remove(reply.call) != nil { return }
        guard let continuation = waiting.removeValue(forKey: reply.call) else {
            throw ProtocolViolation("reply to call \(reply.call), which is not waiting for one")
        }
        guard let body = reply.body else {
            continuation.resume(throwing: SiteUnavailable(site: site, reason: "sent an empty reply"))
            throw ProtocolViolation("empty reply to call \(reply.call)")
        }
        continuation.resume(returning: body)
    }

    /// The stream is over: every waiting call fails with `reason`, and so does every later one.
    func end(reason: String) {
        guard ended == nil else { return }
        ended = reason
        let pending = waiting
        waiting = [:]
        for (_, timer) in timers { timer.cancel() }
        timers = [:]
        for (_, continuation) in pending { continuation.resume(throwing: SiteUnavailable(site: site, reason: reason)) }
    }

    /// Why the stream ended, or nil while it is open.
    public var endReason: String? { ended }
}
