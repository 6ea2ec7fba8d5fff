import Foundation
import SwiftASN1
import X509

/// Which site of a scenario a presented certificate names, or why it names none: the server's
/// half of mutual TLS, decided on the certificate alone so that tests need no network.
///
/// A site is admitted when its certificate chains to the consortium's authority, is valid now,
/// is marked for client authentication, names exactly one site, is not revoked, and that site is
/// one of the scenario's. Sites check the server the same way with `verifyServer`.
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

    /// The site `leaf` names, or why it is refused (validity is checked against the clock).
    public func admit(_ leaf: Certificate) async -> Result<String, IdentityError> {
        var verifier = Verifier(rootCertificates: CertificateStore([authority])) {
            RFC5280Policy()
            UsagePolicy(usage: .clientAuth, role: "a site")
        }
        if case .couldNotValidate(let failures) = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) {
            return .failure(IdentityError("the certificate does not chain to this consortium's authority or is not valid now"
                                          + (failures.first.map { " (\($0.policyFailureReason))" } ?? "")))
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
        let address = Self.ipv4(host).map { "\($0[0]).\($0[1]).\($0[2]).\($0[3])" }
        var verifier = Verifier(rootCertificates: CertificateStore([authority])) {
            RFC5280Policy()
            UsagePolicy(usage: .serverAuth, role: "the server")
            ServerIdentityPolicy(serverHostname: address == nil ? host : nil, serverIP: address)
        }
        if case .couldNotValidate(let failures) = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) {
            return .failure(IdentityError("the server's certificate is not this consortium's server certificate for \(host)"
                                          + (failures.first.map { " (\($0.policyFailureReason))" } ?? "")))
        }
        return .success(())
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
        Set(text.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) })
    }

    /// The four bytes of a dotted IPv4 address, or nil.
    static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { $0.count <= 3 && $0.allSatisfy(\.isASCII) ? UInt8($0) : nil }
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
