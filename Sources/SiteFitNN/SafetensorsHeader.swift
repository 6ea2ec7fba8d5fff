/// A strict reader for the JSON of a safetensors header: objects, arrays, strings (every JSON
/// escape, surrogate pairs), numbers, true, false and null, per RFC 8259. Written for this one
/// job because Foundation's `JSONSerialization` builds bridged dictionaries of `Any` and was
/// the largest cost of receiving an update; it also fails closed where that one is lenient
/// (duplicate keys, trailing bytes other than the format's space padding, nesting deeper than 8).
indirect enum HeaderJSON {
    case object([HeaderJSONMember])
    case array([HeaderJSON])
    case string(String)
    /// An integer literal (no fraction or exponent) that fits in Int.
    case integer(Int)
    /// Any other number.
    case number(Double)
    case bool(Bool)
    case null

    typealias Failure = HeaderJSONFailure

    /// Parses `bytes`; trailing spaces are allowed (the format pads the header to 8 bytes).
    static func parse(_ bytes: ArraySlice<UInt8>) throws(Failure) -> HeaderJSON {
        var reader = HeaderJSONReader(bytes: bytes)
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.index == bytes.endIndex else { throw Failure() }
        return value
    }
}

/// One key and value of a JSON object, in the order written.
struct HeaderJSONMember {
    var key: String
    var value: HeaderJSON
}

/// Why a header is not valid JSON (the caller words the error).
struct HeaderJSONFailure: Error {}

/// The cursor over a header's bytes.
struct HeaderJSONReader {
    let bytes: ArraySlice<UInt8>
    var index: Int

    init(bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        index = bytes.startIndex
    }

    mutating func skipWhitespace() {
        while index < bytes.endIndex, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func expect(_ byte: UInt8) throws(HeaderJSONFailure) {
        guard index < bytes.endIndex, bytes[index] == byte else { throw HeaderJSONFailure() }
        index += 1
    }

    mutating func value(depth: Int) throws(HeaderJSONFailure) -> HeaderJSON {
        guard depth <= 8 else { throw HeaderJSONFailure() }
        skipWhitespace()
        guard index < bytes.endIndex else { throw HeaderJSONFailure() }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var members: [HeaderJSONMember] = []
            var keys = Set<String>()
            skipWhitespace()
            if index < bytes.endIndex, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            while true {
                skipWhitespace()
                let key = try string()
                guard keys.insert(key).inserted else { throw HeaderJSONFailure() }
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                members.append(HeaderJSONMember(key: key, value: try value(depth: depth + 1)))
                skipWhitespace()
                guard index < bytes.endIndex else { throw HeaderJSONFailure() }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "}"))
                return .object(members)
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [HeaderJSON] = []
            skipWhitespace()
            if index < bytes.endIndex, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.endIndex else { throw HeaderJSONFailure() }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "]"))
                return .array(items)
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default:
            return try number()
        }
    }

    mutating func literal(_ word: String) throws(HeaderJSONFailure) {
        for byte in word.utf8 { try expect(byte) }
    }

    mutating func number() throws(HeaderJSONFailure) -> HeaderJSON {
        let start = index
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "-") { index += 1 }
        func digits(_ reader: inout HeaderJSONReader) -> Int {
            let from = reader.index
            while reader.index < reader.bytes.endIndex, (0x30...0x39).contains(reader.bytes[reader.index]) { reader.index += 1 }
            return reader.index - from
        }
        let integerStart = index
        let integerDigits = digits(&self)
        // No leading zeros ("01"), at least one digit.
        guard integerDigits > 0, !(integerDigits > 1 && bytes[integerStart] == 0x30) else { throw HeaderJSONFailure() }
        var isInteger = true
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: ".") {
            index += 1
            isInteger = false
            guard digits(&self) > 0 else { throw HeaderJSONFailure() }
        }
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            isInteger = false
            if index < bytes.endIndex, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw HeaderJSONFailure() }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger, let value = Int(text) { return .integer(value) }
        guard let value = Double(text), value.isFinite else { throw HeaderJSONFailure() }
        return .number(value)
    }

    mutating func string() throws(HeaderJSONFailure) -> String {
        try expect(UInt8(ascii: "\""))
        var scalars = String.UnicodeScalarView()
        var run = index
        func flush(_ reader: HeaderJSONReader, to end: Int) throws(HeaderJSONFailure) {
            guard run < end else { return }
            // Raw bytes must be valid UTF-8 without control characters.
            guard let text = String(validating: reader.bytes[run..<end], as: UTF8.self) else { throw HeaderJSONFailure() }
            scalars.append(contentsOf: text.unicodeScalars)
        }
        while true {
            guard index < bytes.endIndex else { throw HeaderJSONFailure() }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                try flush(self, to: index)
                index += 1
                return String(scalars)
            }
            guard byte >= 0x20 else { throw HeaderJSONFailure() }
            if byte != UInt8(ascii: "\\") { index += 1; continue }
            try flush(self, to: index)
            index += 1
            guard index < bytes.endIndex else { throw HeaderJSONFailure() }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800...0xDBFF).contains(code) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    try expect(UInt8(ascii: "\\"))
                    try expect(UInt8(ascii: "u"))
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw HeaderJSONFailure() }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw HeaderJSONFailure() }
                scalars.append(scalar)
            default: throw HeaderJSONFailure()
            }
            run = index
        }
    }

    mutating func hex4() throws(HeaderJSONFailure) -> UInt32 {
        guard index + 4 <= bytes.endIndex else { throw HeaderJSONFailure() }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case 0x30...0x39: digit = UInt32(byte - 0x30)
            case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
            default: throw HeaderJSONFailure()
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }
}
