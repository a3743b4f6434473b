/// `GET /content?path=P` on the directory: a whole file read in one round trip when the directory keeps the file's
/// bytes (files of at most its `inline_max_bytes` whose bytes came with their commit), as Lustre's data-on-MDT does.
///
/// - 200: the bytes, with the version they are in these headers (and `ETag`);
/// - 304: `If-None-Match` named the current version (`ETag`), which the caller has already: the same headers, no body;
/// - 307: the bytes are on the file servers: `Location` is the first copy's URL (`curl -L` follows it) and the body
///   is the entry (`EntryInfo`), with every copy. Also the answer while another client holds the path's write lock.
public enum ContentHeader {
    public static let fileId = "X-DFS-File-Id"
    public static let version = "X-DFS-Version"
    public static let sha256 = "X-DFS-SHA256"
    public static let size = "X-DFS-Size"
    public static let mtimeMs = "X-DFS-Mtime-Ms"

    /// The entity tag of a file version: `"<file_id>.<version>"`.
    public static func etag(fileId: Int64, version: Int64) -> String { "\"\(fileId).\(version)\"" }
}
