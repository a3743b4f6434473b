import DFSProtocol
import Foundation
import ServerKit

/// What a file server keeps about itself across restarts: the id the directory gave it.
struct Identity: Codable, Equatable {
    var fileServerId: Int64

    static func load(dataDir: String) -> Identity? {
        guard let data = FileManager.default.contents(atPath: dataDir + "/identity.json") else { return nil }
        return try? WireJSON.decode(Identity.self, from: data)
    }

    /// Saves crash-safely (temp file + rename).
    func save(dataDir: String) throws {
        let data = try WireJSON.encode(self)
        try data.write(to: URL(fileURLWithPath: dataDir + "/identity.json"), options: .atomic)
    }
}
