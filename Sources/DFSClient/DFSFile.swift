import DFSProtocol
import Foundation

/// How `DFSClient.open` opens a file.
public enum OpenMode: Sendable {
    /// Read the file as it is at open time.
    case read
    /// Write a new content from scratch; it becomes visible to others at `close()`.
    case write
}

extension DFSClient {
    /// Opens a file. Reads see the version current at open; writes go to a local file and are uploaded and
    /// committed at `close()` (close-to-open consistency, as NFS).
    public func open(_ path: String, mode: OpenMode) throws -> DFSFile {
        let local = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-open-\(UUID().uuidString)").path
        switch mode {
        case .read:
            let entry = try get(path, toLocal: local)
            guard let handle = FileHandle(forReadingAtPath: local) else {
                throw DFSClientError.io("cannot open the local copy \(local)")
            }
            return DFSFile(client: self, path: path, mode: mode, localPath: local, handle: handle, entry: entry)
        case .write:
            // The version at open: close refuses to overwrite a change made meanwhile (409 conflict).
            var base: EntryInfo?
            do {
                base = try stat(path)
            } catch let error as DFSClientError where error.code == "not_found" {
                base = nil
            }
            guard FileManager.default.createFile(atPath: local, contents: nil),
                let handle = FileHandle(forUpdatingAtPath: local)
            else { throw DFSClientError.io("cannot create the local file \(local)") }
            return DFSFile(client: self, path: path, mode: mode, localPath: local, handle: handle, entry: base)
        }
    }
}

/// An open file: a local copy, uploaded on `close()` when opened for writing.
public final class DFSFile {
    public let path: String
    public let mode: OpenMode
    /// The entry as read at open (for `.read`; for `.write` the version it replaces), or as committed by `close()`.
    public private(set) var entry: EntryInfo?
    private let client: DFSClient
    private let localPath: String
    private let handle: FileHandle
    private let reader: LocalReader
    private var closed = false

    init(client: DFSClient, path: String, mode: OpenMode, localPath: String, handle: FileHandle, entry: EntryInfo?) {
        self.client = client
        self.path = path
        self.mode = mode
        self.localPath = localPath
        self.handle = handle
        reader = LocalReader(descriptor: handle.fileDescriptor)
        self.entry = entry
    }

    deinit {
        if !closed {
            try? handle.close()
            unlink(localPath)
        }
    }

    /// Reads up to `count` bytes; empty at the end.
    public func read(upToCount count: Int) throws -> Data {
        guard !closed else { throw DFSClientError.io("\(path) is closed") }
        return try reader.read(upToCount: count)
    }

    /// Appends bytes (files opened for writing).
    public func write(_ data: Data) throws {
        guard !closed, mode == .write else { throw DFSClientError.io("\(path) is not open for writing") }
        try handle.write(contentsOf: data)
    }

    /// Closes the file; for `.write`, uploads and commits it and returns the new entry.
    @discardableResult
    public func close() throws -> EntryInfo? {
        guard !closed else { return entry }
        closed = true
        defer {
            try? handle.close()
            unlink(localPath)
        }
        if mode == .write {
            entry = try client.put(localPath: localPath, to: path, baseVersion: entry?.version)
        }
        return entry
    }
}
