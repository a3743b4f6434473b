/// A validated, normalized absolute namespace path such as `/docs/hello.txt`.
///
/// Rules: starts with `/`; repeated and trailing slashes are folded; no `.` or `..` segment; no NUL or other
/// control character; valid UTF-8; at most `maxLength` bytes in all, `maxComponentLength` bytes per name and
/// `maxDepth` names. Names never reach a disk (file servers store numeric ids), so a backslash is just a character.
public struct DFSPath: Hashable, Sendable, CustomStringConvertible {
    public static let maxLength = 4096
    public static let maxComponentLength = 255
    public static let maxDepth = 128

    /// The names from the root down; empty for `/`.
    public let components: [String]

    public static let root = DFSPath(validated: [])

    private init(validated components: [String]) {
        self.components = components
    }

    /// Parses and validates a path.
    /// - Throws: `PathError` saying what is wrong.
    public init(_ text: String) throws(PathError) {
        guard text.hasPrefix("/") else { throw PathError("path must be absolute (start with /): \(text.debugQuoted)") }
        guard text.utf8.count <= Self.maxLength else { throw PathError("path is longer than \(Self.maxLength) bytes") }
        var parts: [String] = []
        for segment in text.split(separator: "/", omittingEmptySubsequences: true) {
            let name = String(segment)
            if name == "." || name == ".." {
                throw PathError("path may not contain '.' or '..' segments: \(text.debugQuoted)")
            }
            if name.utf8.count > Self.maxComponentLength {
                throw PathError("a path name is longer than \(Self.maxComponentLength) bytes")
            }
            if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                throw PathError("path may not contain NUL or control characters")
            }
            // U+FFFD is what invalid UTF-8 (an overlong '.' or '/', say) decodes to: refuse rather than guess.
            if name.unicodeScalars.contains("\u{FFFD}") {
                throw PathError("path must be valid UTF-8")
            }
            parts.append(name)
            if parts.count > Self.maxDepth { throw PathError("path is deeper than \(Self.maxDepth) levels") }
        }
        self.components = parts
    }

    public var isRoot: Bool { components.isEmpty }

    /// The last name, or `/` for the root.
    public var name: String { components.last ?? "/" }

    /// The parent directory; the root is its own parent.
    public var parent: DFSPath { DFSPath(validated: Array(components.dropLast())) }

    public func appending(_ name: String) throws(PathError) -> DFSPath {
        try DFSPath(description + (isRoot ? "" : "/") + name)
    }

    /// True when `self` is `other` or lies below it.
    public func isWithin(_ other: DFSPath) -> Bool {
        components.count >= other.components.count && Array(components.prefix(other.components.count)) == other.components
    }

    public var description: String { "/" + components.joined(separator: "/") }
}

/// Why a path was refused.
public struct PathError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension String {
    fileprivate var debugQuoted: String {
        let shown = unicodeScalars.count > 80 ? String(unicodeScalars.prefix(80)) + "…" : self
        return "'" + shown.unicodeScalars.map { $0.value < 0x20 ? "?" : String($0) }.joined() + "'"
    }
}
