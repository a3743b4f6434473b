import CLinux
import Crypto
import DFSProtocol
import Foundation
import Glibc
import ServerKit
import Synchronization

/// The flat blob store: each file version is `blobs/<file id>.<version>.<sha256>` under the data directory.
///
/// Writes are crash-safe: bytes stream into an unnamed file in `blobs/` (or a temp file in `tmp/`), which is named
/// once complete, and the blob is acknowledged only after its bytes and name are on disk, so a reader sees a blob
/// whole or not at all. How they get there is `BlobSync`: by default one `syncfs` for every blob finishing at the
/// same moment, else an fsync of each blob and one of `blobs/`. The checksum in the name costs no extra write and
/// lets the scrubber verify a blob without any other metadata. No user path ever reaches the disk.
public final class FileStore: Sendable {
    /// What the store knows of one blob.
    struct BlobInfo: Equatable, Sendable {
        var sha256: String
        var size: Int64
    }

    /// How blobs are made durable (conf key `blob_sync`).
    public enum BlobSync: String, Sendable, CaseIterable {
        /// One `syncfs` of the data directory's file system makes every blob placed so far durable: bytes, inodes
        /// and names in one pass and one device flush (the default). It also writes back whatever else is dirty on
        /// that file system, so it suits a data directory on a disk of its own (or a quiet one).
        case syncfs
        /// Each blob is fsynced when complete, and one fsync of `blobs/` makes the names durable: for a data
        /// directory sharing a file system with heavy unrelated writers.
        case fsync
    }

    let root: String
    let sync: BlobSync
    private let blobs: String
    private let tmp: String
    /// Uploads are unnamed files until they are complete (see `beginUpload`).
    private let unnamedUploads: Bool
    private let quarantine: String
    private let index: Locked<Index>
    private let sequence = Locked<UInt64>(0)
    /// Makes the names in `blobs/` durable (one fsync shared by the uploads finishing together), for blobs whose
    /// bytes were fsynced on their own.
    private let namesFlush: GroupFlush
    /// With `.syncfs`: makes blobs, bytes and names, durable in one `syncfs` shared by those finishing together.
    private let blobsFlush: GroupFlush

    /// The blobs by name, with their totals kept beside them (asked on every upload chunk, so never recounted).
    private struct Index {
        private(set) var blobs: [BlobName: BlobInfo] = [:]
        private(set) var bytes: Int64 = 0

        subscript(name: BlobName) -> BlobInfo? {
            get { blobs[name] }
            set {
                bytes += (newValue?.size ?? 0) - (blobs[name]?.size ?? 0)
                blobs[name] = newValue
            }
        }

        mutating func removeValue(forKey name: BlobName) -> BlobInfo? {
            let old = blobs.removeValue(forKey: name)
            bytes -= old?.size ?? 0
            return old
        }
    }

    public init(dataDir: String, sync: BlobSync = .syncfs) throws {
        root = dataDir
        self.sync = sync
        blobs = dataDir + "/blobs"
        tmp = dataDir + "/tmp"
        quarantine = dataDir + "/corrupt"
        namesFlush = GroupFlush(path: blobs, kind: .fsync)
        blobsFlush = GroupFlush(path: blobs, kind: sync == .syncfs ? .syncfs : .fsync)
        let fm = FileManager.default
        try fm.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        // Leftovers of uploads cut short by a crash are never blobs: drop them.
        try? fm.removeItem(atPath: tmp)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        unnamedUploads = Self.canNameUnnamedFiles(in: tmp)
        var index = Index()
        for file in try fm.contentsOfDirectory(atPath: blobs) {
            guard let (name, sha256) = BlobName.parse(file: file) else { continue }
            let size = (try? fm.attributesOfItem(atPath: blobs + "/" + file)[.size] as? Int64) ?? 0
            index[name] = BlobInfo(sha256: sha256, size: size)
        }
        self.index = Locked(index)
    }

    /// Files and bytes stored.
    public var usage: (files: Int64, bytes: Int64) {
        index.withLock { index in (Int64(index.blobs.count), index.bytes) }
    }

    /// Every stored blob with its checksum and size, ordered by file id and version; with `bucket`, only those of
    /// that inventory bucket (picked before sorting: a bucket costs one pass, not a sort of everything).
    func inventory(bucket: (index: Int, of: Int)? = nil) -> [(BlobName, BlobInfo)] {
        index.withLock { index in
            index.blobs.compactMap { name, info in
                if let bucket, InventoryDigest.bucket(version: name.version, of: bucket.of) != bucket.index { return nil }
                return (name, info)
            }
        }.sorted { $0.0 < $1.0 }
    }

    /// Every blob, in no particular order, without copying the index (its lock is held meanwhile: keep `body` short).
    func forEachBlob(_ body: (BlobName, BlobInfo) -> Void) {
        index.withLock { index in
            for (name, info) in index.blobs { body(name, info) }
        }
    }

    func info(_ name: BlobName) -> BlobInfo? { index.withLock { $0[name] } }

    private func path(_ name: BlobName, _ info: BlobInfo) -> String { blobs + "/" + name.fileName(sha256: info.sha256) }

    /// Starts an upload into a fresh temp file.
    func beginUpload(_ name: BlobName) throws -> Upload {
        let id = sequence.withLock { value -> UInt64 in
            value += 1
            return value
        }
        // An unnamed file in `blobs/` (O_TMPFILE), linked under its name once complete: fsyncing a new *named*
        // temp file also wrote its directory (ext4 syncs the parent of a new entry), so every create wrote `tmp/`
        // as well as `blobs/`; and an upload that dies leaves nothing behind. Where O_TMPFILE is not supported, a
        // named temp file in `tmp/`.
        let unnamed = unnamedUploads ? Glibc.open(blobs, Self.tmpfileFlag | O_WRONLY | O_CLOEXEC, 0o644) : -1
        if unnamed >= 0 {
            return Upload(
                store: self, name: name, tempPath: nil, handle: FileHandle(fileDescriptor: unnamed, closeOnDealloc: true))
        }
        let tempPath = tmp + "/\(name).\(getpid()).\(id)"
        // Plain open(2): FileManager.createFile writes atomically (a temp file of its own, then a rename), which
        // was 39% of a file server's CPU under 4 KiB creates.
        let fd = Glibc.open(tempPath, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DFSError(507, .internal, "cannot create a temp file") }
        return Upload(store: self, name: name, tempPath: tempPath, handle: FileHandle(fileDescriptor: fd, closeOnDealloc: true))
    }

    /// Linux's O_TMPFILE (`__O_TMPFILE | O_DIRECTORY`; the C macro does not reach Swift).
    private static let tmpfileFlag: Int32 = 0o20000000 | O_DIRECTORY

    /// Whether this file system makes unnamed files (O_TMPFILE) and lets this process name them (through /proc):
    /// tried once, at start.
    private static func canNameUnnamedFiles(in directory: String) -> Bool {
        let fd = Glibc.open(directory, tmpfileFlag | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let probe = directory + "/.probe-\(getpid())"
        guard linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, probe, AT_SYMLINK_FOLLOW) == 0 else { return false }
        unlink(probe)
        return true
    }

    /// Moves a finished upload into place under its checksum and makes it durable; refuses to replace an existing
    /// blob.
    func install(_ upload: Upload, sha256: String) throws {
        try place(upload, sha256: sha256)
        try makeDurable(bytesFlushed: upload.flushedItself)
    }

    /// Moves a finished upload into place under its checksum, not yet durable (`makeDurable` does that, for every
    /// blob placed before it is called); refuses to replace an existing blob.
    func place(_ upload: Upload, sha256: String) throws {
        let claimed = index.withLock { index -> Bool in
            guard index[upload.name] == nil else { return false }
            // Reserve the name so a concurrent upload of the same blob cannot also install it.
            index[upload.name] = BlobInfo(sha256: sha256, size: upload.size)
            return true
        }
        guard claimed else {
            upload.abort()
            throw DFSError.exists("blob \(upload.name) is already stored")
        }
        let final = blobs + "/" + upload.name.fileName(sha256: sha256)
        guard upload.link(as: final) else {
            upload.abort()
            index.withLock { $0[upload.name] = nil }
            throw DFSError(500, .internal, "cannot store the blob")
        }
    }

    /// Returns once every blob placed so far is durable: one flush, shared with the others waiting. With
    /// `bytesFlushed` (the caller's blobs were fsynced by `Upload.finish`), only their names need it.
    func makeDurable(bytesFlushed: Bool = false) throws {
        let flush = bytesFlushed ? namesFlush : blobsFlush
        do {
            try flush.waitDurable(flush.changed())
        } catch {
            throw DFSError(500, .internal, "cannot make the blob durable: \(error)")
        }
    }

    /// Opens a blob for reading: its descriptor, size and checksum, or nil when absent.
    func open(_ name: BlobName) -> (descriptor: Int32, size: Int64, sha256: String)? {
        guard let info = info(name) else { return nil }
        let fd = Glibc.open(path(name, info), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            close(fd)
            return nil
        }
        return (fd, Int64(status.st_size), info.sha256)
    }

    /// The most bytes of a blob `checkedBytes` reads: those of any create answered before its flush.
    static let checkedMaxBytes = Int64(BatchCommitItem.unflushedMaxBytes)

    /// A small blob's bytes (at most `checkedMaxBytes`), read from `descriptor` whole and checked against the sha256
    /// its name carries: nil when they differ (the blob is then quarantined) or cannot be read.
    func checkedBytes(_ name: BlobName, descriptor: Int32, size: Int64, sha256: String) -> Data? {
        guard size <= Self.checkedMaxBytes else { return nil }
        var data = Data()
        // One byte more than expected, so that a longer file shows.
        var chunk = [UInt8](repeating: 0, count: Int(size) + 1)
        while data.count <= Int(size) {
            let count = pread(descriptor, &chunk, chunk.count, off_t(data.count))
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            data.append(contentsOf: chunk[..<count])
        }
        guard data.count == Int(size), Data(SHA256.hash(data: data)).hexString == sha256 else {
            quarantine(name)
            return nil
        }
        return data
    }

    /// Deletes a blob; false when it was not there.
    func delete(_ name: BlobName) -> Bool {
        guard let info = index.withLock({ $0.removeValue(forKey: name) }) else { return false }
        unlink(path(name, info))
        try? blobsFlush.waitDurable(blobsFlush.changed())
        return true
    }

    /// Re-reads a blob and compares it with its checksum. Nil when the blob is gone, or when `cancelled` (asked
    /// between reads of 1 MiB) turned true.
    func verify(_ name: BlobName, cancelled: () -> Bool = { false }) -> Bool? {
        guard let info = info(name), let handle = FileHandle(forReadingAtPath: path(name, info)) else { return nil }
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            if cancelled() { return nil }
            hasher.update(data: chunk)
            size += Int64(chunk.count)
        }
        return size == info.size && Data(hasher.finalize()).hexString == info.sha256
    }

    /// Moves a corrupt blob out of the store (kept in `corrupt/` for inspection) and forgets it.
    func quarantine(_ name: BlobName) {
        guard let info = index.withLock({ $0.removeValue(forKey: name) }) else { return }
        try? FileManager.default.createDirectory(atPath: quarantine, withIntermediateDirectories: true)
        let file = name.fileName(sha256: info.sha256)
        if rename(blobs + "/" + file, quarantine + "/" + file) != 0 { unlink(blobs + "/" + file) }
        try? blobsFlush.waitDurable(blobsFlush.changed())
    }
}

/// One blob: a file id and version. On disk: `<file id>.<version>.<sha256>`.
struct BlobName: Hashable, Comparable, Sendable, CustomStringConvertible {
    let fileId: Int64
    let version: Int64

    init(fileId: Int64, version: Int64) {
        self.fileId = fileId
        self.version = version
    }

    /// Parses an on-disk file name into the blob and its checksum.
    static func parse(file: String) -> (BlobName, String)? {
        let parts = file.split(separator: ".")
        guard parts.count == 3, let id = Int64(parts[0]), let version = Int64(parts[1]), id > 0, version > 0,
            parts[2].count == 64, Data(hex: String(parts[2])) != nil
        else { return nil }
        return (BlobName(fileId: id, version: version), String(parts[2]))
    }

    func fileName(sha256: String) -> String { "\(fileId).\(version).\(sha256)" }

    /// By file id, then version.
    static func < (lhs: BlobName, rhs: BlobName) -> Bool { (lhs.fileId, lhs.version) < (rhs.fileId, rhs.version) }

    var description: String { "\(fileId).\(version)" }
}

/// One upload in progress: a temp file (unnamed, or named `tempPath`) and a running sha256.
final class Upload {
    let store: FileStore
    let name: BlobName
    let tempPath: String?
    private let handle: FileHandle
    private var hasher = SHA256()
    private(set) var size: Int64 = 0
    /// Bytes handed to writeback so far (see `append`).
    private var writtenBack: Int64 = 0
    /// Whether `finish` fsynced the bytes (always with `BlobSync.fsync`; with `.syncfs`, big uploads: see there).
    private(set) var flushedItself = false
    /// Writeback of a big upload starts every this many bytes.
    static let writebackStep: Int64 = 8 << 20

    init(store: FileStore, name: BlobName, tempPath: String?, handle: FileHandle) {
        self.store = store
        self.name = name
        self.tempPath = tempPath
        self.handle = handle
    }

    func append(_ chunk: Data) throws {
        try handle.write(contentsOf: chunk)
        hasher.update(data: chunk)
        size += Int64(chunk.count)
        if size - writtenBack >= Self.writebackStep {
            // Start writing the bytes so far (without waiting): a big upload then leaves little for its final
            // flush, and little dirty for a concurrent `syncfs` of small ones to write back.
            _ = dfs_start_writeback(handle.fileDescriptor, writtenBack, size - writtenBack)
            writtenBack = size
        }
    }

    /// Ends the writing and returns the hex sha256 of what was written. (An unnamed file stays open until it is
    /// named: closing it would free it.)
    ///
    /// The bytes are fsynced here with `BlobSync.fsync`, and with `.syncfs` when the upload is big (at least
    /// `writebackStep`): a big file's flush is its own, and the shared `syncfs` of small blobs would also write back
    /// whatever else the machine has dirty (such as a client's cache copy of that same big file).
    func finish() throws -> String {
        if store.sync == .fsync || size >= Self.writebackStep {
            guard fsync(handle.fileDescriptor) == 0 else { throw DFSError(500, .internal, "fsync failed") }
            flushedItself = true
        }
        if tempPath != nil { try handle.close() }
        return Data(hasher.finalize()).hexString
    }

    /// Gives the finished file its final path (not yet durable: the directory's fsync does that); false on failure.
    func link(as final: String) -> Bool {
        if let tempPath { return rename(tempPath, final) == 0 }
        defer { try? handle.close() }
        return linkat(AT_FDCWD, "/proc/self/fd/\(handle.fileDescriptor)", AT_FDCWD, final, AT_SYMLINK_FOLLOW) == 0
    }

    func abort() {
        try? handle.close()
        if let tempPath { unlink(tempPath) }
    }
}
