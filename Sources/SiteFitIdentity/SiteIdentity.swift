import Foundation
import SwiftASN1
import X509

/// Which site of a scenario a presented certificate names, or why it names none: the server's
/// half of mutual TLS, decided on the certificate alone so that tests need no network.
///
/// A site is admitted when its certificate is no authority's, is marked for client authentication,
/// is valid now, chains to the consortium's authority, names exactly one site, is not revoked,
/// and that site is one of the scenario's. Sites check the server the same way with `verifyServer`.
public struct SiteIdentity: Sendable {
    /// How a site certificate names its site: a URI subject alternative name, so that a site name
    /// can never be mistaken for a host name.
    public static let uriPrefix = "sitefit:site:"

    public let authority: Certificate
    public let sites: Set<String>
    public let revoked: Set<String>

    public init(authority: Certificate, sites: some Sequence<String>, revoked: Set<String> = []) {
        self.authority = authority
        self.sites = Set(sites)
        self.revoked = revoked
    }

    /// What the server (or a site) needs from a consortium's folder: `ca.pem` and `revoked.txt`,
    /// not the authority's key.
    public init(folder: URL, sites: some Sequence<String>) throws {
        let file = folder.appendingPathComponent("ca.pem")
        guard FileManager.default.fileExists(atPath: file.path) else {
            // The usual cause is a first start before the consortium's folder was made.
            throw IdentityError(
                "\(file.path) does not exist: make the consortium's authority with `sitefit certs init --dir \(folder.path)`, "
                    + "then `sitefit certs server --host HOST --dir \(folder.path)` and `sitefit certs site ID --dir \(folder.path)` "
                    + "(README, \"Consortium certificates\")")
        }
        let authority = try ConsortiumAuthority.readCertificate(file)
        let list = try ConsortiumAuthority.readRevocationList(folder.appendingPathComponent("revoked.txt")) ?? ""
        self.init(authority: authority, sites: sites, revoked: Self.revokedSerials(in: list))
    }

    /// The site `leaf` names, or why it is refused (validity is checked against the clock).
    public func admit(_ leaf: Certificate) async -> Result<String, IdentityError> {
        if let problem = Self.roleProblem(leaf, usage: .clientAuth, role: "a site") { return .failure(problem) }
        var verifier = Verifier(rootCertificates: CertificateStore([authority])) {
            RFC5280Policy()
            UsagePolicy(usage: .clientAuth, role: "a site")
        }
        if case .couldNotValidate = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) {
            return .failure(IdentityError("the certificate is not signed by this consortium's authority"))
        }
        let names = Self.siteNames(in: leaf)
        guard names.count == 1, let name = names.first else {
            return .failure(IdentityError("the certificate names \(names.count) sites; a site certificate names exactly one"))
        }
        if revoked.contains(Self.serial(of: leaf)) {
            return .failure(IdentityError("the certificate of site \(name) is revoked"))
        }
        guard sites.contains(name) else {
            return .failure(IdentityError("the certificate names site \(name), which is not a site of this scenario"))
        }
        return .success(name)
    }

    /// Whether `leaf` is this consortium's server certificate for `host` (a name or an IPv4 address).
    public func verifyServer(_ leaf: Certificate, host: String) async -> Result<Void, IdentityError> {
        if let problem = Self.roleProblem(leaf, usage: .serverAuth, role: "the server") { return .failure(problem) }
        let address = Self.ipv4(host).map { "\($0[0]).\($0[1]).\($0[2]).\($0[3])" }
        var verifier = Verifier(rootCertificates: CertificateStore([authority])) {
            RFC5280Policy()
            UsagePolicy(usage: .serverAuth, role: "the server")
            ServerIdentityPolicy(serverHostname: address == nil ? host : nil, serverIP: address)
        }
        if case .couldNotValidate = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) {
            return .failure(IdentityError("the server's certificate is not this consortium's server certificate for \(host)"))
        }
        if revoked.contains(Self.serial(of: leaf)) {
            return .failure(IdentityError("the server's certificate is revoked"))
        }
        return .success(())
    }

    /// The reasons a certificate fails before its signature is looked at, in plain words: an
    /// authority's certificate, the other role's certificate, or one outside its validity.
    static func roleProblem(_ leaf: Certificate, usage: ExtendedKeyUsage.Usage, role: String, now: Date = Date()) -> IdentityError? {
        if case .isCertificateAuthority = (try? leaf.extensions.basicConstraints) ?? .notCertificateAuthority {
            return IdentityError("the certificate is an authority's, not \(role)'s")
        }
        guard let usages = try? leaf.extensions.extendedKeyUsage, usages.contains(usage) else {
            return IdentityError("the certificate is not marked for use by \(role)")
        }
        let format = ISO8601DateFormatter()
        if now > leaf.notValidAfter { return IdentityError("the certificate expired on \(format.string(from: leaf.notValidAfter))") }
        if now < leaf.notValidBefore { return IdentityError("the certificate is not valid before \(format.string(from: leaf.notValidBefore))") }
        return nil
    }

    /// The site names in `certificate`'s URI subject alternative names.
    public static func siteNames(in certificate: Certificate) -> [String] {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return names.compactMap { name in
            if case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix(uriPrefix) { return String(uri.dropFirst(uriPrefix.count)) }
            return nil
        }
    }

    /// A certificate's serial number in lower-case hex, as `revoked.txt` lists it.
    public static func serial(of certificate: Certificate) -> String {
        certificate.serialNumber.bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The serial numbers of a `revoked.txt` text: the first word of each line.
    public static func revokedSerials(in text: String) -> Set<String> {
        Set(text.split(whereSeparator: \.isNewline).compactMap { $0.split(whereSeparator: \.isWhitespace).first.map { $0.lowercased() } })
    }

    /// The four bytes of a dotted IPv4 address, or nil.
    /// Whether `host` is written as an IPv4 address (four decimal parts), not a name.
    public static func isIPv4(_ host: String) -> Bool { ipv4(host) != nil }

    static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        // Digits only, no leading zeros: "010.0.0.5" and "+1.2.3.4" are not addresses here.
        let bytes = parts.compactMap { part -> UInt8? in
            guard (1...3).contains(part.count), part.allSatisfy({ ("0"..."9").contains($0) }), part == "0" || part.first != "0" else { return nil }
            return UInt8(part)
        }
        return bytes.count == 4 ? bytes : nil
    }
}

/// Refuses a chain whose leaf is not marked for `usage`: a site's certificate cannot serve as the
/// server's, nor the server's as a site's.
struct UsagePolicy: VerifierPolicy {
    let usage: ExtendedKeyUsage.Usage
    let role: String
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = []

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        guard let usages = try? chain.leaf.extensions.extendedKeyUsage, usages.contains(usage) else {
            return .failsToMeetPolicy(reason: "the certificate is not marked for use by \(role)")
        }
        return .meetsPolicy
    }
}
