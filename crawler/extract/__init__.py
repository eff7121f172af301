"""HTML -> Article: pure functions, no I/O, no Scrapy, no database (DESIGN.md, Extraction API).

`extract(html, url=None, selectors=None)` never raises; a field the page lacks is None.
Modules, in the order a page goes through them: decode (bytes -> text, the one place),
cleanup (parse, drop what no reader sees, pinyin), blocks (the page as lines in reading
order), body (the text's container, its lines, captions, images), title (the headline),
metadata (labelled lines, <meta>, JSON-LD), dates (formats -> ISO 8601), labels (the one
table of Chinese label words), article (the result), extractor (the entry point and
site selectors).
"""

from __future__ import annotations

from crawler.extract.article import TEXT_FIELDS, Article, Image
from crawler.extract.extractor import EXTRACTOR_VERSION, extract

__all__ = ["EXTRACTOR_VERSION", "TEXT_FIELDS", "Article", "Image", "extract"]
