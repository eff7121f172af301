"""The `Article` that extraction returns (DESIGN.md, Extraction API), and where each field came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The text fields of an article, in the order of DESIGN.md's `to_dict()`.
TEXT_FIELDS = ("title", "publish_time", "source", "editor", "author", "contributor", "body")


@dataclass
class Image:
    src: str
    caption: str | None = None


@dataclass(frozen=True)
class Origin:
    """Why a field is what it is: the rule that took it and the raw string it came from.

    Rules: `label:责任编辑` (a labelled line), `meta:article:published_time`, `jsonld`,
    `script`, `url`, `byline` (an unlabelled slot of the byline line), `dateline`
    (`新华社北京5月20日电（记者…）`), `credit` (a closing `（记者 X）` or `（X 供稿）`),
    `class:source` (an element whose class names the field), `heading`, `title-tag`,
    `line-above-byline`, `container` (body), `selector:<css>`. A date completed from a
    second place has `+refined:<rule>` added."""

    rule: str
    raw: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "raw": self.raw}


@dataclass
class Article:
    """What one article page says. A field the page lacks is None; `body` is "" then.

    `provenance`, `encoding`, `encoding_reason` and `warnings` are about the extraction,
    not the article: `to_dict()` leaves them out (DESIGN.md's keys), `report()` adds them,
    and they do not take part in equality."""

    title: str | None = None
    publish_time: str | None = None  # ISO 8601 with offset; +08:00 when the page gives none
    source: str | None = None
    editor: str | None = None
    author: str | None = None
    contributor: str | None = None
    body: str = ""  # plain text, one paragraph a line
    images: list[Image] = field(default_factory=list)
    provenance: dict[str, Origin] = field(default_factory=dict, compare=False, repr=False)
    encoding: str | None = field(default=None, compare=False)
    encoding_reason: str | None = field(default=None, compare=False)
    warnings: list[str] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "publish_time": self.publish_time,
            "source": self.source,
            "editor": self.editor,
            "author": self.author,
            "contributor": self.contributor,
            "body": self.body,
            "images": [asdict(image) for image in self.images],
        }

    def provenance_dict(self) -> dict[str, dict[str, str]]:
        """{field: {rule, raw}} for every field that has a value, in DESIGN.md's order."""
        return {
            name: self.provenance[name].to_dict()
            for name in TEXT_FIELDS
            if name in self.provenance and getattr(self, name)
        }

    def report(self) -> dict[str, Any]:
        """`to_dict()` plus provenance, the encoding and why, and extraction warnings."""
        return {
            **self.to_dict(),
            "provenance": self.provenance_dict(),
            "encoding": self.encoding,
            "encoding_reason": self.encoding_reason,
            "warnings": list(self.warnings),
        }
