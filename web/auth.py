"""Logging in and out: users from the database (archive.users), a signed session cookie
(Starlette's SessionMiddleware: itsdangerous, HttpOnly, SameSite=Lax), failed logins
limited per client address (counted in the database, so across every process of `serve`)."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from archive.users import authenticate, login_blocked, login_failed
from web.deps import check_csrf, db, render, web_state

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", title="登录", next=safe_next(next), error=None)


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(
    request: Request,
    session: Annotated[Session, Depends(db)],
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    per_minute = web_state(request).settings.web.login_attempts_per_minute
    key = request.client.host if request.client else "unknown"
    if login_blocked(session, key, per_minute):
        return render(
            request, "login.html", status_code=429, title="登录", next=safe_next(next),
            error="登录失败次数过多，请一分钟后再试。 Too many failed logins; wait a minute.",
        )  # fmt: skip
    user = authenticate(session, name, password)
    if user is None:
        login_failed(session, key)
        session.commit()
        return render(
            request, "login.html", status_code=401, title="登录", next=safe_next(next),
            error="用户名或密码错误。 Wrong name or password.",
        )  # fmt: skip
    session.commit()  # last_login, and a rehash if one was due
    request.session.clear()  # a new session: no fixation
    request.session["user"] = user.name
    request.session["since"] = int(time.time())
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/", status_code=303)


def session_max_age(request: Request) -> int:
    return web_state(request).settings.web.session_hours * 3600
