"""`nesgan scrape`: crawl a screenshot museum politely and keep every original as served.

Entry point: `crawl.scrape(ScrapeConfig) -> ScrapeResult` (the crawl loop, resume, block-page stop).
Modules: `fetch` (the polite HTTP client: pacing, retries with backoff, size caps, one host),
`robots` (robots.txt per RFC 9309), `discover` (links and screenshots on a museum page),
`rawstore` (originals named by SHA-256, magic-byte and bomb checks, the manifest).
"""

VGMUSEUM_NES = "https://www.vgmuseum.com/nes.htm"  # the default museum: The Video Game Museum's NES index
