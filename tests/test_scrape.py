"""The crawler against loopback sites: a museum-shaped one and one that injects every fault."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from email.utils import formatdate

import pytest
from click.testing import CliRunner
from PIL import Image

from nesgan import HOMEPAGE, __version__
from nesgan.cli import cli
from nesgan.errors import NesganError
from nesgan.files import read_jsonl
from nesgan.scrape.crawl import MANIFEST, PAGES, ScrapeConfig, scrape
from nesgan.scrape.fetch import parse_retry_after
from scrape_sites import (
    Site,
    Static,
    museum_routes,
    other_host,
    png_bomb,
    reset_connection,
    screenshot,
    send,
)

GAMES = {"alpha-quest": 5, "beta-land": 4, "gamma": 3}


def crawl(url: str, out, **kw):
    kw.setdefault("delay", 0)
    kw.setdefault("crop", False)
    kw.setdefault("progress", False)
    kw.setdefault("backoff", 0.01)
    return scrape(ScrapeConfig(url=url, out=out, **kw))


def rows(out) -> dict[str, dict]:
    return {r["url"]: r for r in read_jsonl(out / "raw" / MANIFEST)}


@pytest.fixture
def museum():
    routes, shots = museum_routes(GAMES)
    with Site(routes) as site:
        yield site, shots


def test_scrape_fetches_exactly_the_screenshots_of_a_museum_shaped_site(museum, tmp_path):
    site, shots = museum
    result = crawl(site.url + "/nes.htm", tmp_path)
    got = rows(tmp_path)
    assert sorted(got) == sorted(site.url + p for p in shots)
    assert {r["status"] for r in got.values()} == {"ok"}
    assert result.images["ok"] == len(shots)
    # Chrome (paths with a slash), the disallowed folder and letter jumps were never requested.
    assert not [p for p in site.paths() if p.startswith(("/images/logo", "/images/vgm", "/private"))]
    for url, row in got.items():
        body = site.routes[url[len(site.url):]].body
        digest = hashlib.sha256(body).hexdigest()
        assert row["sha256"] == digest
        assert row["path"] == f"{digest[:2]}/{digest}.{url.rsplit('.', 1)[1]}"
        assert (tmp_path / "raw" / row["path"]).read_bytes() == body
        assert row["width"] == 256 and row["height"] in (224, 240)
    alpha = got[site.url + "/nes/00/alpha-quest-2.png"]
    assert alpha["game"] == "Alpha Quest"  # the game list's link text
    assert alpha["page"] == site.url + "/nes/00/alpha-quest.html"


def test_scrape_skips_urls_already_in_manifest(museum, tmp_path):
    site, shots = museum
    crawl(site.url + "/nes.htm", tmp_path)
    before = len(site.requests)
    result = crawl(site.url + "/nes.htm", tmp_path)
    assert site.paths()[before:] == ["/robots.txt"]  # pages come from the cache, images are done
    assert result.resumed == len(shots)
    assert len(read_jsonl(tmp_path / "raw" / MANIFEST)) == len(shots)


def test_scrape_with_overwrite_starts_over(museum, tmp_path):
    site, shots = museum
    crawl(site.url + "/nes.htm", tmp_path)
    stray = tmp_path / "raw" / "keep-me.txt"
    stray.write_text("the user's own file")
    before = len(site.requests)
    crawl(site.url + "/nes.htm", tmp_path, overwrite=True)
    assert sum(p.endswith((".png", ".gif")) for p in site.paths()[before:]) == len(shots)
    assert len(read_jsonl(tmp_path / "raw" / MANIFEST)) == len(shots)
    assert stray.exists()


def test_max_images_bounds_a_run_and_a_rerun_with_a_larger_cap_continues(museum, tmp_path):
    site, shots = museum
    crawl(site.url + "/nes.htm", tmp_path, max_images=4)
    first = rows(tmp_path)
    assert len(first) == 4
    crawl(site.url + "/nes.htm", tmp_path, max_images=7)
    second = rows(tmp_path)
    assert len(second) == 7 and set(first) < set(second)
    image_requests = [p for p in site.paths() if p.endswith((".png", ".gif"))]
    assert len(image_requests) == len(set(image_requests)) == 7  # nothing fetched twice


def test_reaching_max_images_fetches_no_further_page(museum, tmp_path):
    site, _ = museum
    result = crawl(site.url + "/nes.htm", tmp_path, max_images=GAMES["alpha-quest"])
    assert "/nes/01/beta-land.html" not in site.paths()
    assert "stopped at --max-images 5" in result.summary()


def test_a_crawl_that_finds_no_screenshots_says_where_to_look(museum, tmp_path):
    site, _ = museum
    result = crawl(site.url + "/nes.htm", tmp_path, max_pages=1)
    assert "no screenshots found on 1 pages" in result.summary()
    assert not (tmp_path / "raw" / MANIFEST).read_text()


def test_a_menu_frame_linking_to_other_consoles_does_not_pull_in_their_games(tmp_path):
    routes, shots = museum_routes({"alpha": 2})
    routes["/images/nes_a.html"] = Static(b'<a href="../snes.htm" target="_top">SNES</a>')
    routes["/snes.htm"] = Static(b'<frameset><frame src="snes_b.html"></frameset>')
    routes["/snes_b.html"] = Static(b'<ol><li><a href="snes/01/x.html">X</a></ol>')
    routes["/snes/01/x.html"] = Static(b'<img src="x-1.png">')
    routes["/snes/01/x-1.png"] = Static(screenshot(99), "image/png")
    with Site(routes) as site:
        crawl(site.url + "/nes.htm", tmp_path)
    assert sorted(rows(tmp_path)) == sorted(site.url + p for p in shots)
    assert "/snes/01/x.html" not in site.paths()


def test_max_pages_bounds_the_pages_handled(museum, tmp_path):
    site, _shots = museum
    result = crawl(site.url + "/nes.htm", tmp_path, max_pages=4)  # entry, 2 frames, 1 game
    assert result.pages == 4
    assert {r["game"] for r in rows(tmp_path).values()} == {"Alpha Quest"}


def test_identical_bytes_at_two_urls_are_stored_once_with_a_duplicate_row(tmp_path):
    shot = screenshot(1)
    routes = {"/robots.txt": Static(b"", "text/plain"),
              "/g.html": Static(b'<title>G</title><img src="a.png"><img src="b.png">'),
              "/a.png": Static(shot, "image/png"), "/b.png": Static(shot, "image/png")}
    with Site(routes) as site:
        result = crawl(site.url + "/g.html", tmp_path)
    got = rows(tmp_path)
    a, b = got[site.url + "/a.png"], got[site.url + "/b.png"]
    assert (a["status"], b["status"]) == ("ok", "duplicate")
    assert a["path"] == b["path"] and a["sha256"] == b["sha256"]
    assert result.images == {"ok": 1, "duplicate": 1}
    assert len(list((tmp_path / "raw").glob("*/*.png"))) == 1


def test_scrape_finds_exactly_the_embedded_museums_screenshots(tmp_path):
    from nesgan.museum.server import serve
    from nesgan.museum.site import Museum

    museum = Museum(games=3, screens_per_game=4, seed=5)
    with serve(museum) as server:
        result = crawl(server.url, tmp_path)
        fetched = server.fetched()
    assert sorted(rows(tmp_path)) == sorted(server.base_url + p for p in museum.image_urls())
    assert result.images["ok"] + result.images["duplicate"] == len(museum.image_urls())
    assert not set(fetched) & set(museum.chrome_paths())
    assert not [p for p in fetched if p.startswith("/nes/hacks/")]  # robots.txt Disallow
    assert result.gap == museum.crawl_delay  # --delay 0, robots.txt Crawl-delay 0.05


def test_the_embedded_museums_please_visit_page_stops_the_crawl(tmp_path):
    from nesgan.museum.server import serve
    from nesgan.museum.site import Museum

    museum = Museum(games=2, screens_per_game=2, seed=1, block_user_agents=("nesgan",))
    with serve(museum) as server:
        with pytest.raises(NesganError, match="block page"):
            crawl(server.url, tmp_path)
        assert (tmp_path / "raw" / MANIFEST).exists()
        museum.block_user_agents = ()
        crawl(server.url, tmp_path)  # a later run resumes
    assert len(rows(tmp_path)) == len(museum.image_urls())


# -- politeness --------------------------------------------------------------------------------


def test_requests_carry_an_honest_user_agent_and_it_can_be_overridden(museum, tmp_path):
    site, _ = museum
    crawl(site.url + "/nes.htm", tmp_path, max_pages=1)
    ua = site.requests[0][2]["User-Agent"]
    assert ua.startswith(f"nesgan/{__version__}") and HOMEPAGE in ua
    crawl(site.url + "/nes.htm", tmp_path / "b", max_pages=1, user_agent="MyLab-crawler/2 (me@x.org)")
    assert site.requests[-1][2]["User-Agent"] == "MyLab-crawler/2 (me@x.org)"


def test_crawl_delay_raises_the_gap_between_requests_and_delay_is_a_floor(tmp_path):
    routes, _ = museum_routes({"alpha": 3}, robots="User-agent: *\nCrawl-delay: 0.05\n")
    with Site(routes) as site:
        result = crawl(site.url + "/nes.htm", tmp_path, delay=0.01)
        gaps = [b[0] - a[0] for a, b in zip(site.requests, site.requests[1:], strict=False)]
    assert result.gap == 0.05
    assert len(gaps) >= 6 and min(gaps) >= 0.05  # each gap runs from the end of a response
    routes, _ = museum_routes({"alpha": 1}, robots="User-agent: *\nCrawl-delay: 0.01\n")
    with Site(routes) as site:
        assert crawl(site.url + "/nes.htm", tmp_path / "b", delay=0.03).gap == 0.03


def test_robots_disallowed_images_get_rows_and_are_never_requested(tmp_path):
    routes = {"/robots.txt": Static(b"User-agent: *\nDisallow: /nes/*.gif$\n", "text/plain"),
              "/nes/g.html": Static(b'<img src="a.png"><img src="b.gif">'),
              "/nes/a.png": Static(screenshot(1), "image/png"),
              "/nes/b.gif": Static(screenshot(2, fmt="GIF"), "image/gif")}
    with Site(routes) as site:
        crawl(site.url + "/nes/g.html", tmp_path)
    got = rows(tmp_path)
    assert got[site.url + "/nes/a.png"]["status"] == "ok"
    assert got[site.url + "/nes/b.gif"]["status"] == "disallowed"
    assert "/nes/b.gif" not in site.paths()


def test_a_robots_txt_answering_500_stops_the_crawl_before_any_page(museum, tmp_path):
    site, _ = museum
    site.routes["/robots.txt"] = Static(b"oops", "text/plain", status=500)
    with pytest.raises(NesganError, match="robots.txt could not be read"):
        crawl(site.url + "/nes.htm", tmp_path, retries=1)
    assert set(site.paths()) == {"/robots.txt"}


def test_an_unreachable_robots_txt_stops_the_crawl(tmp_path):
    site = Site({})
    url = site.url
    site.close()  # nothing listens there now
    with pytest.raises(NesganError, match="refused the connection: is the server running") as e:
        crawl(url + "/nes.htm", tmp_path, retries=0, timeout=1)
    assert "HTTPConnectionPool" not in str(e.value)  # requests' own nest of reprs stays out


def test_a_robots_txt_answering_404_allows_everything(museum, tmp_path):
    site, _ = museum
    del site.routes["/robots.txt"]
    crawl(site.url + "/nes.htm", tmp_path)
    assert "/private/secret.html" in site.paths()


def test_a_start_url_disallowed_by_robots_is_refused(museum, tmp_path):
    site, _ = museum
    site.routes["/robots.txt"] = Static(b"User-agent: nesgan\nDisallow: /nes\n", "text/plain")
    with pytest.raises(NesganError, match="disallows"):
        crawl(site.url + "/nes.htm", tmp_path)
    assert site.paths() == ["/robots.txt"]


def test_a_start_page_that_redirects_to_another_host_is_an_error_naming_the_target(tmp_path):
    routes = {"/robots.txt": Static(b"", "text/plain"),
              "/nes.htm": Static(b"", status=301, headers={"Location": "https://example.org/nes.htm"})}
    with Site(routes) as site:
        with pytest.raises(NesganError, match="https://example.org/nes.htm"):
            crawl(site.url + "/nes.htm", tmp_path)


# -- a block page ------------------------------------------------------------------------------


def test_a_block_page_stops_the_crawl_and_a_later_run_resumes(museum, tmp_path):
    site, shots = museum
    real = site.routes["/nes/01/beta-land.html"]
    site.routes["/nes/01/beta-land.html"] = Static(
        b"<html><body>Please visit <a href='/'>vgmuseum.com</a> in a browser</body></html>",
        status=403)
    with pytest.raises(NesganError, match="block page"):
        crawl(site.url + "/nes.htm", tmp_path)
    done = rows(tmp_path)
    assert len(done) == 5 and all(r["status"] == "ok" for r in done.values())  # alpha's shots
    site.routes["/nes/01/beta-land.html"] = real
    crawl(site.url + "/nes.htm", tmp_path)
    assert sorted(rows(tmp_path)) == sorted(site.url + p for p in shots)


def test_an_image_url_answering_a_block_page_stops_the_crawl(museum, tmp_path):
    site, _ = museum
    site.routes["/nes/00/alpha-quest-3.png"] = Static(b"<html><body>Please visit us</body></html>")
    with pytest.raises(NesganError, match="block page"):
        crawl(site.url + "/nes.htm", tmp_path)
    assert len(rows(tmp_path)) == 2


# -- faults --------------------------------------------------------------------------------------


def _after(n_bad: int, bad, good: bytes):
    def route(h, n):
        if n <= n_bad:
            bad(h)
        else:
            send(h, 200, good, "image/png")
    return route


def _slow(h, n):
    time.sleep(2.5)
    send(h, 200, screenshot(9), "image/png")


def _truncated(h, n):
    send(h, 200, screenshot(10)[:100], "image/png", length=5000)


def _no_length(h, n):
    h.send_response(200)
    h.send_header("Content-Type", "image/png")
    h.end_headers()
    h.wfile.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 300_000)  # HTTP/1.0: the body ends at close


def test_every_injected_fault_ends_in_the_right_manifest_row(tmp_path):
    other = other_host({"/x.png": Static(screenshot(20), "image/png")})
    names = ["ratelimited.png", "flaky.png", "reset.png", "slow.png", "truncated.png",
             "page.png", "typed.png", "huge.png", "nolength.png", "bomb.png", "corrupt.png",
             "text.png", "missing.png", "copy.png", "moved.png", "away.png", "first.png"]
    first = screenshot(1)
    routes = {
        "/robots.txt": Static(b"User-agent: *\nDisallow: /private/\n", "text/plain"),
        "/f/game.html": Static(("<title>Faults</title>" + "".join(
            f'<img src="{n}">' for n in ["first.png", *names[:-1]])
            ).encode()),
        "/f/first.png": Static(first, "image/png"),
        "/f/ratelimited.png": _after(1, lambda h: send(h, 429, headers={"Retry-After": "0.1"}), screenshot(2)),
        "/f/flaky.png": _after(2, lambda h: send(h, 500), screenshot(3)),
        "/f/reset.png": _after(1, reset_connection, screenshot(4)),
        "/f/slow.png": _slow,
        "/f/truncated.png": _truncated,
        "/f/page.png": Static(b"<html><body><p>no image here</p></body></html>", "text/html"),
        "/f/typed.png": Static(b"<!DOCTYPE html><html><body>hi</body></html>", "image/png"),
        "/f/huge.png": Static(b"\x89PNG\r\n\x1a\n" + b"\0" * 300_000, "image/png"),
        "/f/nolength.png": _no_length,
        "/f/bomb.png": Static(png_bomb(), "image/png"),
        "/f/corrupt.png": Static(screenshot(5)[:120], "image/png"),
        "/f/text.png": Static(b"just some words", "image/png"),
        "/f/copy.png": Static(first, "image/png"),
        "/f/moved.png": Static(b"", status=301, headers={"Location": "/f/real/moved.png"}),
        "/f/real/moved.png": Static(screenshot(6), "image/png"),
        "/f/away.png": Static(b"", status=302, headers={"Location": other.url + "/x.png"}),
    }
    try:
        with Site(routes) as site:
            result = crawl(site.url + "/f/game.html", tmp_path, retries=2, timeout=1.0,
                           max_image_bytes=200_000, max_retry_after=1)
            hits = dict(site.hits)
        status = {u.rsplit("/", 1)[1]: r["status"] for u, r in rows(tmp_path).items()}
        assert status == {
            "first.png": "ok", "ratelimited.png": "ok", "flaky.png": "ok", "reset.png": "ok",
            "slow.png": "timeout", "truncated.png": "truncated", "page.png": "not_image",
            "typed.png": "not_image", "huge.png": "too_large", "nolength.png": "too_large",
            "bomb.png": "too_large", "corrupt.png": "corrupt", "text.png": "not_image",
            "missing.png": "http_error", "copy.png": "duplicate", "moved.png": "ok",
            "away.png": "off_host"}
        assert other.requests == []  # the other host was never contacted
        assert hits["/f/ratelimited.png"] == 2 and hits["/f/flaky.png"] == 3
        assert hits["/f/slow.png"] == 3 and hits["/f/missing.png"] == 1  # 404 is not retried
        assert hits["/f/huge.png"] == 1  # too large is final
        assert "decompression bomb" in rows(tmp_path)[site.url + "/f/bomb.png"]["error"]
        assert result.images["ok"] == 5
        # Only whole, decodable images landed, named by their content.
        stored = sorted(p for p in (tmp_path / "raw").rglob("*") if p.is_file()
                        and ".scrape" not in p.parts and p.name != MANIFEST)
        assert len(stored) == 5
        for p in stored:
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.stem
        assert not list((tmp_path / "raw").rglob("*.tmp"))
    finally:
        other.close()


def test_a_site_that_keeps_answering_429_stops_the_crawl_and_a_rerun_resumes(museum, tmp_path):
    site, shots = museum
    real = site.routes["/nes/00/alpha-quest-3.png"]
    site.routes["/nes/00/alpha-quest-3.png"] = Static(b"", status=429, headers={"Retry-After": "0"})
    with pytest.raises(NesganError, match="429 Too Many Requests"):
        crawl(site.url + "/nes.htm", tmp_path, retries=1)
    assert site.hits["/nes/00/alpha-quest-3.png"] == 2
    assert len(rows(tmp_path)) == 2  # the two before it; none for the refused URL
    site.routes["/nes/00/alpha-quest-3.png"] = real
    crawl(site.url + "/nes.htm", tmp_path)
    assert sorted(rows(tmp_path)) == sorted(site.url + p for p in shots)


def test_retry_after_is_read_as_seconds_or_an_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("0.5", now) == 0.5
    assert parse_retry_after(formatdate(now + 7, usegmt=True), now) == 7.0
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_a_503_with_a_retry_after_date_beyond_the_cap_waits_only_the_cap(tmp_path):
    later = formatdate(time.time() + 3600, usegmt=True)
    routes = {"/robots.txt": Static(b"", "text/plain"),
              "/g.html": Static(b'<img src="a.png">'),
              "/a.png": _after(1, lambda h: send(h, 503, headers={"Retry-After": later}), screenshot(1))}
    with Site(routes) as site:
        crawl(site.url + "/g.html", tmp_path, retries=1, max_retry_after=0.1)
        assert site.hits["/a.png"] == 2
    assert rows(tmp_path)[site.url + "/a.png"]["status"] == "ok"


def test_links_and_redirects_to_another_host_are_never_followed(tmp_path):
    with other_host({"/robots.txt": Static(b"", "text/plain"),
                     "/g.html": Static(b'<img src="x.png">'),
                     "/x.png": Static(screenshot(3), "image/png")}) as other:
        routes = {"/robots.txt": Static(b"", "text/plain"),
                  "/list.html": Static((f'<a href="{other.url}/g.html">Elsewhere</a>'
                                        '<a href="hop.html">Hop</a>'
                                        f'<a href="http://localhost:{other.port}/g.html">Alias</a>'
                                        '<a href="g.html">Here</a>').encode()),
                  "/hop.html": Static(b"", status=302, headers={"Location": other.url + "/g.html"}),
                  "/g.html": Static(b'<title>Here</title><img src="a.png">'),
                  "/a.png": Static(screenshot(1), "image/png")}
        with Site(routes) as site:
            crawl(site.url + "/list.html", tmp_path)
        assert other.requests == []
    assert list(rows(tmp_path)) == [site.url + "/a.png"]
    pages = {r["url"]: r for r in read_jsonl(tmp_path / "raw" / PAGES)}
    assert pages[site.url + "/hop.html"]["status"] == "off_host"


# -- the command line, a kill and a resume ----------------------------------------------------


def test_the_cli_crawls_crops_and_prints_a_summary(museum, tmp_path):
    site, shots = museum
    result = CliRunner().invoke(cli, ["scrape", site.url + "/nes.htm", "--out", str(tmp_path),
                                      "--delay", "0"])
    assert result.exit_code == 0, result.output
    assert f"images: {len(shots)} ok, 0 duplicates" in result.output
    crops = list((tmp_path / "screens").glob("*.png"))
    assert len(crops) == len(shots)
    assert all(Image.open(p).size == (224, 224) for p in crops)


def test_the_cli_turns_an_unreadable_robots_txt_into_one_error_line(museum, tmp_path):
    site, _ = museum
    site.routes["/robots.txt"] = Static(b"", "text/plain", status=503)
    result = CliRunner().invoke(cli, ["scrape", site.url + "/nes.htm", "--out", str(tmp_path),
                                      "--delay", "0", "--retries", "0"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output


def _raw_state(out) -> tuple[dict, list]:
    raw = out / "raw"
    files = {p.relative_to(raw).as_posix(): p.read_bytes() for p in raw.rglob("*")
             if p.is_file() and ".scrape" not in p.parts and p.name != MANIFEST}
    manifest = sorted(json.dumps(r, sort_keys=True) for r in read_jsonl(raw / MANIFEST))
    return files, manifest


def test_a_scrape_killed_mid_run_resumes_to_the_same_files_and_rows(tmp_path, wait_until):
    routes, shots = museum_routes({"alpha": 6, "beta": 6, "gamma": 6}, seed=3)
    with Site(routes) as site:
        def command(out):
            return [sys.executable, "-m", "nesgan", "scrape", site.url + "/nes.htm",
                    "--out", str(out), "--delay", "0.1"]

        killed = tmp_path / "killed"
        proc = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        manifest = killed / "raw" / MANIFEST
        wait_until(lambda: len(read_jsonl(manifest)) >= 3, proc, "3 manifest rows", every=0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed = len(read_jsonl(manifest))
        assert 3 <= landed < len(shots)
        subprocess.run(command(killed), check=True, capture_output=True)
        image_requests = [p for p in site.paths() if p.endswith((".png", ".gif"))]
        subprocess.run(command(tmp_path / "clean"), check=True, capture_output=True)
    # Across the kill and the resume each image was fetched once (one more if it was in flight).
    assert len(shots) <= len(image_requests) <= len(shots) + 1
    assert _raw_state(killed) == _raw_state(tmp_path / "clean")
    assert len(_raw_state(killed)[1]) == len(shots)
    assert not [p for p in killed.rglob("*") if p.name.endswith(".tmp")]


def test_a_start_url_that_is_not_http_is_refused_with_an_example(tmp_path):
    result = CliRunner().invoke(cli, ["scrape", "ftp://example.org/nes.htm", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not an http(s) URL" in result.output and "https://www.vgmuseum.com/nes.htm" in result.output
    assert not (tmp_path / "raw").exists()
