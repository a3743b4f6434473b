// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "dfs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dfsd", targets: ["dfsd"]),
        .executable(name: "dfs", targets: ["dfs"]),
        .library(name: "DFSClient", targets: ["DFSClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // C libraries, reached only through the three wrapper targets below.
        .systemLibrary(
            name: "CMicroHTTPD", path: "Modules/CMicroHTTPD", pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(
            name: "CCurl", path: "Modules/CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(
            name: "CSQLite", path: "Modules/CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        // Linux calls the Glibc module leaves out (syncfs, sync_file_range): plain integer functions, no pointers.
        .systemLibrary(name: "CLinux", path: "Modules/CLinux"),

        // Wrappers: the only targets that may hold unsafe pointer code.
        .target(name: "MicroHTTPD", dependencies: ["CMicroHTTPD"]),
        .target(name: "Curl", dependencies: ["CCurl"]),
        .target(name: "SQLite", dependencies: ["CSQLite"]),

        // Wire schema and pure domain.
        .target(name: "DFSProtocol"),
        .target(name: "DFSCore"),

        // Servers.
        .target(
            name: "ServerKit",
            dependencies: [
                "MicroHTTPD", "DFSProtocol", "CLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(
            name: "DirectoryServer",
            dependencies: [
                "ServerKit", "DFSCore", "DFSProtocol", "SQLite", "Curl",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "FileServer",
            dependencies: [
                "ServerKit", "DFSProtocol", "Curl", "CLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),

        // Client side.
        .target(
            name: "ClientCache",
            dependencies: ["SQLite", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "DFSClient",
            dependencies: [
                "Curl", "DFSProtocol", "DFSCore", "ClientCache",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),

        // Executables.
        .executableTarget(
            name: "dfsd",
            dependencies: [
                "DirectoryServer", "FileServer", "ServerKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "dfs",
            dependencies: [
                "DFSClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Benchmarks (bench/): print a table with a reference measured in the same run.
        .executableTarget(name: "dfs-bench", dependencies: ["DFSClient", "DFSProtocol", "Curl"], path: "bench/dfs-bench"),

        // Tests, in layers: pure units, wrappers on loopback, real processes.
        .testTarget(
            name: "DFSCoreTests",
            dependencies: [
                "DFSCore", "DFSProtocol", "ServerKit", "DirectoryServer", "FileServer",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(name: "WrapperTests", dependencies: ["MicroHTTPD", "Curl", "SQLite"]),
        .testTarget(name: "ClientCacheTests", dependencies: ["ClientCache", "SQLite"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["DFSClient", "DFSProtocol", "Curl", .product(name: "Crypto", package: "swift-crypto")]),
    ]
)
