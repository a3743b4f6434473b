import Foundation

/// A configuration problem, reported as `file:line: message`.
public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A parsed `key = value` file with `#` comments, strict about keys and values.
///
/// Unknown keys, repeated keys, lines without `=` and values that do not parse stop the server with
/// `file:line: message`. Keys that are absent take their documented defaults.
public struct ConfigFile {
    public let path: String
    private var values: [String: (value: String, line: Int)] = [:]

    /// Parses `text` (the contents of `path`), accepting only `allowedKeys`.
    public init(path: String, text: String, allowedKeys: Set<String>) throws(ConfigError) {
        self.path = path
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw ConfigError("\(path):\(lineNumber): expected 'key = value', got '\(trimmed)'")
            }
            let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard allowedKeys.contains(key) else {
                let known = allowedKeys.sorted().joined(separator: ", ")
                throw ConfigError("\(path):\(lineNumber): unknown key '\(key)' (known keys: \(known))")
            }
            if let previous = values[key] {
                throw ConfigError("\(path):\(lineNumber): key '\(key)' is already set on line \(previous.line)")
            }
            values[key] = (value, lineNumber)
        }
    }

    /// Reads and parses the file at `path`.
    public init(contentsOf path: String, allowedKeys: Set<String>) throws(ConfigError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("\(path): cannot read the configuration file")
        }
        try self.init(path: path, text: text, allowedKeys: allowedKeys)
    }

    /// An empty configuration: every key takes its default.
    public init(defaultsFor path: String) {
        self.path = path
    }

    /// The raw value, or `defaultValue` when the key is absent. An empty value is an error unless `allowEmpty`.
    public func string(_ key: String, default defaultValue: String, allowEmpty: Bool = false) throws(ConfigError)
        -> String
    {
        guard let entry = values[key] else { return defaultValue }
        guard allowEmpty || !entry.value.isEmpty else {
            throw ConfigError("\(path):\(entry.line): '\(key)' needs a value")
        }
        return entry.value
    }

    /// An integer in `range`.
    public func integer(_ key: String, default defaultValue: Int64, range: ClosedRange<Int64>) throws(ConfigError)
        -> Int64
    {
        guard let entry = values[key] else { return defaultValue }
        guard let value = Int64(entry.value.replacingOccurrences(of: "_", with: "")), range.contains(value) else {
            throw ConfigError(
                "\(path):\(entry.line): '\(key)' must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(entry.value)'"
            )
        }
        return value
    }

    /// One of an enumeration's raw values.
    public func choice<T: RawRepresentable & CaseIterable>(_ key: String, default defaultValue: T) throws(ConfigError)
        -> T where T.RawValue == String
    {
        guard let entry = values[key] else { return defaultValue }
        guard let value = T(rawValue: entry.value) else {
            let names = T.allCases.map(\.rawValue).joined(separator: " or ")
            throw ConfigError("\(path):\(entry.line): '\(key)' must be \(names), got '\(entry.value)'")
        }
        return value
    }

    /// A `host:port` listen address (`[::1]:5000` for IPv6).
    public func listenAddress(_ key: String, default defaultValue: String) throws(ConfigError) -> ListenAddress {
        let text = try string(key, default: defaultValue)
        guard let address = ListenAddress(text) else {
            let line = values[key]?.line ?? 0
            throw ConfigError("\(path):\(line): '\(key)' must be host:port (e.g. 127.0.0.1:5000), got '\(text)'")
        }
        return address
    }

    /// An `http://host:port` (or, with `allowHTTPS`, `https://`) URL, without a trailing slash.
    public func httpURL(_ key: String, default defaultValue: String, allowHTTPS: Bool = false) throws(ConfigError)
        -> String
    {
        var text = try string(key, default: defaultValue)
        while text.hasSuffix("/") { text.removeLast() }
        let scheme = allowHTTPS && text.hasPrefix("https://") ? "https://" : "http://"
        guard text.hasPrefix(scheme), ListenAddress(String(text.dropFirst(scheme.count))) != nil else {
            let line = values[key]?.line ?? 0
            throw ConfigError("\(path):\(line): '\(key)' must be a URL like http://127.0.0.1:5000, got '\(text)'")
        }
        return text
    }
}

/// A host and port to listen on.
public struct ListenAddress: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`.
    public init?(_ text: String) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty, !hostPart.contains("/"), let port = UInt16(portPart) else { return nil }
        self.host = String(hostPart)
        self.port = port
    }

    /// The address with `port` replaced (the real one when 0 was asked for).
    public func with(port: UInt16) -> ListenAddress { ListenAddress(host: host, port: port) }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// `http://host:port`.
    public var url: String { "http://\(description)" }
}
