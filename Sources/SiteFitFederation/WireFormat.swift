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

    /// Packs the selected tensors of `parameters`, each copied once, straight into the message.
    public static func encode(
        parameters: [Float], selection: ParameterSelection, metadata: [String: String]
    ) -> [UInt8] {
        var out = Safetensors.header(selection.tensors.map { ($0.name, $0.shape) }, metadata: metadata)
        parameters.withUnsafeBufferPointer { values in
            for spec in selection.tensors {
                Safetensors.appendValues(UnsafeBufferPointer(rebasing: values[spec.range]), to: &out)
            }
        }
        return out
    }

    /// Packs already-gathered selected values (selection order).
    public static func encode(
        packed: [Float], selection: ParameterSelection, metadata: [String: String]
    ) -> [UInt8] {
        precondition(packed.count == selection.count)
        var out = Safetensors.header(selection.tensors.map { ($0.name, $0.shape) }, metadata: metadata)
        packed.withUnsafeBufferPointer { values in
            Safetensors.appendValues(values, to: &out)      // selection order is the blob's order
        }
        return out
    }

    /// Writes the tensors of a blob into `parameters`, after checking they are exactly the
    /// selection: one copy, from the message into place.
    public static func apply(
        _ blob: [UInt8], selection: ParameterSelection, to parameters: inout [Float]
    ) throws(UpdateRejection) -> [String: String] {
        let (entries, metadata) = try validatedLayout(blob, selection: selection)
        parameters.withUnsafeMutableBufferPointer { target in
            for (spec, entry) in zip(selection.tensors, entries) {
                Safetensors.withValues(blob, entry.bytes) { values in
                    guard let source = values.baseAddress else { return }
                    (target.baseAddress! + spec.range.lowerBound).update(from: source, count: values.count)
                }
            }
        }
        return metadata
    }

    /// Parses a blob and fails closed: an unexpected or missing key, a wrong shape or a non-finite
    /// value is a rejection with its reason. Tensors come back in selection order.
    public static func validate(
        _ blob: [UInt8], selection: ParameterSelection
    ) throws(UpdateRejection) -> (tensors: [NamedTensor], metadata: [String: String]) {
        let (entries, metadata) = try validatedLayout(blob, selection: selection)
        let tensors = entries.map { entry in
            NamedTensor(name: entry.name, shape: entry.shape, values: Safetensors.withValues(blob, entry.bytes) { Array($0) })
        }
        return (tensors, metadata)
    }

    /// `validate` without copying values: where each selected tensor lies in the blob, in
    /// selection order, for reading in place with `Safetensors.withValues`.
    public static func validatedLayout(
        _ blob: [UInt8], selection: ParameterSelection
    ) throws(UpdateRejection) -> (entries: [Safetensors.Layout.Entry], metadata: [String: String]) {
        let layout: Safetensors.Layout
        do {
            layout = try Safetensors.layout(blob)
        } catch {
            throw UpdateRejection(error.description)
        }
        let byName = Dictionary(layout.entries.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let expected = Set(selection.tensorNames)
        if let extra = layout.entries.map(\.name).filter({ !expected.contains($0) }).sorted().first {
            throw UpdateRejection("unexpected key '\(extra)' (not in the selection)")
        }
        var ordered: [Safetensors.Layout.Entry] = []
        ordered.reserveCapacity(selection.tensors.count)
        for spec in selection.tensors {
            guard let entry = byName[spec.name] else { throw UpdateRejection("missing key '\(spec.name)'") }
            guard entry.shape == spec.shape else {
                throw UpdateRejection("key '\(spec.name)' has shape \(entry.shape), expected \(spec.shape)")
            }
            let finite = Safetensors.withValues(blob, entry.bytes) { values in
                values.isEmpty || Kernels.allFinite(values.baseAddress!, count: values.count)
            }
            guard finite else { throw UpdateRejection("key '\(spec.name)' holds a non-finite value") }
            ordered.append(entry)
        }
        return (ordered, layout.metadata)
    }
}

/// Why the server refused a site's update.
public struct UpdateRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
