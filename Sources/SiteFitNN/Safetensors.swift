import Foundation

/// One named FP32 tensor as carried in a safetensors blob.
public struct NamedTensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// Why a safetensors blob was refused.
public struct SafetensorsError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "malformed safetensors: \(reason)" }
}

/// The safetensors format (8-byte little-endian header length, JSON header, raw little-endian
/// data), written deterministically: tensors in the given order, metadata keys sorted, header
/// padded with spaces to 8 bytes as the reference implementation does.
public enum Safetensors {
    /// Serialises `tensors` (FP32) with string `metadata` under `__metadata__`. With `dtype: "U32"`
    /// each value's 32 bits are written as an unsigned integer (secure aggregation's masked
    /// vectors travel as `Float(bitPattern:)`; bits are moved, never computed on).
    public static func encode(_ tensors: [NamedTensor], metadata: [String: String] = [:], dtype: String = "F32") -> [UInt8] {
        for tensor in tensors {
            precondition(tensor.values.count == tensor.shape.reduce(1, *), "shape does not match values of \(tensor.name)")
        }
        var out = header(tensors.map { ($0.name, $0.shape) }, metadata: metadata, dtype: dtype)
        for tensor in tensors { tensor.values.withUnsafeBufferPointer { appendValues($0, to: &out) } }
        return out
    }

    /// The 8-byte length and the JSON header of a blob holding `tensors` (values to follow in this
    /// order), with capacity reserved for the values, so a caller can append them from wherever
    /// they live without gathering them first.
    public static func header(_ tensors: [(name: String, shape: [Int])], metadata: [String: String] = [:],
                              dtype: String = "F32") -> [UInt8] {
        precondition(dtype == "F32" || dtype == "U32")
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for tensor in tensors {
            let end = offset + tensor.shape.reduce(1, *) * 4
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(tensor.name)):{\"dtype\":\"\(dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var headerBytes = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count + offset)
        var length = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        return out
    }

    /// Appends values in the format's little-endian byte order.
    public static func appendValues(_ values: UnsafeBufferPointer<Float>, to out: inout [UInt8]) {
        #if _endian(little)
        // The host's order is the format's: one copy of the bytes (four bytes appended at a time
        // made encoding 4 % of a 32-site federated loop).
        out.append(contentsOf: UnsafeRawBufferPointer(values))
        #else
        for value in values {
            var bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
        }
        #endif
    }

    /// Parses a blob, checking every offset and shape; tensors come back in data order.
    /// `dtype` is the one dtype accepted (F32, or U32 for masked vectors).
    public static func decode(_ bytes: [UInt8], dtype expected: String = "F32") throws(SafetensorsError) -> (tensors: [NamedTensor], metadata: [String: String]) {
        let layout = try self.layout(bytes, dtype: expected)
        let tensors = layout.entries.map { entry in
            NamedTensor(name: entry.name, shape: entry.shape, values: withValues(bytes, entry.bytes) { Array($0) })
        }
        return (tensors, layout.metadata)
    }

    /// Where each tensor's values lie in a blob, after every check `decode` makes; nothing is copied.
    public struct Layout: Sendable {
        /// One tensor: its name, shape and the byte range of its values within the blob.
        public struct Entry: Sendable {
            public var name: String
            public var shape: [Int]
            public var bytes: Range<Int>
        }
        /// In data order.
        public var entries: [Entry]
        public var metadata: [String: String]
    }

    /// A name from the file for an error message: quoted when it is a plain identifier, else
    /// described, so a hostile file cannot put its bytes on the terminal.
    static func shown(_ name: String) -> String {
        name.count <= 100 && !name.isEmpty && name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) })
            ? "'\(name)'" : "(a name of unusual characters)"
    }

    /// Parses and checks a blob's header (offsets, shapes, dtype, no gap, overlap or trailing byte)
    /// without copying any value: read them in place with `withValues`.
    public static func layout(_ bytes: [UInt8], dtype expected: String = "F32") throws(SafetensorsError) -> Layout {
        guard bytes.count >= 8 else { throw SafetensorsError("shorter than its 8-byte header length") }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard length <= UInt64(bytes.count - 8) else { throw SafetensorsError("its header length exceeds the blob (is it a safetensors file?)") }
        let headerEnd = 8 + Int(length)
        let json: HeaderJSON
        do throws(HeaderJSON.Failure) {
            json = try HeaderJSON.parse(bytes[8..<headerEnd])
        } catch {
            throw SafetensorsError("header is not valid JSON")
        }
        guard case .object(let header) = json else { throw SafetensorsError("header is not a JSON object") }
        var metadata: [String: String] = [:]
        let dataCount = bytes.count - headerEnd
        var entries: [(name: String, shape: [Int], start: Int, end: Int)] = []
        entries.reserveCapacity(header.count)
        for member in header {
            let name = member.key, raw = member.value
            if name == "__metadata__" {
                guard case .object(let pairs) = raw else { throw SafetensorsError("__metadata__ must map strings to strings") }
                for pair in pairs {
                    guard case .string(let text) = pair.value else { throw SafetensorsError("__metadata__ must map strings to strings") }
                    metadata[pair.key] = text
                }
                continue
            }
            guard case .object(let fields) = raw,
                  case .string(let dtype)? = fields.first(where: { $0.key == "dtype" })?.value,
                  case .array(let shapeItems)? = fields.first(where: { $0.key == "shape" })?.value,
                  case .array(let offsetItems)? = fields.first(where: { $0.key == "data_offsets" })?.value,
                  let shape = integers(shapeItems), let offsets = integers(offsetItems), offsets.count == 2
            else { throw SafetensorsError("tensor \(shown(name)) has an incomplete entry") }
            guard dtype == expected else { throw SafetensorsError("tensor \(shown(name)) has dtype \(shown(dtype)), expected \(expected)") }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataCount
            else { throw SafetensorsError("tensor \(shown(name)) has offsets outside the data") }
            let (elements, overflow) = shape.reduce((1, false)) { partial, dimension in
                let product = partial.0.multipliedReportingOverflow(by: dimension)
                return (product.partialValue, partial.1 || product.overflow)
            }
            guard !overflow, elements <= dataCount / 4, offsets[1] - offsets[0] == elements * 4
            else { throw SafetensorsError("tensor \(shown(name)) has \(offsets[1] - offsets[0]) bytes for shape \(shape)") }
            entries.append((name, shape, offsets[0], offsets[1]))
        }
        entries.sort { $0.start < $1.start }
        var cursor = 0
        for entry in entries {
            guard entry.start == cursor else { throw SafetensorsError("tensor \(shown(entry.name)) overlaps or leaves a gap") }
            cursor = entry.end
        }
        guard cursor == dataCount else { throw SafetensorsError("\(dataCount - cursor) trailing bytes after the last tensor") }
        return Layout(entries: entries.map { Layout.Entry(name: $0.name, shape: $0.shape,
                                                          bytes: (headerEnd + $0.start)..<(headerEnd + $0.end)) },
                      metadata: metadata)
    }

    /// Runs `body` on the Float values stored at `range` of `bytes` (a range from `layout`). On a
    /// little-endian host with 4-byte-aligned data (every blob SiteFit writes: its header is padded
    /// to 8 bytes) the values are read in place; otherwise from a decoded copy.
    public static func withValues<R>(_ bytes: [UInt8], _ range: Range<Int>, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count && range.count % 4 == 0)
        let count = range.count / 4
        #if _endian(little)
        let inPlace: R? = try bytes.withUnsafeBytes { raw -> R? in
            guard count > 0, let base = raw.baseAddress else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
            let start = base + range.lowerBound
            guard Int(bitPattern: start) % MemoryLayout<Float>.alignment == 0 else { return nil }
            return try start.withMemoryRebound(to: Float.self, capacity: count) { try body(UnsafeBufferPointer(start: $0, count: count)) }
        }
        if let inPlace { return inPlace }
        #endif
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let base = range.lowerBound + 4 * i
            let bits = UInt32(bytes[base]) | UInt32(bytes[base + 1]) << 8 | UInt32(bytes[base + 2]) << 16 | UInt32(bytes[base + 3]) << 24
            values[i] = Float(bitPattern: bits)
        }
        return try values.withUnsafeBufferPointer(body)
    }

    /// The values if every item is an integer literal.
    private static func integers(_ items: [HeaderJSON]) -> [Int]? {
        var out: [Int] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .integer(let value) = item else { return nil }
            out.append(value)
        }
        return out
    }

    private static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
