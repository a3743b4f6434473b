import Foundation

/// A parsed JSON document, as `JSONReader` builds it for the hand-written decoders (`FastDecodable`).
enum JSONValue {
    case null
    case bool(Bool)
    /// The number's text, checked against the JSON grammar (converted when a field asks for it).
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order; duplicate keys are kept (the first one counts, as with `JSONDecoder`).
    case object([(key: String, value: JSONValue)])

    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A strict JSON parser for the hottest request and answer bodies. It accepts what Foundation's `JSONDecoder`
/// accepts (including a leading byte-order mark and one trailing comma in an object or array) and refuses the rest
/// with `DecodingError.dataCorrupted`, so a server answers a malformed body the same 400 either way.
///
/// Measured: `JSONDecoder` was 13% of a client's CPU under 4 KiB creates (three answers decoded per create) and 6%
/// of the directory's (two requests).
struct JSONReader {
    /// `JSONDecoder` refuses documents nested deeper than this too.
    static let maxDepth = 512

    static func parse(_ data: Data) throws -> JSONValue {
        // One copy into an array keeps the parser in safe Swift (bodies here are small; a full listing page is
        // about 1.5 MB).
        var reader = JSONReader(bytes: [UInt8](data))
        if reader.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { reader.index = 3 }
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.index == reader.bytes.count else { throw reader.corrupted("text after the JSON value") }
        return value
    }

    private let bytes: [UInt8]
    private var index = 0

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private func corrupted(_ what: String) -> DecodingError {
        .dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: "not valid JSON: \(what) at byte \(index)"))
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipSpace() {
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
            index += 1
        }
    }

    private mutating func expect(_ literal: String, _ value: JSONValue) throws -> JSONValue {
        let word = literal.utf8
        guard bytes[index...].starts(with: word) else { throw corrupted("unknown literal") }
        index += word.count
        return value
    }

    private mutating func value(depth: Int) throws -> JSONValue {
        guard depth < Self.maxDepth else { throw corrupted("nested too deeply") }
        guard let byte = current else { throw corrupted("unexpected end") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw corrupted("unexpected character")
        }
    }

    private mutating func object(depth: Int) throws -> JSONValue {
        index += 1
        var members: [(key: String, value: JSONValue)] = []
        skipSpace()
        if current == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard current == UInt8(ascii: "\"") else { throw corrupted("expected a member name") }
            let key = try string()
            skipSpace()
            guard current == UInt8(ascii: ":") else { throw corrupted("expected ':'") }
            index += 1
            skipSpace()
            members.append((key, try value(depth: depth + 1)))
            skipSpace()
            switch current {
            case UInt8(ascii: ","):
                index += 1
                skipSpace()
                if current == UInt8(ascii: "}") {  // one trailing comma, as JSONDecoder allows
                    index += 1
                    return .object(members)
                }
            case UInt8(ascii: "}"):
                index += 1
                return .object(members)
            default:
                throw corrupted("expected ',' or '}'")
            }
        }
    }

    private mutating func array(depth: Int) throws -> JSONValue {
        index += 1
        var elements: [JSONValue] = []
        skipSpace()
        if current == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipSpace()
            elements.append(try value(depth: depth + 1))
            skipSpace()
            switch current {
            case UInt8(ascii: ","):
                index += 1
                skipSpace()
                if current == UInt8(ascii: "]") {
                    index += 1
                    return .array(elements)
                }
            case UInt8(ascii: "]"):
                index += 1
                return .array(elements)
            default:
                throw corrupted("expected ',' or ']'")
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, returned as its text.
    private mutating func number() throws -> String {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else {
            throw corrupted("expected a digit")
        }
        index += 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if current == UInt8(ascii: ".") {
            index += 1
            guard skipDigits() > 0 else { throw corrupted("expected a digit after '.'") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard skipDigits() > 0 else { throw corrupted("expected a digit in the exponent") }
        }
        if let next = current, next >= UInt8(ascii: "0"), next <= UInt8(ascii: "9") {
            throw corrupted("a number with a leading zero")
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = index
        while let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    private mutating func string() throws -> String {
        index += 1
        let start = index
        // The common case: no escapes, so the bytes are the string (checked as UTF-8).
        while let byte = current, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
            guard byte >= 0x20 else { throw corrupted("a control character in a string") }
            index += 1
        }
        guard let stop = current else { throw corrupted("unterminated string") }
        var utf8 = Array(bytes[start..<index])
        if stop == UInt8(ascii: "\\") {
            try unescape(into: &utf8)
        }
        index += 1  // the closing quote
        guard let text = String(validating: utf8, as: UTF8.self) else { throw corrupted("a string that is not UTF-8") }
        return text
    }

    /// The rest of a string with escapes, up to (not past) its closing quote.
    private mutating func unescape(into utf8: inout [UInt8]) throws {
        while let byte = current, byte != UInt8(ascii: "\"") {
            guard byte >= 0x20 else { throw corrupted("a control character in a string") }
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                index += 1
                continue
            }
            index += 1
            guard let escaped = current else { throw corrupted("unterminated escape") }
            index += 1
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = UInt32(try hex4())
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate must be followed by an escaped low one.
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    else { throw corrupted("an unpaired surrogate") }
                    index += 2
                    let low = UInt32(try hex4())
                    guard (0xDC00..<0xE000).contains(low) else { throw corrupted("an unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw corrupted("an unpaired surrogate") }
                utf8.append(contentsOf: UTF8.encode(unicode)!)
            default:
                throw corrupted("an unknown escape")
            }
        }
        guard current != nil else { throw corrupted("unterminated string") }
    }

    private mutating func hex4() throws -> UInt16 {
        guard index + 4 <= bytes.count else { throw corrupted("truncated \\u escape") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw corrupted("a bad \\u escape")
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }
}

/// A JSON object being decoded into a wire type, with typed getters that fail as `JSONDecoder` does:
/// `keyNotFound` for a missing required field, `valueNotFound` for a null one, `typeMismatch` for the wrong type.
struct JSONFields {
    private let members: [(key: String, value: JSONValue)]
    private let path: [any CodingKey]

    init(_ value: JSONValue, path: [any CodingKey] = []) throws {
        guard case .object(let members) = value else {
            throw DecodingError.typeMismatch(
                [String: Any].self, .init(codingPath: path, debugDescription: "expected an object, found \(value.kind)"))
        }
        self.members = members
        self.path = path
    }

    /// Decodes a whole document whose top level is an object.
    static func decode<T>(_ data: Data, _ build: (JSONFields) throws -> T) throws -> T {
        try build(JSONFields(JSONReader.parse(data)))
    }

    private func lookup(_ key: String) -> JSONValue? {
        for member in members where member.key == key { return member.value }
        return nil
    }

    private func present(_ key: String) -> JSONValue? {
        guard let value = lookup(key) else { return nil }
        if case .null = value { return nil }
        return value
    }

    private func required(_ key: String, _ type: Any.Type) throws -> JSONValue {
        guard let value = lookup(key) else {
            throw DecodingError.keyNotFound(
                WireKey(key), .init(codingPath: path, debugDescription: "no value for '\(key)'"))
        }
        if case .null = value {
            throw DecodingError.valueNotFound(
                type, .init(codingPath: path + [WireKey(key)], debugDescription: "'\(key)' is null"))
        }
        return value
    }

    private func mismatch(_ type: Any.Type, _ key: String, _ value: JSONValue) -> DecodingError {
        .typeMismatch(type, .init(codingPath: path + [WireKey(key)], debugDescription: "found \(value.kind)"))
    }

    func string(_ key: String) throws -> String {
        let value = try required(key, String.self)
        guard case .string(let text) = value else { throw mismatch(String.self, key, value) }
        return text
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = present(key) else { return nil }
        guard case .string(let text) = value else { throw mismatch(String.self, key, value) }
        return text
    }

    /// Bytes sent as a base64 string, as `JSONDecoder` reads a `Data` (invalid base64 is corrupt data).
    func optionalBase64(_ key: String) throws -> Data? {
        guard let text = try optionalString(key) else { return nil }
        guard let bytes = Data(base64Encoded: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: path + [WireKey(key)], debugDescription: "'\(key)' is not valid base64"))
        }
        return bytes
    }

    func int(_ key: String) throws -> Int64 {
        try integer(key, try required(key, Int64.self))
    }

    func optionalInt(_ key: String) throws -> Int64? {
        try present(key).map { try integer(key, $0) }
    }

    /// An integer as `JSONDecoder` reads one: `1`, but also `1.0` or `1e2` when the value is exact.
    private func integer(_ key: String, _ value: JSONValue) throws -> Int64 {
        guard case .number(let text) = value else { throw mismatch(Int64.self, key, value) }
        if let exact = Int64(text) { return exact }
        if let double = Double(text), double.rounded() == double, let exact = Int64(exactly: double) { return exact }
        throw DecodingError.dataCorrupted(
            .init(codingPath: path + [WireKey(key)], debugDescription: "\(text) does not fit in Int64"))
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let value = present(key) else { return nil }
        guard case .bool(let flag) = value else { throw mismatch(Bool.self, key, value) }
        return flag
    }

    func object<T>(_ key: String, _ build: (JSONFields) throws -> T) throws -> T {
        try build(JSONFields(try required(key, T.self), path: path + [WireKey(key)]))
    }

    func optionalObject<T>(_ key: String, _ build: (JSONFields) throws -> T) throws -> T? {
        guard let value = present(key) else { return nil }
        return try build(JSONFields(value, path: path + [WireKey(key)]))
    }

    /// An array of objects.
    func objects<T>(_ key: String, _ build: (JSONFields) throws -> T) throws -> [T] {
        try elements(key, try required(key, [T].self), build)
    }

    func optionalObjects<T>(_ key: String, _ build: (JSONFields) throws -> T) throws -> [T]? {
        guard let value = present(key) else { return nil }
        return try elements(key, value, build)
    }

    private func elements<T>(_ key: String, _ value: JSONValue, _ build: (JSONFields) throws -> T) throws -> [T] {
        guard case .array(let elements) = value else { throw mismatch([T].self, key, value) }
        let here = path + [WireKey(key)]
        return try elements.enumerated().map { offset, element in
            try build(JSONFields(element, path: here + [WireKey(intValue: offset)]))
        }
    }
}

/// A coding key for error paths.
struct WireKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(_ string: String) {
        stringValue = string
        intValue = nil
    }
    init?(stringValue: String) { self.init(stringValue) }
    /// An array index, named as `JSONDecoder` names it in error paths.
    init(intValue: Int) {
        stringValue = "Index \(intValue)"
        self.intValue = intValue
    }
}

/// A wire type with a hand-written decoder (`JSONFields`): `WireJSON.decode` uses it instead of `JSONDecoder`.
public protocol FastDecodable {
    init(json data: Data) throws
}
