import Crypto
import Foundation
import SwiftASN1
import X509

/// A problem with a consortium's certificates, worded for the person who runs the command.
public struct IdentityError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A certificate and key the authority wrote, and where.
public struct IssuedIdentity: Sendable {
    public let certificate: Certificate
    public let certificateFile: URL
    public let keyFile: URL
}

/// A consortium's certificate authority in one folder, as NVFlare's provisioning makes a startup
/// kit per participant: the authority signs the server's certificate and one per site, and keeps
/// a list of the certificates it has revoked.
///
/// The folder holds `ca.pem` and `ca-key.pem` (the authority), `server.pem` and `server-key.pem`,
/// `sites/NAME.pem` and `sites/NAME-key.pem`, and `revoked.txt` (one `SERIAL NAME` line each).
/// Keys are written readable by their owner only. A site receives its own two files and `ca.pem`;
/// `ca-key.pem` never leaves the folder.
public struct ConsortiumAuthority: Sendable {
    public let folder: URL
    public let certificate: Certificate
    let key: Certificate.PrivateKey

    /// Where a site's identity sits in `folder`.
    public static func siteFiles(_ name: String, in folder: URL) -> (certificate: URL, key: URL) {
        let sites = folder.appendingPathComponent("sites")
        return (sites.appendingPathComponent("\(name).pem"), sites.appendingPathComponent("\(name)-key.pem"))
    }

    /// Creates a new authority in `folder` (made if missing). Refuses a folder that already has one:
    /// a second authority would orphan every certificate the first signed.
    public static func create(in folder: URL, consortium: String, days: Int = 3650, now: Date = Date()) throws -> ConsortiumAuthority {
        try checkName(consortium, what: "consortium name")
        let certificateFile = folder.appendingPathComponent("ca.pem")
        if FileManager.default.fileExists(atPath: certificateFile.path) {
            throw IdentityError("\(certificateFile.path) exists: this folder already has a consortium authority")
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName(consortium)
            CommonName("\(consortium) consortium authority")
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            KeyUsage(keyCertSign: true, cRLSign: true)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: key)
        try write(key: key, to: folder.appendingPathComponent("ca-key.pem"))
        try write(certificate, to: certificateFile)
        return ConsortiumAuthority(folder: folder, certificate: certificate, key: key)
    }

    init(folder: URL, certificate: Certificate, key: Certificate.PrivateKey) {
        self.folder = folder
        self.certificate = certificate
        self.key = key
    }

    /// Opens the authority in `folder`.
    public init(opening folder: URL) throws {
        self.folder = folder
        certificate = try Self.readCertificate(folder.appendingPathComponent("ca.pem"))
        let keyFile = folder.appendingPathComponent("ca-key.pem")
        guard let text = try? String(contentsOf: keyFile, encoding: .utf8) else {
            throw IdentityError("cannot read \(keyFile.path): run `sitefit certs init` first")
        }
        do { key = try Certificate.PrivateKey(pemEncoded: text) } catch {
            throw IdentityError("\(keyFile.path) is not a PEM private key")
        }
        guard key.publicKey == certificate.publicKey else {
            throw IdentityError("\(keyFile.path) is not the key of \(folder.appendingPathComponent("ca.pem").path)")
        }
    }

    /// Signs a certificate for site `name`, which the server admits only if its scenario has a site
    /// of that name. Refuses to replace a site's certificate unless asked to, and revokes the old
    /// one when it does.
    @discardableResult
    public func issueSite(_ name: String, days: Int = 365, replace: Bool = false, now: Date = Date()) throws -> IssuedIdentity {
        try Self.checkName(name, what: "site name")
        let files = Self.siteFiles(name, in: folder)
        if FileManager.default.fileExists(atPath: files.certificate.path) {
            guard replace else { throw IdentityError("\(files.certificate.path) exists; pass --replace to issue a new one and revoke it") }
            try revoke(site: name)
        }
        try FileManager.default.createDirectory(at: files.certificate.deletingLastPathComponent(), withIntermediateDirectories: true)
        return try issue(commonName: name, names: [.uniformResourceIdentifier(SiteIdentity.uriPrefix + name)], usage: .clientAuth,
                         days: days, now: now, certificateFile: files.certificate, keyFile: files.key)
    }

    /// Signs the server's certificate for the host names or IPv4 addresses sites will dial.
    @discardableResult
    public func issueServer(hosts: [String], days: Int = 365, now: Date = Date()) throws -> IssuedIdentity {
        guard !hosts.isEmpty else { throw IdentityError("name at least one host the sites will connect to (--host)") }
        let names = try hosts.map { host -> GeneralName in
            if let address = SiteIdentity.ipv4(host) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address))) }
            try Self.checkName(host, what: "host name")
            return .dnsName(host)
        }
        return try issue(commonName: hosts[0], names: names, usage: .serverAuth, days: days, now: now,
                         certificateFile: folder.appendingPathComponent("server.pem"),
                         keyFile: folder.appendingPathComponent("server-key.pem"))
    }

    /// Adds site `name`'s current certificate to `revoked.txt`; the server refuses it from then on.
    /// Returns its serial number.
    @discardableResult
    public func revoke(site name: String) throws -> String {
        try Self.checkName(name, what: "site name")
        let file = Self.siteFiles(name, in: folder).certificate
        guard FileManager.default.fileExists(atPath: file.path) else { throw IdentityError("no certificate for site \(name) in \(folder.path)") }
        let serial = SiteIdentity.serial(of: try Self.readCertificate(file))
        let list = folder.appendingPathComponent("revoked.txt")
        var text = (try? String(contentsOf: list, encoding: .utf8)) ?? ""
        if !SiteIdentity.revokedSerials(in: text).contains(serial) {
            text += "\(serial) \(name)\n"
            try Data(text.utf8).write(to: list, options: .atomic)
        }
        return serial
    }

    /// The serial numbers in `revoked.txt` (none if the file does not exist).
    public func revokedSerials() -> Set<String> {
        SiteIdentity.revokedSerials(in: (try? String(contentsOf: folder.appendingPathComponent("revoked.txt"), encoding: .utf8)) ?? "")
    }

    func issue(commonName: String, names: [GeneralName], usage: ExtendedKeyUsage.Usage, days: Int, now: Date,
               certificateFile: URL, keyFile: URL) throws -> IssuedIdentity {
        guard (1...3650).contains(days) else { throw IdentityError("--days must be from 1 to 3650 (got \(days))") }
        let leafKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName { CommonName(commonName) }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            KeyUsage(digitalSignature: true)
            try ExtendedKeyUsage([usage])
            SubjectAlternativeNames(names)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: leafKey.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
            issuer: self.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: key)
        try Self.write(key: leafKey, to: keyFile)
        try Self.write(certificate, to: certificateFile)
        return IssuedIdentity(certificate: certificate, certificateFile: certificateFile, keyFile: keyFile)
    }

    /// Reads one PEM certificate, naming the file when it cannot.
    public static func readCertificate(_ file: URL) throws -> Certificate {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { throw IdentityError("cannot read \(file.path)") }
        do { return try Certificate(pemEncoded: text) } catch { throw IdentityError("\(file.path) is not a PEM certificate") }
    }

    static func write(_ certificate: Certificate, to file: URL) throws {
        try Data(certificate.serializeAsPEM().pemString.utf8).write(to: file, options: .atomic)
    }

    /// Why owner-only from the start: a key written world-readable and then narrowed leaves a window.
    static func write(key: Certificate.PrivateKey, to file: URL) throws {
        let temporary = file.deletingLastPathComponent().appendingPathComponent(".\(file.lastPathComponent).\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data(try key.serializeAsPEM().pemString.utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw IdentityError("cannot write \(file.path)")
        }
        if FileManager.default.fileExists(atPath: file.path) { try FileManager.default.removeItem(at: file) }
        try FileManager.default.moveItem(at: temporary, to: file)
    }

    /// Names go into file names and certificate fields: letters, digits, '.', '_' and '-' only.
    static func checkName(_ name: String, what: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard (1...64).contains(name.count), name.allSatisfy(allowed.contains), name.first != ".", name.first != "-" else {
            throw IdentityError("\(what) must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
        }
    }
}
