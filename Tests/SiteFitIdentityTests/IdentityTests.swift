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
        let attributes = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent("ca.key").path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(throws: IdentityError.self) { try ConsortiumAuthority.create(in: folder, consortium: "demo") }
        let reopened = try ConsortiumAuthority(opening: folder)
        #expect(reopened.certificate == authority.certificate)
        #expect(try authority.certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        let site = try authority.issueSite("north")
        let siteKey = try FileManager.default.attributesOfItem(atPath: site.keyFile.path)
        #expect((siteKey[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(throws: IdentityError.self) { try authority.issueSite("north") }   // exists: --replace
        // A key left behind is an authority too: init refuses it rather than overwrite it.
        let keyOnly = try temporaryDirectory("keyOnly")
        try Data("key".utf8).write(to: keyOnly.appendingPathComponent("ca.key"))
        #expect(throws: IdentityError.self) { try ConsortiumAuthority.create(in: keyOnly, consortium: "demo") }
        // No temporary file is left beside the pair.
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("sites").path)
        #expect(names.sorted() == ["north.key", "north.pem"])
    }

    @Test("a site named like another site's key file gets files of its own")
    func keyNames() async throws {
        let authority = try ConsortiumAuthority.create(in: try temporaryDirectory(), consortium: "demo")
        let a = try authority.issueSite("a"), aKey = try authority.issueSite("a-key"), dotted = try authority.issueSite("a.key")
        #expect(Set([a.certificateFile, a.keyFile, aKey.certificateFile, aKey.keyFile, dotted.certificateFile, dotted.keyFile]).count == 6)
        let identity = SiteIdentity(authority: authority.certificate, sites: ["a", "a-key", "a.key"])
        for (issued, name) in [(a, "a"), (aKey, "a-key"), (dotted, "a.key")] {
            #expect(try await identity.admit(ConsortiumAuthority.readCertificate(issued.certificateFile)).get() == name)
        }
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
        #expect(refusal(await identity.admit(forged.certificate))?.contains("not signed by this consortium's authority") == true)
        // The other authority's own certificate is no site either.
        #expect(refusal(await identity.admit(theirs.certificate)) != nil)
    }

    @Test("a revoked site is refused; its replacement is admitted")
    func revocation() async throws {
        let authority = try ConsortiumAuthority.create(in: try temporaryDirectory(), consortium: "demo")
        let old = try authority.issueSite("north")
        let serial = try authority.revoke(site: "north")
        #expect(try authority.revokedSerials() == [serial])
        let identity = try SiteIdentity(folder: authority.folder, sites: ["north"])
        #expect(refusal(await identity.admit(old.certificate))?.contains("revoked") == true)
        let replacement = try authority.issueSite("north", replace: true)
        let after = try SiteIdentity(folder: authority.folder, sites: ["north"])
        #expect(try await after.admit(replacement.certificate).get() == "north")
        #expect(refusal(await after.admit(old.certificate)) != nil)
        // --replace revokes what it replaces.
        let third = try authority.issueSite("north", replace: true)
        let latest = try SiteIdentity(folder: authority.folder, sites: ["north"])
        #expect(refusal(await latest.admit(replacement.certificate))?.contains("revoked") == true)
        #expect(try await latest.admit(third.certificate).get() == "north")
        // A list that cannot be read fails closed: no check, and no rewrite from nothing.
        let list = authority.folder.appendingPathComponent("revoked.txt")
        try Data([0xFF, 0xFE, 0x00, 0x41]).write(to: list)
        #expect(throws: IdentityError.self) { try SiteIdentity(folder: authority.folder, sites: ["north"]) }
        #expect(throws: IdentityError.self) { try authority.revoke(site: "north") }
        #expect(try Data(contentsOf: list) == Data([0xFF, 0xFE, 0x00, 0x41]))
        // Hand-edited lines with Windows line ends and upper-case hex still revoke.
        try Data("\(serial.uppercased())\r\n".utf8).write(to: list)
        #expect(refusal(await (try SiteIdentity(folder: authority.folder, sites: ["north"])).admit(old.certificate))?.contains("revoked") == true)
    }

    @Test("an authority's certificate, or one naming two sites, is no site's")
    func notASite() async throws {
        let authority = try ConsortiumAuthority.create(in: try temporaryDirectory(), consortium: "demo")
        let identity = SiteIdentity(authority: authority.certificate, sites: ["north", "south"])
        #expect(refusal(await identity.admit(authority.certificate))?.contains("authority's") == true)
        let folder = try temporaryDirectory("two")
        let both = try authority.issue(commonName: "north", names: [.uniformResourceIdentifier("sitefit:site:north"),
                                                                    .uniformResourceIdentifier("sitefit:site:south")],
                                       usage: .clientAuth, days: 30, now: Date(),
                                       files: (folder.appendingPathComponent("b.pem"), folder.appendingPathComponent("b.key")),
                                       replace: false, label: "site b")
        #expect(refusal(await identity.admit(both.certificate))?.contains("names 2 sites") == true)
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
        // A client certificate for the server's own host name: refused for its usage alone.
        let folder = try temporaryDirectory("client")
        let client = try authority.issue(commonName: "localhost", names: [.dnsName("localhost")], usage: .clientAuth, days: 30, now: Date(),
                                         files: (folder.appendingPathComponent("c.pem"), folder.appendingPathComponent("c.key")),
                                         replace: false, label: "site c")
        if case .failure(let error) = await identity.verifyServer(client.certificate, host: "localhost") {
            #expect(error.description.contains("not marked for use by the server"))
        } else {
            Issue.record("a client certificate was accepted as the server's")
        }
        // A replaced server certificate is revoked, and sites refuse it.
        let newer = try authority.issueServer(hosts: ["localhost"], replace: true)
        let sites = try SiteIdentity(folder: authority.folder, sites: ["north"])
        if case .failure(let error) = await sites.verifyServer(server.certificate, host: "localhost") {
            #expect(error.description.contains("revoked"))
        } else {
            Issue.record("a revoked server certificate was accepted")
        }
        if case .failure = await sites.verifyServer(newer.certificate, host: "localhost") { Issue.record("the new server certificate was refused") }
        #expect(SiteIdentity.ipv4("010.0.0.5") == nil && SiteIdentity.ipv4("+1.2.3.4") == nil && SiteIdentity.ipv4("10.0.0.5") == [10, 0, 0, 5])
    }

    @Test("openssl verifies what certs writes, for the purpose each certificate is marked for",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
    func openssl() throws {
        let folder = try temporaryDirectory()
        let authority = try ConsortiumAuthority.create(in: folder, consortium: "demo")
        let site = try authority.issueSite("north"), server = try authority.issueServer(hosts: ["localhost"])
        func verify(_ purpose: String, _ file: URL) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = ["verify", "-CAfile", folder.appendingPathComponent("ca.pem").path, "-purpose", purpose, file.path]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(try verify("sslclient", site.certificateFile) == 0)
        #expect(try verify("sslserver", server.certificateFile) == 0)
        #expect(try verify("sslserver", site.certificateFile) != 0)
    }

    @Test("an expired site certificate is refused")
    func expiry() async throws {
        let authority = try ConsortiumAuthority.create(in: try temporaryDirectory(), consortium: "demo",
                                                       now: Date().addingTimeInterval(-10 * 86_400))
        let expired = try authority.issueSite("north", days: 1, now: Date().addingTimeInterval(-5 * 86_400))
        let identity = SiteIdentity(authority: authority.certificate, sites: ["north"])
        #expect(refusal(await identity.admit(expired.certificate))?.contains("expired on") == true)
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
        try FileManager.default.removeItem(at: folder.appendingPathComponent("ca.key"))
        try FileManager.default.copyItem(at: other.appendingPathComponent("ca.key"), to: folder.appendingPathComponent("ca.key"))
        #expect(throws: IdentityError.self) { try ConsortiumAuthority(opening: folder) }
        try Data("not a certificate".utf8).write(to: folder.appendingPathComponent("ca.pem"))
        #expect(throws: IdentityError.self) { try ConsortiumAuthority(opening: folder) }
    }
}
