"""What a museum page links to: frames, other pages and screenshots (Beautiful Soup).

The Video Game Museum's shape (as public scrapers of it describe the site): a frameset entry page around a game list of
`<li><a href="…/nes/01/<slug>.html">Title</a>`, letter-jump (`#A`) and `#top` links, game pages
whose screenshots are bare file names (`<img src="smb-1.png">`, sometimes also wrapped in
`<a href>` with the `</a>` missing) next to site chrome referenced with a `/` in its path
(`/images/logo.gif`, `../images/x.gif`). Every link is resolved with `urljoin`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin, urlsplit

from bs4 import BeautifulSoup, NavigableString, Tag

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


def _resolver(base: str):
    def resolve(ref: str | None) -> str | None:
        if ref is None:
            return None
        ref = ref.strip()
        if not ref or ref.lower().startswith(_SKIP_SCHEMES):
            return None
        url, _fragment = urldefrag(urljoin(base, ref))
        return url if urlsplit(url).scheme in ("http", "https") else None
    return resolve


def _text(s: str) -> str:
    return _WS.sub(" ", s).strip()


def parse_page(html: str, url: str) -> Page:
    """Frames, page links (with their text) and screenshots of one HTML page at `url`.

    Beautiful Soup builds the tree (forgiving of the museum's unclosed tags); one walk over it in
    document order collects images and links. A link's text is the text inside its `<a>` up to
    the next `<a>` or block tag, so a list whose `</a>`s are missing still names each game."""
    soup = BeautifulSoup(html, "html.parser")
    base_tag = soup.find("base", href=True)
    resolve = _resolver(urljoin(url, base_tag["href"].strip()) if base_tag else url)
    page = Page(url=urldefrag(url)[0])
    if soup.title is not None:
        page.title = _text(soup.title.get_text())
    seen_images: set[str] = set()
    seen_links: set[str] = set()
    link: tuple[str, Tag] | None = None  # the open <a>: (absolute url, its tag)
    link_text: list[str] = []
    text: list[str] = []
    text_len = 0

    def add_image(ref: str, url: str) -> None:
        if not is_bare_name(ref.strip()):
            page.chrome += 1
        elif url not in seen_images:
            seen_images.add(url)
            page.images.append(url)

    def close_link() -> None:
        nonlocal link, link_text
        if link is not None:
            words = _text("".join(link_text))
            if words and link[0] not in seen_links:  # empty-text links are navigation chrome
                seen_links.add(link[0])
                page.links.append((link[0], words))
        link, link_text = None, []

    for node in soup.descendants:
        if isinstance(node, Tag):
            if node.name in _TEXT_BREAKS:
                close_link()
            if node.name in ("frame", "iframe"):
                src = resolve(node.get("src"))
                if src and src not in page.frames:
                    page.frames.append(src)
            elif node.name == "img":
                src = resolve(node.get("src"))
                if src:
                    add_image(node["src"], src)
                if link is not None and node.get("alt"):
                    link_text.append(node["alt"])
            elif node.name == "a":
                href = node.get("href")
                target = resolve(href)
                if target is None or href.strip().startswith("#") or target == page.url:
                    continue  # letter jumps, #top: the same document
                if is_image_url(target):
                    add_image(href, target)
                else:
                    link = (target, node)
        elif type(node) is NavigableString:  # not a comment, doctype or CDATA
            if node.parent is not None and node.parent.name in ("script", "style", "title"):
                continue
            if link is not None and node.find_parent("a") is link[1]:
                link_text.append(node)
            if text_len < 4096:
                text.append(node)
                text_len += len(node)
    close_link()
    page.text = _text(" ".join(text))[:4096]
    return page


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
