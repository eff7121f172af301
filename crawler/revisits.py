"""What a known article's answer means: the same page, an edit, or a takedown in disguise.

Pure functions over a fetched page and its site; the pipeline stores what they decide.
- A 200 page can be a soft 404: it says 页面不存在 (or another phrase of
  `revisit.soft_404_phrases`) and holds no article text to speak of.
- A redirect to the same path on another allowed host or scheme is the same article; to
  another article (a URL the site's `article_url_pattern` matches) the article `moved`;
  to the home page, a listing page or anything else, it is `gone`.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from archive.settings import RevisitSettings
from crawler.sites import SiteConfig

RedirectKind = Literal["same", "article", "home", "listing", "other"]

_INVISIBLE = re.compile(
    r"<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL
)
_TAG = re.compile(r"<[^>]*>")
_INDEX_PAGE = re.compile(r"/(index|default|main|home)(_\d+)?\.(s?html?|jsp|php|aspx?)$", re.I)


def visible_text(html: str) -> str:
    """The text a reader sees, roughly: no scripts, styles, comments or tags. A phrase in a
    script (a site-wide 404 handler) must not make every short page a soft 404."""
    return _TAG.sub(" ", _INVISIBLE.sub(" ", html))


def soft_404_phrase(
    policy: RevisitSettings, html: str, title: str | None, body: str | None
) -> str | None:
    """The phrase that makes this 200 page a "not found" page, or None. Only a page with
    no more article text than `soft_404_max_body_chars` can be one: an article that
    merely quotes 页面不存在 keeps its body."""
    text = "".join((body or "").split())
    if len(text) > policy.soft_404_max_body_chars:
        return None
    seen = None
    for phrase in policy.soft_404_phrases:
        if phrase in (title or "") or phrase in text:
            return phrase
        if seen is None:
            seen = visible_text(html)
        if phrase in seen:
            return phrase
    return None


def redirect_kind(site: SiteConfig, requested: str, final: str) -> RedirectKind:
    """Where a known article's URL now leads (see the module docstring)."""
    asked, got = urlsplit(requested), urlsplit(final)
    if (asked.path, asked.query) == (got.path, got.query):
        return "same"
    if site.article_re.search(final):
        return "article"
    if got.path in ("", "/") or (_INDEX_PAGE.search(got.path) and got.path.count("/") <= 1):
        return "home"
    starts = {site.canonical(url) for url in site.start_urls}
    follow = site.follow_re
    if site.canonical(final) in starts or (follow is not None and follow.search(final)):
        return "listing"
    if _INDEX_PAGE.search(got.path) or got.path.endswith("/"):
        return "listing"
    return "other"
