internal import CMicroHTTPD

#if canImport(Glibc)
    @preconcurrency import Glibc
#endif

/// A heap-allocated `sockaddr_in`/`sockaddr_in6` for MHD_OPTION_SOCK_ADDR; freed by the owner after the daemon stops.
struct SocketAddress {
    let pointer: UnsafeMutableRawPointer
    let isIPv6: Bool

    /// Parses an IP literal or "localhost".
    /// - Throws: ``HTTPServerError`` if `host` is neither.
    init(host: String, port: UInt16) throws {
        let literal = host == "localhost" ? "127.0.0.1" : host
        var address4 = sockaddr_in()
        var address6 = sockaddr_in6()
        if inet_pton(AF_INET, literal, &address4.sin_addr) == 1 {
            address4.sin_family = sa_family_t(AF_INET)
            address4.sin_port = port.bigEndian
            pointer = UnsafeMutableRawPointer.allocate(
                byteCount: MemoryLayout<sockaddr_in>.size, alignment: MemoryLayout<sockaddr_in>.alignment)
            pointer.storeBytes(of: address4, as: sockaddr_in.self)
            isIPv6 = false
        } else if inet_pton(AF_INET6, literal, &address6.sin6_addr) == 1 {
            address6.sin6_family = sa_family_t(AF_INET6)
            address6.sin6_port = port.bigEndian
            pointer = UnsafeMutableRawPointer.allocate(
                byteCount: MemoryLayout<sockaddr_in6>.size, alignment: MemoryLayout<sockaddr_in6>.alignment)
            pointer.storeBytes(of: address6, as: sockaddr_in6.self)
            isIPv6 = true
        } else {
            throw HTTPServerError(message: "host must be an IP literal or \"localhost\": \(host)")
        }
    }

    var sockaddrPointer: UnsafePointer<sockaddr> {
        UnsafePointer(pointer.assumingMemoryBound(to: sockaddr.self))
    }

    func deallocate() {
        pointer.deallocate()
    }
}
