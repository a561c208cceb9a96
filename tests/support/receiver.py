"""A small HTTP server on loopback, in a thread, that records what it is sent:
the ping and webhook receiver of the tests (and Sentry's, whose envelopes
come gzipped)."""

import gzip
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How long a held request waits at most for the test to let it go.
HOLD_LIMIT = 10


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    body: str
    content_type: str
    at: float  # time.monotonic() on arrival

    def json(self):
        return json.loads(self.body)


class Receiver:
    """Answers 200, or `status[path]`; holds the first `hold[path]` requests to
    a path unanswered until `release` is set (or HOLD_LIMIT passes)."""

    def __init__(self):
        self.received: list[Received] = []
        self.status: dict[str, int] = {}
        self.hold: dict[str, int] = {}
        self.holding = 0
        self.held = threading.Event()  # set when a request is being held
        self.release = threading.Event()
        self._arrived = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def wait_for(self, count: int, timeout: float = 15) -> list[Received]:
        """The first `count` requests, once they have arrived."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} of {count} requests arrived")
            return self.received[:count]

    def paths(self) -> list[str]:
        with self._arrived:
            return [request.path for request in self.received]

    def _take(self, handler) -> int:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        if handler.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = Received(
            handler.command,
            handler.path,
            body.decode(),
            handler.headers.get("Content-Type", ""),
            time.monotonic(),
        )
        with self._arrived:
            self.received.append(request)
            self._arrived.notify_all()
            held = self.hold.get(request.path, 0) > 0
            if held:
                self.hold[request.path] -= 1
                self.holding += 1
        if held:
            self.held.set()
            self.release.wait(HOLD_LIMIT)
            with self._arrived:
                self.holding -= 1
        return self.status.get(request.path, 200)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                status = receiver._take(self)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")
                except OSError:
                    pass  # the sender gave up waiting

            do_GET = do_POST

            def log_message(self, *args):
                pass

        return Handler
