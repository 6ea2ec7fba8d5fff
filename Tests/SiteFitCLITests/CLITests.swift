import Foundation
import SiteFitTestSupport
import Testing

/// End-to-end tests of the built `sitefit` binary: stdout, stderr and exit code.
@Suite("sitefit command line")
struct CLITests {
    static let root = repositoryRoot

    /// The binary next to the test bundle (same build folder and configuration).
    static var binary: URL {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("sitefit"),
            Bundle.main.bundleURL.appendingPathComponent("sitefit"),
            root.appendingPathComponent(".build/debug/sitefit"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[2]
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], in directory: URL = root) throws -> Result {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test("a missing scenario file exits non-zero with a clear message and no stack trace")
    func missingScenario() throws {
        let result = try Self.run(["run", "Scenarios/does-not-exist.yaml"])
        #expect(result.status != 0)
        #expect(result.stderr == "error: scenario file 'Scenarios/does-not-exist.yaml' does not exist\n")
        #expect(result.stdout.isEmpty)
    }

    @Test("certs: an authority, a server and a site; check admits a scenario's site and refuses others")
    func certs() throws {
        let folder = try temporaryDirectory()
        let scenario = Self.root.appendingPathComponent("Scenarios/quickstart.yaml").path
        #expect(try Self.run(["certs", "init", "--consortium", "demo"], in: folder).status == 0)
        let again = try Self.run(["certs", "init"], in: folder)
        #expect(again.status != 0 && again.stderr.contains("already has a consortium authority"))
        #expect(try Self.run(["certs", "server", "--host", "127.0.0.1"], in: folder).status == 0)
        #expect(try Self.run(["certs", "site", "riverside-general"], in: folder).status == 0)
        #expect(try Self.run(["certs", "site", "elsewhere"], in: folder).status == 0)
        let admitted = try Self.run(["certs", "check", "certs/sites/riverside-general.pem", "--scenario", scenario], in: folder)
        #expect(admitted.status == 0 && admitted.stdout == "admitted as site riverside-general\n")
        // The check needs ca.pem and revoked.txt only: the authority's key can stay elsewhere.
        let key = folder.appendingPathComponent("certs/ca.key"), away = folder.appendingPathComponent("ca.key.away")
        try FileManager.default.moveItem(at: key, to: away)
        #expect(try Self.run(["certs", "check", "certs/sites/riverside-general.pem", "--scenario", scenario], in: folder).status == 0)
        let keyless = try Self.run(["certs", "site", "another"], in: folder)
        #expect(keyless.status != 0 && keyless.stderr.contains("cannot read the authority's key"))
        try FileManager.default.moveItem(at: away, to: key)
        let unknown = try Self.run(["certs", "check", "certs/sites/elsewhere.pem", "--scenario", scenario], in: folder)
        #expect(unknown.status != 0 && unknown.stderr.contains("not a site of this scenario"))
        let server = try Self.run(["certs", "check", "certs/server.pem", "--scenario", scenario], in: folder)
        #expect(server.status != 0 && server.stderr.contains("not marked for use by a site"))
        #expect(try Self.run(["certs", "revoke", "riverside-general"], in: folder).status == 0)
        let revoked = try Self.run(["certs", "check", "certs/sites/riverside-general.pem", "--scenario", scenario], in: folder)
        #expect(revoked.status != 0 && revoked.stderr.contains("revoked") && !revoked.stderr.contains("Stack"))
        #expect(try Self.run(["certs", "revoke", "--server"], in: folder).status == 0)
        #expect(try Self.run(["certs", "revoke"], in: folder).status != 0)
    }

    @Test("validate prints file:line:column: field: problem for a broken scenario")
    func validateBroken() throws {
        let folder = try temporaryDirectory()
        try Data("seed: 1\nsites: []\narms:\n  - mode: ful\n".utf8).write(to: folder.appendingPathComponent("broken.yaml"))
        let result = try Self.run(["validate", "broken.yaml"], in: folder)
        #expect(result.status != 0)
        #expect(result.stderr.contains("error: broken.yaml:2:8: sites: list at least one site"))
        #expect(result.stderr.contains("error: broken.yaml:4:11: arms[0].mode: expected one of 'full', 'bitfit', 'bitfit+head', 'head', 'lora', 'adapter', 'ia3', found 'ful'; did you mean 'full'?"))
        #expect(!result.stderr.contains("Stack"))
    }

    @Test("validate accepts the quickstart")
    func validateQuickstart() throws {
        let result = try Self.run(["validate", "Scenarios/quickstart.yaml"])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("Scenarios/quickstart.yaml: OK (3 sites, 2 arms, 5 rounds; estimated "))
        #expect(result.stdout.contains("MiB of memory at the peak") && result.stdout.contains("1,249 parameters, 21 features, 3,700 patients"))
    }

    @Test("hostile input through the binary: a data file is not echoed, a runaway scenario is refused with its estimate, a metrics.json cannot write outside its folder")
    func hostileInput() throws {
        let data = try Self.run(["validate", "Sites/heart-disease/processed.cleveland.data"])
        #expect(data.status == 1 && !data.stderr.contains("145.0") && data.stderr.contains("not shown"))

        let folder = try temporaryDirectory()
        let tight = try Self.run(["validate", "Scenarios/quickstart.yaml", "--max-memory-gb", "0.01"])
        #expect(tight.status == 1 && tight.stderr.contains("memory above the budget of 10 MiB (--max-memory-gb)"), "\(tight.stderr)")

        let metrics = try String(contentsOf: Self.root.appendingPathComponent("Tests/SiteFitSimulationTests/Golden/tiny/metrics.json"), encoding: .utf8)
        let inner = folder.appendingPathComponent("a/b/tiny")
        try FileManager.default.createDirectory(at: inner, withIntermediateDirectories: true)
        try metrics.replacingOccurrences(of: #""name" : "tiny","#, with: #""name" : "..\/..\/escaped","#)
            .write(to: inner.appendingPathComponent("metrics.json"), atomically: true, encoding: .utf8)
        let report = try Self.run(["report", inner.appendingPathComponent("metrics.json").path])
        #expect(report.status == 1 && report.stderr.contains("scenario.name"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("escaped.md").path))

        let asFile = folder.appendingPathComponent("not-a-folder")
        try Data().write(to: asFile)
        let run = try Self.run(["run", "Scenarios/quickstart.yaml", "--output-dir", asFile.path, "--quiet"])
        #expect(run.status == 1 && run.stderr.contains("is a file"), "fails before any work: \(run.stderr)")
    }

    @Test("--version prints the version")
    func version() throws {
        let result = try Self.run(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout == "0.1.0\n")
    }

    @Test("--help matches its golden file (re-record with SITEFIT_RECORD_GOLDEN=1)")
    func help() throws {
        let result = try Self.run(["--help"])
        #expect(result.status == 0)
        Golden.expect(result.stdout, matches: Self.root.appendingPathComponent("Tests/SiteFitCLITests/Golden/help.txt"))
    }

    @Test("sites inspect refuses a file that is not a shard, naming the site and file")
    func inspectJunk() throws {
        let folder = try temporaryDirectory()
        try Data(String(repeating: "junk", count: 500).utf8).write(to: folder.appendingPathComponent("junk.sqlite"))
        let result = try Self.run(["sites", "inspect", "junk.sqlite"], in: folder)
        #expect(result.status == 1)
        #expect(result.stderr == "error: site 'junk': junk.sqlite: not a SQLite database\n")
    }

    @Test("sites import omop refuses an existing file unless --force; inspect shows the import's data-quality findings")
    func importOMOP() throws {
        let folder = try temporaryDirectory()
        let csv = folder.appendingPathComponent("export")
        try FileManager.default.createDirectory(at: csv, withIntermediateDirectories: true)
        try Data("person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id\n1,8507,1950,8527,0\n1,8532,1960,8527,0\n".utf8)
            .write(to: csv.appendingPathComponent("PERSON.csv"))
        try Data("observation_period_id,person_id,observation_period_start_date,observation_period_end_date,period_type_concept_id\n1,1,2015-01-01,2022-12-31,32817\n".utf8)
            .write(to: csv.appendingPathComponent("OBSERVATION_PERIOD.csv"))
        let shard = folder.appendingPathComponent("built.sqlite")
        let original = Data("a shard someone built".utf8)
        try original.write(to: shard)
        let arguments = ["sites", "import", "omop", "--from", "export", "--to", "built.sqlite", "--name", "h"]
        let refused = try Self.run(arguments, in: folder)
        #expect(refused.status == 1)
        #expect(refused.stderr == "error: site 'h': built.sqlite: the file exists; choose another --to, or pass --force to replace it\n")
        #expect(try Data(contentsOf: shard) == original, "the existing file is untouched")
        let forced = try Self.run(arguments + ["--force"], in: folder)
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(forced.stdout.contains("isPrimaryKey") && forced.stdout.contains("person.person_id"))
        let inspect = try Self.run(["sites", "inspect", "built.sqlite"], in: folder)
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("omop-csv import") && inspect.stdout.contains("isPrimaryKey"))
        #expect(inspect.stdout.contains("cohort: none yet"))
    }

    @Test("sites build then sites inspect prints the shard's summary")
    func buildAndInspect() throws {
        let folder = try temporaryDirectory()
        try Data("name: Small\nseed: 3\npatients: 120\n".utf8).write(to: folder.appendingPathComponent("small.yaml"))
        let build = try Self.run(["sites", "build", "small.yaml"], in: folder)
        #expect(build.status == 0)
        #expect(build.stdout == "small.sqlite\n")
        let inspect = try Self.run(["sites", "inspect", "small.sqlite"], in: folder)
        #expect(inspect.status == 0)
        #expect(inspect.stdout.contains("cohort: 120 patients"))
        #expect(inspect.stdout.contains("outcome prevalence by subgroup"))
    }

    @Test("bench refuses sizes that cannot run, naming the option", arguments: [
        (["bench", "synthetic", "--sites", "0"], "--sites must be at least 1 (got 0)"),
        (["bench", "synthetic", "--patients", "0"], "--patients must be at least 1 (got 0)"),
        (["bench", "synthetic", "--rounds=-2"], "--rounds must be at least 1 (got -2)"),
        (["bench", "kernels", "--seconds=0"], "--seconds must be a positive number of seconds"),
        (["bench", "allocations", "--steps", "0"], "--steps must be at least 1 (got 0)"),
    ])
    func benchArguments(_ arguments: [String], _ message: String) throws {
        let result = try Self.run(arguments)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message))
        #expect(result.stdout.isEmpty)
    }

    @Test("run --check exits 2 when a claim fails, writes the report anyway, and refuses a scenario without claims")
    func check() throws {
        let folder = try tinyScenario()
        let url = folder.appendingPathComponent("tiny.yaml")
        let plain = try Self.run(["run", url.path, "--output-dir", folder.appendingPathComponent("Plain").path, "--quiet", "--check"])
        #expect(plain.status == 1)
        #expect(plain.stderr == "error: --check: '\(url.path)' has no expect: block, so there is nothing to check; add its claims first\n")
        let claims = try String(contentsOf: url, encoding: .utf8) + """

            expect:
              - {arm: bitfit, at_most: 1, of: full, quantity: bytes_up}
              - {arm: full, metric: auroc, above: 0.99}
            """
        try Data(claims.utf8).write(to: url)
        let out = folder.appendingPathComponent("Out")
        let result = try Self.run(["run", url.path, "--output-dir", out.path, "--quiet", "--check"])
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("error: 1 of 2 claims of '\(url.path)' do not hold:\n  ✘ full's AUROC is above 0.99: "))
        #expect(result.stdout == out.appendingPathComponent("tiny.md").path + "\n" || result.stdout.hasSuffix("tiny.md\n"))
        let report = try String(contentsOf: out.appendingPathComponent("tiny.md"), encoding: .utf8)
        #expect(report.contains("| ✔ | bitfit uses at most 1 × the bytes up of full |"))
        #expect(report.contains("| ✘ | full's AUROC is above 0.99 |"))
        // Without --check the same run succeeds: claims are reported, not enforced.
        let lenient = try Self.run(["run", url.path, "--output-dir", out.path, "--quiet"])
        #expect(lenient.status == 0)
    }

    @Test("an unknown option is refused with a usage hint")
    func unknownOption() throws {
        let result = try Self.run(["run", "Scenarios/quickstart.yaml", "--sede", "3"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--sede"))
    }

    @Test("report --output-dir elsewhere copies the files the report links to beside it, byte for byte")
    func reportElsewhere() throws {
        let folder = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try Self.run(["report", "Reports/quickstart/metrics.json", "--output-dir", folder.path])
        #expect(result.status == 0, "\(result.stderr)")
        for file in ["metrics.json", "predictions.csv", "pretrained.safetensors"] {
            let copied = FileManager.default.contents(atPath: folder.appendingPathComponent("quickstart/\(file)").path)
            #expect(copied == FileManager.default.contents(atPath: Self.root.appendingPathComponent("Reports/quickstart/\(file)").path),
                    "\(file) is not beside the redrawn report")
        }
        #expect(FileManager.default.contents(atPath: folder.appendingPathComponent("quickstart.md").path)
                == FileManager.default.contents(atPath: Self.root.appendingPathComponent("Reports/quickstart.md").path))
    }
}

/// `sitefit serve` and `sitefit site` processes on loopback.
@Suite("sites as separate processes")
struct DistributedCLITests {
    /// The tiny scenario with three sites and no pooled baseline (which a distributed run cannot have).
    static let scenario = TinyScenario.threeSites(baselines: "[pretrained, local]")

    /// A consortium in `folder/certs` (`sitefit certs`): its authority, a server certificate for
    /// 127.0.0.1 and one certificate per site.
    static func makeCertificates(in folder: URL, sites: [String]) throws {
        for arguments in [["certs", "init", "--consortium", "test"], ["certs", "server", "--host", "127.0.0.1"]] + sites.map({ ["certs", "site", $0] }) {
            let made = try CLITests.run(arguments, in: folder)
            #expect(made.status == 0, "\(arguments): \(made.stderr)")
        }
    }

    /// A process started in `directory`, its stderr collected as it comes.
    final class Running: @unchecked Sendable {
        let process = Process()
        private let lock = NSLock()
        private var errText = ""
        private let out = Pipe(), err = Pipe()

        init(_ arguments: [String], in directory: URL) throws {
            process.executableURL = CLITests.binary
            process.arguments = arguments
            process.currentDirectoryURL = directory
            process.standardOutput = out
            process.standardError = err
            err.fileHandleForReading.readabilityHandler = { [weak self] handle in
                let data = handle.availableData
                guard let self, !data.isEmpty else { return }
                self.lock.withLock { self.errText += String(decoding: data, as: UTF8.self) }
            }
            try process.run()
        }

        var stderr: String { lock.withLock { errText } }

        /// Waits for the process to exit (at most `seconds`, then kills it) and returns its status and stdout.
        func finish(within seconds: Double = 300) -> (status: Int32, stdout: String) {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self))
        }

        /// The port the server printed it listens on.
        func listeningPort(within seconds: Double = 120) -> Int? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let line = stderr.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }),
                   let port = line.split(separator: " ")[2].split(separator: ":").last.flatMap({ Int($0) }) {
                    return port
                }
                if !process.isRunning { return nil }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return nil
        }
    }

    @Test("a server and three site processes with certificates from `sitefit certs` write the in-process run's metrics.json; another authority's, an unknown and a revoked certificate are refused and the server goes on")
    func distributedRunMatchesInProcess() throws {
        let folder = try fixture(TinyScenario.threeSiteFiles(Self.scenario))
        let run = try CLITests.run(["run", "tiny.yaml", "--output-dir", "inproc", "--quiet"], in: folder)
        #expect(run.status == 0, "\(run.stderr)")
        try Self.makeCertificates(in: folder, sites: ["north", "south", "east", "west"])
        let fm = FileManager.default
        func kit(_ name: String, site: String, from source: URL) throws {
            let sites = folder.appendingPathComponent("\(name)/sites")
            try fm.createDirectory(at: sites, withIntermediateDirectories: true)
            try fm.copyItem(at: folder.appendingPathComponent("certs/ca.pem"), to: folder.appendingPathComponent("\(name)/ca.pem"))
            for ext in ["pem", "key"] {
                try fm.copyItem(at: source.appendingPathComponent("\(site).\(ext)"), to: sites.appendingPathComponent("north.\(ext)"))
            }
        }
        // Another authority's certificate for a scenario site; a certificate for a site the scenario lacks.
        let other = folder.appendingPathComponent("other")
        try fm.createDirectory(at: other, withIntermediateDirectories: true)
        #expect(try CLITests.run(["certs", "init", "--consortium", "elsewhere"], in: other).status == 0)
        #expect(try CLITests.run(["certs", "site", "north"], in: other).status == 0)
        try kit("forged", site: "north", from: other.appendingPathComponent("certs/sites"))
        try kit("unknown", site: "west", from: folder.appendingPathComponent("certs/sites"))
        // A revoked certificate: east's, superseded by --replace (which revokes the old one).
        let revoked = folder.appendingPathComponent("revoked/sites")
        try fm.createDirectory(at: revoked, withIntermediateDirectories: true)
        try fm.copyItem(at: folder.appendingPathComponent("certs/ca.pem"), to: folder.appendingPathComponent("revoked/ca.pem"))
        for ext in ["pem", "key"] {
            try fm.copyItem(at: folder.appendingPathComponent("certs/sites/east.\(ext)"), to: revoked.appendingPathComponent("east.\(ext)"))
        }
        #expect(try CLITests.run(["certs", "site", "east", "--replace"], in: folder).status == 0)

        let server = try Running(["serve", "tiny.yaml", "--listen", "127.0.0.1:0", "--output-dir", "distributed", "--quiet",
                                  "--join-timeout", "300"], in: folder)
        let port = try #require(server.listeningPort(), "the server printed no port: \(server.stderr)")
        func site(_ name: String, certs: String) throws -> Running {
            try Running(["site", "--scenario", "tiny.yaml", "--site", name, "--shard", "Sites/\(name).sqlite",
                         "--connect", "127.0.0.1:\(port)", "--certs", certs], in: folder)
        }
        for (certs, name, reason) in [("forged", "north", "UNKNOWN_CA"), ("unknown", "north", "not a site of this scenario"),
                                      ("revoked", "east", "revoked")] {
            let refused = try site(name, certs: certs)
            let status = refused.finish(within: 60).status
            #expect(status != 0, "\(certs) was admitted")
            #expect(refused.stderr.contains(reason), "\(certs): \(refused.stderr)")
        }
        let sites = try ["north", "south", "east"].map { try site($0, certs: "certs") }
        for (name, process) in zip(["north", "south", "east"], sites) {
            let status = process.finish().status
            #expect(status == 0, "site \(name): \(process.stderr)")
        }
        let served = server.finish()
        #expect(served.status == 0 && served.stdout == "distributed/tiny.md\n", "\(server.stderr)")
        let expected = try Data(contentsOf: folder.appendingPathComponent("inproc/tiny/metrics.json"))
        let actual = try Data(contentsOf: folder.appendingPathComponent("distributed/tiny/metrics.json"))
        #expect(actual == expected, "the distributed run's metrics.json differs from the in-process run's")
        #expect(try Data(contentsOf: folder.appendingPathComponent("distributed/tiny.md"))
                == Data(contentsOf: folder.appendingPathComponent("inproc/tiny.md")))
    }

    @Test("a site process killed mid-round is that round's dropout, reported as lost; restarted, it rejoins and the run finishes")
    func killedSiteIsADropout() throws {
        let folder = try fixture(TinyScenario.threeSiteFiles(Self.scenario.replacingOccurrences(of: "rounds: 2", with: "rounds: 3")))
        let run = try CLITests.run(["run", "tiny.yaml", "--output-dir", "inproc", "--quiet"], in: folder)
        #expect(run.status == 0, "\(run.stderr)")
        try Self.makeCertificates(in: folder, sites: ["north", "south", "east"])
        let server = try Running(["serve", "tiny.yaml", "--listen", "127.0.0.1:0", "--output-dir", "distributed", "--quiet",
                                  "--join-timeout", "300", "--reply-timeout", "120", "--rejoin-timeout", "120"], in: folder)
        let port = try #require(server.listeningPort(), "the server printed no port: \(server.stderr)")
        func site(_ name: String, _ extra: [String] = []) throws -> Running {
            try Running(["site", "--scenario", "tiny.yaml", "--site", name, "--shard", "Sites/\(name).sqlite",
                         "--connect", "127.0.0.1:\(port)", "--certs", "certs"] + extra, in: folder)
        }
        let crashing = try site("north", ["--crash-at-round", "2"])
        let others = try ["south", "east"].map { try site($0) }
        let crashed = crashing.finish(within: 300).status
        #expect(crashed == 86, "north did not crash as drilled: \(crashing.stderr)")
        // An operator restarts the site; it connects again and the server restores what it had opened.
        Thread.sleep(forTimeInterval: 1)
        let restarted = try site("north")
        for process in others + [restarted] {
            let status = process.finish().status
            #expect(status == 0, "\(process.stderr)")
        }
        let served = server.finish()
        #expect(served.status == 0 && served.stdout == "distributed/tiny.md\n", "\(server.stderr)")

        func arms(_ run: String) throws -> [String: [String: Any]] {
            let data = try Data(contentsOf: folder.appendingPathComponent("\(run)/tiny/metrics.json"))
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let list = try #require(object["arms"] as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: list.map { ($0["name"] as? String ?? "", $0) })
        }
        let distributed = try arms("distributed"), inProcess = try arms("inproc")
        var lost: [(arm: String, round: Int)] = []
        for (name, arm) in distributed {
            let rounds = arm["rounds"] as? [[String: Any]] ?? []
            for round in rounds {
                let absent = round["absent"] as? [[String: String]] ?? []
                guard !absent.isEmpty else { continue }
                #expect(absent == [["site": "north", "reason": "lost: disconnected"]], "\(name): \(absent)")
                #expect(!((round["accepted_sites"] as? [String]) ?? []).contains("north"))
                lost.append((name, round["round"] as? Int ?? -1))
            }
        }
        #expect(!lost.isEmpty && lost.allSatisfy { $0.round == 2 }, "north is lost in \(lost)")
        // Arms the crash did not touch are the in-process run's, number for number.
        for (name, arm) in distributed where !lost.contains(where: { $0.arm == name }) {
            let same = try JSONSerialization.data(withJSONObject: arm, options: .sortedKeys)
                == JSONSerialization.data(withJSONObject: try #require(inProcess[name]), options: .sortedKeys)
            #expect(same, "arm \(name) differs from the in-process run")
        }
        let report = try String(contentsOf: folder.appendingPathComponent("distributed/tiny.md"), encoding: .utf8)
        #expect(report.contains("site process lost (disconnected)"))
    }

    @Test("a server that cannot start says how to make its certificates and leaves no state behind; drills past the last round are refused")
    func serveRefusesEarly() throws {
        let folder = try fixture(TinyScenario.threeSiteFiles(Self.scenario))
        let noCertificates = try CLITests.run(["serve", "tiny.yaml", "--listen", "127.0.0.1:0", "--state-dir", "state", "--quiet"], in: folder)
        #expect(noCertificates.status != 0 && noCertificates.stderr.contains("sitefit certs init"), "\(noCertificates.stderr)")
        // Nothing was saved, so the state folder goes: a next start would otherwise "go on" from nothing.
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("state").path))
        let serverDrill = try CLITests.run(["serve", "tiny.yaml", "--listen", "127.0.0.1:0", "--crash-after-round", "3", "--quiet"], in: folder)
        #expect(serverDrill.status != 0 && serverDrill.stderr.contains("--crash-after-round 3 is past tiny.yaml's last round (2)"),
                "\(serverDrill.stderr)")
        let siteDrill = try CLITests.run(["site", "--scenario", "tiny.yaml", "--site", "north", "--shard", "Sites/north.sqlite",
                                          "--connect", "127.0.0.1:1", "--crash-at-round", "5"], in: folder)
        #expect(siteDrill.status != 0 && siteDrill.stderr.contains("--crash-at-round 5 is past tiny.yaml's last round (2)"),
                "\(siteDrill.stderr)")
    }

    @Test("a server stopped abruptly after a round is started again: it goes on from its last completed round (strategy moments, DP accountant) and writes the in-process run's metrics.json")
    func restartedServerResumes() throws {
        // The stateful arms first, so the drill stops the server inside them: FedAdam's moments and
        // the DP accountant must come back, and a personalised arm (sites keep their bias terms) starts again.
        let scenario = TinyScenario.scenario(sites: ["north", "south", "east"], federation: "rounds: 3\nbatch_size: 16", arms: """
              - {name: adam-dp, mode: bitfit, learning_rate: 0.01, strategy: fedadam, server_learning_rate: 0.01,
                 dp: {clip_norm: 0.5, noise_multiplier: 1.0, delta: 1.0e-5}}
              - {name: avgm, mode: full, strategy: fedavgm, server_momentum: 0.5}
              - {name: personal, mode: full, strategy: personalized}

            """, baselines: "[pretrained, local]")
        let folder = try fixture(TinyScenario.threeSiteFiles(scenario))
        let run = try CLITests.run(["run", "tiny.yaml", "--output-dir", "inproc", "--quiet"], in: folder)
        #expect(run.status == 0, "\(run.stderr)")
        try Self.makeCertificates(in: folder, sites: ["north", "south", "east"])
        func serve(port: Int, _ extra: [String]) throws -> Running {
            try Running(["serve", "tiny.yaml", "--listen", "127.0.0.1:\(port)", "--output-dir", "distributed",
                         "--state-dir", "state", "--join-timeout", "300"] + extra, in: folder)
        }
        let first = try serve(port: 0, ["--quiet", "--crash-after-round", "2"])
        let port = try #require(first.listeningPort(), "the server printed no port: \(first.stderr)")
        let sites = try ["north", "south", "east"].map {
            try Running(["site", "--scenario", "tiny.yaml", "--site", $0, "--shard", "Sites/\($0).sqlite",
                         "--connect", "127.0.0.1:\(port)", "--certs", "certs"], in: folder)
        }
        let stopped = first.finish(within: 300).status
        #expect(stopped == 87, "the server did not stop as drilled: \(first.stderr)")
        let progress = folder.appendingPathComponent("state/seed-5/arm-0.progress.json")
        #expect(FileManager.default.fileExists(atPath: progress.path), "no state after round 2")
        // Away for a few of the sites' one-second attempts, so that each attempt's logging shows.
        Thread.sleep(forTimeInterval: 3)
        // Started again on the same port; the sites, still running, connect to it again.
        let second = try serve(port: port, [])
        for process in sites {
            let status = process.finish().status
            #expect(status == 0, "\(process.stderr)")
            // The loss is said once, not at every one-second attempt while the server was away.
            #expect(process.stderr.components(separatedBy: "lost the server").count - 1 == 1, "\(process.stderr)")
        }
        let served = second.finish()
        #expect(served.status == 0 && served.stdout == "distributed/tiny.md\n", "\(second.stderr)")
        // It went on from round 2 rather than running the arm again (which would give the same numbers too).
        #expect(second.stderr.contains("[adam-dp] goes on after round 2"), "\(second.stderr)")
        #expect(!second.stderr.contains("[adam-dp] round 1/3"), "\(second.stderr)")
        let expected = try Data(contentsOf: folder.appendingPathComponent("inproc/tiny/metrics.json"))
        let actual = try Data(contentsOf: folder.appendingPathComponent("distributed/tiny/metrics.json"))
        #expect(actual == expected, "the resumed run's metrics.json differs from the in-process run's")
        // The state is gone once the report is written.
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("state").path))
    }

    @Test("OMOP databases in place, each only at its own site: the server and every agent load the scenario without the others' databases, the sites agree the covariates over the network, and metrics.json is the in-process run's")
    func omopSitesApart() throws {
        let scenario = """
            seed: 7
            sites:
              - omop: north.sqlite
              - omop: south.sqlite
              - omop: east.sqlite
            task:
              target: {concepts: [9202], domain: visit_occurrence, prior_observation_days: 0}
              outcome: {concepts: [316139], domain: condition_occurrence}
              time_at_risk: {start_days: 1, end_days: 365, minimum_days: 0}
            pretraining: none
            model: {hidden: [8]}
            federation: {rounds: 2, batch_size: 16}
            arms:
              - mode: full
              - mode: bitfit
                learning_rate: 0.01
            baselines: [pretrained, local]
            subgroups: {min_group_size: 15, bootstrap: 40}
            """
        let sites = ["north", "south", "east"]
        var files = ["all/task.yaml": scenario, "hub/task.yaml": scenario]
        for (k, site) in sites.enumerated() {
            files["all/\(site).yaml"] = "name: \(site)\nseed: \(k + 1)\npatients: 260\noutcome_prevalence: 0.25\n"
            files["\(site)/task.yaml"] = scenario
        }
        let folder = try fixture(files)
        let all = folder.appendingPathComponent("all"), hub = folder.appendingPathComponent("hub")
        for site in sites {
            #expect(try CLITests.run(["sites", "build", "\(site).yaml"], in: all).status == 0)
            try FileManager.default.copyItem(at: all.appendingPathComponent("\(site).sqlite"),
                                             to: folder.appendingPathComponent("\(site)/\(site).sqlite"))
        }
        let run = try CLITests.run(["run", "task.yaml", "--output-dir", "inproc", "--quiet"], in: all)
        #expect(run.status == 0, "\(run.stderr)")
        // The coordinator has none of the databases: `validate` checks the scenario as `serve` reads it
        // when told so, and otherwise names each missing database once, with no follow-on error.
        let unplaced = try CLITests.run(["validate", "task.yaml"], in: hub)
        let complaints = unplaced.stderr.split(separator: "\n")
        #expect(unplaced.status != 0 && complaints.count == 3 && sites.allSatisfy { unplaced.stderr.contains("\($0).sqlite") },
                "\(unplaced.stderr)")
        let elsewhere = try CLITests.run(["validate", "task.yaml", "--sites-elsewhere"], in: hub)
        #expect(elsewhere.status == 0 && elsewhere.stdout.contains("task.yaml: OK (3 sites"), "\(elsewhere.stdout)\(elsewhere.stderr)")
        try Self.makeCertificates(in: hub, sites: sites)
        let server = try Running(["serve", "task.yaml", "--listen", "127.0.0.1:0", "--output-dir", "distributed", "--quiet",
                                  "--join-timeout", "300"], in: hub)
        let port = try #require(server.listeningPort(), "the server printed no port: \(server.stderr)")
        let agents = try sites.map { site in
            try Running(["site", "--scenario", "task.yaml", "--site", site, "--omop", "\(site).sqlite",
                         "--connect", "127.0.0.1:\(port)", "--certs", hub.appendingPathComponent("certs").path],
                        in: folder.appendingPathComponent(site))
        }
        for (site, agent) in zip(sites, agents) {
            let status = agent.finish().status
            #expect(status == 0, "\(site): \(agent.stderr)")
            // An agent says when it joined and when the run ended, without --verbose.
            #expect(agent.stderr.contains("joined the federation at 127.0.0.1:\(port) as site \(site)")
                    && agent.stderr.contains("the server finished the run"), "\(site): \(agent.stderr)")
        }
        let served = server.finish()
        #expect(served.status == 0 && served.stdout == "distributed/task.md\n", "\(server.stderr)")
        let expected = try Data(contentsOf: all.appendingPathComponent("inproc/task/metrics.json"))
        let actual = try Data(contentsOf: hub.appendingPathComponent("distributed/task/metrics.json"))
        #expect(actual == expected, "the distributed OMOP run's metrics.json differs from the in-process run's")
        // Without a database of its own named by the scenario, an agent says so.
        let missing = try CLITests.run(["site", "--scenario", "task.yaml", "--site", "north", "--omop", "elsewhere.sqlite",
                                        "--connect", "127.0.0.1:\(port)", "--certs", "certs"], in: hub)
        #expect(missing.status != 0 && missing.stderr.contains("elsewhere.sqlite"), "\(missing.stderr)")
    }
}
