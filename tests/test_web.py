"""The web UI's frame: the app starts on SQLite and PostgreSQL, errors are pages (JSON on
the API) without tracebacks, logins (argon2, rate limited, CSRF), web.public: false, the
security headers, /healthz, and the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from sqlalchemy import func, select
from typer.testing import CliRunner

from archive.models import LoginFailure
from archive.users import add_user
from crawler.cli import app as cli
from tests.webworld import WebWorld, make_web_world


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> WebWorld:
    return make_web_world(tmp_path, database_url)


def csrf_of(client: TestClient, path: str = "/login") -> str:
    page = client.get(path).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def login(client: TestClient, name: str = "archivist", password: str = "correct horse") -> int:
    token = csrf_of(client)
    response = client.post(
        "/login", data={"name": name, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )  # fmt: skip
    return response.status_code


def test_health_headers_and_unknown_pages(world: WebWorld) -> None:
    with world.client() as client:
        assert client.get("/healthz").text == "ok"
        page = client.get("/no/such/page")
        assert page.status_code == 404 and "页面不存在" in page.text
        assert "Traceback" not in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert client.get("/api/no-such").json() == {"detail": "页面不存在 (no such page)"}


def test_openapi_document_and_docs_page(world: WebWorld) -> None:
    with world.client() as client:
        document = client.get("/api/openapi.json").json()
        assert document["openapi"].startswith("3.")
        validate(document)  # raises on any violation of the OpenAPI 3 schema
        paths = document["paths"]
        for path in ("/api/search", "/api/articles/{article_id}", "/api/articles/{article_id}/versions",
                     "/api/articles/{article_id}/diff", "/api/sites", "/api/runs", "/api/changes",
                     "/api/export"):  # fmt: skip
            assert path in paths, sorted(paths)
            for operation in paths[path].values():
                assert operation.get("summary") or operation.get("description"), path
        docs = client.get("/api/docs")
        assert docs.status_code == 200 and "/api/openapi.json" in docs.text
        assert "cdn" not in docs.text.lower()


def test_login_logout_and_rate_limit(world: WebWorld) -> None:
    with world.session() as session:
        user = add_user(session, "archivist", "correct horse")
        assert (
            user.password_hash.startswith("$argon2") and "correct horse" not in user.password_hash
        )
    with world.client(login_attempts_per_minute=3) as client:
        page = client.get("/login")
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        # no CSRF token: refused before the password is even looked at
        refused = client.post("/login", data={"name": "archivist", "password": "correct horse"})
        assert refused.status_code == 403
        assert login(client, password="wrong one") == 401
        assert login(client) == 303
        assert "退出 archivist" in client.get("/").text
        client.post("/logout", data={"csrf_token": csrf_of(client, "/")})
        assert "退出 archivist" not in client.get("/").text
        for _ in range(2):  # three failures in all
            assert login(client, password="wrong again") == 401
        assert login(client) == 429  # even the right password, until a minute has passed


def test_failed_logins_are_counted_across_the_processes_of_serve(world: WebWorld) -> None:
    """`serve` runs a process a core: each is an app of its own on the same database, and
    a failure in one counts in the other (the count lives in the database)."""
    with world.session() as session:
        add_user(session, "archivist", "correct horse")
    with (
        world.client(login_attempts_per_minute=2) as first,
        world.client(login_attempts_per_minute=2) as second,
    ):
        assert login(first, password="wrong one") == 401
        assert login(second, password="wrong two") == 401
        assert login(first) == 429 and login(second) == 429
    with world.session() as session:
        assert session.scalar(select(func.count()).select_from(LoginFailure)) == 2


def test_a_private_archive_asks_for_a_login_everywhere(world: WebWorld) -> None:
    with world.session() as session:
        add_user(session, "archivist", "correct horse")
    with world.client(public=False) as client:
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
        assert client.get("/api/openapi.json").status_code == 401
        assert client.get("/static/style.css").status_code == 200
        assert login(client) == 303
        assert client.get("/api/openapi.json").status_code == 200


def test_users_cli_stores_only_a_hash(world: WebWorld) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["users", "add", "editor1", "--password-stdin"], input="s3cret pass\n", env=world.env()
    )
    assert result.exit_code == 0, result.output
    again = runner.invoke(
        cli, ["users", "add", "editor1", "--password-stdin"], input="s3cret pass\n", env=world.env()
    )
    assert again.exit_code != 0 and "exists already" in again.output
    short = runner.invoke(
        cli, ["users", "add", "editor2", "--password-stdin"], input="short\n", env=world.env()
    )
    assert short.exit_code != 0 and "at least 8" in short.output and "Traceback" not in short.output
    listed = runner.invoke(cli, ["users", "list"], env=world.env())
    assert "editor1" in listed.output and "s3cret" not in listed.output
    with world.client() as client:
        assert login(client, "editor1", "s3cret pass") == 303
