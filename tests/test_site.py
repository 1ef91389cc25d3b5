import io
import os
import re
import select
import signal
import socket
import subprocess
import sys
from collections import deque
from urllib.parse import urldefrag, urljoin, urlsplit

import numpy as np
import pytest
import requests
from bs4 import BeautifulSoup
from click.testing import CliRunner
from PIL import Image

from nesgan.cli import cli
from nesgan.colour.palette import Palette
from nesgan.museum.server import serve
from nesgan.museum.site import DISALLOWED, Museum


@pytest.fixture(scope="module")
def museum():
    return Museum(games=5, screens_per_game=6, seed=3)  # 30 shots: room for every quirk


@pytest.fixture(scope="module")
def server(museum):
    with serve(museum) as srv:
        yield srv


@pytest.fixture(scope="module")
def http():
    with requests.Session() as s:
        yield s


def get(http, url):
    r = http.get(url, timeout=10)
    assert r.status_code == 200, url
    return r


def links(page_url: str, text: str) -> list[str]:
    """Every href/src on a page (a, img, frame), resolved, fragments dropped."""
    soup = BeautifulSoup(text, "html.parser")
    out = []
    for tag in soup.find_all(["a", "img", "frame"]):
        ref = tag.get("href") or tag.get("src")
        if ref:
            out.append(urldefrag(urljoin(page_url, ref))[0])
    return out


def robots_disallows(text: str) -> list[str]:
    """The Disallow prefixes of the `User-agent: *` group (enough for this site)."""
    rules, in_star = [], False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            in_star = value == "*"
        elif key == "disallow" and in_star and value:
            rules.append(value)
    return rules


def test_robots_txt_disallows_one_folder_and_asks_for_a_fractional_crawl_delay(server, http):
    r = get(http, server.base_url + "robots.txt")
    assert r.headers["Content-Type"].startswith("text/plain")
    assert robots_disallows(r.text) == [DISALLOWED]
    delay = float(re.search(r"(?im)^crawl-delay:\s*([\d.]+)", r.text).group(1))
    assert 0 < delay < 1


def test_the_disallowed_folder_really_holds_a_linked_page_with_images(museum, server, http):
    listing = get(http, urljoin(server.url, "images/nes_b.html"))
    hidden = [u for u in links(listing.url, listing.text) if urlsplit(u).path.startswith(DISALLOWED)]
    assert hidden, "the game list links into the disallowed folder"
    page = get(http, hidden[0])
    images = [u for u in links(page.url, page.text) if urlsplit(u).path.startswith(DISALLOWED)]
    assert images and all(get(http, u).headers["Content-Type"] == "image/png" for u in images)


def test_entry_page_is_a_frameset_around_the_game_list(server, http):
    r = get(http, server.url)
    assert urlsplit(server.url).path == "/nes.htm"
    soup = BeautifulSoup(r.text, "html.parser")
    assert soup.find("frameset") is not None
    frames = [urljoin(r.url, f["src"]) for f in soup.find_all("frame")]
    assert urljoin(r.url, "images/nes_b.html") in frames and len(frames) == 2


def test_every_link_on_every_page_resolves(museum, server, http):
    seen, queue = set(), deque([server.url])
    while queue:
        url = queue.popleft()
        if url in seen:
            continue
        seen.add(url)
        r = http.get(url, timeout=10)
        assert r.status_code == 200, url
        if r.headers["Content-Type"].startswith("text/html"):
            queue.extend(links(url, r.text))
    paths = {urlsplit(u).path for u in seen}
    assert set(museum.pages()) - {"/robots.txt"} <= paths
    assert {"/" + p for p in museum.image_urls()} <= paths
    assert set(museum.chrome_paths()) <= paths


def test_game_list_has_letter_jumps_top_links_and_empty_text_links(museum, server, http):
    r = get(http, urljoin(server.url, "images/nes_b.html"))
    soup = BeautifulSoup(r.text, "html.parser")
    anchors = soup.find_all("a")
    jumps = [a for a in anchors if re.fullmatch(r"#[A-Z]", a.get("href", ""))]
    assert len(jumps) == 26 and all(a.get("target") == "_self" for a in jumps)
    assert any(a.get("href") == "#top" for a in anchors)
    assert [a for a in anchors if a.get("href") and not a.get_text(strip=True) and not a.find("img")]
    items = soup.select("ol li a[href]")
    assert {a.get_text() for a in items} >= {g.title for g in museum.games}
    assert all(re.fullmatch(r"\.\./nes/(\d\d|hacks)/[a-z0-9]+\.html", a["href"]) for a in items)


def test_game_pages_sit_in_two_digit_bucket_folders(museum):
    buckets = {p.split("/")[2] for p in museum.page_paths.values()}
    assert len(buckets) >= 2 and all(re.fullmatch(r"\d\d", b) for b in buckets)


def test_game_pages_mix_bare_screenshots_with_slash_chrome_and_unclosed_links(museum, server, http):
    page = museum.games[0]
    r = get(http, urljoin(server.base_url, museum.page_paths[page.slug]))
    srcs = re.findall(r'(?i)<img src="([^"]+)"', r.text)
    bare = [s for s in srcs if "/" not in s]
    chrome = [s for s in srcs if s.startswith("/")]
    assert bare and chrome
    assert all(re.fullmatch(r"[a-z0-9]+-\d\d\.(png|gif)", s) for s in bare)
    wrapped = re.findall(r'<a href="([^"]+)"><img src="\1"[^>]*><br>\n(?!</a>)', r.text)
    assert wrapped, "some screenshots sit in a link that is never closed"
    assert "<br>" in r.text.lower()


def test_images_decode_with_the_advertised_type_size_and_format(museum, server, http):
    kinds = set()
    for e in museum.exhibits:
        r = get(http, server.base_url + e.path.lstrip("/"))
        assert r.headers["Content-Type"] == f"image/{e.fmt}"
        im = Image.open(io.BytesIO(r.content))
        assert im.format == e.fmt.upper() and im.size == (e.width, e.height)
        assert getattr(im, "n_frames", 1) == e.frames
        if e.fmt == "gif":
            assert im.mode == "P"
        kinds.add(e.kind)
    assert kinds == {"ntsc", "full", "animated", "scaled", "side_by_side", "collage"}
    assert {(e.width, e.height) for e in museum.exhibits if e.screenshot} == {(256, 224), (256, 240), (512, 448)}


def test_img_width_and_height_attributes_match_the_files(museum, server, http):
    checked = 0
    for path in museum.page_paths.values():
        r = get(http, urljoin(server.base_url, path))
        for name, w, h in re.findall(r'SRC="([^"]+)" WIDTH=(\d+) HEIGHT=(\d+)', r.text):
            im = Image.open(io.BytesIO(get(http, urljoin(r.url, name)).content))
            assert im.size == (int(w), int(h))
            checked += 1
    assert checked


def test_scaled_captures_are_exact_2x_nearest_neighbour(museum, server, http):
    scaled = [e for e in museum.exhibits if e.kind == "scaled"]
    assert scaled
    for e in scaled:
        px = np.asarray(Image.open(io.BytesIO(get(http, server.base_url + e.path[1:]).content)).convert("RGB"))
        small = px[::2, ::2]
        assert np.array_equal(np.repeat(np.repeat(small, 2, 0), 2, 1), px)


def test_screenshot_pixels_are_colours_of_the_games_emulator_table(museum):
    for e in museum.exhibits[:12]:
        game = next(g for g in museum.games if g.slug == e.game)
        rgb = np.asarray(Image.open(io.BytesIO(museum.get(e.path)[1])).convert("RGB")).reshape(-1, 3)
        table = {tuple(c) for c in Palette.builtin(game.palette_name).rgb.tolist()}
        assert {tuple(c) for c in np.unique(rgb, axis=0).tolist()} <= table


def test_an_ordinary_polite_crawler_finds_exactly_image_urls(museum, http):
    with serve(museum) as srv:  # a fresh server, so its request log holds this crawl only
        disallow = robots_disallows(get(http, srv.base_url + "robots.txt").text)
        allowed = lambda u: not any(urlsplit(u).path.startswith(d) for d in disallow)  # noqa: E731
        pages, found, queue = set(), set(), deque([srv.url])
        while queue:
            url = queue.popleft()
            if url in pages or not allowed(url):
                continue
            pages.add(url)
            soup = BeautifulSoup(get(http, url).text, "html.parser")
            queue.extend(urljoin(url, f["src"]) for f in soup.find_all("frame"))
            for a in soup.select("ol li a[href]"):
                if a.get_text(strip=True) and not a["href"].startswith("#"):
                    queue.append(urljoin(url, a["href"]))
            for img in soup.find_all("img", src=True):
                if "/" not in img["src"]:  # chrome is referenced with a / in its path
                    src = urljoin(url, img["src"])
                    if allowed(src):
                        found.add(src)
        assert sorted(urlsplit(u).path.lstrip("/") for u in found) == museum.image_urls()
        assert not [p for p in srv.fetched() if p.startswith(DISALLOWED)]


def test_unknown_paths_are_404_head_has_no_body_and_root_redirects(server, http):
    assert http.get(server.base_url + "nes/01/nothing.png", timeout=10).status_code == 404
    head = http.head(server.url, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(get(http, server.url).content)
    root = http.get(server.base_url, allow_redirects=False, timeout=10)
    assert root.status_code == 302 and root.headers["Location"] == "/nes.htm"


def test_same_seed_serves_the_same_bytes_and_another_seed_differs(museum):
    twin, other = Museum(games=5, screens_per_game=6, seed=3), Museum(games=5, screens_per_game=6, seed=4)
    assert twin.image_urls() == museum.image_urls()
    for path in [museum.index_path, *museum.pages(), *["/" + p for p in museum.image_urls()[:6]]]:
        assert twin.get(path) == museum.get(path)
    assert other.image_urls() != museum.image_urls()


def test_blocked_user_agents_get_the_please_visit_page(museum):
    blocking = Museum(games=2, screens_per_game=2, block_user_agents=("python-requests",))
    with serve(blocking) as srv:
        assert "Please visit" in requests.get(srv.url, timeout=10).text
        ok = requests.get(srv.url, headers={"User-Agent": "Mozilla/5.0"}, timeout=10)
        assert "Please visit" not in ok.text and "<FRAMESET" in ok.text


def test_queued_faults_are_answered_before_the_real_file(museum):
    with serve(museum) as srv:
        srv.faults["/nes.htm"] = [503, 429]
        codes = [requests.get(srv.url, timeout=10).status_code for _ in range(3)]
        assert codes == [503, 429, 200]


def test_closing_the_server_frees_its_port_and_cuts_keep_alive_connections(museum):
    srv = serve(museum)
    port = srv.port
    with requests.Session() as session:
        assert session.get(srv.url, timeout=10).status_code == 200  # a kept-alive connection
        srv.close()
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
        with pytest.raises(requests.ConnectionError):
            session.get(srv.url, timeout=10)


def test_museum_rejects_empty_sizes():
    with pytest.raises(Exception, match="at least 1"):
        Museum(games=0)


def test_demo_site_reports_a_busy_port_as_a_one_line_error_and_restores_signal_handlers(museum):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with serve(museum) as srv:
        result = CliRunner().invoke(cli, ["demo-site", "--port", str(srv.port), "--games", "1"])
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert result.exit_code == 1
    assert "Error: cannot listen" in result.output and "Traceback" not in result.output


def _first_line(proc: subprocess.Popen, timeout: float = 30) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "demo-site printed nothing"
    return proc.stdout.readline().decode().strip()


@pytest.mark.parametrize(("sig", "verbose"), [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_demo_site_prints_the_url_first_and_exits_0_on_a_signal(sig, verbose):
    proc = subprocess.Popen(
        [sys.executable, "-m", "nesgan", "demo-site", "--games", "2", "--screens-per-game", "2"]
        + (["--verbose"] if verbose else []),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "0"},
    )
    try:
        url = _first_line(proc)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/nes\.htm", url)
        assert "<FRAMESET" in requests.get(url, timeout=10).text
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read() == b""  # no request log on stdout
        assert (b"GET /nes.htm" in proc.stderr.read()) == verbose  # only with --verbose
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_screenshot_urls_leave_out_composites_only(museum):
    shots = set(museum.screenshot_urls())
    assert shots < set(museum.image_urls())
    for path in set(museum.image_urls()) - shots:
        assert museum.exhibit(path).kind in ("side_by_side", "collage")
    assert any(museum.exhibit(p).kind == "scaled" for p in shots)


def test_scrolled_shots_are_opt_in_and_keep_the_same_urls(museum):
    assert not any(e.scroll_x for e in museum.exhibits)
    scrolled = Museum(games=5, screens_per_game=6, seed=3, scroll_rate=1.0)
    assert scrolled.image_urls() == museum.image_urls()
    plain = [e for e in scrolled.exhibits if e.kind in ("ntsc", "full") and not e.disallowed]
    assert plain and all(1 <= e.scroll_x <= 255 for e in plain)
    e = plain[0]
    a = Image.open(io.BytesIO(scrolled.get(e.path)[1]))
    b = Image.open(io.BytesIO(museum.get(e.path)[1]))
    assert a.size == b.size and a.convert("RGB").tobytes() != b.convert("RGB").tobytes()
    with pytest.raises(Exception, match="scroll_rate"):
        Museum(scroll_rate=2.0)
