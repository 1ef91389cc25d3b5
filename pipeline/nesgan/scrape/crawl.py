"""`nesgan scrape`: a polite, resumable crawl of a screenshot museum into OUT/raw, then crops.

1. robots.txt (RFC 9309, `nesgan.scrape.robots`), fetched with the crawler's own client: 4xx means
   everything is allowed, 5xx or unreachable means nothing is (the crawl stops, saying so).
2. Breadth-first over HTML pages on the start URL's origin (`nesgan.scrape.discover`): the start page's
   frames cost no depth (deeper framesets are other sections' entry pages: a hop), a page's links
   are followed while depth < `max_depth` unless the page is a game page (it shows at least as
   many screenshots as it links to pages).
3. Each screenshot is fetched right after its page, checked (content type, magic bytes, header
   dimensions before any decoding, then the whole file: `nesgan.scrape.rawstore.check_image`), stored
   once per content as `raw/<sha256[:2]>/<sha256>.<ext>` and recorded in `raw/manifest.jsonl`
   (one row per image URL, appended once the file is in place).
4. `nesgan.crop.screens.crop_folder` crops what landed into OUT/screens.

The crawl stops (NesganError, exit 1, manifest intact) on a block page ("Please visit …") and on
a 429 that outlasts the retries: the site is asking us to go away, so we do, and say so.

Resume: image URLs already in the manifest are never fetched again; pages are cached as their
parsed outcome in `raw/.scrape/pages.jsonl` (a page that parsed is not fetched again; one that
failed is). Originals whose file did not survive (see `nesgan.scrape.rawstore`) are fetched again.
"""

from __future__ import annotations

import sys
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING

from nesgan.errors import NesganError
from nesgan.files import MANIFEST, iter_jsonl, write_json
from nesgan.scrape import VGMUSEUM_NES
from nesgan.scrape.discover import Page, decode_html, looks_like_html, parse_page
from nesgan.scrape.fetch import DEFAULT_USER_AGENT, ClientConfig, FetchError, PoliteClient, origin
from nesgan.scrape.rawstore import (
    Lock,
    SyncedAppender,
    Writer,
    check_image,
    clear,
    load_manifest,
    relative_path,
    remove_temp_files,
    sniff_image,
)
from nesgan.scrape.robots import MAX_ROBOTS_BYTES, AgentRules, Robots

if TYPE_CHECKING:
    from nesgan.crop.screens import CropSummary

STATE = ".scrape"  # hidden, so the crop stage (which crops every other file under raw/) skips it
PAGES = f"{STATE}/pages.jsonl"
CONFIG = f"{STATE}/config.json"
LOCK = f"{STATE}/lock"

_OK_CONTENT_TYPES = ("", "application/octet-stream", "binary/octet-stream")


@dataclass(frozen=True)
class ScrapeConfig:
    url: str = VGMUSEUM_NES  # The Video Game Museum's NES index
    out: Path = Path("data")  # writes OUT/raw and OUT/screens
    delay: float = 1.0  # seconds between requests; robots.txt Crawl-delay can only raise it
    max_images: int | None = None  # image URLs to handle (resumed ones count), None: all
    max_pages: int | None = None  # HTML pages to handle (cached ones count), None: all
    timeout: float = 30.0  # seconds for a whole response
    retries: int = 4  # on 429/5xx/timeouts/connection errors
    user_agent: str | None = None  # None: "nesgan/<version> (+<home page>)"
    overwrite: bool = False  # start over instead of resuming
    max_depth: int = 2  # link hops from the start page (its frames are free): list -> game page
    max_html_bytes: int = 2 * 1024 * 1024  # museum pages are tens of KiB
    max_image_bytes: int = 8 * 1024 * 1024  # a 512×480 PNG is < 1 MiB; 8 MiB is generous
    max_pixels: int = 4096 * 4096  # header check before decoding: NES shots are ~256×240
    backoff: float = 1.0  # first retry backoff in seconds (doubles, jittered)
    max_retry_after: float = 120.0  # cap on a server's Retry-After
    crop: bool = True  # crop into OUT/screens after the crawl
    hud: str = "auto"  # status bars: auto finds each game's and crops around it; keep keeps them
    progress: bool = True  # tqdm bar on stderr

    def __post_init__(self) -> None:
        if not urlparts_ok(self.url):
            raise NesganError(f"{self.url!r} is not an http(s) URL; pass e.g. {VGMUSEUM_NES}")
        if self.delay < 0 or self.timeout <= 0 or self.retries < 0:
            raise NesganError("--delay and --retries must be ≥ 0 and --timeout > 0")


def urlparts_ok(url: str) -> bool:
    scheme, host, _port = origin(url)
    return scheme in ("http", "https") and bool(host)


@dataclass
class ScrapeResult:
    raw: Path
    screens: Path
    pages: int = 0  # HTML pages handled (fetched or replayed from the cache)
    pages_fetched: int = 0
    page_failures: Counter = field(default_factory=Counter)
    images: Counter = field(default_factory=Counter)  # manifest status -> rows (this run + before)
    resumed: int = 0  # image URLs skipped because the manifest already had them
    requests: int = 0
    gap: float = 0.0  # the effective gap between requests
    last_page_error: str = ""  # why the last failed page failed
    stopped_by: str = ""  # "--max-images N" or "--max-pages N" when a cap ended the crawl
    crop: CropSummary | None = None  # what crop_folder returned

    def summary(self) -> str:
        ok, dup = self.images.get("ok", 0), self.images.get("duplicate", 0)
        failed = {k: v for k, v in sorted(self.images.items()) if k not in ("ok", "duplicate")}
        lines = [f"pages: {self.pages} ({self.pages_fetched} fetched this run)"
                 + (", not crawled: " + ", ".join(f"{n} {why}" for why, n in sorted(self.page_failures.items()))
                    if self.page_failures else "")
                 + (f"; stopped at {self.stopped_by}" if self.stopped_by else ""),
                 f"images: {ok} ok, {dup} duplicates"
                 + (", not stored: " + ", ".join(f"{n} {why}" for why, n in failed.items()) if failed else "")
                 + (f" ({self.resumed} already done)" if self.resumed else ""),
                 f"requests: {self.requests} at ≥ {self.gap:g} s apart",
                 f"originals and manifest: {self.raw}"]
        if not self.images:
            lines.append(f"no screenshots found on {self.pages} pages: nesgan takes bare-named "
                         '<img src="smb-1.png"> (or <a href> to them) on game pages; '
                         f"{self.raw / PAGES} lists what each page linked to")
        if self.crop is not None:
            lines.append(f"crops: {self.crop.format()}")
        return "\n".join(lines)


class Blocked(NesganError):
    """The site answered with a block page: stop, keep the manifest, never disguise the client."""


def scrape(config: ScrapeConfig) -> ScrapeResult:
    """Crawl `config.url` into OUT/raw (resumable), then crop into OUT/screens."""
    raw, screens = config.out / "raw", config.out / "screens"
    result = ScrapeResult(raw=raw, screens=screens)
    with Lock(raw / LOCK):
        if config.overwrite:
            clear(raw, (MANIFEST, PAGES, CONFIG))
        raw.mkdir(parents=True, exist_ok=True)
        remove_temp_files(raw)
        write_json(raw / CONFIG, {k: str(v) if isinstance(v, Path) else v
                                  for k, v in asdict(config).items()})
        crawler = _Crawler(config, raw, result)
        try:
            crawler.run()
        finally:
            crawler.close()
    if config.crop:
        result.crop = _crop(raw, screens, overwrite=config.overwrite, hud=config.hud)
    return result


def _crop(raw: Path, screens: Path, *, overwrite: bool, hud: str = "auto") -> CropSummary:
    from nesgan.crop.screens import CropConfig, crop_folder

    rows = [row for row in iter_jsonl(raw / MANIFEST) if row.get("status") == "ok"]
    sources = {row["path"]: row["url"] for row in rows}
    games = {row["path"]: str(row["game"]) for row in rows if row.get("game")}  # shared status bar
    return crop_folder(CropConfig(src=raw, out=screens, overwrite=overwrite, hud=hud),
                       sources=sources, games=games)


class _Crawler:
    def __init__(self, config: ScrapeConfig, raw: Path, result: ScrapeResult):
        self.config, self.raw, self.result = config, raw, result
        self.user_agent = config.user_agent or DEFAULT_USER_AGENT
        self.rules = AgentRules()
        self.client = PoliteClient(
            ClientConfig(user_agent=self.user_agent, gap=config.delay, timeout=config.timeout,
                         retries=config.retries, backoff=config.backoff,
                         max_retry_after=config.max_retry_after),
            config.url, allowed=lambda url: self.rules.allowed(url))
        # Resume state: what earlier runs recorded.
        self.done: dict[str, dict] = {}
        self.by_sha: dict[str, dict] = {}
        for row in load_manifest(raw / MANIFEST, raw):
            self.done[row["url"]] = row
            if row.get("status") == "ok":
                self.by_sha.setdefault(row["sha256"], row)
        self.cached_pages: dict[str, dict] = {}
        for row in iter_jsonl(raw / PAGES):
            self.cached_pages[row["url"]] = row  # the last row per URL wins
        self.manifest = SyncedAppender(raw / MANIFEST)
        self.writer = Writer(raw, self.manifest)
        self.pages_log = SyncedAppender(raw / PAGES)
        self.images_seen: set[str] = set()
        self.bar = None

    def close(self) -> None:
        try:
            self.writer.close()  # drains pending originals and rows first
        finally:
            self.manifest.close()
            self.pages_log.close()
            self.client.close()
            if self.bar is not None:
                self.bar.close()
            self.result.requests = self.client.requests_made

    # -- the crawl ---------------------------------------------------------------------------

    def run(self) -> None:
        from tqdm import tqdm

        self._load_robots()
        start = self.config.url.split("#", 1)[0]
        if not self.rules.allowed(start):
            raise NesganError(f"robots.txt of {_origin_url(start)} disallows {start}; nothing fetched")
        self.bar = tqdm(total=self.config.max_images, unit="img", desc="scrape", file=sys.stderr,
                        disable=not self.config.progress, dynamic_ncols=True, mininterval=0.5)
        queue: deque[tuple[str, int, str]] = deque([(start, 0, "")])  # (url, depth, game)
        queued = {start}
        while queue:
            if self.config.max_pages is not None and self.result.pages >= self.config.max_pages:
                self.result.stopped_by = f"--max-pages {self.config.max_pages}"
                return
            url, depth, game = queue.popleft()
            page = self._page(url, depth)
            self.result.pages += 1
            self.bar.set_postfix(pages=self.result.pages, refresh=False)
            if page is None and url == start:
                raise NesganError(f"the start page {start} gave nothing to crawl "
                                  f"({self.result.last_page_error}); check the URL")
            if page is None:
                continue
            title = game or page.title
            for image in page.images:
                self._image(image, url, title)
                if self._images_full():  # no page beyond this one is fetched
                    self.result.stopped_by = f"--max-images {self.config.max_images}"
                    return
            # The start page's frames are part of it; deeper, a frameset is another section's
            # entry page (the museum's menu links to every console's), so its frames cost a hop.
            frame_depth = depth if depth == 0 else depth + 1
            for frame in page.frames:
                if frame_depth <= self.config.max_depth and frame not in queued \
                        and origin(frame) == self.client.origin:
                    queued.add(frame)
                    queue.append((frame, frame_depth, game))
            game_page = bool(page.images) and len(page.images) >= len(page.links)
            if depth < self.config.max_depth and not game_page:
                for link, text in page.links:
                    if link not in queued and origin(link) == self.client.origin:
                        queued.add(link)
                        queue.append((link, depth + 1, text))

    def _load_robots(self) -> None:
        robots_url = _origin_url(self.config.url) + "/robots.txt"
        try:
            resp = self.client.get(robots_url, max_bytes=MAX_ROBOTS_BYTES, accept="text/plain",
                                   truncate=True)
        except FetchError as e:
            if e.status == "http_error" and e.http_status is not None and 400 <= e.http_status < 500 \
                    and e.http_status != 429:
                robots = Robots.allow_all()  # RFC 9309 §2.3.1.3: unavailable, crawl freely
            elif e.status == "connection_error":
                raise NesganError(f"cannot reach {robots_url}: {e}") from None
            else:
                raise NesganError(
                    f"{robots_url} could not be read ({e}); RFC 9309 says to crawl nothing then. "
                    "Try again later") from None
        else:
            robots = Robots.parse(resp.body)
        self.rules = robots.for_agent(self.user_agent)
        self.client.gap = max(self.config.delay, self.rules.crawl_delay or 0.0)
        self.result.gap = self.client.gap

    # -- pages -------------------------------------------------------------------------------

    def _page(self, url: str, depth: int) -> Page | None:
        cached = self.cached_pages.get(url)
        if cached is not None and cached.get("status") == "ok":
            return Page(url=url, title=cached["title"], frames=cached["frames"],
                        links=[tuple(x) for x in cached["links"]], images=cached["images"])
        row = {"url": url, "depth": depth, "status": "ok", "error": None, "title": "",
               "frames": [], "links": [], "images": []}
        page = None
        if not self.rules.allowed(url):
            row.update(status="disallowed", error="robots.txt disallows this page")
        else:
            try:
                resp = self.client.get(url, max_bytes=self.config.max_html_bytes,
                                       accept="text/html,application/xhtml+xml")
            except FetchError as e:
                self._check_stop(e, url)
                row.update(status=e.status, error=str(e))
            else:
                self.result.pages_fetched += 1
                if resp.content_type not in ("text/html", "application/xhtml+xml", "") \
                        and not looks_like_html(resp.body):
                    row.update(status="not_html", error=f"Content-Type {resp.content_type}")
                else:
                    page = parse_page(decode_html(resp.body, resp.headers.get("content-type", "")),
                                      resp.url)
                    if page.looks_blocked():
                        raise Blocked(_blocked_message(url, page.text))
                    row.update(title=page.title, frames=page.frames,
                               links=[list(x) for x in page.links], images=page.images)
        if row["status"] != "ok":
            self.result.page_failures[row["status"]] += 1
            self.result.last_page_error = f"{row['status']}: {row['error']}"
        self.pages_log.append(row)
        return page

    def _check_stop(self, e: FetchError, url: str) -> None:
        """Stop the whole crawl (the URL gets no row, so a rerun resumes at it) when the site
        still says 429 Too Many Requests after every retry, or answers with a block page."""
        if e.http_status == 429:
            after = e.response.headers.get("retry-after") if e.response is not None else None
            raise NesganError(
                f"the site still answers 429 Too Many Requests at {url} after {self.config.retries} "
                f"retries (Retry-After: {after or 'not given'}); stopped. Rerun later to resume, "
                "with a larger --delay") from None
        self._check_block(e.response, url)

    def _check_block(self, resp, url: str) -> None:
        if resp is None or not resp.body:
            return
        if resp.content_type in ("text/html", "application/xhtml+xml") or looks_like_html(resp.body):
            page = parse_page(decode_html(resp.body, resp.headers.get("content-type", "")), url)
            if page.looks_blocked():
                raise Blocked(_blocked_message(url, page.text))

    # -- images ------------------------------------------------------------------------------

    def _images_full(self) -> bool:
        return self.config.max_images is not None and len(self.images_seen) >= self.config.max_images

    def _image(self, url: str, page: str, game: str) -> None:
        """Fetch, check and record one image URL (or count it, when an earlier run did)."""
        if url in self.images_seen:
            return
        self.images_seen.add(url)
        self.bar.update(1)
        if url in self.done:
            self.result.resumed += 1
            self.result.images[self.done[url]["status"]] += 1
            return
        row = {"url": url, "page": page, "game": game, "status": "ok", "error": None,
               "sha256": None, "path": None, "width": None, "height": None, "bytes": None,
               "content_type": None}
        fields, body, ext = self._fetch_image(url)
        row.update(fields)
        if row["status"] == "ok":
            self.by_sha[row["sha256"]] = row
        self.writer.put(row, body, ext)  # stores the original, then appends the row
        self.done[url] = row
        self.result.images[row["status"]] += 1

    def _fetch_image(self, url: str) -> tuple[dict, bytes | None, str | None]:
        """(manifest fields, bytes to store, extension): bytes only for a new `ok` original."""
        try:  # the client refuses other hosts and robots.txt's disallowed paths without a request
            resp = self.client.get(url, max_bytes=self.config.max_image_bytes, accept="image/*")
        except FetchError as e:
            self._check_stop(e, url)
            return {"status": e.status, "error": str(e)}, None, None
        body = resp.body
        facts = {"bytes": len(body), "content_type": resp.content_type}
        if resp.content_type in ("text/html", "application/xhtml+xml") or looks_like_html(body):
            self._check_block(resp, url)
            return {**facts, "status": "not_image",
                    "error": f"served as {resp.content_type or 'HTML'}"}, None, None
        ext = sniff_image(body)
        if ext is None:
            return {**facts, "status": "not_image",
                    "error": f"not PNG/GIF/JPEG/BMP/WebP (starts {body[:8]!r})"}, None, None
        if not (resp.content_type.startswith("image/") or resp.content_type in _OK_CONTENT_TYPES):
            return {**facts, "status": "not_image", "error": f"Content-Type {resp.content_type}"}, None, None
        checked = check_image(body, self.config.max_pixels)
        if checked["status"] != "ok":
            return {**facts, **checked}, None, None
        digest = sha256(body).hexdigest()
        facts.update(sha256=digest, width=checked["width"], height=checked["height"])
        first = self.by_sha.get(digest)
        if first is not None:
            return {**facts, "status": "duplicate", "path": first["path"],
                    "error": f"same bytes as {first['url']}"}, None, None
        return {**facts, "status": "ok", "path": relative_path(digest, ext)}, body, ext


def _origin_url(url: str) -> str:
    scheme, host, port = origin(url)
    default = {"http": 80, "https": 443}.get(scheme)
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")


def _blocked_message(url: str, text: str) -> str:
    snippet = text[:120] + ("…" if len(text) > 120 else "")
    return (f"the site answered {url} with a block page ({snippet!r}); stopped. The manifest is "
            "intact: rerun the same command later to resume, or ask the site's owner for access")
