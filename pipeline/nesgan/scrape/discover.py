"""What a museum page links to: frames, other pages and screenshots (stdlib `html.parser`).

The Video Game Museum's shape (see DESIGN.md): a frameset entry page around a game list of
`<li><a href="…/nes/01/<slug>.html">Title</a>`, letter-jump (`#A`) and `#top` links, game pages
whose screenshots are bare file names (`<img src="smb-1.png">`, sometimes also wrapped in
`<a href>` with the `</a>` missing) next to site chrome referenced with a `/` in its path
(`/images/logo.gif`, `../images/x.gif`). Every link is resolved with `urljoin`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

IMAGE_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg", ".bmp", ".webp")
# Tags that end a link's text when the page forgot its `</a>` (the museum often does).
_TEXT_BREAKS = frozenset({"a", "li", "ol", "ul", "p", "br", "tr", "td", "th", "div", "table",
                          "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6"})
_SKIP_SCHEMES = ("javascript:", "mailto:", "data:", "about:", "tel:", "ftp:")
_WS = re.compile(r"\s+")
# A block page answers a crawler instead of the content ("Please visit …"): stop, never disguise.
BLOCK_MARKERS = ("please visit", "are you a robot", "verify you are human", "unusual traffic",
                 "captcha")


@dataclass
class Page:
    """The outcome of parsing one HTML page; every URL is absolute and fragment-free."""

    url: str
    title: str = ""
    frames: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (url, link text) to other pages
    images: list[str] = field(default_factory=list)  # screenshots, in document order, unique
    chrome: int = 0  # images skipped as site chrome (a `/` in their path)
    text: str = ""  # visible text, whitespace collapsed (first 4 KiB), to spot block pages

    def looks_blocked(self) -> bool:
        """A short page saying "Please visit …" (or a CAPTCHA) instead of content."""
        lowered = self.text.lower()
        return (any(m in lowered for m in BLOCK_MARKERS) and not self.images
                and len(self.links) + len(self.frames) <= 5)


def is_image_url(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(IMAGE_SUFFIXES)


def is_bare_name(ref: str) -> bool:
    """`smb-1.png` is a screenshot; anything with a `/` (`/images/logo.gif`) is site chrome."""
    return "/" not in ref and "\\" not in ref


class _Parser(HTMLParser):
    def __init__(self, base: str):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.page = Page(url=urldefrag(base)[0])
        self._seen_images: set[str] = set()
        self._seen_links: set[str] = set()
        self._title: list[str] | None = None
        self._title_done = False
        self._link: tuple[str, str] | None = None  # (absolute url, raw href) of the open <a>
        self._link_text: list[str] = []
        self._text: list[str] = []
        self._text_len = 0
        self._skip_text = 0  # inside <script>/<style>

    # -- helpers ------------------------------------------------------------------------------

    def _resolve(self, ref: str | None) -> str | None:
        if ref is None:
            return None
        ref = ref.strip()
        if not ref or ref.lower().startswith(_SKIP_SCHEMES):
            return None
        url, _fragment = urldefrag(urljoin(self.base, ref))
        if urlsplit(url).scheme not in ("http", "https"):
            return None
        return url

    def _add_image(self, ref: str, url: str) -> None:
        if not is_bare_name(ref.strip()):
            self.page.chrome += 1
        elif url not in self._seen_images:
            self._seen_images.add(url)
            self.page.images.append(url)

    def _close_link(self) -> None:
        if self._link is None:
            return
        url, _ref = self._link
        text = _WS.sub(" ", "".join(self._link_text)).strip()
        self._link, self._link_text = None, []
        if not text:
            return  # empty-text links are navigation chrome
        if url in self._seen_links:
            return
        self._seen_links.add(url)
        self.page.links.append((url, text))

    # -- HTMLParser callbacks -----------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in _TEXT_BREAKS:
            self._close_link()
        if tag == "base" and a.get("href"):
            self.base = urljoin(self.base, a["href"].strip())
        elif tag == "title" and not self._title_done:
            self._title = []
        elif tag in ("script", "style"):
            self._skip_text += 1
        elif tag in ("frame", "iframe"):
            url = self._resolve(a.get("src"))
            if url and url not in self.page.frames:
                self.page.frames.append(url)
        elif tag == "img":
            url = self._resolve(a.get("src"))
            if url:
                self._add_image(a["src"], url)
            if self._link is not None and a.get("alt"):
                self._link_text.append(a["alt"])
        elif tag == "a":
            href = a.get("href")
            url = self._resolve(href)
            if url is None:
                return
            if href.strip().startswith("#") or url == self.page.url:
                return  # letter jumps, #top: the same document
            if is_image_url(url):
                self._add_image(href, url)
                return
            self._link = (url, href)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" or tag in _TEXT_BREAKS:
            self._close_link()
        if tag == "title" and self._title is not None:
            self.page.title = _WS.sub(" ", "".join(self._title)).strip()
            self._title, self._title_done = None, True
        elif tag in ("script", "style") and self._skip_text:
            self._skip_text -= 1

    def handle_data(self, data: str) -> None:
        if self._skip_text:
            return
        if self._title is not None:
            self._title.append(data)
            return
        if self._link is not None:
            self._link_text.append(data)
        if self._text_len < 4096:
            self._text.append(data)
            self._text_len += len(data)

    def finish(self) -> Page:
        self.close()
        self._close_link()
        if self._title is not None:  # <title> never closed
            self.page.title = _WS.sub(" ", "".join(self._title)).strip()
        self.page.text = _WS.sub(" ", " ".join(self._text)).strip()[:4096]
        return self.page


def parse_page(html: str, url: str) -> Page:
    """Frames, page links (with their text) and screenshots of one HTML page at `url`."""
    parser = _Parser(url)
    parser.feed(html)
    return parser.finish()


def decode_html(body: bytes, content_type_header: str = "") -> str:
    """Bytes to text: the header's charset, else a `<meta charset>`, else UTF-8 then Latin-1."""
    m = re.search(r"charset=[\"']?([\w.:-]+)", content_type_header, re.I)
    if not m:
        m = re.search(rb"<meta[^>]+charset=[\"']?([\w.:-]+)", body[:4096], re.I)
    if m:
        charset = m.group(1).decode("ascii", "replace") if isinstance(m.group(1), bytes) else m.group(1)
        try:
            return body.decode(charset, errors="replace")
        except LookupError:
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def looks_like_html(body: bytes) -> bool:
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<!--")) or (
        b"<html" in head or b"<body" in head)
