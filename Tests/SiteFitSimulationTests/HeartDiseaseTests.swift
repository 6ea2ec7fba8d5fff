import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitReport
@testable import SiteFitScenario
@testable import SiteFitSimulation
import SiteFitFederation
import SiteFitNN
import SiteFitTestSupport

/// The FLamby Fed-Heart-Disease scenario on a copy of the repository's UCI files: it parses,
/// imports its shards on demand, runs, and its accuracies can be recomputed from predictions.csv.
@Suite("Real data: the FLamby heart-disease scenario")
struct HeartDiseaseTests {
    /// Scenarios/heart-disease-flamby.yaml and Sites/heart-disease/ copied into a fresh folder.
    static func copy(_ name: String = #function) throws -> URL {
        let folder = try temporaryDirectory(name)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("Scenarios"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("Sites/heart-disease"), withIntermediateDirectories: true)
        let data = repositoryRoot.appendingPathComponent("Sites/heart-disease")
        for file in ["flamby-split.csv"] + ["cleveland", "hungarian", "switzerland", "va"].map({ "processed.\($0).data" }) {
            try FileManager.default.copyItem(at: data.appendingPathComponent(file),
                                             to: folder.appendingPathComponent("Sites/heart-disease/\(file)"))
        }
        for scenario in ["heart-disease-flamby.yaml", "heart-disease-transfer.yaml"] {
            try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("Scenarios/\(scenario)"),
                                             to: folder.appendingPathComponent("Scenarios/\(scenario)"))
        }
        return folder
    }

    @Test("the scenario states FLamby's protocol: four real sites, 13 features, logistic regression, no pretraining, 20 seeds")
    func parses() throws {
        let scenario = try ScenarioLoader.load(Self.copy().appendingPathComponent("Scenarios/heart-disease-flamby.yaml"))
        #expect(scenario.dataset == .heartDisease && scenario.sites.allSatisfy(\.importedHeartDisease))
        #expect(scenario.sites.map(\.profile.id) == ["cleveland", "hungarian", "switzerland", "va"])
        #expect(scenario.model.hiddenSizes.isEmpty && scenario.model.inputSize == 13 && !scenario.pretraining.enabled)
        #expect(scenario.seed == 42 && scenario.extraSeeds == Array(43...61).map(UInt64.init))
        #expect(scenario.federation.localSteps == 100 && scenario.federation.batchSize == 4 && scenario.federation.rounds == 15)
        #expect(scenario.baselineTraining == Scenario.BaselineTraining(optimizer: .adam, learningRate: 0.001, epochs: 50))
        #expect(scenario.reference?.meanSiteAccuracy.count == 10)
    }

    @Test("one seed runs every method; per-site accuracies recompute from predictions.csv; local i is scored at every site")
    func runs() async throws {
        let folder = try Self.copy()
        var scenario = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/heart-disease-flamby.yaml"))
        scenario.extraSeeds = []
        scenario.subgroups.bootstrapReplicates = 10
        let result = try await Simulation.run(scenario)
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("Sites/heart-disease/va.sqlite").path))
        #expect(result.metrics.arms.map(\.name) == ["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "pooled (simulation only)",
                                                    "local cleveland", "local hungarian", "local switzerland", "local va"])
        #expect(result.metrics.sites.map(\.testSize) == [104, 89, 16, 45] && result.metrics.sites.map(\.trainSize) == [199, 172, 30, 85])
        for arm in result.metrics.arms {
            #expect((0.45...0.9).contains(arm.final.meanSiteAccuracy), "\(arm.name): \(arm.final.meanSiteAccuracy)")
            #expect(Set(arm.final.perSite.keys) == ["cleveland", "hungarian", "switzerland", "va"])
            // Recompute every site's accuracy from the CSV rows (threshold 0.5).
            let csv = ReportWriter.predictionsCSV(result.predictions.filter { $0.arm == arm.name })
            var correct: [String: (Int, Int)] = [:]
            for line in csv.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                let (site, label, score) = (fields[fields.count - 8], Int(fields[fields.count - 6])!, Float(fields[fields.count - 5])!)
                let right = (score >= 0.5) == (label == 1)
                correct[site, default: (0, 0)] = (correct[site, default: (0, 0)].0 + (right ? 1 : 0), correct[site, default: (0, 0)].1 + 1)
            }
            for (site, count) in correct {
                #expect(Double(count.0) / Double(count.1) == arm.final.perSite[site]!.accuracy, "\(arm.name) at \(site)")
            }
        }
        #expect(result.metrics.reference?.meanSiteAccuracy["fedavg"] == 0.685)
        let markdown = MarkdownReport.render(result.metrics)
        #expect(markdown.contains("### Against the published numbers") && markdown.contains("initial model"))
    }

    @Test("transfer: pretrained on Cleveland's train rows only, fine-tuned at the other three; personalised BitFit shares the head weight alone")
    func transfer() async throws {
        let folder = try Self.copy()
        var scenario = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/heart-disease-transfer.yaml"))
        #expect(scenario.pretraining.heartDiseaseShards.map(\.lastPathComponent) == ["cleveland.sqlite"])
        #expect(scenario.sites.map(\.profile.id) == ["hungarian", "switzerland", "va"])
        scenario.extraSeeds = []
        scenario.subgroups.bootstrapReplicates = 10
        let result = try await Simulation.run(scenario)
        #expect(result.metrics.pretraining.sourcePatients == 199 && result.metrics.pretraining.source?.contains("Cleveland") == true)
        let personal = try #require(result.metrics.arms.first { $0.name == "personalised-bitfit" })
        #expect(personal.privacy.tensorsExposed == ["layers.2.weight"] && personal.privacy.parametersExposed == 32)
        #expect(Set(personal.final.perSite.keys) == ["hungarian", "switzerland", "va"])
        // Cleveland is the source: none of its patients is tested.
        #expect(!result.predictions.contains { $0.site == "cleveland" })
    }

    @Test("a source site cannot also be a federation site")
    func sourceIsNotASite() throws {
        let folder = try Self.copy()
        let url = folder.appendingPathComponent("Scenarios/heart-disease-transfer.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
            .replacingOccurrences(of: "  - heart_disease: ../Sites/heart-disease/va.sqlite\n",
                                  with: "  - heart_disease: ../Sites/heart-disease/va.sqlite\n  - heart_disease: ../Sites/heart-disease/cleveland.sqlite\n")
        try Data(text.utf8).write(to: url)
        let found = diagnostics { _ = try ScenarioLoader.load(url) }
        #expect(found.contains { $0.field == "pretraining.heart_disease[0]" && $0.problem.contains("also a federation site") })
    }

    @Test("heart_disease sites are checked: a wrong site name, a mixed scenario, a missing data folder")
    func errors() throws {
        let folder = try Self.copy()
        let url = folder.appendingPathComponent("Scenarios/heart-disease-flamby.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        for (from, to, expected) in [("va.sqlite", "vaa.sqlite", "did you mean 'va.sqlite'?"),
                                     ("  dataset: heart-disease\n", "  lookback_days: 365\n", "need `task: {dataset: heart-disease}`"),
                                     ("../Sites/heart-disease/cleveland", "../Elsewhere/cleveland", "neither the shard nor the UCI file")] {
            try Data(text.replacingOccurrences(of: from, with: to).utf8).write(to: url)
            let found = diagnostics { _ = try ScenarioLoader.load(url) }
            #expect(found.contains { $0.problem.contains(expected) }, "\(expected): \(found)")
        }
    }
}

@Suite("Pooled baseline rows")
struct PooledRowsTests {
    @Test("sites with their own standardisation are pooled FLamby's way: raw rows standardised with the pooled train statistics")
    func flambyPooling() {
        // Site A raw rows 1, 3 and site B 5, 7 (one column): pooled mean 4, sample sd √(20/3).
        let a = PooledRows(standardized: Dataset(features: [-0.7, 0.7], labels: [0, 1], columns: 1), raw: [1, 3])
        let b = PooledRows(standardized: Dataset(features: [-0.7, 0.7], labels: [1, 0], columns: 1), raw: [5, 7])
        let pooled = Simulation.pooledDataset([a, b], columns: 1)
        let sd = (20.0 / 3).squareRoot()
        let expected: [Double] = [-3 / sd, -1 / sd, 1 / sd, 3 / sd]
        for (value, want) in zip(pooled.features, expected) { #expect(abs(Double(value) - want) < 1e-6) }
        #expect(pooled.labels == [0, 1, 1, 0])
        // Sites sharing one standardiser give their rows as they train on them.
        let shared = Simulation.pooledDataset([PooledRows(standardized: a.standardized, raw: nil), PooledRows(standardized: b.standardized, raw: nil)],
                                              columns: 1)
        #expect(shared.features == [-0.7, 0.7, -0.7, 0.7])
    }
}

@Suite("Baseline row names")
struct BaselineNameTests {
    @Test("the names the loader reserves for baselines are exactly the ones the report writes")
    func agree() {
        let written = [true, false].flatMap { pretrained in [ArmKind.Baseline.startingModel, .startingMLP].map { $0.armName(startsPretrained: pretrained) } }
            + [ArmKind.Baseline.localOnly, .pooled, .localAt(site: "alpha"), .localAt(site: "beta")].map { $0.armName(startsPretrained: true) }
        #expect(Set(written) == Scenario.Baseline.reservedArmNames(siteIds: ["alpha", "beta"]))
    }
}
