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
}
