"""What every page and API route shares: the database session of a request, templates,
the logged-in user, CSRF tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

from archive.settings import Settings

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass
class WebState:
    """app.state.web: made once by web.app.create_app."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def db(request: Request) -> Iterator[Session]:
    """A read session for one request (routes that write commit it themselves)."""
    with web_state(request).sessions() as session:
        yield session


def current_user(request: Request) -> str | None:
    user = request.session.get("user")
    return user if isinstance(user, str) else None


def require_user(request: Request) -> str:
    """For anything that changes the archive: 401 (the API) or a redirect to /login."""
    user = current_user(request)
    if user is None:
        raise LoginRequired()
    return user


class LoginRequired(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=401, detail="log in first")


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


async def check_csrf(request: Request) -> None:
    """Every form that changes something carries the session's token (a hidden field, or
    the X-CSRF-Token header for scripts); anything else is refused with 403."""
    expected = request.session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(str(expected), sent):
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong; reload the page")


#: Writes need both: a login and the form's CSRF token.
WRITE = [Depends(require_user), Depends(check_csrf)]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    """A page: the template with what base.html needs (user, CSRF token, settings)."""
    context.setdefault("title", "")
    return templates.TemplateResponse(
        request,
        name,
        {
            "user": current_user(request),
            "csrf": csrf_token(request),
            "public": web_state(request).settings.web.public,
            **context,
        },
        status_code=status_code,
    )
