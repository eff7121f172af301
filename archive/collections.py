"""Analysts' collections: named sets of articles to export (`ufarchive collections ...`).

A **saved** collection is a search query with filters, run again whenever it is exported
or shown, so it picks up articles stored since. A **frozen** one is a fixed list of
articles, each pinned at the version it had when it was added: new articles stay out,
and its export shows what the analyst saw (archive.export reads the pinned versions).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archive.errors import UfarchiveError
from archive.export import (
    Filters,
    Resolved,
    Selection,
    count_rows,
    iso,
    local_iso,
    resolve,
    selected,
)
from archive.models import (
    Article,
    ArticleVersion,
    Collection,
    CollectionItem,
    CollectionKind,
    Site,
    utcnow,
)

NAME_MAX = 128
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")


class CollectionError(UfarchiveError):
    """A collection that does not exist, exists already, or cannot do what was asked."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"collection {name!r}: {problem}")


def check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise CollectionError(name, "a name cannot be empty")
    if len(cleaned) > NAME_MAX or _BAD_NAME.search(cleaned):
        raise CollectionError(name, f"a name is at most {NAME_MAX} printable characters")
    return cleaned


def get_collection(session: Session, name: str) -> Collection:
    found = session.scalars(select(Collection).where(Collection.name == name)).one_or_none()
    if found is None:
        raise CollectionError(name, "no such collection (see `ufarchive collections list`)")
    return found


def saved_filters(collection: Collection) -> Filters:
    stored = collection.filters or {}
    return Filters(
        site=stored.get("site"),
        since=datetime.fromisoformat(stored["since"]) if stored.get("since") else None,
        until=datetime.fromisoformat(stored["until"]) if stored.get("until") else None,
    )


def _stored_filters(filters: Filters) -> dict[str, Any] | None:
    stored = {"site": filters.site, "since": iso(filters.since), "until": iso(filters.until)}
    return stored if any(stored.values()) else None


def create_collection(
    session: Session,
    name: str,
    *,
    query: str | None = None,
    frozen_from: str | None = None,
    ids: Sequence[int] | None = None,
    filters: Filters = Filters(),
    description: str | None = None,
    created_by: str | None = None,
) -> Collection:
    """A saved collection (`query`), or a frozen one from a query's matches now
    (`frozen_from`) or from article ids (`ids`); exactly one of the three."""
    from archive.search import parsed_for_search

    given = [x is not None for x in (query, frozen_from, ids)]
    if sum(given) != 1:
        raise CollectionError(name, "give one of --query, --frozen-from or --ids")
    name = check_name(name)
    if query is not None:
        parsed_for_search(query)  # a malformed query fails now, not at export time
    collection = Collection(
        name=name,
        kind=(CollectionKind.SAVED if query is not None else CollectionKind.FROZEN).value,
        description=description or None,
        query=query if query is not None else None,
        filters=_stored_filters(filters) if query is not None else None,
        created_by=created_by,
    )
    session.add(collection)
    try:
        session.flush()
    except IntegrityError:
        raise CollectionError(name, "exists already") from None
    if frozen_from is not None:
        resolved = resolve(session, Selection(query=frozen_from, filters=filters))
        _add_matches(session, collection, resolved)
    elif ids is not None:
        add_articles(session, name, ids)
    return collection


def _add_matches(session: Session, collection: Collection, resolved: Resolved) -> None:
    """Every article the resolved selection holds, pinned at its current version."""
    chosen = (
        selected(session, resolved, literal(collection.id), Article.id, Article.version,
                 literal(utcnow()))
        .order_by(None)
    )  # fmt: skip
    session.execute(
        insert(CollectionItem).from_select(
            ["collection_id", "article_id", "version", "added_at"], chosen
        )
    )


def _frozen(session: Session, name: str) -> Collection:
    collection = get_collection(session, name)
    if collection.kind != CollectionKind.FROZEN.value:
        raise CollectionError(
            name, "is a saved query: its articles are whatever the query finds; "
            "make a frozen collection to pick articles one by one",
        )  # fmt: skip
    return collection


def add_articles(session: Session, name: str, ids: Iterable[int]) -> tuple[int, int]:
    """Add articles to a frozen collection at their current versions; (added, already in).
    An article already in keeps the version it was pinned at."""
    collection = _frozen(session, name)
    wanted = sorted(set(ids))
    versions = dict(
        session.execute(select(Article.id, Article.version).where(Article.id.in_(wanted))).all()
    )
    missing = [i for i in wanted if i not in versions]
    if missing:
        raise CollectionError(
            name, f"no such article: {', '.join(str(i) for i in missing[:10])}"
            + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        )  # fmt: skip
    present = set(
        session.scalars(
            select(CollectionItem.article_id).where(
                CollectionItem.collection_id == collection.id,
                CollectionItem.article_id.in_(wanted),
            )
        )
    )
    new = [i for i in wanted if i not in present]
    now = utcnow()
    if new:
        session.execute(
            insert(CollectionItem),
            [
                {"collection_id": collection.id, "article_id": i, "version": versions[i], "added_at": now}
                for i in new
            ],
        )  # fmt: skip
        collection.updated_at = now
    return len(new), len(present)


def remove_articles(session: Session, name: str, ids: Iterable[int]) -> int:
    """Take articles out of a frozen collection (they stay in the archive); how many were in."""
    collection = _frozen(session, name)
    result = session.execute(
        delete(CollectionItem).where(
            CollectionItem.collection_id == collection.id,
            CollectionItem.article_id.in_(sorted(set(ids))),
        )
    )
    collection.updated_at = utcnow()
    return int(getattr(result, "rowcount", 0) or 0)


def rename_collection(session: Session, name: str, new_name: str) -> Collection:
    collection = get_collection(session, name)
    new_name = check_name(new_name)
    if new_name != name and session.scalar(
        select(Collection.id).where(Collection.name == new_name)
    ):
        raise CollectionError(new_name, "exists already")
    collection.name = new_name
    return collection


def delete_collection(session: Session, name: str) -> None:
    """Delete a collection; its articles stay in the archive."""
    session.delete(get_collection(session, name))


def article_count(session: Session, collection: Collection) -> int:
    """Frozen: its items; saved: what its query matches now."""
    if collection.kind == CollectionKind.FROZEN.value:
        return int(
            session.scalar(
                select(func.count()).where(CollectionItem.collection_id == collection.id)
            )
            or 0
        )
    return count_rows(session, resolve(session, Selection(collection=collection.name)))


def describe(session: Session, collection: Collection, count: bool = True) -> dict[str, Any]:
    """A collection as JSON (the manifest's `collection`, `collections show --format json`)."""
    return {
        "name": collection.name,
        "kind": collection.kind,
        "description": collection.description,
        "query": collection.query,
        "filters": collection.filters,
        "created_by": collection.created_by,
        "created_at": iso(collection.created_at),
        "updated_at": iso(collection.updated_at),
        "articles": article_count(session, collection) if count else None,
    }


def list_collections(session: Session) -> list[dict[str, Any]]:
    collections = session.scalars(select(Collection).order_by(Collection.name)).all()
    return [describe(session, c) for c in collections]


def show_collection(session: Session, name: str, limit: int = 50) -> dict[str, Any]:
    """The collection and its first `limit` articles: id, site, publish time, title, the
    version exported (pinned or current) and the article's current version."""
    collection = get_collection(session, name)
    detail = describe(session, collection)
    resolved = resolve(session, Selection(collection=name))
    query = selected(
        session, resolved, Article.id, Site.name, ArticleVersion.publish_time,
        ArticleVersion.publish_time_offset, ArticleVersion.title, ArticleVersion.version,
        Article.version.label("current_version"),
    ).limit(limit)  # fmt: skip
    detail["items"] = [
        {
            "id": r.id, "site": r.name, "publish_time": local_iso(r.publish_time, r.publish_time_offset),
            "title": r.title, "version": r.version, "current_version": r.current_version,
        }
        for r in session.execute(query)
    ]  # fmt: skip
    return detail
