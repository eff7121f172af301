"""The web application: `create_app(settings)` builds it; `ufarchive serve` runs it on uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from archive.db import check_schema, make_engine, make_sessionmaker
from archive.errors import UfarchiveError
from archive.settings import Settings
from web import auth
from web.deps import HERE, LoginRequired, WebState, render
from web.pages import apidocs, article, browse, collections, search

log = logging.getLogger("ufarchive.web")

#: Every page of the UI: its own scripts, styles and images only (no CDN, nothing inline).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'; "
    "object-src 'none'"
)
#: Paths open without a login when web.public is false.
OPEN_PATHS = ("/login", "/static/", "/healthz")


def secret_key(settings: Settings) -> str:
    """web.secret_key, or a random key made once and kept (mode 0600) in the data dir."""
    if settings.web.secret_key:
        return settings.web.secret_key
    path = Path(settings.data_dir) / "web-secret"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(key)
    return key


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Sent with every answer unless the route set its own (the archived page has its own CSP).
SECURITY_HEADERS = (
    ("Content-Security-Policy", PAGE_CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "SAMEORIGIN"),
)


class AccessMiddleware:
    """The login gate (`web.public: false`) and the security headers, as a plain ASGI
    middleware: `@app.middleware("http")` (Starlette's BaseHTTPMiddleware) streams every
    response through a task of its own, a sixth of an article page's CPU (bench/web.py)."""

    def __init__(self, app: ASGIApp, public: bool) -> None:
        self.app, self.public = app, public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if not self.public and not path.startswith(OPEN_PATHS) and not scope["session"].get("user"):
            request = Request(scope)
            response: Response = (
                JSONResponse({"detail": "log in first"}, status_code=401)
                if path.startswith("/api/")
                else RedirectResponse(f"/login?next={_next(request)}", status_code=303)
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings) -> FastAPI:
    engine = make_engine(settings.database_url)
    check_schema(engine)  # one line (UfarchiveError) when the schema is behind

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="ufarchive",
        summary="The archive of United Front news: search, articles, versions, changes.",
        docs_url=None,  # Swagger UI loads from a CDN; /api/docs is ours (web.pages.apidocs)
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.web = WebState(settings, engine, make_sessionmaker(engine))

    app.add_middleware(AccessMiddleware, public=settings.web.public)
    # Added last, so it runs first: the session is there for `access` and the routes.
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key(settings),
        session_cookie="ufarchive_session",
        max_age=settings.web.session_hours * 3600,
        same_site="lax",
        https_only=False,  # behind TLS the proxy sets Secure; 127.0.0.1 has no TLS
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (auth, search, article, browse, collections, apidocs):
        app.include_router(module.router)
    _error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        with app.state.web.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return PlainTextResponse("ok")

    return app


def _next(request: Request) -> str:
    from urllib.parse import quote

    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return quote(target, safe="")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path.endswith(".atom")


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    return render(request, "error.html", status_code=status, title=str(status), message=message)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if _wants_json(request) or request.method != "GET":
            return _error(request, 401, "请先登录 (log in first)")
        return RedirectResponse(f"/login?next={_next(request)}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "页面不存在 (no such page)", 405: "不支持此操作 (method not allowed)"}
        detail = exc.detail if isinstance(exc.detail, str) else None
        if detail in (None, "Not Found", "Method Not Allowed"):  # Starlette's own words
            detail = messages.get(exc.status_code, detail)
        return _error(request, exc.status_code, detail or "error")

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return _error(request, 400, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(UfarchiveError)
    async def archive_error(request: Request, exc: UfarchiveError) -> Response:
        status = 404 if type(exc).__name__.endswith("NotFoundError") else 400
        message = str(exc).strip().splitlines()[0]
        if status == 404 and not _wants_json(request):  # the API keeps the CLI's words
            message = f"找不到 (not found): {message}"
        return _error(request, status, message)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        return _error(request, 500, "内部错误，已记录在日志中 (internal error; it is logged)")
