import ArgumentParser
import Foundation
import GRPCCore
import Logging
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitIdentity
import SiteFitNN
import SiteFitRemote
import SiteFitReport
import SiteFitScenario
import SiteFitSimulation
import SiteFitTransformer

@main
struct SiteFit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitefit",
        abstract: "Simulate federated fine-tuning (BitFit, full) of a pretrained model across hospital sites.",
        discussion: "Each site holds an OMOP-shaped SQLite shard that only its own actor reads. A scenario file "
            + "names the sites, the model and the arms to compare; `sitefit run` writes a Markdown report.",
        version: siteFitVersion,
        subcommands: [Run.self, Validate.self, Report.self, Sites.self, Model.self, Privacy.self, Certs.self, Serve.self, Site.self, Bench.self])
}

/// Prints a user-facing error without a stack trace and turns it into exit code 1.
func reportFailure(_ error: any Error) -> ExitCode {
    let message: String
    switch error {
    case let list as DiagnosticList: message = list.diagnostics.map { "error: \($0)" }.joined(separator: "\n")
    case let diagnostic as Diagnostic: message = "error: \(diagnostic)"
    case let error as UserFacingError: message = "error: \(error.message)"
    case let error as ShardError: message = "error: \(error)"
    case let error as SafetensorsError: message = "error: \(error)"
    case let error as Checkpoint.Failure: message = "error: \(error)"
    case let error as SeedListError: message = "error: \(error)"
    case let error as IdentityError: message = "error: \(error)"
    case let error as SiteUnavailable: message = "error: \(error)"
    case let error as RPCError: message = "error: \(error.code): \(error.message)" + (error.cause.map { " (\($0))" } ?? "")
    case let error as CocoaError: message = "error: \(error.localizedDescription)"
    // Anything else may describe itself with what it read (a decoder quotes the bad value, GRDB
    // prints the row): only its kind is shown.
    default: message = "error: \(String(describing: type(of: error)))"
    }
    FileHandle.standardError.write(Data((SafeText.terminal(message) + "\n").utf8))
    return ExitCode.failure
}

func bootstrapLogging(verbose: Bool, quietLevel: Logger.Level = .warning) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = verbose ? .info : quietLevel
        return handler
    }
}

extension SiteFit {
    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Regenerate a report and its charts from a saved metrics.json.",
            discussion: "Reads DIR/<scenario>/metrics.json and writes DIR/<scenario>.md and the SVG charts beside it, "
                + "byte-identical to what `sitefit run` wrote. With --output-dir elsewhere, metrics.json, predictions.csv and "
                + "pretrained.safetensors are copied beside the new report, so its links resolve.")

        @Argument(help: "A metrics.json written by `sitefit run`, e.g. Reports/quickstart/metrics.json.")
        var metrics: String

        @Option(name: .customLong("output-dir"), help: "Folder for the report (default: the folder above the metrics file's).")
        var outputDirectory: String?

        func run() throws {
            do {
                let url = URL(fileURLWithPath: metrics)
                let saved = try ReportWriter.readMetrics(url)
                let folder = outputDirectory.map { URL(fileURLWithPath: $0) }
                    ?? url.deletingLastPathComponent().deletingLastPathComponent()
                let (report, _) = try ReportWriter.writeReport(saved, to: folder)
                // Only a report redrawn elsewhere needs its data beside it; without --output-dir nothing but
                // the report and its charts is written (another run's files are never overwritten).
                if outputDirectory != nil {
                    try ReportWriter.copyData(from: url.deletingLastPathComponent(), report: report, name: saved.scenario.name)
                }
                print(report.relativePath)
            } catch {
                throw reportFailure(error)
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a scenario and write its report.",
            discussion: "Builds any missing site shard first. Writes DIR/<scenario>.md and DIR/<scenario>/ (metrics.json, predictions.csv, charts).")

        @Argument(help: "Scenario file (YAML), e.g. Scenarios/quickstart.yaml.")
        var scenario: String

        @Option(name: .customLong("output-dir"), help: "Folder for the report.")
        var outputDirectory: String = "Reports"

        @Option(help: "Run this one seed instead of the scenario's seed or seeds (pretraining, splits and training; shards keep their profile seeds).")
        var seed: UInt64?

        @Option(help: "Run these seeds instead of the scenario's: a list (100,101,102) or a range (100-104); the report gives every seed's mean and interval.")
        var seeds: String?

        func validate() throws {
            if seed != nil && seeds != nil { throw ValidationError("give either --seed or --seeds, not both") }
            if let seeds {
                do { _ = try SeedList.parse(seeds) } catch { throw ValidationError("--seeds: \(error.description)") }
            }
        }

        @Flag(help: "Print only the report path (no progress on stderr).")
        var quiet = false

        @Flag(help: "Exit with status 2 when a claim of the scenario's expect: block fails (the report is written either way).")
        var check = false

        @Flag(help: "Pretrain again even if .sitefit-cache holds a model with the same configuration and seed.")
        var noCache = false

        @Flag(help: "Log what each component does (to stderr).")
        var verbose = false

        @OptionGroup var budget: BudgetOptions

        func run() async throws {
            bootstrapLogging(verbose: verbose)
            do {
                var loaded = try ScenarioLoader.load(URL(fileURLWithPath: scenario))
                loaded.file = scenario
                if check && loaded.expectations.isEmpty {
                    throw UserFacingError("--check: '\(scenario)' has no expect: block, so there is nothing to check; add its claims first")
                }
                try ReportWriter.checkWritable(URL(fileURLWithPath: outputDirectory), name: loaded.name)
                if let seed { loaded = loaded.reseeded([seed]) }
                if let seeds { loaded = loaded.reseeded(try SeedList.parse(seeds)) }
                if let refusal = ResourceEstimate.of(loaded).refusal(within: budget.budget) { throw refusal }
                let cache = noCache ? nil : URL(fileURLWithPath: ".sitefit-cache")
                let display = ProgressDisplay(quiet: quiet, rounds: loaded.federation.rounds,
                                              arms: loaded.arms.count, seeds: 1 + loaded.extraSeeds.count)
                let result = try await Simulation.run(loaded, logger: Logger(label: "sitefit"), cacheDirectory: cache) { line in
                    display.show(line)
                }
                display.finish()
                let output = try ReportWriter.write(result.metrics, predictions: result.predictions, checkpoint: result.checkpoint,
                                                    to: URL(fileURLWithPath: outputDirectory))
                print(output.report.relativePath)
                let failed = (result.metrics.claims ?? []).filter { !$0.holds }
                if check && !failed.isEmpty {
                    FileHandle.standardError.write(Data(("error: \(failed.count) of \(result.metrics.claims?.count ?? 0) claims of '\(scenario)' "
                        + "do not hold:\n" + failed.map { "  ✘ \($0.statement): \(MarkdownReport.claimEvidence($0))\n" }.joined()).utf8))
                    throw ExitCode(2)
                }
            } catch let exit as ExitCode {
                throw exit
            } catch {
                throw reportFailure(error)
            }
        }
    }

    struct Model: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Work with model checkpoints.", subcommands: [Inspect.self])

        struct Inspect: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List a safetensors checkpoint's tensors, shapes, roles and parameter counts.")

            @Argument(help: "A .safetensors file, e.g. Reports/quickstart/pretrained.safetensors.")
            var file: String

            func run() throws {
                bootstrapLogging(verbose: false)
                do {
                    guard let data = FileManager.default.contents(atPath: file) else {
                        throw UserFacingError("checkpoint '\(file)' does not exist or cannot be read")
                    }
                    // A transformer's checkpoint names its vocabulary; an MLP's does not.
                    let isTransformer = (try? Safetensors.decode(Array(data)))?.metadata["vocabulary"] != nil
                    do {
                        if isTransformer {
                            let (model, vocabulary, notes) = try TransformerCheckpoint.decode(Array(data), file: file)
                            print(CheckpointText.render(model, vocabulary: vocabulary, notes: notes, file: file, bytes: data.count), terminator: "")
                        } else {
                            let (model, notes): (PretrainedModel<MLP>, [String: String]) = try Checkpoint.decode(Array(data), file: file)
                            print(CheckpointText.render(model, notes: notes, file: file, bytes: data.count), terminator: "")
                        }
                    } catch {
                        throw UserFacingError(error.description)
                    }
                } catch {
                    throw reportFailure(error)
                }
            }
        }
    }

    /// The resource budget `validate` and `run` hold a scenario's estimate to.
    struct BudgetOptions: ParsableArguments {
        @Option(name: .customLong("max-memory-gb"), help: "Refuse a scenario estimated to need more memory than this (GiB).")
        var maxMemoryGB: Double = ResourceEstimate.Budget.standard.memoryBytes / 1_073_741_824

        @Option(name: .customLong("max-tflop"), help: "Refuse a scenario estimated to need more floating-point work than this (TFLOP).")
        var maxTFLOP: Double = ResourceEstimate.Budget.standard.flops / 1e12

        var budget: ResourceEstimate.Budget { .init(memoryBytes: maxMemoryGB * 1_073_741_824, flops: maxTFLOP * 1e12) }

        func validate() throws {
            guard maxMemoryGB.isFinite, maxMemoryGB > 0, maxTFLOP.isFinite, maxTFLOP > 0 else {
                throw ValidationError("--max-memory-gb and --max-tflop must be positive numbers")
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a scenario and its site profiles without running anything.",
            discussion: "Prints every problem as file:line:column: field: problem and exits non-zero if there is one.")

        @Argument(help: "Scenario file (YAML).")
        var scenario: String

        @OptionGroup var budget: BudgetOptions

        @Flag(help: "Check it as `sitefit serve` reads it: the `omop:` sites' databases are at the sites, not on this machine.")
        var sitesElsewhere = false

        func run() throws {
            bootstrapLogging(verbose: false)
            do {
                let loaded = try ScenarioLoader.load(URL(fileURLWithPath: scenario), sitesElsewhere: sitesElsewhere)
                let estimate = ResourceEstimate.of(loaded)
                if let refusal = estimate.refusal(within: budget.budget) { throw refusal }
                print("\(scenario): OK (\(loaded.sites.count) sites, \(loaded.arms.count) arms, \(loaded.federation.rounds) rounds; \(estimate.summary))")
            } catch {
                throw reportFailure(error)
            }
        }
    }

    struct Sites: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Work with site profiles and their shards.", subcommands: [Build.self, Inspect.self, Import.self, Export.self, Split.self])

        struct Split: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Cut one OMOP shard into several sites, each person with all of their rows.",
                discussion: "Writes <name>-1.sqlite … <name>-K.sqlite into --to, each with its persons' rows of every table and the shared "
                    + "vocabulary. With --by care_site, persons go by their care site when the data has at least K of them (largest "
                    + "first, to the smallest part); otherwise, and for persons without one, by a seeded hash of person_id. The source "
                    + "is opened read-only.")

            @Argument(help: "An OMOP shard, e.g. one `sitefit sites import omop` wrote.")
            var shard: String

            @Option(name: .customLong("sites"), help: "How many sites to make (at least 2).")
            var parts: Int

            @Option(help: "Folder for the new shards.")
            var to: String

            @Option(help: "How to assign persons: care_site or hash.")
            var by: String = "hash"

            @Option(help: "The seed of the hash.")
            var seed: UInt64 = 42

            @Option(help: "Base name of the new shards (default: the source's file name).")
            var name: String?

            @Flag(help: "Replace existing files.")
            var force = false

            func run() throws {
                bootstrapLogging(verbose: false)
                do {
                    let url = URL(fileURLWithPath: shard)
                    let site = url.deletingPathExtension().lastPathComponent
                    guard ["care_site", "hash"].contains(by) else {
                        throw ShardError(site: site, file: shard, problem: "--by must be care_site or hash")
                    }
                    let folder = URL(fileURLWithPath: to)
                    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                    let result = try ShardSplit.split(SiteShard(site: site, url: url), parts: parts, into: folder, name: name ?? site,
                                                      byCareSite: by == "care_site", seed: seed, force: force)
                    if by == "care_site" && result.method == .hash {
                        print("the data has fewer than \(parts) care sites with persons: split by a seeded hash of person_id instead")
                    }
                    for part in result.parts { print("\(part.file.relativePath)  \(part.persons) persons") }
                } catch {
                    throw reportFailure(error)
                }
            }
        }

        struct Import: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Turn real data into site shards.", subcommands: [HeartDisease.self, OMOP.self])

            struct HeartDisease: ParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "heart-disease",
                    abstract: "Import the four UCI Heart Disease hospitals (FLamby Fed-Heart-Disease) as shards.",
                    discussion: "Reads processed.{cleveland,hungarian,switzerland,va}.data and flamby-split.csv; writes <site>.sqlite into --to. The data ship in Sites/heart-disease (CC BY 4.0, see its README).")

                @Option(help: "Folder with the UCI files and flamby-split.csv.")
                var from: String = "Sites/heart-disease"

                @Option(help: "Folder for the four shards.")
                var to: String = "Sites/heart-disease"

                func run() throws {
                    bootstrapLogging(verbose: false)
                    do {
                        for url in try HeartDiseaseImport.importAll(from: URL(fileURLWithPath: from), to: URL(fileURLWithPath: to)) {
                            print(url.relativePath)
                        }
                    } catch {
                        throw reportFailure(error)
                    }
                }
            }

            struct OMOP: ParsableCommand {
                static let configuration = CommandConfiguration(
                    commandName: "omop",
                    abstract: "Import a folder (or zip) of OMOP CDM CSV files, as OHDSI tools export them, as one shard.",
                    discussion: """
                        CDM v5.3 or v5.4, one <table>.csv per table (any case, columns in any order, extra columns ignored). \
                        person.csv and observation_period.csv are needed; visit_occurrence, condition_occurrence, drug_exposure, \
                        procedure_occurrence, measurement, observation, death, cohort, concept, concept_ancestor, care_site, \
                        cdm_source and metadata are read when present. Duplicate ids, empty values, orphan rows and implausible \
                        values do not stop the import: they are counted as OHDSI Data Quality Dashboard checks, printed, and \
                        kept in the shard for `sitefit sites inspect`.
                        """)

                @Option(help: "Folder with <table>.csv files, or a .zip of one (unpacked with unzip).")
                var from: String

                @Option(help: "The shard file to write, e.g. Sites/my-hospital.sqlite.")
                var to: String

                @Option(help: "The site's id, used in reports and errors.")
                var name: String

                @Flag(help: "Replace an existing file at --to.")
                var force = false

                func run() throws {
                    bootstrapLogging(verbose: false)
                    do {
                        let target = URL(fileURLWithPath: to)
                        if FileManager.default.fileExists(atPath: target.path) && !force {
                            throw ShardError(site: name, file: target.relativePath,
                                             problem: "the file exists; choose another --to, or pass --force to replace it")
                        }
                        let summary = try OMOPExport.importExport(URL(fileURLWithPath: from), to: target, name: name)
                        print(OMOPImportText.render(summary))
                        print(to)
                    } catch {
                        throw reportFailure(error)
                    }
                }
            }
        }

        struct Export: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Write a shard's OMOP tables as CSV files (one per table).")

            @Argument(help: "A shard file.")
            var shard: String

            @Option(help: "Folder for the CSV files.")
            var to: String

            @Flag(help: "Upper-case file and column names, as some OHDSI tools write them.")
            var upperCase = false

            func run() throws {
                bootstrapLogging(verbose: false)
                do {
                    let url = URL(fileURLWithPath: shard)
                    try OMOPCSV.export(SiteShard(site: url.deletingPathExtension().lastPathComponent, url: url),
                                       to: URL(fileURLWithPath: to), upperCaseHeaders: upperCase)
                    print(to)
                } catch {
                    throw reportFailure(error)
                }
            }
        }

        struct Inspect: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Summarise a shard: table sizes, outcome, demographics, lab missingness and units, subgroup prevalence.",
                discussion: "Aggregates only; no patient row is printed. Counts under --min-cell-count are shown as <N, and no "
                    + "outcome rate is given for a group under \(ShardInspection.minimumGroupSize) patients or one whose patients "
                    + "with or without the outcome are such a small cell.")

            @Argument(help: "A shard file, e.g. Sites/riverside-general.sqlite.")
            var shard: String

            @Option(name: .customLong("min-cell-count"), help: "The smallest count shown as a number.")
            var minimumCellCount: Int = ShardInspection.defaultMinimumCellCount

            func validate() throws {
                guard minimumCellCount >= 1 else { throw ValidationError("--min-cell-count must be at least 1 (got \(minimumCellCount))") }
            }

            func run() throws {
                bootstrapLogging(verbose: false)
                do {
                    let url = URL(fileURLWithPath: shard)
                    let site = url.deletingPathExtension().lastPathComponent
                    print(InspectionText.render(try SiteShard(site: site, url: url).inspect(minimumCellCount: minimumCellCount)),
                          terminator: "")
                } catch {
                    throw reportFailure(error)
                }
            }
        }

        struct Build: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Build each profile's OMOP SQLite shard (same profile, same shard).",
                discussion: "Writes <id>.sqlite next to each profile, or into --output-dir. An existing shard is replaced atomically.")

            @Argument(help: "Site profile files, e.g. Sites/riverside-general.yaml.")
            var profiles: [String]

            @Option(name: .customLong("output-dir"), help: "Folder for the shards (default: next to each profile).")
            var outputDirectory: String?

            func validate() throws {
                if profiles.isEmpty { throw ValidationError("name at least one profile, e.g. Sites/riverside-general.yaml") }
            }

            func run() throws {
                bootstrapLogging(verbose: false)
                do {
                    for path in profiles {
                        let profile = try SiteProfileLoader.load(URL(fileURLWithPath: path))
                        // Printed as the user would type it: relative when they gave relative paths.
                        let folder = outputDirectory ?? (path as NSString).deletingLastPathComponent
                        let shard = folder.isEmpty ? "\(profile.id).sqlite" : (folder as NSString).appendingPathComponent("\(profile.id).sqlite")
                        try ShardBuilder.build(profile: profile, to: URL(fileURLWithPath: shard))
                        print(shard)
                    }
                } catch {
                    throw reportFailure(error)
                }
            }
        }
    }
}
