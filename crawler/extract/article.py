"""The `Article` that extraction returns (DESIGN.md, Extraction API)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The text fields of an article, in the order of DESIGN.md's `to_dict()`.
TEXT_FIELDS = ("title", "publish_time", "source", "editor", "author", "contributor", "body")


@dataclass
class Image:
    src: str
    caption: str | None = None


@dataclass
class Article:
    """What one article page says. A field the page lacks is None; `body` is "" then."""

    title: str | None = None
    publish_time: str | None = None  # ISO 8601 with offset; +08:00 when the page gives none
    source: str | None = None
    editor: str | None = None
    author: str | None = None
    contributor: str | None = None
    body: str = ""  # plain text, one paragraph a line
    images: list[Image] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
