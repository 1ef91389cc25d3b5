"""The embedded screenshot museum: synthetic NES screenshots served on loopback in the shape of
The Video Game Museum's NES section (as public scrapers of it describe the site).

    /robots.txt                 Disallow: /nes/hacks/ (linked, really there), Crawl-delay: 0.05
    /nes.htm                    the entry page: a frameset (banner + game list)
    /images/nes_top.html        the banner frame (chrome only)
    /images/nes_b.html          the game list: <ol><li><a href="../nes/01/<slug>.html">Title</a>,
                                letter jumps (#A, target=_self), #top and empty-text links
    /nes/NN/<slug>.html         a game page in a two-digit bucket folder: <img src="bare.png|gif">,
                                sometimes inside <a href> with </a> missing, <br>-separated,
                                next to site chrome referenced as /images/...
    /nes/hacks/<slug>hack.html  a page robots.txt disallows (with screenshots a crawler must skip)

Screenshots are mostly 256×224 (the top and bottom 8 lines cut) and 256×240, PNG and GIF (one
animated), plus a few 2× captures (512×448, nearest neighbour, exact) and composites (two shots
side by side, a titled 2×2 collage) that a size filter must reject. Pages and robots.txt are
built when the museum is; images are rendered on first request and cached.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from nesgan.colour.palette import Palette
from nesgan.errors import NesganError
from nesgan.museum import metatiles as mt
from nesgan.museum.synth import Game, _entropy, make_games, render_frame, render_scrolled

INDEX_PATH = "/nes.htm"
LIST_PATH = "/images/nes_b.html"
BANNER_PATH = "/images/nes_top.html"
DISALLOWED = "/nes/hacks/"
GAMES_PER_BUCKET = 4  # small, so even the default 8-game museum spans two bucket folders

# What each kind of exhibit is: (width, height, is it a screenshot a size filter should accept?)
KINDS = {
    "ntsc": (256, 224, True),  # the NTSC-visible area: top and bottom 8 lines cut
    "full": (256, 240, True),  # the whole PPU frame
    "animated": (256, 224, True),  # a 2-frame GIF of one shot
    "scaled": (512, 448, True),  # a 2× nearest-neighbour capture of an ntsc shot: exact
    "side_by_side": (512, 224, False),  # two ntsc shots next to each other
    "collage": (512, 464, False),  # a 16-px title bar over a 2×2 grid of ntsc shots
}
CONTENT_TYPES = {
    ".htm": "text/html; charset=iso-8859-1",
    ".html": "text/html; charset=iso-8859-1",
    ".png": "image/png",
    ".gif": "image/gif",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Exhibit:
    """One image file on the site."""

    path: str  # site path, e.g. "/nes/01/mightytower-03.png"
    game: str  # slug of its game
    shot: int  # shot number within the game
    kind: str  # a key of KINDS
    fmt: str  # "png" or "gif"
    disallowed: bool = False  # under robots.txt's Disallow: a polite crawler never fetches it
    scroll_x: int = 0  # level scrolled left by this many pixels (HUD fixed): grid phase ≠ 0

    @property
    def width(self) -> int:
        return KINDS[self.kind][0]

    @property
    def height(self) -> int:
        return KINDS[self.kind][1]

    @property
    def screenshot(self) -> bool:
        """True when a size filter should accept it (256×224, 256×240 or an exact 2× scale)."""
        return KINDS[self.kind][2]

    @property
    def frames(self) -> int:
        return 2 if self.kind == "animated" else 1


def _encode(indices: np.ndarray, palette: Palette, fmt: str, extra: list[np.ndarray] = ()) -> bytes:
    """NES indices (H, W) -> PNG (RGB, as emulators save) or GIF (palette mode) bytes."""
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(palette.to_rgb(indices)).save(buf, "PNG")
    else:
        frames = []
        for ind in [indices, *extra]:
            im = Image.fromarray(ind.astype(np.uint8), "P")
            im.putpalette(palette.pil_palette())
            frames.append(im)
        frames[0].save(buf, "GIF", save_all=len(frames) > 1, append_images=frames[1:],
                       duration=250, loop=0)
    return buf.getvalue()


def _text_bar(text: str, width: int, ink: int, paper: int) -> np.ndarray:
    """(16, width) NES indices: a title bar in the 8×8 font, centred."""
    bar = np.full((16, width), paper, dtype=np.uint8)
    text = "".join(c for c in text.upper() if c in mt.FONT_CHARS)[: width // 8]
    x0 = (width - 8 * len(text)) // 2
    for i, ch in enumerate(text):
        tile = mt.glyph_tile(ch)  # (8, 8) values 0/3
        bar[4:12, x0 + 8 * i : x0 + 8 * i + 8] = np.where(tile == 3, ink, paper)
    return bar


def _chrome_gif(width: int, height: int, label: str) -> bytes:
    """Site decoration (logo, buttons): a framed text bar, not a screenshot."""
    canvas = np.full((height, width), 0x0F, dtype=np.uint8)
    canvas[0, :] = canvas[-1, :] = canvas[:, 0] = canvas[:, -1] = 0x27
    if height >= 16 and width >= 16:
        y0 = (height - 16) // 2
        canvas[y0 : y0 + 16, 1:-1] = _text_bar(label, width - 2, 0x30, 0x0F)
    return _encode(canvas, Palette.builtin(), "gif")


class Museum:
    """Every page and image of the embedded museum, built deterministically from a seed."""

    def __init__(self, games: int = 8, screens_per_game: int = 12, seed: int = 0,
                 crawl_delay: float = 0.05, block_user_agents: tuple[str, ...] = (),
                 scroll_rate: float = 0.0):
        if games < 1 or screens_per_game < 1:
            raise NesganError("a museum needs at least 1 game and 1 screen per game")
        if not 0.0 <= scroll_rate <= 1.0:
            raise NesganError(f"scroll_rate is a fraction of shots in [0, 1], got {scroll_rate}")
        self.scroll_rate = scroll_rate  # share of plain shots caught mid-scroll (off by default)
        if crawl_delay < 0:
            raise NesganError(f"crawl_delay must be ≥ 0, got {crawl_delay}")
        self.seed = seed
        self.screens_per_game = screens_per_game
        self.crawl_delay = crawl_delay  # robots.txt Crawl-delay: small so tests stay fast
        # Requests whose User-Agent contains one of these get the real site's "Please visit" page.
        self.block_user_agents = tuple(block_user_agents)
        self.games: list[Game] = sorted(make_games(seed, games), key=lambda g: g.title)
        self._game_by_slug = {g.slug: g for g in self.games}
        self.page_paths: dict[str, str] = {}  # game slug -> its page's path
        for i, g in enumerate(self.games):
            self.page_paths[g.slug] = f"/nes/{i // GAMES_PER_BUCKET + 1:02d}/{g.slug}.html"
        self.hack_game = self.games[0]
        self.hack_page = f"{DISALLOWED}{self.hack_game.slug}hack.html"
        self.exhibits: list[Exhibit] = self._plan_exhibits()
        self._exhibit_by_path = {e.path: e for e in self.exhibits}
        self._pages: dict[str, bytes] = self._build_pages()
        self._chrome: dict[str, bytes] = {
            "/images/vgmlogo.gif": _chrome_gif(200, 40, "VIDEO GAME MUSEUM"),
            "/images/nestitle.gif": _chrome_gif(160, 24, "NES"),
            "/images/back.gif": _chrome_gif(64, 16, "BACK"),
            "/images/top.gif": _chrome_gif(48, 16, "TOP"),
            "/images/spacer.gif": _chrome_gif(1, 1, ""),
        }
        self._render = lru_cache(maxsize=4096)(self._render_exhibit)

    # ---- what a crawler should find ---------------------------------------------------------

    @property
    def index_path(self) -> str:
        return INDEX_PATH

    def image_urls(self) -> list[str]:
        """Root-relative paths ("nes/01/x-01.png") of every screenshot a correct crawler
        downloads: all linked game-page images, no chrome, nothing robots.txt disallows."""
        return sorted(e.path.lstrip("/") for e in self.exhibits if not e.disallowed)

    def screenshot_urls(self) -> list[str]:
        """The part of `image_urls()` a size filter should accept: 256×224, 256×240 and exact
        2× captures (composites are left out)."""
        return sorted(e.path.lstrip("/") for e in self.exhibits if not e.disallowed and e.screenshot)

    def exhibit(self, path: str) -> Exhibit:
        """The exhibit at a root-relative or absolute site path."""
        return self._exhibit_by_path["/" + path.lstrip("/")]

    def chrome_paths(self) -> list[str]:
        return sorted(self._chrome)

    def pages(self) -> list[str]:
        """Paths of every HTML page and robots.txt."""
        return sorted(self._pages)

    # ---- planning ---------------------------------------------------------------------------

    def _plan_exhibits(self) -> list[Exhibit]:
        rng = np.random.default_rng(_entropy(self.seed, 0x517E))
        scroll_rng = np.random.default_rng(_entropy(self.seed, 0x5C20))  # apart: same museum when off
        slots = [(g, s) for g in self.games for s in range(self.screens_per_game)]
        n = len(slots)
        special: dict[int, str] = {}
        if n >= 4:  # room for every quirk: rarely-seen kinds at fixed, rare rates
            wanted = (["scaled"] * max(1, n // 25) + ["side_by_side"] * max(1, n // 50)
                      + ["collage"] * max(1, n // 60) + ["animated"])
            for slot, kind in zip(rng.permutation(n), wanted, strict=False):
                special[int(slot)] = kind
        exhibits = []
        plain: list[int] = []
        for i, (g, s) in enumerate(slots):
            kind = special.get(i) or ("ntsc" if rng.random() < 0.65 else "full")
            fmt = "gif" if kind == "animated" else (
                "png" if kind not in ("ntsc", "full") or rng.random() < 0.75 else "gif")
            scroll = 0
            if i not in special:
                plain.append(i)
                if scroll_rng.random() < self.scroll_rate:
                    scroll = int(scroll_rng.integers(1, 256))
            folder = self.page_paths[g.slug].rsplit("/", 1)[0]
            exhibits.append(Exhibit(f"{folder}/{g.slug}-{s + 1:02d}.{fmt}", g.slug, s, kind, fmt,
                                    scroll_x=scroll))
        # make sure the common variants all show up, even in a small museum
        for k, (kind, fmt) in enumerate((("full", "gif"), ("ntsc", "png"), ("full", "png"))):
            if len(plain) > k and not any((e.kind, e.fmt) == (kind, fmt) for e in exhibits):
                e = exhibits[plain[k]]
                path = e.path.rsplit(".", 1)[0] + "." + fmt
                exhibits[plain[k]] = Exhibit(path, e.game, e.shot, kind, fmt, scroll_x=e.scroll_x)
        h = self.hack_game
        for s in range(2):
            exhibits.append(Exhibit(f"{DISALLOWED}{h.slug}hack-{s + 1:02d}.png", h.slug,
                                    1000 + s, "ntsc", "png", disallowed=True))
        return exhibits

    # ---- pages ------------------------------------------------------------------------------

    def _build_pages(self) -> dict[str, bytes]:
        pages = {
            "/robots.txt": self._robots(),
            INDEX_PATH: self._frameset(),
            BANNER_PATH: self._banner(),
            LIST_PATH: self._game_list(),
        }
        for g in self.games:
            pages[self.page_paths[g.slug]] = self._game_page(g)
        pages[self.hack_page] = self._hack_page()
        return pages

    def _robots(self) -> bytes:
        return (
            "# The Video Game Museum, embedded copy (nesgan demo-site)\n"
            "User-agent: *\n"
            f"Crawl-delay: {self.crawl_delay:g}\n"
            f"Disallow: {DISALLOWED}\n"
            "\n"
            "User-agent: EvilScraper\n"
            "Disallow: /\n"
        ).encode()

    @staticmethod
    def _frameset() -> bytes:
        return (
            "<HTML>\n<HEAD><TITLE>The Video Game Museum - Nintendo Entertainment System</TITLE></HEAD>\n"
            '<FRAMESET ROWS="64,*" BORDER="0" FRAMEBORDER="0">\n'
            '<FRAME SRC="images/nes_top.html" NAME="top" SCROLLING="no" NORESIZE>\n'
            '<FRAME SRC="images/nes_b.html" NAME="main">\n'
            "<NOFRAMES>This page uses frames.</NOFRAMES>\n"
            "</FRAMESET>\n</HTML>\n"
        ).encode("latin-1")

    @staticmethod
    def _banner() -> bytes:
        return (
            '<html><body bgcolor="#000000" text="#ffffff">\n'
            '<center><a href="/nes.htm" target="_top"><img src="/images/vgmlogo.gif" border="0" '
            'alt="The Video Game Museum"></a></center>\n</body></html>\n'
        ).encode("latin-1")

    def _game_list(self) -> bytes:
        letters = "".join(chr(c) for c in range(ord("A"), ord("Z") + 1))
        out = [
            "<html><head><title>NES Screenshots</title></head>",
            '<body bgcolor="#000000" text="#ffffff" link="#ffff00" vlink="#ffcc00">',
            '<a name="top"></a>',
            '<center><img src="/images/nestitle.gif" alt="NES"><br>',
            " | ".join(f'<a href="#{c}" target="_self">{c}</a>' for c in letters),
            "</center>",
            '<a href="#top" target="_self"></a>',  # an empty-text link, as the real list has
            "<ol>",
        ]
        seen: set[str] = set()
        entries = [(g.title, "../" + self.page_paths[g.slug].lstrip("/")) for g in self.games]
        entries.append((f"{self.hack_game.title} (Hack)", "../" + self.hack_page.lstrip("/")))
        entries.sort()
        for title, href in entries:
            first = title[0].upper()
            if first not in seen:
                seen.add(first)
                out.append(f'<a name="{first}"></a>')
            out.append(f'<li><a href="{href}">{html.escape(title)}</a>')
        out += [
            "</ol>",
            '<a href="../nes.htm" target="_top"></a>',  # another empty-text link
            '<p><a href="#top"><img src="/images/top.gif" border="0" alt="top"></a>',
            "</body></html>",
        ]
        return ("\n".join(out) + "\n").encode("latin-1")

    def _game_page(self, g: Game) -> bytes:
        out = [
            f"<html><head><title>{html.escape(g.title)}</title></head>",
            '<body bgcolor="#000000" text="#ffffff">',
            '<a name="top"></a><center>',
            '<img src="/images/vgmlogo.gif" alt="VGMuseum"><br>',
            f"<font size=5>{html.escape(g.title)}</font><br>",
            '<a href="/images/nes_b.html"><img src="/images/back.gif" border="0" alt="back"></a><br>',
        ]
        for k, e in enumerate(e for e in self.exhibits if e.game == g.slug and not e.disallowed):
            name = e.path.rsplit("/", 1)[1]
            style = (g.number + k) % 4
            if style == 0:
                out.append(f'<img src="{name}"><br>')
            elif style == 1:  # wrapped in a link whose </a> never comes
                out.append(f'<a href="{name}"><img src="{name}" border=0><br>')
            elif style == 2:
                out.append(f'<IMG SRC="{name}" WIDTH={e.width} HEIGHT={e.height} ALT=""><BR>')
            else:
                out.append(f'<img src="{name}" alt="{html.escape(g.title)}">\n<br>')
        out += [
            '<img src="/images/spacer.gif" width="1" height="8"><br>',
            '<a href="#top"><img src="/images/top.gif" border="0" alt="top"></a>',
            "</center></body></html>",
        ]
        return ("\n".join(out) + "\n").encode("latin-1")

    def _hack_page(self) -> bytes:
        out = [
            f"<html><head><title>{html.escape(self.hack_game.title)} (Hack)</title></head><body>",
            '<img src="/images/vgmlogo.gif"><br>',
        ]
        out += [f'<img src="{e.path.rsplit("/", 1)[1]}"><br>' for e in self.exhibits if e.disallowed]
        out.append("</body></html>")
        return ("\n".join(out) + "\n").encode("latin-1")

    # ---- images -----------------------------------------------------------------------------

    def _render_exhibit(self, path: str) -> bytes:
        e = self._exhibit_by_path[path]
        g = self._game_by_slug[e.game]
        palette = g.palette()

        def ntsc(shot: int, tick: int = 0) -> np.ndarray:  # (224, 256) NES indices
            return render_frame(g, shot, tick=tick).indices[8:232]

        if e.kind in ("ntsc", "full"):
            full = render_scrolled(g, e.shot, e.scroll_x)  # (240, 256)
            return _encode(full[8:232] if e.kind == "ntsc" else full, palette, e.fmt)
        if e.kind == "animated":
            return _encode(ntsc(e.shot), palette, "gif", [ntsc(e.shot, tick=4)])
        if e.kind == "scaled":
            return _encode(np.repeat(np.repeat(ntsc(e.shot), 2, 0), 2, 1), palette, e.fmt)
        if e.kind == "side_by_side":
            return _encode(np.concatenate([ntsc(e.shot), ntsc(e.shot + 10_000)], 1), palette, e.fmt)
        if e.kind == "collage":
            quads = [ntsc(e.shot + 10_000 * k) for k in range(4)]
            grid = np.concatenate([np.concatenate(quads[:2], 1), np.concatenate(quads[2:], 1)], 0)
            bar = _text_bar(g.title, 512, 0x30, 0x0F)
            return _encode(np.concatenate([bar, grid], 0), palette, e.fmt)
        raise AssertionError(e.kind)

    def get(self, path: str) -> tuple[str, bytes] | None:
        """(content type, body) of a site path, or None when there is no such file."""
        if path in self._pages:
            body = self._pages[path]
        elif path in self._chrome:
            body = self._chrome[path]
        elif path in self._exhibit_by_path:
            body = self._render(path)
        else:
            return None
        ext = "." + path.rsplit(".", 1)[-1]
        return CONTENT_TYPES[ext], body

    def please_visit(self) -> bytes:
        return (
            "<html><body><p>Please visit <a href=\"/nes.htm\">The Video Game Museum</a> "
            "with a web browser.</p></body></html>\n"
        ).encode("latin-1")
