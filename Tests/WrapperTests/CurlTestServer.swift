import Foundation
import Synchronization

/// A python3 `http.server` on 127.0.0.1, port 0, started as a subprocess for the Curl tests.
///
/// Endpoints: `GET /hello` (small body, custom and repeated headers), `GET /big?size=N` (N bytes of the pattern
/// `i % 256`, streamed), `GET /stats` (connections accepted so far), `GET /slow?seconds=S`, `GET /fail?size=N` (500),
/// anything else 404 with a JSON error; `PUT/POST/DELETE /echo` answer the body's length, sha256, whether it matched
/// the pattern, whether it was chunked, and some request headers. `HEAD` works on every GET path.
/// Always `stop()` it in a `defer`.
final class CurlTestServer {
    private let process: Process
    private let directory: URL
    private let lifeline: Pipe
    /// The port the server bound.
    let port: Int

    private init(process: Process, directory: URL, port: Int, lifeline: Pipe) {
        self.process = process
        self.directory = directory
        self.port = port
        self.lifeline = lifeline
    }

    /// The URL of `path` on this server.
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Starts the server and waits (at most 10 s) for it to print its port.
    static func start() throws -> CurlTestServer {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("curl-test-server-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let script = directory.appendingPathComponent("server.py")
        try Data(pythonScript.utf8).write(to: script)

        let process = Process()
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-u", script.path]
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-u", script.path]
        }
        let output = Pipe()
        process.standardOutput = output
        // The server exits when this pipe closes, so it cannot outlive a crashed test process.
        let lifeline = Pipe()
        process.standardInput = lifeline
        let firstLine = FirstLine()
        output.fileHandleForReading.readabilityHandler = { handle in
            firstLine.append(handle.availableData)
        }
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        let line = firstLine.wait(seconds: 10)
        output.fileHandleForReading.readabilityHandler = nil
        guard let line, let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: directory)
            throw CurlTestServerError(message: "python test server did not report a port (got \(line ?? "nothing"))")
        }
        return CurlTestServer(process: process, directory: directory, port: port, lifeline: lifeline)
    }

    /// Kills the server and removes its temp directory.
    func stop() {
        try? lifeline.fileHandleForWriting.close()
        if process.isRunning {
            process.terminate()
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }
}

struct CurlTestServerError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Collects stdout until the first newline (or EOF) and lets one thread wait for it with a deadline.
private final class FirstLine: Sendable {
    private let state = Mutex((buffer: Data(), done: false))
    private let signal = DispatchSemaphore(value: 0)

    func append(_ data: Data) {
        let finished = state.withLock { state -> Bool in
            guard !state.done else { return false }
            state.buffer.append(data)
            if data.isEmpty || state.buffer.contains(UInt8(ascii: "\n")) {
                state.done = true
                return true
            }
            return false
        }
        if finished {
            signal.signal()
        }
    }

    func wait(seconds: Double) -> String? {
        guard signal.wait(timeout: .now() + seconds) == .success else { return nil }
        let buffer = state.withLock { $0.buffer }
        return String(decoding: buffer, as: UTF8.self).split(separator: "\n").first.map(String.init)
    }
}

private let pythonScript = #"""
    import hashlib
    import json
    import os
    import signal
    import sys
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse

    BLOCK = bytes(range(256)) * 4096  # 1 MiB of the pattern i % 256
    DOUBLE = BLOCK + BLOCK
    lock = threading.Lock()
    connections = 0


    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def setup(self):
            global connections
            super().setup()
            with lock:
                connections += 1  # one handler instance per TCP connection

        def log_message(self, *args):
            pass

        def query(self):
            url = urlparse(self.path)
            return url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}

        def reply(self, status, body=b"", headers=(), content_type="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self):
            path, q = self.query()
            if path == "/hello":
                self.reply(200, b"hello", [("X-Test", "yes"), ("X-Multi", "a"), ("X-Multi", "b")], "text/plain")
            elif path == "/big":
                size = int(q.get("size", str(64 << 20)))
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if self.command == "HEAD":
                    return
                view = memoryview(BLOCK)
                sent = 0
                while sent < size:
                    n = min(len(BLOCK), size - sent)
                    self.wfile.write(view[:n])
                    sent += n
            elif path == "/stats":
                with lock:
                    count = connections
                self.reply(200, json.dumps({"connections": count}).encode())
            elif path == "/slow":
                time.sleep(float(q.get("seconds", "5")))
                self.reply(200, b"late", content_type="text/plain")
            elif path == "/fail":
                self.reply(500, b"e" * int(q.get("size", "100")), content_type="text/plain")
            else:
                error = {"error": {"code": "not_found", "message": "no such path: " + path}}
                self.reply(404, json.dumps(error).encode())

        do_HEAD = do_GET

        def read_body(self):
            state = {"digest": hashlib.sha256(), "length": 0, "pattern": True, "head": b""}

            def take(data):
                offset = state["length"] % 256
                if DOUBLE[offset:offset + len(data)] != data:
                    state["pattern"] = False
                state["digest"].update(data)
                state["length"] += len(data)
                if len(state["head"]) < 1024:
                    state["head"] += data[:1024 - len(state["head"])]

            def read_exactly(count):
                while count > 0:
                    data = self.rfile.read(min(count, 256 * 1024))
                    if not data:
                        raise ConnectionError("body ended early")
                    take(data)
                    count -= len(data)

            chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
            if chunked:
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    read_exactly(size)
                    self.rfile.readline()
            else:
                read_exactly(int(self.headers.get("Content-Length", "0")))
            return state, chunked

        def do_PUT(self):
            path, _ = self.query()
            state, chunked = self.read_body()
            answer = {
                "method": self.command,
                "length": state["length"],
                "sha256": state["digest"].hexdigest(),
                "pattern": state["pattern"],
                "chunked": chunked,
                "text": state["head"].decode("latin-1"),
                "content_length": self.headers.get("Content-Length"),
                "content_type": self.headers.get("Content-Type"),
                "expect": self.headers.get("Expect"),
                "x_custom": self.headers.get("X-Custom"),
                "x_empty": self.headers.get("X-Empty"),
            }
            self.reply(200 if path == "/echo" else 404, json.dumps(answer).encode())

        do_POST = do_PUT
        do_DELETE = do_PUT


    def exit_when_parent_goes():
        sys.stdin.buffer.read()  # EOF: the test process closed the pipe or died
        os._exit(0)


    # The spawning thread may have SIGTERM blocked, and the mask is inherited: unblock so terminate() works.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    threading.Thread(target=exit_when_parent_goes, daemon=True).start()
    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            # Tests abort transfers on purpose (a throwing onBody, a short upload): a dropped connection is expected.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)


    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """#
