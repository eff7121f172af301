"""HTML -> Article: pure functions, no I/O, no Scrapy, no database (DESIGN.md, Extraction API).

`extract(html, url=None, selectors=None)` never raises for a missing field: it returns
None for it. Modules: decode (bytes -> text), article (the result type), and the
extraction proper.
"""

from __future__ import annotations

from crawler.extract.article import TEXT_FIELDS, Article, Image
from crawler.extract.extractor import EXTRACTOR_VERSION, extract

__all__ = ["EXTRACTOR_VERSION", "TEXT_FIELDS", "Article", "Image", "extract"]
