import Foundation

/// A pretrained model as a safetensors file that Python's `safetensors` loads unchanged: every
/// tensor under its dotted key, and in `__metadata__` the model configuration, the
/// standardiser, the feature names, each tensor's role and free-form notes (all JSON strings).
public enum Checkpoint {
    public static let format = "sitefit-checkpoint-1"

    /// Why a checkpoint could not be used.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var file: String
        public var problem: String
        public var description: String { "\(file): \(problem)" }

        public init(file: String, problem: String) {
            self.file = file
            self.problem = problem
        }
    }

    /// Serialises a model; `notes` are extra metadata strings (e.g. validation metrics, cache key).
    public static func encode<Network: CheckpointableModel>(_ model: PretrainedModel<Network>, notes: [String: String] = [:]) -> [UInt8] {
        var metadata = notes
        metadata["format"] = format
        metadata["model"] = json(model.network.checkpointConfiguration)
        metadata["standardizer"] = json(model.standardizer)
        metadata["features"] = json(model.columns)
        metadata["roles"] = json(Dictionary(uniqueKeysWithValues: model.network.layout.tensors.map { ($0.name, $0.role.rawValue) }))
        let tensors = model.network.layout.tensors.map {
            NamedTensor(name: $0.name, shape: $0.shape, values: Array(model.parameters[$0.range]))
        }
        return Safetensors.encode(tensors, metadata: metadata)
    }

    /// Parses a SiteFit checkpoint, checking that its tensors are exactly those of its configuration.
    public static func decode<Network: CheckpointableModel>(_ bytes: [UInt8], file: String, as network: Network.Type = MLP.self)
        throws(Failure) -> (model: PretrainedModel<Network>, notes: [String: String]) {
        let decoded: (tensors: [NamedTensor], metadata: [String: String])
        do {
            decoded = try Safetensors.decode(bytes)
        } catch {
            throw Failure(file: file, problem: error.description)
        }
        let metadata = decoded.metadata
        guard metadata["format"] == format else {
            throw Failure(file: file, problem: "not a SiteFit checkpoint (metadata 'format' is not '\(format)')")
        }
        guard let configuration: Network.Configuration = parse(metadata["model"]),
              let standardizer: Standardizer = parse(metadata["standardizer"]),
              let columns: [String] = parse(metadata["features"])
        else { throw Failure(file: file, problem: "metadata 'model', 'standardizer' or 'features' is missing or malformed") }
        guard standardizer.means.count == columns.count, standardizer.standardDeviations.count == columns.count,
              standardizer.means.allSatisfy({ $0.isFinite && abs($0) < 1e12 }),
              standardizer.standardDeviations.allSatisfy({ $0.isFinite && $0 > 1e-12 && $0 < 1e12 })
        else { throw Failure(file: file, problem: "the standardizer's means and standard deviations must be finite, with every standard deviation above 0") }
        guard let network = Network(checkpointConfiguration: configuration, inputSize: columns.count)
        else { throw Failure(file: file, problem: "the model configuration does not match its feature list") }
        let byName = Dictionary(decoded.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        guard byName.count == network.layout.tensors.count else {
            throw Failure(file: file, problem: "holds \(byName.count) tensors, the configuration has \(network.layout.tensors.count)")
        }
        var parameters = [Float](repeating: 0, count: network.layout.count)
        for spec in network.layout.tensors {
            guard let tensor = byName[spec.name] else { throw Failure(file: file, problem: "tensor '\(spec.name)' is missing") }
            guard tensor.shape == spec.shape else {
                throw Failure(file: file, problem: "tensor '\(spec.name)' has shape \(tensor.shape), expected \(spec.shape)")
            }
            guard tensor.values.allSatisfy(\.isFinite) else { throw Failure(file: file, problem: "tensor '\(spec.name)' holds a non-finite value") }
            // A weight this large overflows Float32 within a layer or two: no trained model has one.
            guard tensor.values.allSatisfy({ abs($0) <= Self.maximumWeight }) else {
                throw Failure(file: file, problem: "tensor '\(spec.name)' holds a value beyond ±\(Int(Self.maximumWeight)), which no trained model has")
            }
            parameters.replaceSubrange(spec.range, with: tensor.values)
        }
        let notes = metadata.filter { !["format", "model", "standardizer", "features", "roles"].contains($0.key) }
        return (PretrainedModel(network: network, parameters: parameters, standardizer: standardizer, columns: columns), notes)
    }

    /// The largest magnitude a checkpoint's parameter may have.
    public static let maximumWeight: Float = 1e4

    public static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    public static func parse<T: Decodable>(_ text: String?) -> T? {
        guard let text else { return nil }
        return try? JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}

/// A model a checkpoint can rebuild: its configuration is stored as JSON in the metadata.
public protocol CheckpointableModel: NeuralModel {
    associatedtype Configuration: Codable & Sendable
    /// What rebuilds the pretrained network (extensions are not part of a checkpoint).
    var checkpointConfiguration: Configuration { get }
    /// The network of `configuration` for `inputSize` features, or nil when they do not fit.
    init?(checkpointConfiguration: Configuration, inputSize: Int)
}

extension MLP: CheckpointableModel {
    public var checkpointConfiguration: MLPConfiguration { configuration }

    public init?(checkpointConfiguration configuration: MLPConfiguration, inputSize: Int) {
        guard configuration.inputSize == inputSize, configuration.inputSize > 0, configuration.hiddenSizes.allSatisfy({ $0 > 0 }),
              configuration.dropout.isFinite, (0..<1).contains(configuration.dropout),
              let count = Self.parameterCount(configuration), count <= Self.maximumCheckpointParameters else {
            return nil
        }
        self.init(configuration)
    }

    /// The most parameters a checkpoint may configure (2²⁷, 512 MiB of Float32): a hostile file's
    /// widths must not make the reader allocate before the tensors are compared with them.
    public static let maximumCheckpointParameters = 1 << 27

    /// Parameters of `configuration` (weights, biases, LayerNorm γ and β), or nil on overflow.
    static func parameterCount(_ configuration: MLPConfiguration) -> Int? {
        let widths = [configuration.inputSize] + configuration.hiddenSizes + [1]
        guard widths.count <= 1_000, widths.allSatisfy({ $0 <= 1 << 24 }) else { return nil }
        var total = 0
        for l in 0..<(widths.count - 1) {
            let (weights, o1) = widths[l].multipliedReportingOverflow(by: widths[l + 1])
            let (layer, o2) = weights.addingReportingOverflow(widths[l + 1] * (configuration.layerNorm && l + 1 < widths.count - 1 ? 3 : 1))
            let (sum, o3) = total.addingReportingOverflow(layer)
            guard !o1, !o2, !o3 else { return nil }
            total = sum
        }
        return total
    }
}
