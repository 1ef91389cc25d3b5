"""The embedded museum over HTTP on loopback: a threaded server in the museum's shape (Apache's
Server header, keep-alive, a `/` redirect, a "Please visit" page for blocked user agents), with
hooks that let tests see every request and inject failures."""

from __future__ import annotations

import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from nesgan.errors import NesganError
from nesgan.museum.site import INDEX_PATH

if TYPE_CHECKING:
    from nesgan.museum.site import Museum


class _Handler(BaseHTTPRequestHandler):
    """Serves one Museum; the server object carries it (`self.server.owner`)."""

    protocol_version = "HTTP/1.1"  # keep-alive, like a real web server
    timeout = 15  # drop idle keep-alive connections
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms ACK stall

    def version_string(self) -> str:
        return "Apache"

    def setup(self) -> None:
        super().setup()
        self.server.owner._connections_opened(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._connections_closed(self.connection)  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def _respond(self, body: bool) -> None:
        owner: MuseumServer = self.server.owner  # type: ignore[attr-defined]
        path = unquote(urlsplit(self.path).path)
        agent = self.headers.get("User-Agent", "")
        owner._record(self.command, path, agent)
        status, ctype, payload, extra = owner._answer(path, agent)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        if self.server.owner.verbose:  # type: ignore[attr-defined]
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MuseumServer:
    """A running museum: `.url` is the index (nes.htm), `.base_url` the site root.

    `.requests` lists (method, path, user agent) of every request, so tests can check what a
    crawler fetched. `.faults` maps a path to a list of status codes to answer, one per request,
    before serving it normally (e.g. {"/nes.htm": [503, 429]} to exercise retries).
    """

    def __init__(self, museum: Museum, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False):
        self.museum = museum
        self.verbose = verbose
        self.requests: list[tuple[str, str, str]] = []
        self.faults: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()  # live keep-alive connections, cut on close()
        cls = _Server6 if ":" in host else _Server
        try:
            self._httpd = cls((host, port), _Handler)
        except OSError as e:
            raise NesganError(
                f"cannot listen on {host}:{port}: {e.strerror or e}; "
                "pick another --port (0 picks a free one) or --host"
            ) from None
        self._httpd.owner = self  # type: ignore[attr-defined]
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"museum:{self.port}", daemon=True,
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def url(self) -> str:
        return self.base_url + INDEX_PATH.lstrip("/")

    def _connections_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.add(conn)

    def _connections_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.discard(conn)

    def _record(self, method: str, path: str, agent: str) -> None:
        with self._lock:
            self.requests.append((method, path, agent))

    def _answer(self, path: str, agent: str) -> tuple[int, str, bytes, dict[str, str]]:
        with self._lock:
            queued = self.faults.get(path)
            fault = queued.pop(0) if queued else None
        if fault is not None:
            return fault, "text/plain", f"{fault}\n".encode(), {"Retry-After": "0"}
        if path == "/":
            return 302, "text/plain", b"see /nes.htm\n", {"Location": INDEX_PATH}
        found = self.museum.get(path)
        if found is None:
            return 404, "text/html", b"<html><body>404 Not Found</body></html>\n", {}
        ctype, body = found
        blocked = self.museum.block_user_agents
        if ctype.startswith("text/html") and any(b.lower() in agent.lower() for b in blocked):
            return 200, ctype, self.museum.please_visit(), {}
        return 200, ctype, body, {}

    def fetched(self) -> list[str]:
        """Paths requested so far, in order."""
        with self._lock:
            return [p for _, p, _ in self.requests]

    def close(self) -> None:
        """Stop listening and cut open keep-alive connections, so clients see the site gone."""
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        self._thread.join(timeout=5)

    def __enter__(self) -> MuseumServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve(museum: Museum, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> MuseumServer:
    """Start serving `museum` in a daemon thread; `port=0` picks a free port."""
    return MuseumServer(museum, host, port, verbose)


def serve_until_signalled(museum: Museum, host: str = "127.0.0.1", port: int = 0,
                          verbose: bool = False, on_start=None) -> None:
    """Serve `museum` until SIGINT or SIGTERM (one that lands while starting counts too), then
    stop cleanly and restore the previous handlers. `on_start(server)` runs once it listens."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with serve(museum, host, port, verbose=verbose) as server:
            if on_start is not None:
                on_start(server)
            while not stop.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
