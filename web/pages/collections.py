"""Pages and API of the web UI: collections (issue 15's web part). Reading them is open
like the rest of the archive; every change (create, add, remove, rename, delete) is a
POST form that needs a login and the session's CSRF token (web.deps.WRITE), and records
who made a collection. archive.collections does the work; a CollectionError is its
one-line message on the error page."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from archive.collections import (
    CollectionError,
    add_articles,
    create_collection,
    delete_collection,
    get_collection,
    list_collections,
    remove_articles,
    rename_collection,
    show_collection,
)
from archive.export import FORMATS
from web.auth import safe_next
from web.deps import WRITE, db, render, require_user
from web.pages.search import FORMAT_LABELS, STATUS_LABELS, short_time

router = APIRouter()

SHOWN = 200  # articles listed on a collection's page (the export has them all)
KIND_LABELS = {"saved": "保存的查询", "frozen": "冻结列表"}
_ID_SEPARATORS = re.compile(r"[\s,，]+")


def collection_url(name: str) -> str:
    return "/collections/" + quote(name, safe="")


def parse_ids(name: str, values: list[str]) -> list[int]:
    """Article ids from form fields: each field one id or several (commas or spaces)."""
    ids = []
    for value in values:
        for part in _ID_SEPARATORS.split(value.strip()):
            if not part:
                continue
            if not part.isdigit():
                raise CollectionError(name, f"{part!r} is not an article id")
            ids.append(int(part))
    return ids


def _done(request: Request, target: str, message: str) -> Response:
    request.session["flash"] = message
    return RedirectResponse(target, status_code=303)


# --- pages ---------------------------------------------------------------------------------


@router.get("/collections", include_in_schema=False)
def collections_page(request: Request, session: Annotated[Session, Depends(db)]) -> Response:
    return render(
        request, "collections.html", title="收藏集", collections=list_collections(session),
        kinds=KIND_LABELS, flash=request.session.pop("flash", None), collection_url=collection_url,
        short_time=short_time,
    )  # fmt: skip


@router.get("/collections/{name:path}", include_in_schema=False)
def collection_page(
    request: Request, session: Annotated[Session, Depends(db)], name: str
) -> Response:
    try:
        detail = show_collection(session, name, limit=SHOWN)
    except CollectionError as exc:  # an unknown name is a missing page
        return render(request, "error.html", status_code=404, title="404",
                      message=str(exc).splitlines()[0])  # fmt: skip
    return render(
        request, "collection.html", title=f"收藏集 {name}", c=detail, kinds=KIND_LABELS,
        formats=[(f, FORMAT_LABELS[f]) for f in FORMATS], shown=SHOWN,
        flash=request.session.pop("flash", None), url=collection_url(name),
        short_time=short_time, status_labels=STATUS_LABELS,
    )  # fmt: skip


# --- forms (login + CSRF) ------------------------------------------------------------------


@router.post("/collections", dependencies=WRITE, include_in_schema=False)
def create(
    request: Request,
    session: Annotated[Session, Depends(db)],
    user: Annotated[str, Depends(require_user)],
    name: Annotated[str, Form()],
    kind: Annotated[Literal["saved", "frozen", "ids"], Form()] = "saved",
    q: Annotated[str, Form()] = "",
    ids: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    """A saved collection of the query, a frozen one of its matches now, or of ids."""
    if kind != "ids" and not q.strip():
        raise CollectionError(name, "a saved or frozen collection needs a search query")
    made = create_collection(
        session, name, created_by=user, description=description.strip() or None,
        query=q if kind == "saved" else None,
        frozen_from=q if kind == "frozen" else None,
        ids=parse_ids(name, [ids]) if kind == "ids" else None,
    )  # fmt: skip
    session.commit()
    return _done(request, collection_url(made.name), f"已创建收藏集 {made.name}")


def _add(request: Request, session: Session, name: str, ids: list[str], next: str) -> Response:
    added, present = add_articles(session, name, parse_ids(name, ids))
    session.commit()
    message = f"已加入 {added} 篇到 {name}" + (f"（{present} 篇已在其中）" if present else "")
    return _done(request, safe_next(next) if next else collection_url(name), message)


@router.post("/collections/add", dependencies=WRITE, include_in_schema=False)
def add_picked(
    request: Request,
    session: Annotated[Session, Depends(db)],
    name: Annotated[str, Form()],
    ids: Annotated[list[str], Form()],
    next: Annotated[str, Form()] = "",
) -> Response:
    """The search page's form: the hits picked, into the frozen collection chosen."""
    return _add(request, session, name, ids, next)


@router.post("/collections/{name:path}/add", dependencies=WRITE, include_in_schema=False)
def add(
    request: Request,
    session: Annotated[Session, Depends(db)],
    name: str,
    ids: Annotated[list[str], Form()],
    next: Annotated[str, Form()] = "",
) -> Response:
    """Articles (field `ids`, one or more) into a frozen collection; back to `next`."""
    return _add(request, session, name, ids, next)


@router.post("/collections/{name:path}/remove", dependencies=WRITE, include_in_schema=False)
def remove(
    request: Request,
    session: Annotated[Session, Depends(db)],
    name: str,
    ids: Annotated[list[str], Form()],
) -> Response:
    removed = remove_articles(session, name, parse_ids(name, ids))
    session.commit()
    return _done(request, collection_url(name), f"已从 {name} 移除 {removed} 篇")


@router.post("/collections/{name:path}/rename", dependencies=WRITE, include_in_schema=False)
def rename(
    request: Request,
    session: Annotated[Session, Depends(db)],
    name: str,
    new_name: Annotated[str, Form()],
) -> Response:
    renamed = rename_collection(session, name, new_name)
    session.commit()
    return _done(request, collection_url(renamed.name), f"已改名为 {renamed.name}")


@router.post("/collections/{name:path}/delete", dependencies=WRITE, include_in_schema=False)
def delete(
    request: Request,
    session: Annotated[Session, Depends(db)],
    name: str,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Delete a collection (its articles stay in the archive), once the box is ticked."""
    get_collection(session, name)
    if confirm != "yes":
        raise CollectionError(name, "tick the box to confirm the deletion (请勾选确认删除)")
    delete_collection(session, name)
    session.commit()
    return _done(request, "/collections", f"已删除收藏集 {name}")


# --- API -----------------------------------------------------------------------------------


@router.get(
    "/api/collections",
    summary="Collections",
    description="Every collection as `collections list --format json` shows it: name, kind "
    "(saved or frozen), description, query, filters, created_by, times, article count.",
)
def api_collections(session: Annotated[Session, Depends(db)]) -> JSONResponse:
    return JSONResponse(list_collections(session))


@router.get(
    "/api/collections/{name:path}",
    summary="One collection",
    description="The collection and its first articles (`collections show --format json`); "
    "export them all with /api/export?collection=NAME.",
)
def api_collection(
    session: Annotated[Session, Depends(db)],
    name: Annotated[str, Path(description="The collection's name.")],
    limit: Annotated[int, Query(ge=1, le=10_000, description="How many articles to list.")] = 50,
) -> JSONResponse:
    try:
        return JSONResponse(show_collection(session, name, limit=limit))
    except CollectionError as exc:
        return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=404)
