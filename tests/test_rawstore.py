import hashlib

import pytest

from nesgan.errors import NesganError
from nesgan.files import read_jsonl
from nesgan.scrape.crawl import MANIFEST, ScrapeConfig, scrape
from nesgan.scrape.rawstore import (
    Lock,
    SyncedAppender,
    Writer,
    check_image,
    clear,
    load_manifest,
    sniff_image,
    store,
)
from scrape_sites import Site, museum_routes, png_bomb, screenshot


def test_sniff_image_names_the_format_by_magic_bytes_not_by_url():
    assert sniff_image(screenshot(1)) == "png"
    assert sniff_image(screenshot(1, fmt="GIF")) == "gif"
    assert sniff_image(screenshot(1, fmt="JPEG")) == "jpg"
    assert sniff_image(screenshot(1, fmt="BMP")) == "bmp"
    assert sniff_image(b"<html>") is None
    assert sniff_image(b"RIFF\0\0\0\0WAVE") is None  # RIFF, but not WebP


def test_check_image_refuses_a_bomb_from_its_header_and_flags_a_cut_file():
    assert check_image(png_bomb(), 4096 * 4096)["status"] == "too_large"
    big = check_image(png_bomb(5000, 5000), 4096 * 4096)  # under Pillow's own limit, over ours
    assert big["status"] == "too_large" and (big["width"], big["height"]) == (5000, 5000)
    assert check_image(screenshot(2)[:150], 4096 * 4096)["status"] == "corrupt"
    assert check_image(screenshot(2, fmt="GIF")[:300], 4096 * 4096)["status"] == "corrupt"
    ok = check_image(screenshot(2, (256, 224)), 4096 * 4096)
    assert (ok["status"], ok["width"], ok["height"]) == ("ok", 256, 224)


def test_store_names_files_by_content_and_leaves_no_temp_file(tmp_path):
    data = screenshot(3)
    digest = hashlib.sha256(data).hexdigest()
    rel = store(tmp_path, digest, "png", data)
    assert rel == f"{digest[:2]}/{digest}.png"
    assert (tmp_path / rel).read_bytes() == data
    assert [p.name for p in (tmp_path / digest[:2]).iterdir()] == [f"{digest}.png"]


def test_writer_appends_each_row_after_its_file_and_reraises_a_failed_write(tmp_path):
    data = screenshot(4)
    digest = hashlib.sha256(data).hexdigest()
    with SyncedAppender(tmp_path / "m.jsonl") as manifest:
        writer = Writer(tmp_path, manifest)
        writer.put({"url": "u", "sha256": digest, "path": "x"}, data, "png")
        writer.put({"url": "v", "status": "http_error"})
        writer.close()
    assert [r["url"] for r in read_jsonl(tmp_path / "m.jsonl")] == ["u", "v"]
    assert (tmp_path / digest[:2] / f"{digest}.png").exists()
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    with SyncedAppender(tmp_path / "n.jsonl") as manifest:
        writer = Writer(blocker, manifest)
        writer.put({"url": "u", "sha256": digest}, data, "png")
        with pytest.raises(OSError):
            writer.close()
    assert read_jsonl(tmp_path / "n.jsonl") == []  # no row for a file that never landed


def test_synced_appender_rows_are_readable_before_close(tmp_path):
    appender = SyncedAppender(tmp_path / "m.jsonl", sync_seconds=3600)
    appender.append({"a": 1})
    assert read_jsonl(tmp_path / "m.jsonl") == [{"a": 1}]  # flushed: a kill loses nothing
    appender.close()


def test_resume_fetches_again_the_originals_whose_files_did_not_survive(tmp_path):
    routes, shots = museum_routes({"alpha": 4})
    with Site(routes) as site:
        config = ScrapeConfig(url=site.url + "/nes.htm", out=tmp_path, delay=0, crop=False,
                              progress=False)
        scrape(config)
        rows = read_jsonl(tmp_path / "raw" / MANIFEST)
        lost, cut = rows[0], rows[1]
        (tmp_path / "raw" / lost["path"]).unlink()  # e.g. a power cut before writeback
        (tmp_path / "raw" / cut["path"]).write_bytes(b"")
        before = len(site.requests)
        scrape(config)
        refetched = sorted(site.url + p for p in site.paths()[before:] if p.endswith((".png", ".gif")))
    assert refetched == sorted([lost["url"], cut["url"]])
    after = read_jsonl(tmp_path / "raw" / MANIFEST)
    assert sorted(r["url"] for r in after) == sorted(site.url + p for p in shots)  # one row each
    for r in after:
        assert hashlib.sha256((tmp_path / "raw" / r["path"]).read_bytes()).hexdigest() == r["sha256"]


def test_load_manifest_keeps_failure_rows_and_drops_rows_whose_file_is_gone(tmp_path):
    path = tmp_path / MANIFEST
    rows = [{"url": "a", "status": "http_error"}, {"url": "b", "status": "ok", "path": "zz/b.png", "bytes": 3}]
    with SyncedAppender(path) as m:
        for r in rows:
            m.append(r)
    assert load_manifest(path, tmp_path) == rows[:1]
    assert read_jsonl(path) == rows[:1]


def test_clear_removes_only_what_the_scraper_wrote(tmp_path):
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "abcd.png").write_bytes(b"x")
    (tmp_path / MANIFEST).write_text("{}\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.png").write_bytes(b"y")
    (tmp_path / "notes.txt").write_text("keep")
    clear(tmp_path, (MANIFEST,))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]


def test_a_second_scrape_into_the_same_folder_is_refused_while_the_first_holds_the_lock(tmp_path):
    with Lock(tmp_path / "raw" / ".scrape" / "lock"):
        with pytest.raises(NesganError, match="another `nesgan scrape`"):
            scrape(ScrapeConfig(url="http://127.0.0.1:9/nes.htm", out=tmp_path, crop=False,
                                progress=False))
    with Lock(tmp_path / "raw" / ".scrape" / "lock"):
        pass  # released: taken again
