"""A module-scoped web world on SQLite or PostgreSQL for the search and collections tests:
tests/webworld.py's archive, its republication clustered (archive.dedup, as the crawler's
write path does), and a user who can log in."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from archive.models import Article
from archive.search import index_articles
from archive.users import add_user
from tests.conftest import fresh_database
from tests.exportworld import bulk_articles
from tests.webworld import WebWorld, make_web_world

USER, PASSWORD = "archivist", "correct horse"


#: A fresh database of the module's own (PostgreSQL: created here, dropped after).
database = fresh_database


def build_world(root: Path, url: str, bulk: int = 0) -> WebWorld:
    """The web world with a user; `bulk` more articles (site "bulk", all
    containing 统战, not clustered) in the search index, for pages of results."""
    world = make_web_world(root, url)  # clustered as it is stored
    ids = list(world.ids.values())
    with world.session() as session:
        add_user(session, USER, PASSWORD)
    if bulk:
        bulk_articles(url, bulk)
        with world.session() as session:
            more = session.scalars(select(Article.id).where(Article.id.not_in(ids))).all()
            index_articles(session, more)
    return world


def csrf_of(client: TestClient, path: str = "/login") -> str:
    page = client.get(path).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def log_in(client: TestClient) -> None:
    response = client.post(
        "/login",
        data={"name": USER, "password": PASSWORD, "csrf_token": csrf_of(client), "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:300]
