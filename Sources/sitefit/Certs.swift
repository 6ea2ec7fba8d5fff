import ArgumentParser
import Foundation
import SiteFitIdentity
import SiteFitScenario

extension SiteFit {
    /// A consortium's certificate authority and the server's and sites' certificates.
    struct Certs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a consortium's certificate authority and the server's and each site's certificates.",
            discussion: "Sites that run as separate processes authenticate both ways with these: the server admits a site "
                + "only if its certificate is signed by the authority, is not revoked and names a site of the scenario; a "
                + "site accepts only a server certificate signed by the same authority. Give each site its own "
                + "sites/NAME.pem, sites/NAME.key and ca.pem; ca.key never leaves the folder.",
            subcommands: [Init.self, Site.self, Server.self, Revoke.self, Check.self])

        struct Folder: ParsableArguments {
            @Option(name: .customLong("dir"), help: "The consortium's folder.")
            var folder: String = "certs"

            var url: URL { URL(fileURLWithPath: folder) }
        }

        struct Init: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create the consortium's certificate authority (ca.pem, ca.key).")

            @OptionGroup var folder: Folder
            @Option(help: "The consortium's name, written into the authority's certificate.")
            var consortium: String = "sitefit"
            @Option(help: "Days the authority is valid.")
            var days: Int = 3650

            func run() throws {
                do {
                    _ = try ConsortiumAuthority.create(in: folder.url, consortium: consortium, days: days)
                    print("wrote \(folder.url.appendingPathComponent("ca.pem").path) and ca.key (keep ca.key here; give sites ca.pem)")
                } catch { throw reportFailure(error) }
            }
        }

        struct Site: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Issue a site's certificate and key (sites/NAME.pem, sites/NAME.key).")

            @Argument(help: "The site's id, as the scenario's site profile names it.")
            var name: String
            @OptionGroup var folder: Folder
            @Option(help: "Days the certificate is valid.")
            var days: Int = 365
            @Flag(help: "Issue a new certificate for a site that has one, and revoke the old one.")
            var replace = false

            func run() throws {
                do {
                    let issued = try ConsortiumAuthority(opening: folder.url).issueSite(name, days: days, replace: replace)
                    print("wrote \(issued.certificateFile.path) and \(issued.keyFile.path)")
                } catch { throw reportFailure(error) }
            }
        }

        struct Server: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Issue the server's certificate and key (server.pem, server.key).")

            @OptionGroup var folder: Folder
            @Option(name: .customLong("host"), help: "A host name or IPv4 address the sites connect to (repeat for several).")
            var hosts: [String] = []
            @Option(help: "Days the certificate is valid.")
            var days: Int = 365
            @Flag(help: "Issue a new server certificate and revoke the old one.")
            var replace = false

            func run() throws {
                do {
                    let issued = try ConsortiumAuthority(opening: folder.url).issueServer(hosts: hosts, days: days, replace: replace)
                    print("wrote \(issued.certificateFile.path) and \(issued.keyFile.path)")
                } catch { throw reportFailure(error) }
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke a site's (or the server's) current certificate (listed in revoked.txt).")

            @Argument(help: "The site's id.")
            var name: String?
            @Flag(help: "Revoke the server's certificate instead.")
            var server = false
            @OptionGroup var folder: Folder

            func validate() throws {
                if (name == nil) == !server { throw ValidationError("name a site, or pass --server") }
            }

            func run() throws {
                do {
                    let authority = try ConsortiumAuthority(opening: folder.url)
                    if let name {
                        print("revoked site \(name)'s certificate \(try authority.revoke(site: name))")
                    } else {
                        print("revoked the server's certificate \(try authority.revokeServer())")
                    }
                } catch { throw reportFailure(error) }
            }
        }

        struct Check: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Say whether the server would admit a site certificate for a scenario, and as which site.")

            @Argument(help: "A site's certificate (PEM).")
            var certificate: String
            @OptionGroup var folder: Folder
            @Option(help: "The scenario whose sites the server admits.")
            var scenario: String

            func run() async throws {
                do {
                    let loaded = try ScenarioLoader.load(URL(fileURLWithPath: scenario))
                    // Only ca.pem and revoked.txt: the server checks sites without the authority's key.
                    let identity = try SiteIdentity(folder: folder.url, sites: loaded.sites.map(\.profile.id))
                    let leaf = try ConsortiumAuthority.readCertificate(URL(fileURLWithPath: certificate))
                    switch await identity.admit(leaf) {
                    case .success(let name): print("admitted as site \(name)")
                    case .failure(let error): throw error
                    }
                } catch { throw reportFailure(error) }
            }
        }
    }
}
