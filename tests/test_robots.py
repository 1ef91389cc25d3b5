from nesgan.scrape.robots import Robots, normalize_path, product_token

UA = "nesgan/0.1.0 (+https://github.com/nesgan/nesgan)"


def rules(text: str, ua: str = UA):
    return Robots.parse(text).for_agent(ua)


def test_longest_matching_rule_wins_whatever_the_order():
    r = rules("User-agent: *\nAllow: /nes/01/\nDisallow: /nes/\n")
    assert r.allowed("/nes/01/smb.html")
    assert not r.allowed("/nes/02/zelda.html")
    r = rules("User-agent: *\nDisallow: /nes/\nAllow: /nes/01/\n")  # first-match would disallow
    assert r.allowed("/nes/01/smb.html")


def test_allow_wins_a_tie_between_equally_long_rules():
    assert rules("User-agent: *\nDisallow: /page\nAllow: /page\n").allowed("/page")
    assert rules("User-agent: *\nAllow: /page\nDisallow: /page\n").allowed("/page")


def test_star_matches_any_run_of_characters():
    r = rules("User-agent: *\nDisallow: /*.gif\nDisallow: /private*/x\n")
    assert not r.allowed("/images/logo.gif")
    assert not r.allowed("/a/b/c.gif?v=2")
    assert r.allowed("/images/logo.png")
    assert not r.allowed("/private-stuff/x/y")
    assert r.allowed("/private-stuff/y")


def test_dollar_anchors_the_pattern_at_the_end_of_the_path():
    r = rules("User-agent: *\nDisallow: /*.htm$\n")
    assert not r.allowed("/nes.htm")
    assert r.allowed("/nes.html")
    assert r.allowed("/nes.htm?x=1")


def test_percent_encoding_is_normalised_on_both_sides():
    r = rules("User-agent: *\nDisallow: /%7Ejoe/\nDisallow: /caf\u00e9\nDisallow: /a%2fb\n")
    assert not r.allowed("/~joe/index.html")  # %7E is the unreserved '~'
    assert not r.allowed("/caf%C3%A9")  # a UTF-8 pattern matches its escaped form
    assert not r.allowed("http://x.org/caf%c3%a9/menu")  # escapes compare case-insensitively
    assert not r.allowed("/a%2Fb")
    assert r.allowed("/a/b")  # an escaped '/' is not a path separator
    assert normalize_path("/a b/%41%7e%2f") == "/a%20b/A~%2F"


def test_the_group_for_the_crawlers_product_token_beats_the_star_group():
    text = ("User-agent: *\nDisallow: /\n\n"
            "User-agent: NESGAN\nDisallow: /private/\n")
    assert rules(text).allowed("/nes.htm")  # case-insensitive product token match
    assert not rules(text).allowed("/private/x")
    assert not rules(text, "OtherBot/2.0").allowed("/nes.htm")  # falls back to *


def test_groups_for_the_same_agent_are_merged_and_shared_agent_lines_form_one_group():
    text = ("User-agent: nesgan\nDisallow: /a/\n\n"
            "User-agent: other\nUser-agent: nesgan\nDisallow: /b/\n\n"
            "User-agent: nesgan\nDisallow: /c/\n")
    r = rules(text)
    assert not r.allowed("/a/1") and not r.allowed("/b/1") and not r.allowed("/c/1")
    assert r.allowed("/d/1")
    assert not rules(text, "other").allowed("/b/1")
    assert rules(text, "other").allowed("/a/1")


def test_no_matching_group_and_no_star_group_allows_everything():
    assert rules("User-agent: googlebot\nDisallow: /\n").allowed("/anything")


def test_empty_disallow_and_rules_outside_a_group_disallow_nothing():
    assert rules("Disallow: /\nUser-agent: *\nDisallow:\n").allowed("/x")


def test_robots_txt_itself_is_always_allowed():
    assert rules("User-agent: *\nDisallow: /\n").allowed("/robots.txt")


def test_crawl_delay_is_read_including_fractional_values_and_ignored_when_garbage():
    assert rules("User-agent: *\nCrawl-delay: 0.25\nDisallow: /x\n").crawl_delay == 0.25
    assert rules("User-agent: *\nCrawl-delay: 3\n").crawl_delay == 3.0
    assert rules("User-agent: *\nCrawl-delay: soon\n").crawl_delay is None
    text = "User-agent: *\nCrawl-delay: 9\n\nUser-agent: nesgan\nCrawl-delay: 1.5\n"
    assert rules(text).crawl_delay == 1.5  # from our own group, not *


def test_comments_bom_crlf_sitemaps_and_unknown_lines_are_tolerated():
    text = ("\ufeffUser-agent: * # everyone\r\nSitemap: https://x.org/s.xml\r\n"
            "Noindex: /y\r\nDisallow: /private/ # keep out\r\n")
    r = rules(text)
    assert not r.allowed("/private/a")
    assert r.allowed("/y")


def test_bytes_input_and_the_disallow_all_and_allow_all_verdicts():
    assert not Robots.parse(b"User-agent: *\nDisallow: /\n").for_agent(UA).allowed("/a")
    assert not Robots.disallow_all().for_agent(UA).allowed("/nes.htm")
    assert Robots.allow_all().for_agent(UA).allowed("/nes.htm")


def test_product_token_is_the_leading_name_of_a_user_agent():
    assert product_token(UA) == "nesgan"
    assert product_token("Mozilla/5.0 (X11)") == "mozilla"
    assert product_token("") == ""
