import gzip

import pytest

from nesgan.scrape.fetch import ClientConfig, FetchError, PoliteClient, origin
from scrape_sites import Site, Static, send


def client(site: Site, sleeps: list[float] | None = None, **kw) -> PoliteClient:
    """A client for `site` that refuses /private/; `sleeps` records its pauses instead of sleeping."""
    kw.setdefault("gap", 0)
    kw.setdefault("backoff", 0.01)
    extra = {"sleep": sleeps.append} if sleeps is not None else {}
    return PoliteClient(ClientConfig(**kw), site.url + "/",
                        allowed=lambda url: "/private/" not in url, **extra)


def test_origin_fills_in_default_ports_and_lowercases_the_host():
    assert origin("http://WWW.VGMuseum.com/nes.htm") == ("http", "www.vgmuseum.com", 80)
    assert origin("https://x.org:8443/a") == ("https", "x.org", 8443)
    assert origin("http://127.0.0.1:80/") == origin("http://127.0.0.1/")


def test_same_origin_redirects_are_followed_and_loops_are_cut(tmp_path):
    routes = {"/a": Static(b"", status=301, headers={"Location": "b"}),
              "/b": Static(b"", status=308, headers={"Location": "/c"}),
              "/c": Static(b"done", "text/plain"),
              "/loop": Static(b"", status=302, headers={"Location": "/loop"})}
    with Site(routes) as site:
        c = client(site)
        resp = c.get(site.url + "/a", max_bytes=100)
        assert (resp.url, resp.body) == (site.url + "/c", b"done")
        with pytest.raises(FetchError, match="more than 5 redirects") as e:
            c.get(site.url + "/loop", max_bytes=100)
        assert e.value.status == "http_error"
        assert site.hits["/loop"] == 6


def test_a_redirect_into_a_disallowed_folder_is_not_followed():
    routes = {"/a": Static(b"", status=302, headers={"Location": "/private/x"}),
              "/private/x": Static(b"secret", "text/plain")}
    with Site(routes) as site:
        with pytest.raises(FetchError) as e:
            client(site).get(site.url + "/a", max_bytes=100)
        assert e.value.status == "disallowed"
        assert "/private/x" not in site.paths()


def test_a_declared_length_over_the_cap_is_refused_and_truncate_cuts_instead():
    routes = {"/big": Static(b"x" * 5000, "text/plain")}
    with Site(routes) as site:
        c = client(site)
        with pytest.raises(FetchError, match="Content-Length 5000") as e:
            c.get(site.url + "/big", max_bytes=1000)
        assert e.value.status == "too_large"
        assert c.get(site.url + "/big", max_bytes=1000, truncate=True).body == b"x" * 1000


def test_a_gzip_bomb_is_capped_on_the_decompressed_bytes():
    bomb = gzip.compress(b"\0" * 5_000_000)  # ~5 KB on the wire

    def route(h, n):
        send(h, 200, bomb, "text/html", headers={"Content-Encoding": "gzip"})

    with Site({"/page": route}) as site:
        with pytest.raises(FetchError) as e:
            client(site).get(site.url + "/page", max_bytes=1_000_000)
        assert e.value.status == "too_large"


def test_backoff_doubles_with_jitter_and_retry_after_is_capped():
    def flaky(h, n):
        send(h, 500 if n <= 3 else 200, b"ok")

    def limited(h, n):
        send(h, 429 if n == 1 else 200, b"ok", headers={"Retry-After": "3600"})

    with Site({"/flaky": flaky, "/limited": limited}) as site:
        sleeps: list[float] = []
        c = client(site, sleeps, retries=3, backoff=1.0, max_retry_after=2.0)
        assert c.get(site.url + "/flaky", max_bytes=100).body == b"ok"
        assert len(sleeps) == 3
        for k, s in enumerate(sleeps):  # 1, 2, 4 s × jitter in [0.5, 1.5]
            assert 0.5 * 2**k - 0.2 <= s <= 1.5 * 2**k
        sleeps.clear()
        c = client(site, sleeps, retries=3, backoff=1.0, max_retry_after=2.0)
        c.get(site.url + "/limited", max_bytes=100)
        assert len(sleeps) == 1 and 1.8 <= sleeps[0] <= 2.0  # capped at max_retry_after


def test_retries_stop_after_the_configured_count_and_404_is_never_retried():
    with Site({"/down": Static(b"", status=502)}) as site:
        c = client(site, retries=2)
        with pytest.raises(FetchError, match="HTTP 502"):
            c.get(site.url + "/down", max_bytes=100)
        with pytest.raises(FetchError, match="HTTP 404"):
            c.get(site.url + "/nothing", max_bytes=100)
        assert site.hits == {"/down": 3, "/nothing": 1}


def test_the_gap_is_kept_between_requests():
    with Site({"/a": Static(b"a", "text/plain")}) as site:
        sleeps: list[float] = []
        c = client(site, sleeps, gap=5.0)
        c.get(site.url + "/a", max_bytes=10)
        c.get(site.url + "/a", max_bytes=10)
        assert len(sleeps) == 1 and 4.5 <= sleeps[0] <= 5.0


def test_a_body_that_does_not_decode_as_its_content_encoding_is_an_http_error():
    def route(h, n):
        send(h, 200, b"this is not gzip at all", "text/html", headers={"Content-Encoding": "gzip"})

    with Site({"/page": route}) as site:
        with pytest.raises(FetchError, match="Content-Encoding") as e:
            client(site).get(site.url + "/page", max_bytes=1000)
        assert e.value.status == "http_error"
