"""Crawl speed: nesgan's crawler (`--delay 0`) vs a plain `requests` loop over the same URLs.

Both run against the embedded museum served by a separate process on loopback (robots.txt
Crawl-delay 0; a server thread in this process would compete for the GIL), in pairs that
alternate which goes first, after a warm-up crawl that renders every image once. The plain loop
fetches exactly the URLs nesgan fetched (robots.txt, pages, images; one Session, sequential) and
keeps the bodies in memory; nesgan also parses, checks, hashes and stores each image with its
manifest row. The figure is the median over pairs of (loop time / nesgan time): how close to
network-bound the crawler is (aim: ≥ 0.8).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

from nesgan.files import read_jsonl
from nesgan.scrape.crawl import MANIFEST, PAGES, ScrapeConfig, scrape

_SERVER = """
import sys
from nesgan.museum.server import serve
from nesgan.museum.site import Museum
museum = Museum(games=int(sys.argv[1]), screens_per_game=int(sys.argv[2]), seed=0, crawl_delay=0)
with serve(museum) as server:
    print(server.url, flush=True)
    sys.stdin.read()  # serve until the bench closes our stdin
"""


def _plain_loop(urls: list[str]) -> float:
    t0 = time.perf_counter()
    with requests.Session() as s:
        for url in urls:
            r = s.get(url, timeout=30)
            r.raise_for_status()
            _ = r.content
    return time.perf_counter() - t0


def _fetched_urls(raw: Path, start: str) -> list[str]:
    """What a crawl requested: robots.txt, every page not refused by robots.txt, every image."""
    robots = start.split("/", 3)
    urls = ["/".join(robots[:3]) + "/robots.txt"]
    urls += [r["url"] for r in read_jsonl(raw / PAGES) if r["status"] != "disallowed"]
    urls += [r["url"] for r in read_jsonl(raw / MANIFEST) if r["status"] != "disallowed"]
    return urls


def run(out: Path, quick: bool) -> dict:
    games, per_game, repeats = (4, 8, 3) if quick else (16, 16, 7)
    out.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(games), str(per_game)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    nesgan_s: list[float] = []
    plain_s: list[float] = []
    try:
        url = server.stdout.readline().strip()

        def config(name: str) -> ScrapeConfig:
            shutil.rmtree(out / name, ignore_errors=True)  # a fresh folder: a full crawl
            return ScrapeConfig(url=url, out=out / name, delay=0, crop=False, progress=False)

        result = scrape(config("warm-up"))  # renders every image once, gives the URL list
        urls = _fetched_urls(out / "warm-up" / "raw", url)
        _plain_loop(urls)
        for i in range(repeats):  # pairs, alternating which goes first
            c = config(f"run-{i}")
            if i % 2:
                plain_s.append(_plain_loop(urls))
            t0 = time.perf_counter()
            result = scrape(c)
            nesgan_s.append(time.perf_counter() - t0)
            if not i % 2:
                plain_s.append(_plain_loop(urls))
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    assert result.requests == len(urls), (result.requests, len(urls))
    n_pages = result.pages_fetched
    n_images = result.images.get("ok", 0) + result.images.get("duplicate", 0)
    nesgan_t, plain_t = statistics.median(nesgan_s), statistics.median(plain_s)
    return {
        "requests": len(urls),
        "pages": n_pages,
        "images": n_images,
        "nesgan_pages_per_s": round(n_pages / nesgan_t, 1),
        "nesgan_images_per_s": round(n_images / nesgan_t, 1),
        "nesgan_requests_per_s": round(len(urls) / nesgan_t, 1),
        "plain_pages_per_s": round(n_pages / plain_t, 1),
        "plain_images_per_s": round(n_images / plain_t, 1),
        "plain_requests_per_s": round(len(urls) / plain_t, 1),
        # the median over pairs of (plain time / nesgan time): 1.0 means no slower than the loop
        "ratio_nesgan_vs_plain": round(statistics.median(p / n for p, n in zip(plain_s, nesgan_s, strict=True)), 3),
        "repeats": repeats,
    }
