import Foundation

/// The one JSON configuration used on the wire: snake_case keys, sorted output.
///
/// The coders are configured once and shared: encoding and decoding keep no state between calls.
public enum WireJSON {
    /// Compact, keys sorted (the same value always gives the same bytes).
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// The same without key conversion, for `WireKeys` types (converting every key of every answer showed up in
    /// the directory's profile under 4 KiB creates).
    private static let literalEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    private static let prettyEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()

    /// Encodes a wire value as compact JSON with snake_case keys (by hand for `FastEncodable` types).
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        if let fast = value as? FastEncodable { return fast.encodedJSON() }
        return try encodeCodable(value)
    }

    /// The same through `JSONEncoder` alone (what the hand-written encoders are checked against).
    public static func encodeCodable<T: Encodable>(_ value: T) throws -> Data {
        try (T.self is WireKeys.Type ? literalEncoder : encoder).encode(value)
    }

    /// Encodes a wire value as indented JSON (for `--json` output meant for people and scripts).
    public static func encodePretty<T: Encodable>(_ value: T) throws -> Data {
        try prettyEncoder.encode(value)
    }

    /// A decoder without key conversion, for types whose coding keys already are the snake_case wire names.
    private static let literalDecoder = JSONDecoder()

    /// Decodes a wire value from JSON with snake_case keys (by hand for `FastDecodable` types).
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        if let fast = T.self as? FastDecodable.Type, let value = try fast.init(json: data) as? T { return value }
        return try decodeCodable(type, from: data)
    }

    /// The same through `JSONDecoder` alone (what the hand-written decoders are checked against).
    public static func decodeCodable<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try (T.self is WireKeys.Type ? literalDecoder : decoder).decode(type, from: data)
    }
}

/// A wire type whose `CodingKeys` spell the snake_case wire names themselves (and so does every type it contains),
/// so it is encoded and decoded without key conversion. A type that contains a `WireKeys` type must be one too:
/// converted keys ("lock_id" → "lockId") would no longer match the spelled-out ones.
public protocol WireKeys {}

/// A list of such values needs no key conversion either (`DFS_LOCKS` carries `[LockInfo]`).
extension Array: WireKeys where Element: WireKeys {}
