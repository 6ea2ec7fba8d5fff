import Foundation
import SiteFitTestSupport
import Testing
import X509
@testable import SiteFitIdentity

/// The consortium's certificates: what `sitefit certs` writes, and which certificates the server
/// admits as which site (issue #20's identity requirements, without a network).
@Suite("Consortium certificates and site admission")
struct IdentityTests {
    func refusal(_ result: Result<String, IdentityError>) -> String? {
        if case .failure(let error) = result { return error.description }
        return nil
    }

    @Test("init writes the authority with an owner-only key and refuses to overwrite it")
    func initialise() throws {
        let folder = try temporaryDirectory()
        let authority = try ConsortiumAuthority.create(in: folder, consortium: "demo")
        let attributes = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent("ca-key.pem").path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(throws: IdentityError.self) { try ConsortiumAuthority.create(in: folder, consortium: "demo") }
        let reopened = try ConsortiumAuthority(opening: folder)
        #expect(reopened.certificate == authority.certificate)
        #expect(try authority.certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        let site = try authority.issueSite("north")
        let siteKey = try FileManager.default.attributesOfItem(atPath: site.keyFile.path)
        #expect((siteKey[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(throws: IdentityError.self) { try authority.issueSite("north") }   // exists: --replace
    }

    @Test("a site of the scenario is admitted under its own name; an unknown name is refused")
    func admission() async throws {
        let authority = try ConsortiumAuthority.create(in: try temporaryDirectory(), consortium: "demo")
        let north = try authority.issueSite("north"), east = try authority.issueSite("east")
        let identity = SiteIdentity(authority: authority.certificate, sites: ["north", "south"])
        #expect(try await identity.admit(north.certificate).get() == "north")
        #expect(refusal(await identity.admit(east.certificate))?.contains("not a site of this scenario") == true)
        // The certificate on disk is the one returned.
        #expect(try ConsortiumAuthority.readCertificate(north.certificateFile) == north.certificate)
    }

    @Test("a certificate from another consortium's authority is refused, even for a site's name")
    func foreignAuthority() async throws {
        let ours = try ConsortiumAuthority.create(in: try temporaryDirectory("ours"), consortium: "ours")
        let theirs = try ConsortiumAuthority.create(in: try temporaryDirectory("theirs"), consortium: "ours")
        let forged = try theirs.issueSite("north")
        let identity = SiteIdentity(authority: ours.certificate, sites: ["north"])
        #expect(refusal(await identity.admit(forged.certificate))?.contains("does not chain") == true)
        // The other authority's own certificate is no site either.
        #expect(refusal(await identity.admit(theirs.certificate)) != nil)
    }

    @Test("a revoked site is refused; its replacement is admitted")
    func revocation() async throws {
        let authority = try ConsortiumAuthority.create(in: try temporaryDirectory(), consortium: "demo")
        let old = try authority.issueSite("north")
        let serial = try authority.revoke(site: "north")
        #expect(authority.revokedSerials() == [serial])
        let identity = SiteIdentity(authority: authority.certificate, sites: ["north"], revoked: authority.revokedSerials())
        #expect(refusal(await identity.admit(old.certificate))?.contains("revoked") == true)
        let replacement = try authority.issueSite("north", replace: true)
        let after = SiteIdentity(authority: authority.certificate, sites: ["north"], revoked: authority.revokedSerials())
        #expect(try await after.admit(replacement.certificate).get() == "north")
        #expect(refusal(await after.admit(old.certificate)) != nil)
    }

    @Test("the server's certificate is no site's, a site's is no server's, and the host must match")
    func roles() async throws {
        let authority = try ConsortiumAuthority.create(in: try temporaryDirectory(), consortium: "demo")
        let server = try authority.issueServer(hosts: ["localhost", "127.0.0.1"])
        let north = try authority.issueSite("north")
        let identity = SiteIdentity(authority: authority.certificate, sites: ["north", "localhost"])
        #expect(refusal(await identity.admit(server.certificate)) != nil)
        func accepted(_ certificate: Certificate, _ host: String) async -> Bool {
            if case .success = await identity.verifyServer(certificate, host: host) { return true }
            return false
        }
        #expect(await accepted(server.certificate, "localhost"))
        #expect(await accepted(server.certificate, "127.0.0.1"))
        #expect(await !accepted(server.certificate, "example.org"))
        #expect(await !accepted(server.certificate, "127.0.0.2"))
        #expect(await !accepted(north.certificate, "localhost"))
    }

    @Test("an expired site certificate is refused")
    func expiry() async throws {
        let authority = try ConsortiumAuthority.create(in: try temporaryDirectory(), consortium: "demo",
                                                       now: Date().addingTimeInterval(-10 * 86_400))
        let expired = try authority.issueSite("north", days: 1, now: Date().addingTimeInterval(-5 * 86_400))
        let identity = SiteIdentity(authority: authority.certificate, sites: ["north"])
        #expect(refusal(await identity.admit(expired.certificate)) != nil)
    }

    @Test("names that could escape the folder or confuse a certificate are refused; a key must match its authority")
    func hostileInput() throws {
        let folder = try temporaryDirectory()
        let authority = try ConsortiumAuthority.create(in: folder, consortium: "demo")
        for name in ["", "../north", "a/b", "-rf", ".hidden", "north site", String(repeating: "x", count: 65)] {
            #expect(throws: IdentityError.self, "\(name)") { try authority.issueSite(name) }
        }
        #expect(throws: IdentityError.self) { try authority.issueServer(hosts: []) }
        #expect(throws: IdentityError.self) { try authority.issueSite("north", days: 0) }
        // Another authority's key beside this certificate.
        let other = try temporaryDirectory("other")
        _ = try ConsortiumAuthority.create(in: other, consortium: "other")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("ca-key.pem"))
        try FileManager.default.copyItem(at: other.appendingPathComponent("ca-key.pem"), to: folder.appendingPathComponent("ca-key.pem"))
        #expect(throws: IdentityError.self) { try ConsortiumAuthority(opening: folder) }
        try Data("not a certificate".utf8).write(to: folder.appendingPathComponent("ca.pem"))
        #expect(throws: IdentityError.self) { try ConsortiumAuthority(opening: folder) }
    }
}
