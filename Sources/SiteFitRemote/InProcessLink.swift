/// A site agent in this process, linked to the server's end without a network: every command
/// and reply still goes through the protocol's messages (serialised and parsed, as on the wire),
/// so tests and the transport benchmark exercise exactly what a separate process would.
public enum InProcessLink {
    /// A `SiteLink` whose commands `agent` answers.
    public static func connect(_ agent: SiteAgent) -> SiteLink {
        let box = LinkBox()
        let link = SiteLink(site: agent.site) { message in
            // Through the bytes, as the transport would carry them.
            let sent = try Sitefit_V1_ServerMessage(serializedBytes: try message.serializedBytes() as [UInt8])
            Task {
                guard let reply = await agent.handle(sent), let link = box.link else { return }
                do {
                    let received = try Sitefit_V1_Reply(serializedBytes: try reply.serializedBytes() as [UInt8])
                    try await link.received(received)
                } catch {
                    await link.end(reason: "broke the protocol: \(error)")
                }
            }
        }
        box.link = link
        return link
    }
}

/// Lets the send closure reach the link it belongs to (set once, before any command is sent).
private final class LinkBox: @unchecked Sendable {
    var link: SiteLink?
}
