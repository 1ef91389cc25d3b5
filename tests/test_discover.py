from nesgan.scrape.discover import decode_html, looks_like_html, parse_page

BASE = "https://www.vgmuseum.com/images/nes_b.html"
GAME = "https://www.vgmuseum.com/nes/01/smb.html"


def test_frames_and_iframes_are_resolved_against_the_page():
    page = parse_page('<frameset><frame src="images/nes_b.html"><frame src="/top.html">'
                      '</frameset><iframe src="x/side.html"></iframe>',
                      "https://www.vgmuseum.com/nes.htm")
    assert page.frames == ["https://www.vgmuseum.com/images/nes_b.html",
                           "https://www.vgmuseum.com/top.html",
                           "https://www.vgmuseum.com/x/side.html"]


def test_game_list_links_keep_their_text_even_when_the_closing_tag_is_missing():
    page = parse_page('<ol><li><a href="../nes/01/smb.html">Super Mario Bros.'
                      '<li><a href="../nes/01/zelda.html">The  Legend\nof Zelda</a></ol>', BASE)
    assert page.links == [("https://www.vgmuseum.com/nes/01/smb.html", "Super Mario Bros."),
                          ("https://www.vgmuseum.com/nes/01/zelda.html", "The Legend of Zelda")]


def test_letter_jumps_top_links_empty_links_and_scripts_are_skipped():
    page = parse_page('<a href="#A" target="_self">A</a><a href="nes_b.html#top">top</a>'
                      '<a href="../nes/01/ghost.html"></a><a href="javascript:void(0)">JS</a>'
                      '<a href="mailto:x@y.z">mail</a><a href="../nes/01/real.html">Real</a>', BASE)
    assert page.links == [("https://www.vgmuseum.com/nes/01/real.html", "Real")]


def test_bare_named_images_are_screenshots_and_paths_with_a_slash_are_chrome():
    page = parse_page('<img src="/images/logo.gif"><img src="../../images/bar.gif">'
                      '<img src="smb-1.png"><br><a href="smb-2.png"><img src="smb-2.png"><br>'
                      '<a href="smb-3.gif">3<br><a href="../../images/big.png">big</a>', GAME)
    assert page.images == ["https://www.vgmuseum.com/nes/01/smb-1.png",
                           "https://www.vgmuseum.com/nes/01/smb-2.png",
                           "https://www.vgmuseum.com/nes/01/smb-3.gif"]
    assert page.chrome == 3
    assert page.links == []  # links to images are images, not pages


def test_title_is_read_and_whitespace_collapsed():
    page = parse_page("<html><head><title>\n Super  Mario Bros. </title></head></html>", GAME)
    assert page.title == "Super Mario Bros."


def test_base_href_changes_how_links_resolve():
    page = parse_page('<base href="https://www.vgmuseum.com/nes/02/"><img src="a.png">', GAME)
    assert page.images == ["https://www.vgmuseum.com/nes/02/a.png"]


def test_a_short_please_visit_page_is_a_block_page_but_a_game_list_mentioning_it_is_not():
    blocked = parse_page("<html><body>Please visit <a href='/'>our site</a> in a browser."
                         "</body></html>", GAME)
    assert blocked.looks_blocked()
    links = "".join(f'<li><a href="g{i}.html">Game {i}</a>' for i in range(20))
    normal = parse_page(f"<p>Please visit our forum!</p><ol>{links}</ol>", BASE)
    assert not normal.looks_blocked()


def test_html_is_decoded_with_its_declared_charset_or_a_fallback():
    assert decode_html("café".encode("cp1252"), "text/html; charset=windows-1252") == "café"
    assert decode_html(b'<meta charset="latin-1"><p>caf\xe9').endswith("café")
    assert decode_html(b"<p>caf\xe9") == "<p>café"  # not UTF-8: Latin-1
    assert looks_like_html(b"  <!DOCTYPE html><html>")
    assert not looks_like_html(b"\x89PNG\r\n\x1a\n")
