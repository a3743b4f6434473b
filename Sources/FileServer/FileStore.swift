import Crypto
import Foundation
import Glibc
import ServerKit
import Synchronization

/// The flat blob store: each file version is `blobs/<file id>.<version>` under the data directory.
///
/// Writes are crash-safe: bytes stream into `tmp/`, are fsynced, renamed into place and the directory is fsynced,
/// so a reader sees a blob whole or not at all. No user path ever reaches the disk.
public final class FileStore: Sendable {
    let root: String
    private let blobs: String
    private let tmp: String
    private let totals: Mutex<(files: Int64, bytes: Int64)>
    private let sequence = Mutex<UInt64>(0)

    public init(dataDir: String) throws {
        root = dataDir
        blobs = dataDir + "/blobs"
        tmp = dataDir + "/tmp"
        let fm = FileManager.default
        try fm.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        // Leftovers of uploads cut short by a crash are never blobs: drop them.
        try? fm.removeItem(atPath: tmp)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        var files: Int64 = 0
        var bytes: Int64 = 0
        for name in try fm.contentsOfDirectory(atPath: blobs) where BlobName(name) != nil {
            files += 1
            bytes += (try? fm.attributesOfItem(atPath: blobs + "/" + name)[.size] as? Int64) ?? 0
        }
        totals = Mutex((files, bytes))
    }

    /// Files and bytes stored.
    public var usage: (files: Int64, bytes: Int64) { totals.withLock { $0 } }

    func path(_ name: BlobName) -> String { blobs + "/" + name.description }

    /// Starts an upload into a fresh temp file.
    func beginUpload(_ name: BlobName) throws -> Upload {
        let id = sequence.withLock { value -> UInt64 in
            value += 1
            return value
        }
        let tempPath = tmp + "/\(name).\(getpid()).\(id)"
        guard FileManager.default.createFile(atPath: tempPath, contents: nil),
            let handle = FileHandle(forWritingAtPath: tempPath)
        else { throw DFSError(507, .internal, "cannot create a temp file") }
        return Upload(store: self, name: name, tempPath: tempPath, handle: handle)
    }

    /// Moves a finished upload into place; refuses to replace an existing blob.
    func install(_ upload: Upload) throws {
        let final = path(upload.name)
        guard access(final, F_OK) != 0 else {
            unlink(upload.tempPath)
            throw DFSError.exists("blob \(upload.name) is already stored")
        }
        guard rename(upload.tempPath, final) == 0 else {
            unlink(upload.tempPath)
            throw DFSError(500, .internal, "cannot store the blob")
        }
        syncDirectory(blobs)
        totals.withLock {
            $0.files += 1
            $0.bytes += upload.size
        }
    }

    /// Opens a blob for reading: its descriptor and size, or nil when absent.
    func open(_ name: BlobName) -> (descriptor: Int32, size: Int64)? {
        let fd = Glibc.open(path(name), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            return nil
        }
        return (fd, Int64(info.st_size))
    }

    /// Deletes a blob; false when it was not there.
    func delete(_ name: BlobName) -> Bool {
        let target = path(name)
        var info = stat()
        guard stat(target, &info) == 0, unlink(target) == 0 else { return false }
        syncDirectory(blobs)
        totals.withLock {
            $0.files -= 1
            $0.bytes -= Int64(info.st_size)
        }
        return true
    }

    private func syncDirectory(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

/// The on-disk name of one blob: `<file id>.<version>`.
struct BlobName: Hashable, CustomStringConvertible {
    let fileId: Int64
    let version: Int64

    init(fileId: Int64, version: Int64) {
        self.fileId = fileId
        self.version = version
    }

    init?(_ text: String) {
        let parts = text.split(separator: ".")
        guard parts.count == 2, let id = Int64(parts[0]), let version = Int64(parts[1]), id > 0, version > 0 else {
            return nil
        }
        self.init(fileId: id, version: version)
    }

    var description: String { "\(fileId).\(version)" }
}

/// One upload in progress: a temp file and a running sha256.
final class Upload {
    let store: FileStore
    let name: BlobName
    let tempPath: String
    private let handle: FileHandle
    private var hasher = SHA256()
    private(set) var size: Int64 = 0

    init(store: FileStore, name: BlobName, tempPath: String, handle: FileHandle) {
        self.store = store
        self.name = name
        self.tempPath = tempPath
        self.handle = handle
    }

    func append(_ chunk: Data) throws {
        try handle.write(contentsOf: chunk)
        hasher.update(data: chunk)
        size += Int64(chunk.count)
    }

    /// Flushes to disk and returns the hex sha256 of what was written.
    func finish() throws -> String {
        guard fsync(handle.fileDescriptor) == 0 else { throw DFSError(500, .internal, "fsync failed") }
        try handle.close()
        return Data(hasher.finalize()).hexString
    }

    func abort() {
        try? handle.close()
        unlink(tempPath)
    }
}
