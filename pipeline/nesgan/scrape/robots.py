"""robots.txt per RFC 9309 (the Robots Exclusion Protocol), plus the common `Crawl-delay`.

Not `urllib.robotparser`: that one takes the first matching rule and knows no wildcards. Here:

1. Groups start at one or more `user-agent` lines; groups naming the same agent are merged
   (RFC 9309 §2.2.1). A crawler obeys the groups whose product token equals its own
   (case-insensitive), else the `*` groups, else nothing is disallowed.
2. The rule with the longest matching pattern wins; on a tie `allow` wins (§2.2.2).
3. `*` matches any run of characters and a trailing `$` anchors at the end of the path (§2.2.3).
4. Patterns and paths are compared in one percent-encoded form (§2.2.2): non-ASCII and unsafe
   octets are escaped, escapes get upper-case hex, escapes of unreserved characters are decoded.
5. `/robots.txt` itself is always allowed (§2.2.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 §2.5: parse at least the first 500 KiB

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Octets left as they are in a path: unreserved, sub-delims, ':' '@' '/' '?' and '%' itself
# (handled as an escape). Everything else (space, non-ASCII, '"', '<', ...) gets escaped.
_KEEP = _UNRESERVED | frozenset(b"!$&'()*+,;=:@/?%")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_TOKEN = re.compile(r"[A-Za-z_-]+")


def normalize_path(text: str) -> str:
    """One canonical percent-encoded form of a path (or pattern) for comparison."""
    raw = text.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        b = raw[i]
        m = _ESCAPE.match(raw, i) if b == 0x25 else None  # '%'
        if m:
            value = int(m.group(1), 16)
            if value in _UNRESERVED:
                out.append(value)
            else:
                out += b"%" + m.group(1).upper()
            i += 3
            continue
        if b in _KEEP and b != 0x25:
            out.append(b)
        else:
            out += b"%%%02X" % b
        i += 1
    return out.decode("ascii")


def product_token(user_agent: str) -> str:
    """The product token of a User-Agent string: `nesgan/0.1 (+https://…)` -> `nesgan`."""
    m = _TOKEN.match(user_agent.strip())
    return m.group(0).lower() if m else ""


@dataclass(frozen=True)
class Rule:
    allow: bool
    pattern: str  # normalized; may hold `*` and a final `$`

    def matches(self, path: str) -> bool:
        return _compile(self.pattern).match(path) is not None


_COMPILED: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    rx = _COMPILED.get(pattern)
    if rx is None:
        anchored = pattern.endswith("$")
        body = pattern[:-1] if anchored else pattern
        rx = re.compile(".*".join(re.escape(part) for part in body.split("*"))
                        + ("\\Z" if anchored else ""), re.DOTALL)
        _COMPILED[pattern] = rx
    return rx


@dataclass
class _Group:
    agents: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    crawl_delay: float | None = None


@dataclass(frozen=True)
class AgentRules:
    """The merged rules one crawler obeys, with its `Crawl-delay` (seconds) if any."""

    rules: tuple[Rule, ...] = ()
    crawl_delay: float | None = None

    def allowed(self, url_or_path: str) -> bool:
        """RFC 9309 §2.2.2: the longest matching pattern decides; `allow` wins a tie."""
        path = _path_of(url_or_path)
        if path == "/robots.txt":
            return True
        best: Rule | None = None
        for rule in self.rules:
            if not rule.matches(path):
                continue
            if best is None or _length(rule) > _length(best) or (
                _length(rule) == _length(best) and rule.allow and not best.allow
            ):
                best = rule
        return best is None or best.allow


def _length(rule: Rule) -> int:
    return len(rule.pattern)


def _path_of(url_or_path: str) -> str:
    parts = urlsplit(url_or_path)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return normalize_path(path)


class Robots:
    """A parsed robots.txt. `Robots.parse(text).for_agent("nesgan/0.1").allowed(url)`."""

    def __init__(self, groups: list[_Group], *, disallow_all: bool = False):
        self._groups = groups
        self._disallow_all = disallow_all

    @classmethod
    def allow_all(cls) -> Robots:
        """What a 4xx robots.txt means (RFC 9309 §2.3.1.3): crawl anything."""
        return cls([])

    @classmethod
    def disallow_all(cls) -> Robots:
        """What a 5xx or unreachable robots.txt means (§2.3.1.4): crawl nothing."""
        return cls([], disallow_all=True)

    @classmethod
    def parse(cls, text: str | bytes) -> Robots:
        if isinstance(text, bytes):
            text = text[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        text = text.lstrip("\ufeff")
        groups: list[_Group] = []
        current: _Group | None = None
        in_agents = False  # the previous meaningful line was a user-agent line
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if ":" not in line:
                continue
            key, value = (s.strip() for s in line.split(":", 1))
            key = key.lower().replace("_", "-")
            if key in ("user-agent", "useragent"):
                if not in_agents:
                    current = _Group()
                    groups.append(current)
                current.agents.append("*" if value == "*" else product_token(value))
                in_agents = True
                continue
            if key in ("allow", "disallow"):
                in_agents = False
                if current is None:
                    continue  # rules before any user-agent line belong to no group
                if value == "":
                    continue  # an empty disallow disallows nothing
                if not value.startswith("/") and not value.startswith("*"):
                    value = "/" + value
                current.rules.append(Rule(allow=key == "allow", pattern=normalize_path(value)))
            elif key == "crawl-delay":
                in_agents = False
                if current is None:
                    continue
                try:
                    delay = float(value)
                except ValueError:
                    continue
                if delay >= 0 and delay == delay and delay != float("inf"):
                    current.crawl_delay = delay
            # sitemap and unknown keys neither start nor end a group
        return cls(groups)

    def for_agent(self, user_agent: str) -> AgentRules:
        """The merged groups for this crawler's product token, else `*`, else no rules."""
        if self._disallow_all:
            return AgentRules(rules=(Rule(allow=False, pattern="/"),))
        token = product_token(user_agent)
        chosen = [g for g in self._groups if token and token in g.agents]
        if not chosen:
            chosen = [g for g in self._groups if "*" in g.agents]
        rules = tuple(r for g in chosen for r in g.rules)
        delays = [g.crawl_delay for g in chosen if g.crawl_delay is not None]
        return AgentRules(rules=rules, crawl_delay=max(delays) if delays else None)
