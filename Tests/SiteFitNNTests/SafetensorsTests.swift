import Foundation
import Testing
@testable import SiteFitNN

@Suite("safetensors")
struct SafetensorsTests {
    let tensors = [NamedTensor(name: "layers.0.bias", shape: [3], values: [1, -2.5, 3e-8]),
                   NamedTensor(name: "layers.1.weight", shape: [2, 2], values: [0, 1, 2, 3])]

    @Test("encode then decode gives the tensors and metadata back")
    func roundTrip() throws {
        let blob = Safetensors.encode(tensors, metadata: ["round": "3", "site": "a"])
        let (decoded, metadata) = try Safetensors.decode(blob)
        #expect(decoded == tensors)
        #expect(metadata == ["round": "3", "site": "a"])
    }

    @Test("the layout follows the format: u64 LE header length, JSON padded to 8, raw F32 LE data")
    func layout() {
        let blob = Safetensors.encode([NamedTensor(name: "b", shape: [1], values: [1])])
        let length = blob[0..<8].enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        #expect(length % 8 == 0)
        let header = String(decoding: blob[8..<(8 + length)], as: UTF8.self)
        #expect(header.hasPrefix("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"))
        #expect(Array(blob[(8 + length)...]) == [0x00, 0x00, 0x80, 0x3F])  // 1.0f little-endian
    }

    @Test("encoding is deterministic")
    func deterministic() {
        #expect(Safetensors.encode(tensors, metadata: ["b": "2", "a": "1"]) == Safetensors.encode(tensors, metadata: ["a": "1", "b": "2"]))
    }

    @Test("malformed blobs are refused with a reason", arguments: [
        ("too short", [UInt8](repeating: 0, count: 4)),
        ("header past the end", [255, 0, 0, 0, 0, 0, 0, 0, 123]),
        ("not JSON", [4, 0, 0, 0, 0, 0, 0, 0] + Array("nope".utf8)),
    ])
    func malformed(_ name: String, _ blob: [UInt8]) {
        #expect(throws: SafetensorsError.self) { try Safetensors.decode(blob) }
    }

    @Test("a truncated data section is refused")
    func truncated() {
        let blob = Safetensors.encode(tensors)
        #expect(throws: SafetensorsError.self) { try Safetensors.decode(Array(blob.dropLast(4))) }
    }

    /// A blob with a hand-written header and the given data bytes.
    static func blob(_ header: String, data: [UInt8]) -> [UInt8] {
        var bytes = Array(header.utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        var length = UInt64(bytes.count).littleEndian
        return withUnsafeBytes(of: &length) { Array($0) } + bytes + data
    }

    @Test("values are read in place from the blob, or from a copy when another writer left the data unaligned")
    func valuesInPlaceAndUnaligned() throws {
        let blob = Safetensors.encode(tensors, metadata: ["round": "1"])
        let layout = try Safetensors.layout(blob)
        #expect(layout.entries.map(\.name) == tensors.map(\.name))
        #expect(layout.metadata == ["round": "1"])
        #expect(layout.entries.allSatisfy { $0.bytes.lowerBound % 4 == 0 }, "SiteFit pads its header: values are read in place")
        for (entry, tensor) in zip(layout.entries, tensors) {
            #expect(Safetensors.withValues(blob, entry.bytes) { Array($0) } == tensor.values)
        }
        // A 54-byte header with no padding (as another writer may leave it) puts the data at
        // offset 62: not a multiple of 4.
        var unaligned: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0] + Array("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}".utf8)
        unaligned[0] = UInt8(unaligned.count - 8)
        unaligned += [0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0]                   // 1.0, -2.0
        let odd = try Safetensors.layout(unaligned)
        #expect(odd.entries[0].bytes.lowerBound % 4 != 0)
        #expect(Safetensors.withValues(unaligned, odd.entries[0].bytes) { Array($0) } == [1, -2])
    }

    @Test("a header written alone, then values appended, is the blob `encode` makes")
    func headerThenValues() {
        var blob = Safetensors.header(tensors.map { ($0.name, $0.shape) }, metadata: ["a": "1"])
        for tensor in tensors { tensor.values.withUnsafeBufferPointer { Safetensors.appendValues($0, to: &blob) } }
        #expect(blob == Safetensors.encode(tensors, metadata: ["a": "1"]))
    }

    @Test("headers as other writers format them: spaces, newlines, any key order, escapes and surrogate pairs")
    func foreignHeaders() throws {
        let header = "{ \"__metadata__\" : {\"note\": \"a \\\"quoted\\\" \\u00e9 \\ud83d\\ude00 \\n line\"},\n"
            + " \"b\": {\"data_offsets\": [0, 4], \"shape\": [1], \"dtype\": \"F32\"} }"
        let (tensors, metadata) = try Safetensors.decode(Self.blob(header, data: [0, 0, 0x80, 0x3F]))
        #expect(tensors == [NamedTensor(name: "b", shape: [1], values: [1])])
        #expect(metadata["note"] == "a \"quoted\" é 😀 \n line")
        // What we write, we read back, whatever the metadata holds.
        let odd = ["k\"ey": "tab\tnew\nline\\back \u{1}", "ü": "😀"]
        #expect(try Safetensors.decode(Safetensors.encode(tensors, metadata: odd)).metadata == odd)
    }

    @Test("the header reader fails closed", arguments: [
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.0,4]}}",
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x",
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}",
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}",
        "{\"b\":{\"dtype\":\"F\\u0033\\ud800\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}",
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}",
        "{\"a\":[[[[[[[[[[1]]]]]]]]]]}",
        "[1,2]",
        "{\"__metadata__\":{\"a\":1}}",
    ])
    func failsClosed(_ header: String) {
        #expect(throws: SafetensorsError.self) { try Safetensors.decode(Self.blob(header, data: [0, 0, 0x80, 0x3F])) }
    }

    @Test("3,000 random corruptions of a valid blob: each decodes or is refused, none crashes")
    func corruptions() {
        let valid = Safetensors.encode(tensors, metadata: ["round": "3", "site": "a"])
        var random = SplitMix(state: 2026)
        var refused = 0
        for _ in 0..<3000 {
            var bytes = valid
            for _ in 0..<(1 + Int(random.next() % 3)) {
                let position = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 3 {
                case 0: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes.remove(at: position)
                default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                }
            }
            do { _ = try Safetensors.decode(bytes) } catch { refused += 1 }
        }
        #expect(refused > 1000)
    }
}

/// A tiny generator for the corruption test (SiteFitNN's tests do not need the core streams).
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
