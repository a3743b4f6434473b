internal import CMicroHTTPD

extension Request {
    /// Reads the request head from an MHD connection (called on the handler's first call).
    init(connection: OpaquePointer, method: String, url: String) {
        self.method = method
        self.path = url
        self.query = Request.values(of: .GET_ARGUMENT_KIND, on: connection, lowercaseNames: false, join: false)
        self.headers = Request.values(of: .HEADER_KIND, on: connection, lowercaseNames: true, join: true)
    }

    /// Accumulates key/value pairs handed out by MHD_get_connection_values_n.
    private final class Collector {
        let lowercaseNames: Bool
        let join: Bool
        var values: [String: String] = [:]

        init(lowercaseNames: Bool, join: Bool) {
            self.lowercaseNames = lowercaseNames
            self.join = join
        }

        func add(_ name: UnsafeRawBufferPointer, _ value: String) {
            // Header names are ASCII tokens: lowercased byte by byte (String.lowercased is Unicode-aware, and was
            // most of this function's cost).
            let key =
                lowercaseNames
                ? String(decoding: name.lazy.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
                : String(decoding: name, as: UTF8.self)
            if join, let existing = values[key] {
                values[key] = existing + ", " + value
            } else {
                values[key] = value
            }
        }
    }

    private static func values(
        of kind: MHD_ValueKind, on connection: OpaquePointer, lowercaseNames: Bool, join: Bool
    ) -> [String: String] {
        let collector = Collector(lowercaseNames: lowercaseNames, join: join)
        withExtendedLifetime(collector) {
            _ = MHD_get_connection_values_n(
                connection, kind,
                { context, _, name, nameSize, value, valueSize in
                    guard let context, let name else { return .YES }
                    let collector = Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue()
                    collector.add(
                        UnsafeRawBufferPointer(start: name, count: nameSize),
                        value.map {
                            String(decoding: UnsafeRawBufferPointer(start: $0, count: valueSize), as: UTF8.self)
                        }
                            ?? "")
                    return .YES
                },
                Unmanaged.passUnretained(collector).toOpaque())
        }
        return collector.values
    }
}
