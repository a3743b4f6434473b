import Foundation

/// The body of a request sent by `HTTPClient`.
public enum RequestBody {
    /// No body. `POST`, `PUT` and `PATCH` still send `Content-Length: 0`.
    case none
    /// A body held in memory; libcurl copies it before the transfer starts.
    case data(Data)
    /// Streamed upload: `read(n)` returns up to n bytes, empty Data at the end. length nil = chunked encoding.
    ///
    /// With a length, the stream must produce exactly `length` bytes: ending early or running over aborts the
    /// transfer with a `CurlError` instead of leaving the server waiting. Bytes returned beyond `n` are kept and sent
    /// with the next calls, so returning a little more than asked is harmless.
    case stream(length: Int64?, read: (Int) throws -> Data)
}
