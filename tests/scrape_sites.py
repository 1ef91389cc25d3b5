"""Small loopback web sites for the scraper's tests: a museum-shaped site and fault injection.

`Site` serves a dict of routes on 127.0.0.1 (port 0) from a daemon thread and records every
request; a route is a `Static` answer or a callable `(handler, hit_number) -> None` that writes
its own (possibly broken) response.
"""

from __future__ import annotations

import io
import socket
import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image


@dataclass
class Static:
    body: bytes
    content_type: str = "text/html"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def send(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", content_type: str = "text/html",
         headers: dict[str, str] | None = None, length: int | None = None) -> None:
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that hung up (timeouts, caps) is part of the test, not an error to print."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Site:
    def __init__(self, routes: dict | None = None, host: str = "127.0.0.1"):
        self.routes: dict = dict(routes or {})
        self.requests: list[tuple[float, str, dict[str, str]]] = []  # (time, path, headers)
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with site._lock:
                    site.requests.append((time.monotonic(), self.path, dict(self.headers)))
                    site.hits[path] = n = site.hits.get(path, 0) + 1
                route = site.routes.get(path)
                if route is None:
                    send(self, 404, b"<html><body>not found</body></html>")
                elif isinstance(route, Static):
                    send(self, route.status, route.body, route.content_type, route.headers)
                else:
                    route(self, n)

        self.server = _Server((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def paths(self) -> list[str]:
        return [p for _t, p, _h in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def other_host(routes: dict) -> Site:
    """A second site on another loopback address (127.0.0.2; where the OS lacks it, such as
    macOS, 127.0.0.1 on another port, which is still another origin)."""
    try:
        return Site(routes, host="127.0.0.2")
    except OSError:
        return Site(routes)


# -- content -----------------------------------------------------------------------------------


def screenshot(seed: int, size: tuple[int, int] = (256, 240), fmt: str = "PNG") -> bytes:
    """A small NES-like image: 16×16 blocks of 4 colours, distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    colours = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    cells = rng.integers(0, 4, size=(h // 16 + 1, w // 16 + 1))
    img = colours[np.kron(cells, np.ones((16, 16), dtype=int))[:h, :w]]
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, fmt)
    return buf.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims width×height pixels (its data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def museum_routes(games: dict[str, int], robots: str | None = None, seed: int = 0) -> tuple[dict, list[str]]:
    """A site in The Video Game Museum's shape; returns (routes, screenshot paths it shows)."""
    routes: dict = {}
    shots: list[str] = []
    routes["/robots.txt"] = Static(
        (robots if robots is not None else "User-agent: *\nDisallow: /private/\n").encode(),
        "text/plain")
    routes["/nes.htm"] = Static(b"""<html><head><title>NES</title></head>
<frameset cols="20%,80%"><frame src="images/nes_a.html" name="side">
<frame src="images/nes_b.html" name="main"></frameset></html>""")
    routes["/images/nes_a.html"] = Static(b"""<html><body><a href="#top"></a>
<img src="/images/logo.gif"><a href="../nes.htm" target="_top"></a></body></html>""")
    items = []
    for g, (slug, count) in enumerate(games.items()):
        title = slug.replace("-", " ").title()
        bucket = f"{g % 3:02d}"
        close = "" if g % 2 else "</a>"  # the museum sometimes forgets </a>
        items.append(f'<li><a href="../nes/{bucket}/{slug}.html">{title}{close}')
        tags = ['<img src="/images/vgm.gif"><img src="../../images/bar.gif">']
        for i in range(count):
            name = f"{slug}-{i + 1}.{'gif' if i % 4 == 3 else 'png'}"
            if i % 3 == 1:
                tags.append(f'<a href="{name}"><img src="{name}"><br>')  # </a> missing
            else:
                tags.append(f'<img src="{name}"><br>')
            fmt = "GIF" if name.endswith(".gif") else "PNG"
            size = (256, 224) if i % 2 else (256, 240)
            path = f"/nes/{bucket}/{name}"
            routes[path] = Static(screenshot(seed * 1000 + g * 100 + i, size, fmt), f"image/{fmt.lower()}")
            shots.append(path)
        routes[f"/nes/{bucket}/{slug}.html"] = Static(
            (f"<html><head><title>{title} - NES</title></head><body>"
             f'<a href="../../nes.htm"><img src="/images/home.gif"></a>'
             + "\n".join(tags) + "</body></html>").encode())
    letters = '<a href="#A" target="_self">A</a> <a href="#B" target="_self">B</a>'
    routes["/images/nes_b.html"] = Static(
        (f'<html><head><title>NES games</title></head><body><a name="top"></a>{letters}'
         f"<ol>{''.join(items)}</ol>"
         f'<a href="#top">top</a> <a href="../nes/00/ghost.html"></a>'
         f'<a href="/private/secret.html">Secret</a></body></html>').encode())
    routes["/private/secret.html"] = Static(b"<html><body><img src='secret.png'></body></html>")
    for chrome in ("/images/logo.gif", "/images/vgm.gif", "/images/bar.gif", "/images/home.gif"):
        routes[chrome] = Static(screenshot(7, (32, 16), "GIF"), "image/gif")
    return routes, shots


def reset_connection(h: BaseHTTPRequestHandler) -> None:
    """Close the socket at once with an RST (SO_LINGER 0), no response at all."""
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.close_connection = True
    h.connection.close()
