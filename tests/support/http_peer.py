"""A hostile REST server on loopback: drips, bad encodings, redirects, bombs, deep bodies.

Built on ``http.server``: every request to an :class:`HttpPeer` is answered by one *behaviour*, a
function that writes the raw answer on the handler. Drips pace themselves with the peer's stop
event, so shutting the peer down ends them at once; the fixture joins every handler thread.
"""

import functools
import gzip
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

Behaviour = Callable[["Handler"], None]

DRIP_SECONDS = 0.2


class Handler(BaseHTTPRequestHandler):
    """Hands every request to the peer's behaviour; HTTP/1.1, so connections are kept alive."""

    protocol_version = "HTTP/1.1"
    timeout = 5  # an idle kept-alive connection the client never closed ends on its own
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        self.server.peer.opened(self.connection)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.server.peer.record(self)
        try:
            self.server.peer.behaviour(self)
        except OSError:
            self.close_connection = True  # the client gave up and hung up: that is the point

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    @property
    def stop(self) -> threading.Event:
        return self.server.peer.stop

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    # -- writing helpers ------------------------------------------------------------------
    def answer(
        self,
        status: int,
        body: bytes = b"",
        headers: Optional[Dict[str, str]] = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def answer_json(
        self, status: int, value: Any, headers: Optional[Dict[str, str]] = None
    ) -> None:
        self.answer(status, json.dumps(value).encode(), headers)

    def drip(self, data: bytes) -> None:
        """Write ``data`` one byte per :data:`DRIP_SECONDS`, until the peer stops."""
        for i in range(len(data)):
            if self.stop.wait(DRIP_SECONDS):
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True
    peer: "HttpPeer"


class HttpPeer:
    """A hostile server on ``127.0.0.1:0`` in a thread; use it as a context manager."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.paths: List[str] = []
        self.bodies: List[bytes] = []
        self._lock = threading.Lock()
        self._connections: List[socket.socket] = []
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.peer = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-peer", kwargs={"poll_interval": 0.05}
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.append(conn)

    def record(self, handler: Handler) -> None:
        with self._lock:
            self.paths.append(handler.path)
            self.bodies.append(handler.body)

    @property
    def hits(self) -> int:
        with self._lock:
            return len(self.paths)

    def __enter__(self) -> "HttpPeer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # A kept-alive connection the client still holds would keep its handler waiting.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# -- behaviours ---------------------------------------------------------------------------


def drip_headers(handler: Handler) -> None:
    """A status line, then a header that never ends, one byte at a time."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    handler.wfile.flush()
    handler.drip(b"X-Slow: " + b"a" * 10_000)
    handler.close_connection = True


def drip_body(status: int = 200) -> Behaviour:
    """Honest headers, then a JSON body of 10 kB sent one byte at a time."""

    def behave(handler: Handler) -> None:
        body = json.dumps({"detail": "x" * 10_000}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.flush()
        handler.drip(body)
        handler.close_connection = True

    return behave


def bad_gzip(handler: Handler) -> None:
    handler.answer(200, b"this is not gzip data at all", {"Content-Encoding": "gzip"})


def redirect_to(location: str) -> Behaviour:
    def behave(handler: Handler) -> None:
        handler.answer(302, b"", {"Location": location})

    return behave


@functools.lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzip-compressed (about 64 KB on the wire)."""
    return gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)


def bomb(handler: Handler) -> None:
    handler.answer(200, gzip_bomb(), {"Content-Encoding": "gzip"})


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def deep_json(status: int, depth: int = 600) -> Behaviour:
    """A body nested ``depth`` levels (ProblemDetails with a deep ``detail``)."""

    def behave(handler: Handler) -> None:
        body = '{"title": "Bad", "detail": ' + nested(depth) + "}"
        handler.answer(status, body.encode())

    return behave


def same_page(handler: Handler) -> None:
    """Paging endpoints that ignore ``page``/``skip``: always the same 50 items, and totals
    that promise more."""
    if "callresults/search" in handler.path:
        results = [{"callId": f"c-{i}"} for i in range(50)]
        handler.answer_json(200, {"results": results, "totalCount": 10_000, "totalPages": 200})
    elif "calls/queue/list" in handler.path:
        handler.answer_json(200, {"calls": [{"callId": f"q-{i}"} for i in range(50)]})
    else:  # GET /agents
        handler.answer_json(200, [{"agentId": f"a-{i}", "name": "x"} for i in range(50)])


def echo_credentials(handler: Handler) -> None:
    """A 401 that quotes the request's Authorization header everywhere it can."""
    auth = handler.headers.get("Authorization", "")
    key = auth.split(" ", 1)[-1]
    problem = {
        "title": f"Unauthorized {key}",
        "detail": f"header was {auth!r}; raw key {key}",
        "instance": f"/api/v1/agents?token={key}",
        "errors": {"key": [key]},
        "traceId": f"trace-{key}",
    }
    handler.answer_json(401, problem, {"X-Request-Id": f"req-{key}"})
