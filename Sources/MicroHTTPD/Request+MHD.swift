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

        func add(_ name: String, _ value: String) {
            let key = lowercaseNames ? name.lowercased() : name
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
                        String(decoding: UnsafeRawBufferPointer(start: name, count: nameSize), as: UTF8.self),
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
