import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
/// The folder holds `ca.pem` and `ca.key` (the authority), `server.pem` and `server.key`,
/// `sites/NAME.pem` and `sites/NAME.key`, and `revoked.txt` (one `SERIAL NAME` line each).
/// Certificates end in `.pem` and keys in `.key`, so no site's name can make one site's file
/// another's. Keys are created readable by their owner only. A site receives its own two files
/// and `ca.pem`; `ca.key` never leaves the folder.
public struct ConsortiumAuthority: Sendable {
    public let folder: URL
    public let certificate: Certificate
    let key: Certificate.PrivateKey

    /// Where a site's identity sits in `folder`.
    public static func siteFiles(_ name: String, in folder: URL) -> (certificate: URL, key: URL) {
        let sites = folder.appendingPathComponent("sites")
        return (sites.appendingPathComponent("\(name).pem"), sites.appendingPathComponent("\(name).key"))
    }

    /// Where the server's identity sits in `folder`.
    public static func serverFiles(in folder: URL) -> (certificate: URL, key: URL) {
        (folder.appendingPathComponent("server.pem"), folder.appendingPathComponent("server.key"))
    }

    /// Creates a new authority in `folder` (made if missing). Refuses a folder that already has one,
    /// or its key: a second authority would orphan every certificate the first signed.
    public static func create(in folder: URL, consortium: String, days: Int = 3650, now: Date = Date()) throws -> ConsortiumAuthority {
        try checkName(consortium, what: "consortium name")
        guard (1...36_500).contains(days) else { throw IdentityError("the authority's days must be from 1 to 36500 (got \(days))") }
        let certificateFile = folder.appendingPathComponent("ca.pem"), keyFile = folder.appendingPathComponent("ca.key")
        for file in [certificateFile, keyFile] where FileManager.default.fileExists(atPath: file.path) {
            throw IdentityError("\(file.path) exists: this folder already has a consortium authority")
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
        let pending = try Pending(certificate: certificate, key: key, certificateFile: certificateFile, keyFile: keyFile)
        try pending.commit()
        return ConsortiumAuthority(folder: folder, certificate: certificate, key: key)
    }

    init(folder: URL, certificate: Certificate, key: Certificate.PrivateKey) {
        self.folder = folder
        self.certificate = certificate
        self.key = key
    }

    /// Opens the authority in `folder`, with its signing key.
    public init(opening folder: URL) throws {
        self.folder = folder
        let certificateFile = folder.appendingPathComponent("ca.pem"), keyFile = folder.appendingPathComponent("ca.key")
        guard FileManager.default.fileExists(atPath: certificateFile.path) else {
            throw IdentityError("\(folder.path) has no consortium authority (ca.pem): run `sitefit certs init` first")
        }
        certificate = try Self.readCertificate(certificateFile)
        guard let text = try? String(contentsOf: keyFile, encoding: .utf8) else {
            throw IdentityError("cannot read the authority's key \(keyFile.path); certificates are issued where it is kept")
        }
        do { key = try Certificate.PrivateKey(pemEncoded: text) } catch {
            throw IdentityError("\(keyFile.path) is not a PEM private key")
        }
        guard key.publicKey == certificate.publicKey else {
            throw IdentityError("\(keyFile.path) is not the key of \(certificateFile.path)")
        }
    }

    /// Signs a certificate for site `name`, which the server admits only if its scenario has a site
    /// of that name. Refuses to replace a site's certificate unless asked to; a replaced one is
    /// revoked once its successor is written.
    @discardableResult
    public func issueSite(_ name: String, days: Int = 365, replace: Bool = false, now: Date = Date()) throws -> IssuedIdentity {
        try Self.checkName(name, what: "site name")
        let files = Self.siteFiles(name, in: folder)
        try FileManager.default.createDirectory(at: files.certificate.deletingLastPathComponent(), withIntermediateDirectories: true)
        return try issue(commonName: name, names: [.uniformResourceIdentifier(SiteIdentity.uriPrefix + name)], usage: .clientAuth,
                         days: days, now: now, files: files, replace: replace, label: "site \(name)")
    }

    /// Signs the server's certificate for the host names or IPv4 addresses sites will dial. A
    /// replaced server certificate is revoked, so sites refuse it from then on.
    @discardableResult
    public func issueServer(hosts: [String], days: Int = 365, replace: Bool = false, now: Date = Date()) throws -> IssuedIdentity {
        guard !hosts.isEmpty else { throw IdentityError("name at least one host the sites will connect to (--host)") }
        let names = try hosts.map { host -> GeneralName in
            if let address = SiteIdentity.ipv4(host) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address))) }
            try Self.checkName(host, what: "host name")
            return .dnsName(host)
        }
        return try issue(commonName: hosts[0], names: names, usage: .serverAuth, days: days, now: now,
                         files: Self.serverFiles(in: folder), replace: replace, label: "server")
    }

    /// Adds site `name`'s current certificate to `revoked.txt`: the server refuses it from then on.
    /// Returns its serial number.
    @discardableResult
    public func revoke(site name: String) throws -> String {
        try Self.checkName(name, what: "site name")
        return try revoke(Self.siteFiles(name, in: folder).certificate, label: "site \(name)")
    }

    /// Adds the server's current certificate to `revoked.txt`: sites refuse it from then on.
    @discardableResult
    public func revokeServer() throws -> String {
        try revoke(Self.serverFiles(in: folder).certificate, label: "server")
    }

    func revoke(_ file: URL, label: String) throws -> String {
        guard FileManager.default.fileExists(atPath: file.path) else { throw IdentityError("no certificate for the \(label) in \(folder.path)") }
        let serial = SiteIdentity.serial(of: try Self.readCertificate(file))
        let list = folder.appendingPathComponent("revoked.txt")
        // A list that exists but cannot be read must not be rewritten from nothing: that would
        // quietly undo every earlier revocation.
        var text = try Self.readRevocationList(list) ?? ""
        if !SiteIdentity.revokedSerials(in: text).contains(serial) {
            if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
            text += "\(serial) \(label.replacingOccurrences(of: " ", with: ":"))\n"
            try Data(text.utf8).write(to: list, options: .atomic)
        }
        return serial
    }

    /// The serial numbers in `revoked.txt`: none if the file does not exist, an error if it exists
    /// but cannot be read (revocation fails closed).
    public func revokedSerials() throws -> Set<String> {
        SiteIdentity.revokedSerials(in: try Self.readRevocationList(folder.appendingPathComponent("revoked.txt")) ?? "")
    }

    static func readRevocationList(_ file: URL) throws -> String? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            throw IdentityError("cannot read \(file.path) as UTF-8 text; revocations cannot be checked until it can")
        }
        return text
    }

    func issue(commonName: String, names: [GeneralName], usage: ExtendedKeyUsage.Usage, days: Int, now: Date,
               files: (certificate: URL, key: URL), replace: Bool, label: String) throws -> IssuedIdentity {
        guard (1...3650).contains(days) else { throw IdentityError("--days must be from 1 to 3650 (got \(days))") }
        let exists = FileManager.default.fileExists(atPath: files.certificate.path)
        if exists && !replace {
            throw IdentityError("\(files.certificate.path) exists; pass --replace to issue a new one and revoke it")
        }
        let leafKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName { CommonName(commonName) }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            KeyUsage(digitalSignature: true)
            try ExtendedKeyUsage([usage])
            SubjectAlternativeNames(names)
        }
        // A leaf outliving its authority would only fail later, at a site, with a vaguer reason.
        let end = min(now.addingTimeInterval(Double(days) * 86_400), certificate.notValidAfter)
        let issued = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: leafKey.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: end,
            issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: key)
        let pending = try Pending(certificate: issued, key: leafKey, certificateFile: files.certificate, keyFile: files.key)
        if exists { _ = try revoke(files.certificate, label: label) }
        try pending.commit()
        return IssuedIdentity(certificate: issued, certificateFile: files.certificate, keyFile: files.key)
    }

    /// Reads one PEM certificate, naming the file when it cannot.
    public static func readCertificate(_ file: URL) throws -> Certificate {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { throw IdentityError("cannot read \(file.path)") }
        do { return try Certificate(pemEncoded: text) } catch { throw IdentityError("\(file.path) is not a PEM certificate") }
    }

    /// A certificate and key written beside their final names, then renamed into place, the key
    /// first: a failure before `commit` leaves the old pair as it was.
    struct Pending {
        let certificateFile: URL, keyFile: URL
        let temporaryCertificate: URL, temporaryKey: URL

        init(certificate: Certificate, key: Certificate.PrivateKey, certificateFile: URL, keyFile: URL) throws {
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            let tag = UUID().uuidString
            temporaryKey = keyFile.deletingLastPathComponent().appendingPathComponent(".\(keyFile.lastPathComponent).\(tag)")
            temporaryCertificate = certificateFile.deletingLastPathComponent().appendingPathComponent(".\(certificateFile.lastPathComponent).\(tag)")
            try Self.createOwnerOnly(temporaryKey, contents: Data(try key.serializeAsPEM().pemString.utf8))
            do {
                try Data(try certificate.serializeAsPEM().pemString.utf8).write(to: temporaryCertificate)
            } catch {
                unlink(temporaryKey.path)
                throw IdentityError("cannot write \(certificateFile.path)")
            }
        }

        func commit() throws {
            // rename(2) replaces the old file in one step: there is no moment without a key.
            guard rename(temporaryKey.path, keyFile.path) == 0 else {
                unlink(temporaryKey.path); unlink(temporaryCertificate.path)
                throw IdentityError("cannot write \(keyFile.path)")
            }
            guard rename(temporaryCertificate.path, certificateFile.path) == 0 else {
                unlink(temporaryCertificate.path)
                throw IdentityError("cannot write \(certificateFile.path)")
            }
        }

        /// Why open(2) with mode 0600: a file created with the default mode and narrowed afterwards
        /// is readable by others in between, and stays so if the narrowing fails.
        static func createOwnerOnly(_ file: URL, contents: Data) throws {
            let descriptor = open(file.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard descriptor >= 0 else { throw IdentityError("cannot create \(file.path)") }
            defer { close(descriptor) }
            let written = contents.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            guard written == contents.count, fsync(descriptor) == 0 else {
                unlink(file.path)
                throw IdentityError("cannot write \(file.path)")
            }
        }
    }

    /// Names go into file names and certificate fields: letters, digits, '.', '_' and '-' only.
    static func checkName(_ name: String, what: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard (1...64).contains(name.count), name.allSatisfy(allowed.contains), name.first != ".", name.first != "-" else {
            throw IdentityError("\(what) must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
        }
    }
}
