import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitEHR
@testable import SiteFitFederation
@testable import SiteFitNN
@testable import SiteFitTuning

@Suite("FedAvg and the server")
struct FederationTests {
    let mlp = MLP(MLPConfiguration(inputSize: 3, hiddenSizes: [2]))

    @Test("FedAvg weights each update by its train size")
    func fedAvgArithmetic() {
        // (100·[1, 2] + 300·[5, −2]) / 400 = [0.25 + 3.75, 0.5 − 1.5] = [4, −1]
        #expect(FedAvg.aggregate([([1, 2], 100), ([5, -2], 300)]) == [4, -1])
        // three sites: (1·3 + 2·6 + 1·0) / 4 = 3.75
        #expect(FedAvg.aggregate([([3], 1), ([6], 2), ([0], 1)]) == [3.75])
        // a single update is returned unchanged
        #expect(FedAvg.aggregate([([0.1, 0.2], 7)]) == [0.1, 0.2])
    }

    func update(_ tensors: [NamedTensor], round: Int = 1, trainSize: String = "10") -> [UInt8] {
        Safetensors.encode(tensors, metadata: ["round": String(round), "train_size": trainSize, "site": "s"])
    }

    func biases(_ value: Float) -> [NamedTensor] {
        [NamedTensor(name: "layers.0.bias", shape: [2], values: [value, value]),
         NamedTensor(name: "layers.1.bias", shape: [1], values: [value])]
    }

    @Test("the server averages valid BitFit updates")
    func acceptsValid() async {
        let selection = FineTuningMode.bitfit.selection(for: mlp.layout)
        let server = FederatedServer(pretrained: [Float](repeating: 0, count: mlp.layout.count), selection: selection)
        let outcome = await server.aggregate(round: 1, updates: [("a", update(biases(1), trainSize: "10")),
                                                                   ("b", update(biases(4), trainSize: "20"))])
        #expect(outcome.acceptedSites == ["a", "b"])
        #expect(outcome.rejected.isEmpty)
        #expect(await server.globalValues() == [3, 3, 3])
    }

    @Test("the server folds each tensor into its own place, whatever order a blob stores them in")
    func tensorOrder() async {
        let selection = FineTuningMode.bitfit.selection(for: mlp.layout)
        let server = FederatedServer(pretrained: [Float](repeating: 0, count: mlp.layout.count), selection: selection)
        let first = [NamedTensor(name: "layers.0.bias", shape: [2], values: [1, 2]),
                     NamedTensor(name: "layers.1.bias", shape: [1], values: [3])]
        let second = [NamedTensor(name: "layers.1.bias", shape: [1], values: [9]),           // stored first
                      NamedTensor(name: "layers.0.bias", shape: [2], values: [5, 6])]
        let outcome = await server.aggregate(round: 1, updates: [("a", update(first, trainSize: "30")),
                                                                   ("b", update(second, trainSize: "10"))])
        #expect(outcome.acceptedSites == ["a", "b"])
        // (30·[1, 2, 3] + 10·[5, 6, 9]) / 40 = [2, 3, 4.5]
        #expect(await server.globalValues() == [2, 3, 4.5])
        // What a site writes from its parameter buffer is what `Safetensors.encode` makes of the same tensors.
        let parameters = (0..<mlp.layout.count).map { Float($0) * 0.5 }
        let tensors = selection.tensors.map { NamedTensor(name: $0.name, shape: $0.shape, values: Array(parameters[$0.range])) }
        #expect(WireFormat.encode(parameters: parameters, selection: selection, metadata: ["k": "v"])
                == Safetensors.encode(tensors, metadata: ["k": "v"]))
        var applied = [Float](repeating: -1, count: mlp.layout.count)
        _ = try? WireFormat.apply(Safetensors.encode(tensors), selection: selection, to: &applied)
        for spec in selection.tensors { #expect(Array(applied[spec.range]) == Array(parameters[spec.range])) }
        #expect(applied.filter { $0 == -1 }.count == mlp.layout.count - selection.count, "only the selection is written")
    }

    @Test("the server rejects an update with a key outside the selection")
    func rejectsExtraKey() async {
        let selection = FineTuningMode.bitfit.selection(for: mlp.layout)
        let server = FederatedServer(pretrained: [Float](repeating: 0, count: mlp.layout.count), selection: selection)
        let leaky = biases(9) + [NamedTensor(name: "layers.0.weight", shape: [2, 3], values: [1, 2, 3, 4, 5, 6])]
        let outcome = await server.aggregate(round: 1, updates: [("honest", update(biases(1))), ("leaky", update(leaky))])
        #expect(outcome.acceptedSites == ["honest"])
        #expect(outcome.rejected == [RejectedUpdate(site: "leaky", reason: "unexpected key 'layers.0.weight' (not in the selection)")])
        #expect(await server.globalValues() == [1, 1, 1], "the rejected update must not enter the average")
    }

    @Test("the server fails closed on a missing key, a wrong shape, a non-finite value, a bad round or size")
    func rejectsMalformed() async {
        let selection = FineTuningMode.bitfit.selection(for: mlp.layout)
        let server = FederatedServer(pretrained: [Float](repeating: 0, count: mlp.layout.count), selection: selection)
        let wrongShape = [NamedTensor(name: "layers.0.bias", shape: [1, 2], values: [1, 1]),
                          NamedTensor(name: "layers.1.bias", shape: [1], values: [1])]
        let outcome = await server.aggregate(round: 1, updates: [
            ("missing", update(Array(biases(1).prefix(1)))),
            ("shape", update(wrongShape)),
            ("nan", update(biases(.nan))),
            ("round", update(biases(1), round: 2)),
            ("size", update(biases(1), trainSize: "0")),
            ("garbage", [1, 2, 3]),
        ])
        #expect(outcome.acceptedSites.isEmpty)
        #expect(outcome.rejected.map(\.site) == ["missing", "shape", "nan", "round", "size", "garbage"])
        #expect(outcome.rejected[0].reason == "missing key 'layers.1.bias'")
        #expect(outcome.rejected[1].reason == "key 'layers.0.bias' has shape [1, 2], expected [2]")
        #expect(outcome.rejected[2].reason == "key 'layers.0.bias' holds a non-finite value")
        #expect(await server.globalValues() == [0, 0, 0], "no accepted update leaves the model unchanged")
    }
}

@Suite("Site actors")
struct SiteActorTests {
    static func site(patients: Int = 300, test: String = #function) throws -> (SiteActor<MLP>, PretrainedModel<MLP>, URL) {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("sitefit-site-\(ProcessInfo.processInfo.processIdentifier)-\(test.filter { $0.isLetter })")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent("site.sqlite")
        if !FileManager.default.fileExists(atPath: url.path) {
            try ShardBuilder.build(profile: SiteProfile(id: "site", name: "Site", seed: 3, patients: patients), to: url)
        }
        let columns = FeatureSpec.heartFailure.columnNames.count
        let mlp = MLP(MLPConfiguration(inputSize: columns, hiddenSizes: [8]))
        var random = RandomStream(seed: 1, "init")
        let model = PretrainedModel(network: mlp, parameters: mlp.initialParameters(random: &random),
                                    standardizer: Standardizer(means: .init(repeating: 0, count: columns),
                                                               standardDeviations: .init(repeating: 1, count: columns)),
                                    columns: FeatureSpec.heartFailure.columnNames)
        let shard = try SiteShard(site: "site", url: url)
        return (try SiteActor(source: ShardCohortSource(shard: shard, spec: .heartFailure, testFraction: 0.3), model: model, seed: 11, maxBatch: 64),
                model, url)
    }

    @Test("a BitFit site sends exactly the bias tensors, and frozen weights stay pretrained")
    func sendsOnlySelection() async throws {
        let (site, model, _) = try Self.site()
        let selection = FineTuningMode.bitfit.selection(for: model.network.layout)
        await site.begin(network: model.network, parameters: model.parameters, selection: selection)
        let server = FederatedServer(pretrained: model.parameters, selection: selection)
        let update = try await site.localUpdate(
            arm: "bitfit", round: 1, broadcast: await server.broadcast(round: 1),
            configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.01),
                                                 epochs: 1, batchSize: 16))
        let (tensors, metadata) = try Safetensors.decode(update.blob)
        #expect(Set(tensors.map(\.name)) == ["layers.0.bias", "layers.1.bias"])
        #expect(metadata["train_size"] == String(site.trainSize))
        #expect(site.trainSize + site.testSize == 300)
    }

    @Test("the split and local training are identical for the same seed")
    func deterministic() async throws {
        let (a, model, _) = try Self.site()
        let (b, _, _) = try Self.site()
        let selection = FineTuningMode.full.selection(for: model.network.layout)
        let configuration = TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .sgd, learningRate: 0.05),
                                                  epochs: 2, batchSize: 8)
        let broadcast = WireFormat.encode(parameters: model.parameters, selection: selection,
                                          metadata: ["kind": "broadcast", "round": "1"])
        await a.begin(network: model.network, parameters: model.parameters, selection: selection)
        await b.begin(network: model.network, parameters: model.parameters, selection: selection)
        let ua = try await a.localUpdate(arm: "x", round: 1, broadcast: broadcast, configuration: configuration)
        let ub = try await b.localUpdate(arm: "x", round: 1, broadcast: broadcast, configuration: configuration)
        #expect(ua.blob == ub.blob)
    }
}
