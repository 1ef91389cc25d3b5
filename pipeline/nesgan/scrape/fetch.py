"""A polite HTTP client for one host: one request at a time, a minimum gap, capped bodies.

- Never faster than `gap` seconds between the end of one response and the next request.
- 429/503 honour `Retry-After` (seconds or an HTTP date), capped; other 5xx, timeouts and
  connection errors back off exponentially with jitter, up to `retries` retries.
- Redirects are followed by hand (`allow_redirects=False`), each hop checked: same origin only,
  and allowed by robots.txt, at most `max_redirects` hops.
- Bodies are streamed and capped: Content-Length is checked first, then the bytes as they come;
  a body shorter than its Content-Length is `truncated`; a whole response must arrive within
  `timeout` seconds (also guarding against a server that drips bytes).

Failures raise `FetchError` whose `status` is the manifest status (`http_error`, `timeout`, ...).
"""

from __future__ import annotations

import email.utils
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urljoin, urlsplit

import requests

from nesgan import HOMEPAGE, __version__

DEFAULT_USER_AGENT = f"nesgan/{__version__} (+{HOMEPAGE})"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ERROR_BODY_BYTES = 64 * 1024


class FetchError(Exception):
    """A request that ended without a usable body; `status` is the manifest status."""

    def __init__(self, status: str, message: str, *, http_status: int | None = None,
                 response: Response | None = None):
        super().__init__(message)
        self.status = status
        self.http_status = http_status
        self.response = response  # an error response's (first 64 KiB of) body, for block pages


@dataclass(frozen=True)
class ClientConfig:
    user_agent: str = DEFAULT_USER_AGENT  # honest: names nesgan, its version and home page
    gap: float = 1.0  # seconds between requests: max(--delay, robots Crawl-delay)
    timeout: float = 30.0  # seconds for a whole response, headers and body
    retries: int = 4  # retries after the first try, on 429/5xx/timeouts/connection errors
    backoff: float = 1.0  # first backoff in seconds; doubles each retry, jittered ×0.5…1.5
    max_backoff: float = 60.0  # no single backoff longer than this
    max_retry_after: float = 120.0  # cap on a server's Retry-After (a day-long ask is not kept)
    max_redirects: int = 5  # RFC 9309 §2.3.1.2 asks for at least five hops

    def __post_init__(self) -> None:
        if self.gap < 0 or self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise ValueError("gap, backoff and retries must be ≥ 0 and timeout > 0")


@dataclass(frozen=True)
class Response:
    url: str  # after redirects
    status: int
    content_type: str  # lower case, without parameters ("text/html")
    body: bytes
    headers: dict[str, str]


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: the unit robots.txt applies to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class PoliteClient:
    """Sequential GETs to one origin. `allowed(url)` is consulted for every redirect hop."""

    def __init__(
        self,
        config: ClientConfig,
        start_url: str,
        *,
        allowed: Callable[[str], bool] = lambda url: True,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        self.config = config
        self.origin = origin(start_url)
        self.allowed = allowed
        self.session = session or _single_origin_session(start_url)
        self.session.headers["User-Agent"] = config.user_agent
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._last_end = float("-inf")  # monotonic end of the last response
        self._not_before = 0.0  # monotonic time set by a Retry-After or a backoff
        self.gap = config.gap
        self.requests_made = 0

    def close(self) -> None:
        self.session.close()

    def get(self, url: str, *, max_bytes: int, accept: str = "*/*", truncate: bool = False) -> Response:
        """GET `url` following same-origin redirects; raises `FetchError` on any failure.

        A body over `max_bytes` is `too_large`, or cut to `max_bytes` when `truncate` is set.
        """
        for _hop in range(self.config.max_redirects + 1):
            if origin(url) != self.origin:
                raise FetchError("off_host", f"not fetched: {url} is on another host than the start URL")
            if not self.allowed(url):
                raise FetchError("disallowed", f"robots.txt disallows {url}")
            resp = self._get_with_retries(url, max_bytes=max_bytes, accept=accept, truncate=truncate)
            if resp.status in REDIRECTS:
                location = resp.headers.get("location")
                if not location:
                    raise FetchError("http_error", f"HTTP {resp.status} without a Location header",
                                     http_status=resp.status)
                target = urljoin(url, location.strip())
                if origin(target) != self.origin:
                    raise FetchError("off_host", f"redirect to another host not followed: {target}",
                                     http_status=resp.status)
                url = target
                continue
            if resp.status >= 400 or resp.status < 200:
                raise FetchError("http_error", f"HTTP {resp.status}", http_status=resp.status,
                                 response=resp)
            return resp
        raise FetchError("http_error", f"more than {self.config.max_redirects} redirects")

    # -- one URL, with retries -------------------------------------------------------------

    def _get_with_retries(self, url: str, *, max_bytes: int, accept: str, truncate: bool) -> Response:
        attempt = 0
        while True:
            wait: float | None = None
            try:
                resp = self._get_once(url, max_bytes=max_bytes, accept=accept, truncate=truncate)
            except FetchError as e:
                if e.status not in ("timeout", "connection_error", "truncated") or attempt >= self.config.retries:
                    raise
            else:
                if resp.status not in RETRY_STATUSES or attempt >= self.config.retries:
                    return resp
                if resp.status in (429, 503):
                    wait = parse_retry_after(resp.headers.get("retry-after"))
                    if wait is not None:
                        wait = min(wait, self.config.max_retry_after)
            if wait is None:
                wait = min(self.config.backoff * 2**attempt, self.config.max_backoff)
                wait *= self._rng.uniform(0.5, 1.5)
            attempt += 1
            # The next request (this retry) starts no earlier than the wait from now.
            self._not_before = max(self._not_before, time.monotonic() + wait)

    def _get_once(self, url: str, *, max_bytes: int, accept: str, truncate: bool) -> Response:
        pause = max(self._last_end + self.gap, self._not_before) - time.monotonic()
        if pause > 0:
            self._sleep(pause)
        timeout = self.config.timeout
        started = time.monotonic()
        self.requests_made += 1
        try:
            r = self.session.get(url, stream=True, allow_redirects=False, timeout=(timeout, timeout),
                                 headers={"Accept": accept})
            try:
                body = self._read_body(r, max_bytes=max_bytes, deadline=started + timeout,
                                       truncate=truncate)
                headers = {k.lower(): v for k, v in r.headers.items()}
                content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
                return Response(url=url, status=r.status_code, content_type=content_type,
                                body=body, headers=headers)
            finally:
                r.close()
        except requests.exceptions.Timeout as e:
            raise FetchError("timeout", f"no response within {timeout:g} s ({type(e).__name__})") from None
        except requests.exceptions.ChunkedEncodingError as e:
            raise FetchError("truncated", f"connection ended mid-body: {_short(e)}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.InvalidURL,
                requests.exceptions.InvalidSchema) as e:
            if "timed out" in str(e):  # requests wraps a read timeout mid-body this way
                raise FetchError("timeout", f"no data within {timeout:g} s") from None
            raise FetchError("connection_error", _connection_reason(url, e)) from None
        except requests.exceptions.ContentDecodingError as e:
            raise FetchError("http_error", f"body does not decode as its Content-Encoding: {_short(e)}") from None
        except requests.exceptions.RequestException as e:  # the rest of requests' own family
            raise FetchError("connection_error", f"{type(e).__name__}: {_short(e)}") from None
        finally:
            self._last_end = time.monotonic()

    def _read_body(self, r: requests.Response, *, max_bytes: int, deadline: float,
                   truncate: bool) -> bytes:
        if r.status_code in REDIRECTS or r.status_code in RETRY_STATUSES:
            return b""  # never used; don't read it
        if r.status_code >= 400:
            # Kept only to recognise a block page: read at most 64 KiB, drop the rest.
            head = b""
            for chunk in r.iter_content(chunk_size=16 * 1024):
                head += chunk
                if len(head) >= ERROR_BODY_BYTES or time.monotonic() > deadline:
                    break
            return head[:ERROR_BODY_BYTES]
        declared = r.headers.get("content-length")
        expected: int | None = None
        if declared is not None:
            try:
                expected = int(declared)
            except ValueError:
                expected = None
            if expected is not None and expected > max_bytes and not truncate:
                raise FetchError("too_large", f"Content-Length {expected} exceeds the cap of {max_bytes} bytes")
        chunks: list[bytes] = []
        total = 0
        for chunk in r.iter_content(chunk_size=64 * 1024):
            total += len(chunk)
            if total > max_bytes:
                if truncate:
                    chunks.append(chunk[: max_bytes - (total - len(chunk))])
                    return b"".join(chunks)
                raise FetchError("too_large", f"body exceeds the cap of {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FetchError("timeout", "body still arriving after the timeout")
            chunks.append(chunk)
        body = b"".join(chunks)
        if expected is not None and len(body) < expected and r.headers.get("content-encoding") in (None, "identity"):
            raise FetchError("truncated", f"got {len(body)} of {expected} bytes")
        return body


def _single_origin_session(url: str) -> requests.Session:
    """A Session that reads the environment's proxy and CA settings once, for the one origin it
    talks to, instead of rescanning the whole environment on every request (`trust_env`)."""
    session = requests.Session()
    session.proxies = requests.utils.get_environ_proxies(url)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


def _connection_reason(url: str, e: BaseException) -> str:
    """Why a connection failed, in words a user can act on (requests' own text is a nest of
    urllib3 reprs); the library text follows only when the cause is none of the usual ones."""
    parts = urlsplit(url)
    host = parts.hostname or url
    where = f"{host}:{parts.port}" if parts.port else host
    text = str(e)
    if "Connection refused" in text or "Errno 111" in text:
        return f"{where} refused the connection: is the server running, and is the port right?"
    if any(s in text for s in ("Name or service not known", "Failed to resolve", "nodename nor servname",
                               "Temporary failure in name resolution", "getaddrinfo failed")):
        return f"cannot resolve {host}: check the URL's spelling and your network"
    if "No route to host" in text or "Network is unreachable" in text:
        return f"{where} is unreachable from here: check your network"
    if "Connection reset" in text:
        return f"{where} reset the connection"
    return _short(e)


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) <= 300 else text[:297] + "..."
