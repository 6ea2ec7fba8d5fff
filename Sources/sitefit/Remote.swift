import ArgumentParser
import Foundation
import GRPCCore
import Logging
import SiteFitCore
import SiteFitRemote
import SiteFitReport
import SiteFitScenario
import SiteFitSimulation

/// `HOST:PORT` as the two commands take it.
struct Endpoint: ExpressibleByArgument {
    var host: String
    var port: Int

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]),
              (0...65_535).contains(port) else { return nil }
        host = String(argument[..<colon])
        self.port = port
        if host.isEmpty { return nil }
    }
}

extension SiteFit {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a scenario with its sites in separate processes: listen for them, then run every arm and write the report.",
            discussion: """
                Listens with mutual TLS (certificates from `sitefit certs`), waits until every site of the scenario has \
                connected with its certificate (`sitefit site` at each), then runs the scenario exactly as `sitefit run` \
                would, the sites answering over the network, and writes the same report. No plaintext mode.
                """)

        @Argument(help: "Scenario file (YAML); every site must approve the same file.")
        var scenario: String

        @Option(help: "Address and port to listen on, e.g. 0.0.0.0:7443 (port 0: any free port, printed).")
        var listen: Endpoint

        @Option(name: .customLong("certs"), help: "The consortium's certificate folder (ca.pem, server.pem, server.key, revoked.txt).")
        var certificates: String = "certs"

        @Option(name: .customLong("output-dir"), help: "Folder for the report.")
        var outputDirectory: String = "Reports"

        @Option(help: "Seconds to wait for every site to connect.")
        var joinTimeout: Int = 600

        @Option(help: "Seconds to wait for a site's answer; a site slower than this in a round is that round's dropout.")
        var replyTimeout: Int = 600

        @Option(help: "Seconds to wait for a site that left to connect again, where the run needs it (evaluation).")
        var rejoinTimeout: Int = 600

        @Option(help: ArgumentHelp("Folder for the run's state, written after every round (default: .sitefit-state/NAME).",
                                   discussion: "A server started again with the same scenario goes on from its last completed round."))
        var stateDir: String?

        @Flag(help: "Start the run over: discard the state a previous server of this scenario left.")
        var noResume = false

        @Option(help: ArgumentHelp("Fault drill: exit abruptly, as a crash would, right after writing the state of round N of an arm.",
                                   discussion: "For rehearsing a server restart; start the server again without it to go on."))
        var crashAfterRound: Int?

        @Flag(help: "Print only the report path (no progress on stderr).")
        var quiet = false

        @Flag(help: "Pretrain again even if .sitefit-cache holds a model with the same configuration and seed.")
        var noCache = false

        @Flag(help: "Log what each component does (to stderr).")
        var verbose = false

        func validate() throws {
            if let round = crashAfterRound, round < 1 { throw ValidationError("--crash-after-round must be a round number, 1 or more") }
        }

        func run() async throws {
            bootstrapLogging(verbose: verbose)
            var started: RunJournal?
            do {
                var loaded = try ScenarioLoader.load(URL(fileURLWithPath: scenario), sitesElsewhere: true)
                loaded.file = scenario
                if let refusal = try await RemoteFleet.refusal(loaded) { throw UserFacingError(refusal) }
                if let round = crashAfterRound, round > loaded.federation.rounds {
                    throw UserFacingError("--crash-after-round \(round) is past \(scenario)'s last round (\(loaded.federation.rounds)): the drill would never fire")
                }
                try ReportWriter.checkWritable(URL(fileURLWithPath: outputDirectory), name: loaded.name)
                let journal = try RunJournal(folder: URL(fileURLWithPath: stateDir ?? ".sitefit-state/\(loaded.name)"), scenario: loaded,
                                             fresh: noResume, crashAfterRound: crashAfterRound)
                started = journal
                var limits = TransportLimits()
                limits.joinTimeout = .seconds(max(1, joinTimeout))
                limits.deadlines.reply = .seconds(max(1, replyTimeout))
                limits.deadlines.rejoin = .seconds(max(1, rejoinTimeout))
                let logger = Logger(label: "sitefit.serve")
                let display = ProgressDisplay(quiet: quiet, rounds: loaded.federation.rounds, arms: loaded.arms.count,
                                              seeds: 1 + loaded.extraSeeds.count)
                let cache = noCache ? nil : URL(fileURLWithPath: ".sitefit-cache")
                let scenarioValue = loaded
                let siteIds = loaded.sites.map(\.profile.id)
                let wire = WireCounter()
                let result = try await FederationServer.withServer(
                    host: listen.host, port: listen.port, certificates: CertificateFolder(URL(fileURLWithPath: certificates)),
                    sites: siteIds, fingerprint: loaded.fingerprint, limits: limits, wire: wire, logger: logger
                ) { waitForSites, port in
                    // The bound port goes to stderr on its own line, so a script can start the sites against port 0.
                    FileHandle.standardError.write(Data("listening on \(listen.host):\(port) for sites \(siteIds.joined(separator: ", "))\n".utf8))
                    let fleet = RemoteFleet(slots: try await waitForSites())
                    display.show("every site connected: \(siteIds.joined(separator: ", "))")
                    if journal.resumed { display.show("going on from the state in \(journal.folder.relativePath)") }
                    do {
                        let result = try await Simulation.run(scenarioValue, fleet: fleet, logger: Logger(label: "sitefit"),
                                                              cacheDirectory: cache, journal: journal) { line in display.show(line) }
                        await fleet.finish(reason: RemoteFleet.completed)
                        return result
                    } catch {
                        await fleet.finish(reason: "the run stopped")
                        throw error
                    }
                }
                display.finish()
                if !quiet {
                    // The network's count beside the report's: metrics.json keeps payload bytes only, as in-process.
                    let rounds = result.metrics.arms.flatMap(\.rounds)
                    let up = rounds.reduce(0) { $0 + $1.bytesUp }, down = rounds.reduce(0) { $0 + $1.bytesDown }
                    FileHandle.standardError.write(Data(("on the wire: \(byteCount(wire.received)) from sites, \(byteCount(wire.sent)) to sites "
                        + "(TLS, every command and handshake); the report's round payload: \(byteCount(up)) up, \(byteCount(down)) down"
                        + (scenarioValue.extraSeeds.isEmpty ? "" : " (first seed)") + "\n").utf8))
                }
                let output = try ReportWriter.write(result.metrics, predictions: result.predictions, checkpoint: result.checkpoint,
                                                    to: URL(fileURLWithPath: outputDirectory))
                // The run is over and its report written: nothing is left to go on from.
                journal.discard()
                print(output.report.relativePath)
            } catch {
                started?.discardIfEmpty()
                throw reportFailure(error)
            }
        }
    }

    struct Site: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run one hospital's site agent next to its shard, for a server started with `sitefit serve`.",
            discussion: """
                The agent opens its shard read-only, dials the server with the site's certificate, and answers the server's \
                commands for the scenario its operator approved (--scenario: the server must run the very same file). \
                Patient rows never leave this process: only the selected parameters' updates, test-set scores and \
                aggregate counts do.
                """)

        @Option(help: "The scenario this site approves (the same file as the server's).")
        var scenario: String

        @Option(name: .customLong("site"), help: "This site's id in the scenario (its certificate must name it).")
        var siteId: String

        @Option(help: "The site's shard (SQLite, opened read-only).")
        var shard: String?

        @Option(help: ArgumentHelp("The site's OMOP CDM database (SQLite), opened in place and read-only, for a site the scenario lists with `omop:`.",
                                   discussion: "The scenario names each hospital's database by its file name; only this site's need exist here."))
        var omop: String?

        @Option(help: "The server, e.g. 10.0.0.5:7443 (a name or IPv4 address its certificate names).")
        var connect: Endpoint

        @Option(name: .customLong("certs"), help: "Folder with ca.pem, sites/SITE.pem and sites/SITE.key (and revoked.txt).")
        var certificates: String = "certs"

        @Option(help: "Seconds to keep trying to connect again after the connection to the server drops.")
        var reconnectFor: Int = 600

        @Option(help: ArgumentHelp("Fault drill: exit abruptly, as a crash would, when asked to train round N of an arm.",
                                   discussion: "For rehearsing a consortium's dropout handling; restart the site without it to rejoin."))
        var crashAtRound: Int?

        @Flag(help: "Log what each component does (to stderr).")
        var verbose = false

        func validate() throws {
            guard (shard == nil) != (omop == nil) else { throw ValidationError("give the site's data as --shard or as --omop (one of them)") }
            if let round = crashAtRound, round < 1 { throw ValidationError("--crash-at-round must be a round number, 1 or more") }
        }

        func run() async throws {
            bootstrapLogging(verbose: verbose, quietLevel: .notice)
            do {
                var loaded = try ScenarioLoader.load(URL(fileURLWithPath: scenario), sitesElsewhere: true)
                loaded.file = scenario
                if omop != nil, let reference = loaded.sites.first(where: { $0.profile.id == siteId }), !reference.omopDatabase {
                    throw UserFacingError("\(scenario): site '\(siteId)' is not an `omop:` site of the scenario; give its shard with --shard")
                }
                if let round = crashAtRound, round > loaded.federation.rounds {
                    throw UserFacingError("--crash-at-round \(round) is past \(scenario)'s last round (\(loaded.federation.rounds)): the drill would never fire")
                }
                let logger = Logger(label: "sitefit.site")
                let data = URL(fileURLWithPath: shard ?? omop ?? "")
                let agent = try SiteAgent(site: siteId, scenario: loaded, shard: data, crashAtRound: crashAtRound, logger: logger)
                var limits = TransportLimits()
                limits.reconnectFor = .seconds(max(0, reconnectFor))
                try await SiteClient.run(agent, host: connect.host, port: connect.port,
                                         certificates: CertificateFolder(URL(fileURLWithPath: certificates)), limits: limits, logger: logger)
            } catch {
                throw reportFailure(error)
            }
        }
    }
}

/// Bytes as the report writes them (B, KiB, MiB).
private func byteCount(_ count: Int) -> String {
    if count >= 1_048_576 { return String(format: "%.2f MiB", Double(count) / 1_048_576) }
    if count >= 1024 { return String(format: "%.1f KiB", Double(count) / 1024) }
    return "\(count) B"
}
