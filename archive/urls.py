"""Canonical URLs: two addresses of one page are one article.

w3lib's canonical form (sorted query, normalised escapes, no fragment), then: tracking
parameters dropped (utm_*, spm, from=timeline ... the share links of WeChat, Weibo and
news apps), `index.html`-style directory pages reduced to their folder, http and https
made one (https), default ports and `www.`-less aliases mapped through the site's
`url_aliases` (mobile hosts, mirrors).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from w3lib.url import canonicalize_url, url_query_cleaner

#: Query parameters that say how a link was shared, never which page it is.
TRACKING_PARAMS = (
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id",
    "spm", "from", "isappinstalled", "scene", "srcid", "sharer_shareid", "sharer_sharetime",
    "share_token", "share_source", "wxfrom", "clicktime", "enterid", "timestamp", "_t",
    "fbclid", "gclid", "mkt_tok", "share_medium", "tt_from", "ivk_sa",
)  # fmt: skip
_TRACKING_PREFIX = re.compile(r"^(utm_|share_|wx_)")
_DIRECTORY_PAGE = re.compile(r"/(?:index|default)\.s?html?$", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str, aliases: Mapping[str, str] | None = None) -> str:
    """The identity of the page at `url` (not necessarily a URL to fetch)."""
    url, bad_port = url.strip(), ""
    try:
        _ = urlsplit(url).port
    except ValueError:  # a port that is no number or out of range (found by fuzzing):
        parts = urlsplit(url)  # canonicalise the rest and keep the port as written
        userinfo, _, hostport = parts.netloc.rpartition("@")
        host_part, _, bad_port = hostport.rpartition(":")
        netloc = f"{userinfo}@{host_part}" if userinfo else host_part
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    url = canonicalize_url(url, keep_fragments=False)
    parts = urlsplit(url)
    if not parts.hostname:  # no page of any site (`http:///x`): w3lib's form as it is
        return url
    query = _strip_tracking(url) if parts.query else ""
    host = (parts.hostname or "").rstrip(".")
    host = (aliases or {}).get(host, host)
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    web = parts.scheme in _DEFAULT_PORTS
    port = parts.port
    # http and https are one page, so 80 and 443 are both the default of either
    default = port is None or (web and port in _DEFAULT_PORTS.values())
    netloc = host if default else f"{host}:{port}"
    if bad_port:
        netloc = f"{host}:{bad_port.lower()}"
    path = _DIRECTORY_PAGE.sub("/", parts.path or "/")
    scheme = "https" if web else parts.scheme
    return urlunsplit((scheme, netloc, path, query, ""))


def _strip_tracking(url: str) -> str:
    cleaned = url_query_cleaner(
        url, TRACKING_PARAMS, remove=True, unique=False, keep_fragments=False
    )
    query = urlsplit(cleaned).query
    kept = [p for p in query.split("&") if p and not _TRACKING_PREFIX.match(p.split("=", 1)[0])]
    return "&".join(kept)
