"""Word-level differences between two versions of an article (`show --diff`, the web UI).

Chinese has no spaces to split words on, and segmenting it (jieba) guesses: a diff over
guessed words shows an edit of one character as a changed word that was never written.
So a token is one Han character, a run of other letters and digits (a Latin word, a
number, a date's digits), or a run of spaces and punctuation, and the diff is difflib's
over those tokens, adjacent pieces of one kind merged: 2024年5月 -> 2024年6月 reads as
one changed digit, not a changed line.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.errors import UfarchiveError
from archive.export import local_iso
from archive.models import Article, ArticleVersion

Op = Literal["equal", "insert", "delete"]
_TOKENS = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"  # one Han character
    r"|[^\W_\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+"  # a word, a number
    r"|[\W_]+"  # spaces and punctuation
)
#: The fields compared besides the body, in the export record's order.
FIELDS = ("title", "publish_time", "source", "editor", "author", "contributor")


def tokenize(text: str) -> list[str]:
    return _TOKENS.findall(text)


def word_diff(old: str, new: str) -> list[tuple[Op, str]]:
    """(op, text) pieces that turn `old` into `new`: equal, delete (only in old), insert
    (only in new); a replacement is a delete followed by an insert."""
    a, b = tokenize(old), tokenize(new)
    pieces: list[tuple[Op, str]] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            _append(pieces, "equal", "".join(a[i1:i2]))
            continue
        if i2 > i1:
            _append(pieces, "delete", "".join(a[i1:i2]))
        if j2 > j1:
            _append(pieces, "insert", "".join(b[j1:j2]))
    return pieces


def _append(pieces: list[tuple[Op, str]], op: Op, text: str) -> None:
    if not text:
        return
    if pieces and pieces[-1][0] == op:
        pieces[-1] = (op, pieces[-1][1] + text)
    else:
        pieces.append((op, text))


def diff_versions(
    session: Session, article_id: int, a: int | None = None, b: int | None = None
) -> dict[str, Any]:
    """Version `a` against version `b` of an article (default: the last two):
    `{article_id, a, b, fields: {name: {old, new}} (changed fields besides the body),
    body: [[op, text], ...]}`."""
    article = session.get(Article, article_id)
    if article is None:
        raise UfarchiveError(f"article {article_id}: no such article")
    if a is None and b is None:
        b = article.version
        a = max(1, b - 1)
    elif b is None:
        b = article.version
    elif a is None:
        a = max(1, b - 1)
    assert a is not None and b is not None
    versions = {
        v.version: v
        for v in session.scalars(
            select(ArticleVersion).where(
                ArticleVersion.article_id == article_id, ArticleVersion.version.in_((a, b))
            )
        )
    }
    for number in (a, b):
        if number not in versions:
            raise UfarchiveError(
                f"article {article_id}: no version {number} (it has 1 to {article.version})"
            )
    old, new = versions[a], versions[b]
    fields: dict[str, dict[str, str | None]] = {}
    for name in FIELDS:
        before, after = _field(old, name), _field(new, name)
        if before != after:
            fields[name] = {"old": before, "new": after}
    return {
        "article_id": article_id,
        "a": a,
        "b": b,
        "fields": fields,
        "body": [[op, text] for op, text in word_diff(old.body, new.body)],
    }


def _field(version: ArticleVersion, name: str) -> str | None:
    if name == "publish_time":
        return local_iso(version.publish_time, version.publish_time_offset)
    value: str | None = getattr(version, name)
    return value
