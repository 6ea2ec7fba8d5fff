import SiteFitKernels
import SiteFitNN

/// Serialised messages between sites and the server: safetensors blobs that hold only the
/// selected tensors (dotted keys) plus string metadata. Bytes sent are counted from these blobs.
public enum WireFormat {
    /// Metadata keys carried by every message.
    public enum Key {
        public static let kind = "kind"
        public static let round = "round"
        public static let site = "site"
        public static let trainSize = "train_size"
    }

    /// Packs the selected tensors of `parameters`.
    public static func encode(
        parameters: [Float], selection: ParameterSelection, metadata: [String: String]
    ) -> [UInt8] {
        let tensors = selection.tensors.map {
            NamedTensor(name: $0.name, shape: $0.shape, values: Array(parameters[$0.range]))
        }
        return Safetensors.encode(tensors, metadata: metadata)
    }

    /// Packs already-gathered selected values (selection order).
    public static func encode(
        packed: [Float], selection: ParameterSelection, metadata: [String: String]
    ) -> [UInt8] {
        precondition(packed.count == selection.count)
        var cursor = 0
        let tensors = selection.tensors.map { spec -> NamedTensor in
            defer { cursor += spec.count }
            return NamedTensor(name: spec.name, shape: spec.shape, values: Array(packed[cursor..<(cursor + spec.count)]))
        }
        return Safetensors.encode(tensors, metadata: metadata)
    }

    /// Writes the tensors of a blob into `parameters`, after checking they are exactly the selection.
    public static func apply(
        _ blob: [UInt8], selection: ParameterSelection, to parameters: inout [Float]
    ) throws(UpdateRejection) -> [String: String] {
        let (tensors, metadata) = try validate(blob, selection: selection)
        for (spec, tensor) in zip(selection.tensors, tensors) {
            parameters.replaceSubrange(spec.range, with: tensor.values)
        }
        return metadata
    }

    /// Parses a blob and fails closed: an unexpected or missing key, a wrong shape or a non-finite
    /// value is a rejection with its reason. Tensors come back in selection order.
    public static func validate(
        _ blob: [UInt8], selection: ParameterSelection
    ) throws(UpdateRejection) -> (tensors: [NamedTensor], metadata: [String: String]) {
        let decoded: (tensors: [NamedTensor], metadata: [String: String])
        do {
            decoded = try Safetensors.decode(blob)
        } catch {
            throw UpdateRejection(error.description)
        }
        let byName = Dictionary(decoded.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let expected = Set(selection.tensorNames)
        if let extra = decoded.tensors.map(\.name).filter({ !expected.contains($0) }).sorted().first {
            throw UpdateRejection("unexpected key '\(extra)' (not in the selection)")
        }
        var ordered: [NamedTensor] = []
        for spec in selection.tensors {
            guard let tensor = byName[spec.name] else { throw UpdateRejection("missing key '\(spec.name)'") }
            guard tensor.shape == spec.shape else {
                throw UpdateRejection("key '\(spec.name)' has shape \(tensor.shape), expected \(spec.shape)")
            }
            guard tensor.values.withUnsafeBufferPointer({ Kernels.allFinite($0.baseAddress!, count: $0.count) }) else {
                throw UpdateRejection("key '\(spec.name)' holds a non-finite value")
            }
            ordered.append(tensor)
        }
        return (ordered, decoded.metadata)
    }
}

/// Why the server refused a site's update.
public struct UpdateRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
