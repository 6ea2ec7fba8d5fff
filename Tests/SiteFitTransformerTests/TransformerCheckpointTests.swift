import Foundation
import Testing
import SiteFitCore
import SiteFitNN
@testable import SiteFitTransformer
import SiteFitTestSupport

@Suite("Transformer checkpoints: safetensors with the vocabulary, read back by SiteFit and by numpy")
struct TransformerCheckpointTests {
    static let configuration = TransformerConfiguration(vocabularySize: 9, timeBuckets: 8, maxLength: 6, width: 8, heads: 2, layers: 2,
                                                        feedForwardWidth: 16)
    static let vocabulary = ["condition_occurrence:201826", "condition_occurrence:316866", "drug_exposure:1503297",
                             "measurement:3004410:high", "measurement:3004410:normal", "procedure_occurrence:4230911"]
    /// Four patients: full, short, one token, nothing.
    static let tokens: [[[Int]]] = [
        [[3, 6, 0], [5, 4, 1], [8, 4, 1], [4, 2, 0], [7, 1, 1], [3, 0, 0]],
        [[6, 3, 0], [7, 3, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
        [[2, 7, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
    ]
    static let folder = repositoryRoot.appendingPathComponent("Tests/Reference/fixtures")

    static func fixture() -> PretrainedModel<Transformer> {
        let model = Transformer(configuration)
        var random = RandomStream(seed: 19, "transformer-checkpoint-fixture")
        let parameters = (0..<model.layout.count).map { _ in Float(random.gaussian() * 0.4) }
        return PretrainedModel(network: model, parameters: parameters, standardizer: .identity(columns: configuration.inputSize),
                               columns: (0..<configuration.maxLength).flatMap { ["t\($0).code", "t\($0).time", "t\($0).segment"] })
    }

    static func logits(_ model: PretrainedModel<Transformer>) -> [Float] {
        let input = tokens.flatMap { $0.flatMap { $0.map(Float.init) } }
        let workspace = model.network.makeWorkspace(capacity: tokens.count)
        model.parameters.withUnsafeBufferPointer { p in input.withUnsafeBufferPointer { x in
            model.network.forward(parameters: p.baseAddress!, input: x.baseAddress!, batch: tokens.count, workspace: workspace)
        } }
        return Array(UnsafeBufferPointer(start: workspace.logits, count: tokens.count))
    }

    @Test("the committed fixture is what this code writes, and its logits are this code's (Tests/Reference/transformer_numpy.py reproduces them)")
    func fixtureIsCurrent() throws {
        let model = Self.fixture()
        let bytes = TransformerCheckpoint.encode(model, vocabulary: Self.vocabulary)
        Golden.expect(Data(bytes), matches: Self.folder.appendingPathComponent("transformer-small.safetensors"))
        struct Case: Encodable { var tokens: [[[Int]]]; var logits: [Double] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(Case(tokens: Self.tokens, logits: Self.logits(model).map(Double.init)))
        Golden.expect(String(decoding: json, as: UTF8.self) + "\n", matches: Self.folder.appendingPathComponent("transformer-small.json"))
    }

    @Test("a checkpoint reads back: the same parameters, vocabulary and logits")
    func roundTrip() throws {
        let model = Self.fixture()
        let decoded = try TransformerCheckpoint.decode(TransformerCheckpoint.encode(model, vocabulary: Self.vocabulary, notes: ["seed": "19"]),
                                                      file: "x.safetensors")
        #expect(decoded.model.parameters == model.parameters && decoded.model.network == model.network)
        #expect(decoded.vocabulary == Self.vocabulary && decoded.notes == ["seed": "19"])
        #expect(Self.logits(decoded.model) == Self.logits(model))
        #expect(TransformerCheckpoint.timeBucketUpperDays == [0, 7, 30, 90, 180, 365, 730])
    }

    @Test("hostile metadata is refused with a reason, never a crash",
          arguments: ["\"heads\":0", "\"heads\":3", "\"width\":0", "\"layers\":-1", "\"maxLength\":100000", "\"vocabularySize\":2",
                      "\"vocabularySize\":99999999"])
    func hostile(_ replacement: String) throws {
        let bytes = TransformerCheckpoint.encode(Self.fixture(), vocabulary: Self.vocabulary)
        var (tensors, metadata) = try Safetensors.decode(bytes)
        let key = String(replacement.split(separator: ":")[0])
        let model = metadata["model"]!
        let pattern = try Regex(key + ":[0-9-]+")
        metadata["model"] = model.replacing(pattern, with: replacement)
        #expect(metadata["model"] != model)
        #expect(throws: Checkpoint.Failure.self) { try TransformerCheckpoint.decode(Safetensors.encode(tensors, metadata: metadata), file: "bad") }
        tensors.removeAll()
    }

    @Test("a vocabulary that does not name every code id once is refused")
    func vocabularyMismatch() throws {
        let short = TransformerCheckpoint.encode(Self.fixture(), vocabulary: Array(Self.vocabulary.dropLast()))
        #expect(throws: Checkpoint.Failure.self) { try TransformerCheckpoint.decode(short, file: "short") }
        let repeated = TransformerCheckpoint.encode(Self.fixture(), vocabulary: Array(Self.vocabulary.dropLast()) + [Self.vocabulary[0]])
        #expect(throws: Checkpoint.Failure.self) { try TransformerCheckpoint.decode(repeated, file: "repeated") }
    }

    @Test("a configuration with few parameters but attention memory beyond bounds is refused")
    func attentionMemory() {
        // About a million parameters, but 64 heads × 1024² probabilities × 48 layers per patient.
        let huge = TransformerConfiguration(vocabularySize: 4, timeBuckets: 1, maxLength: 1024, width: 64, heads: 64, layers: 48, feedForwardWidth: 1)
        #expect(Transformer(checkpointConfiguration: huge, inputSize: huge.inputSize) == nil)
        #expect(Transformer(checkpointConfiguration: Self.configuration, inputSize: Self.configuration.inputSize) != nil)
        #expect(Transformer(checkpointConfiguration: Self.configuration, inputSize: 17) == nil)
    }

    @Test("a standardizer other than the identity, or time buckets other than SiteFit's, are refused")
    func metadataChecks() throws {
        var model = Self.fixture()
        model.standardizer = Standardizer(means: [Double](repeating: 1, count: Self.configuration.inputSize),
                                          standardDeviations: [Double](repeating: 2, count: Self.configuration.inputSize))
        #expect(throws: Checkpoint.Failure.self) { try TransformerCheckpoint.decode(TransformerCheckpoint.encode(model, vocabulary: Self.vocabulary), file: "scaled") }
        var (tensors, metadata) = try Safetensors.decode(TransformerCheckpoint.encode(Self.fixture(), vocabulary: Self.vocabulary))
        metadata["time_buckets"] = "[0,7,30]"
        #expect(throws: Checkpoint.Failure.self) { try TransformerCheckpoint.decode(Safetensors.encode(tensors, metadata: metadata), file: "buckets") }
        tensors.removeAll()
    }
}
