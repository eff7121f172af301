"""Canonical URLs: two addresses of one page are one article.

A first cut (w3lib's canonical form without the fragment); the deduplication issue adds
tracking parameters, `index.html`, http/https and per-site aliases.
"""

from __future__ import annotations

from w3lib.url import canonicalize_url


def canonical_url(url: str) -> str:
    return canonicalize_url(url.strip(), keep_fragments=False)
