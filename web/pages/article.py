"""Pages and API of the web UI: one article (`/articles/{id}`: its fields and where each
came from, body, versions, events, republications, how to cite it), the word diff of two
versions, the raw WARC record, and the archived page view (`/articles/{id}/archived`: the
capture, sanitised by web.sanitize and served from `/archived/raw` under its own CSP in a
sandboxed frame). Reads through archive.articles and archive.diff; never imports crawler."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from archive.articles import (
    article_detail,
    article_version,
    article_with_versions,
    captured_page,
    cluster_credit,
    record_bytes,
    version_list,
)
from archive.diff import diff_versions
from archive.facets import frozen_names
from archive.models import Snapshot
from archive.text import to_simplified, to_traditional
from web.deps import current_user, db, render, web_state
from web.sanitize import decode_page, sanitize_page

router = APIRouter()

#: The archived page's own policy: nothing runs, nothing loads but itself and data: images.
ARCHIVED_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
MAX_COLLECTION_FORMS = 20
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
FIELD_LABELS = {
    "title": "标题", "publish_time": "时间", "source": "来源", "editor": "责任编辑",
    "author": "作者", "contributor": "供稿", "body": "正文",
}  # fmt: skip
STATUS_LABELS = {"live": "在线", "gone": "已删除", "moved": "已迁移"}
EVENT_LABELS = {"changed": "已修改", "gone": "已删除", "moved": "已迁移", "restored": "已恢复"}
#: archive.dedup.choose_original, said plainly.
ORIGINAL_RULE = (
    "原创认定规则：发布时间最早者为原创；发布时间相同或缺失时，取被其他转载的“来源”注明的网站；"
    "仍不能区分时，取最先抓取者。"
)

ArticleId = Annotated[int, PathParam(description="The article's id (as in search results).")]
Script = Annotated[
    Literal["hans", "hant"] | None,
    Query(description="Show the text in simplified (hans) or traditional (hant) script; "
          "display only, the stored text never changes."),
]  # fmt: skip
Version = Annotated[
    int | None,
    Query(ge=1, description="The version's number (1 is the first); default the current one."),
]
DiffA = Annotated[int | None, Query(ge=1, description="The older version (default: b - 1).")]
DiffB = Annotated[int | None, Query(ge=1, description="The newer version (default: the current).")]
DB = Annotated[Session, Depends(db)]


def data_dir(request: Request) -> Path:
    return Path(web_state(request).settings.data_dir)


def converter(script: str | None) -> Any:
    if script == "hant":
        return to_traditional
    if script == "hans":
        return to_simplified
    return lambda text: text


def shown_time(value: str | None) -> str:
    """An ISO time as people read it: 2024-03-01 09:00:00 +08:00."""
    if not value:
        return "—"
    date, _, rest = value.partition("T")
    if not rest:
        return value
    clock, zone = rest[:8], rest[8:]
    if "." in zone:  # fractions of a second
        zone = zone[zone.find("+") if "+" in zone else zone.find("-") :]
    zone = "UTC" if zone in ("+00:00", "Z") else zone
    return f"{date} {clock} {zone}".strip()


_REASONS = (
    (re.compile(r"earliest publish time \((.+?)\)"), r"发布时间最早（\1）"),
    (re.compile(r"publish time tied at (\S+); "), r"发布时间相同（\1）；"),
    (re.compile(r"named as 来源 by (\d+) other cop(?:y|ies)"), r"被其他 \1 篇转载注明为来源"),
    (re.compile(r"no publish times; "), "均无发布时间；"),
    (re.compile(r"first seen"), "最先抓取"),
)


def reason_text(reason: str | None) -> str | None:
    """archive.dedup.choose_original's stored reason (English) said in Chinese."""
    if not reason:
        return None
    for pattern, replacement in _REASONS:
        reason = pattern.sub(replacement, reason)
    return reason


def link(url: str | None) -> str | None:
    """A stored URL fit for an href: http(s) only (autoescaping does not stop javascript:)."""
    if not url:
        return None
    cleaned = url.strip()
    scheme = urlsplit(cleaned).scheme.lower()
    return cleaned if scheme in ("http", "https") and not _CONTROL.search(cleaned) else None


def provenance_note(provenance: dict[str, Any] | None, name: str) -> str | None:
    """The title attribute of a field: the extraction rule and the raw string it read."""
    if not provenance or not isinstance(provenance.get(name), dict):
        return None
    entry = provenance[name]
    rule, raw = entry.get("rule"), entry.get("raw")
    lines = [f"规则：{rule}" if rule else "", f"原文：{raw}" if raw else ""]
    return "\n".join(line for line in lines if line) or None


@router.get("/articles/{article_id}", include_in_schema=False)
def article_page(
    request: Request, session: DB, article_id: ArticleId, script: Script = None
) -> Response:
    detail, versions = article_with_versions(session, article_id)
    version = versions[-1]  # the current one: archive.store gives every article a version 1
    snapshot = session.get(Snapshot, version.snapshot_id) if version.snapshot_id else None
    show = converter(script)
    provenance = detail.get("provenance")
    fields = []
    for name in ("source", "publish_time", "editor", "author", "contributor"):
        value = detail.get(name)
        text = shown_time(value) if name == "publish_time" and value else value
        fields.append({
            "name": name, "label": FIELD_LABELS[name],
            "value": show(text) if text and name != "publish_time" else text,
            "provenance": provenance_note(provenance, name),
        })  # fmt: skip
    paragraphs = [show(p) for p in (detail.get("body") or "").splitlines() if p.strip()]
    images = [
        {"src": str(i.get("src") or ""), "caption": show(str(i.get("caption") or ""))}
        for i in (version.images or [])
        if isinstance(i, dict)
    ]
    cluster = cluster_credit(session, detail.get("cluster_id"))
    user = current_user(request)
    # only frozen collections take articles one by one (a saved one is its query)
    names = frozen_names(session)[:MAX_COLLECTION_FORMS] if user else []
    collections = [{"name": n, "path": quote(n, safe="")} for n in names]
    permalink = f"{request.base_url}articles/{article_id}"  # url_for walks every route
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(
        request, "article.html", title=show(detail.get("title") or f"文章 {article_id}"),
        a=detail, shown_title=show(detail.get("title") or "（无标题）"),
        title_note=provenance_note(provenance, "title"),
        body_note=provenance_note(provenance, "body"), fields=fields,
        paragraphs=paragraphs, images=images, script=script, snapshot=snapshot,
        cluster=cluster, original_rule=ORIGINAL_RULE, collections=collections,
        permalink=permalink, next_path=next_path, when=shown_time, link=link,
        reason_text=reason_text,
        status_labels=STATUS_LABELS, event_labels=EVENT_LABELS, field_labels=FIELD_LABELS,
    )  # fmt: skip


@router.get("/articles/{article_id}/diff", include_in_schema=False)
def diff_page(
    request: Request, session: DB, article_id: ArticleId, a: DiffA = None, b: DiffB = None
) -> Response:
    diff = checked_diff(session, article_id, a, b)
    detail_title = article_version(session, article_id)[0].title
    left: list[tuple[str, str]] = [(op, t) for op, t in diff["body"] if op != "insert"]
    right: list[tuple[str, str]] = [(op, t) for op, t in diff["body"] if op != "delete"]
    versions = version_list(session, article_id)
    return render(
        request, "diff.html", title=f"版本比较 · {detail_title or article_id}",
        article_id=article_id, article_title=detail_title, diff=diff, left=left, right=right,
        versions=versions, field_labels=FIELD_LABELS, when=shown_time,
    )  # fmt: skip


def checked_diff(session: Session, article_id: int, a: int | None, b: int | None) -> dict[str, Any]:
    """diff_versions, after making an unknown article or version a 404 (NotFoundError)."""
    for number in (a, b):
        article_version(session, article_id, number)  # raises the NotFoundErrors
    return diff_versions(session, article_id, a, b)


def article_detail_versions(session: Session, article_id: int) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = article_detail(session, article_id)["versions"]
    return versions


@router.get("/articles/{article_id}/warc", include_in_schema=False)
def warc_record(
    request: Request, session: DB, article_id: ArticleId, version: Version = None
) -> Response:
    row, snapshot = article_version(session, article_id, version)
    if snapshot is None:
        return no_capture(request, article_id, row.version)
    data = record_bytes(data_dir(request), snapshot)
    name = f"ufarchive-article-{article_id}-v{row.version}.warc.gz"
    return Response(
        data,
        media_type="application/warc",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def no_capture(request: Request, article_id: int, version: int) -> Response:
    message = f"文章 {article_id} 第 {version} 版没有存档的网页 (no archived capture)"
    return render(request, "error.html", status_code=404, title="404", message=message)


@router.get("/articles/{article_id}/archived", include_in_schema=False)
def archived_page(
    request: Request, session: DB, article_id: ArticleId, version: Version = None
) -> Response:
    row, snapshot = article_version(session, article_id, version)
    if snapshot is None:
        return no_capture(request, article_id, row.version)
    raw = f"/articles/{article_id}/archived/raw" + (f"?version={version}" if version else "")
    versions = version_list(session, article_id)
    return render(
        request, "archived.html", title=f"存档网页 · {row.title or article_id}",
        article_id=article_id, version=row, snapshot=snapshot, raw=raw, versions=versions,
        when=shown_time,
    )  # fmt: skip


@router.get("/articles/{article_id}/archived/raw", include_in_schema=False)
def archived_raw(
    request: Request, session: DB, article_id: ArticleId, version: Version = None
) -> Response:
    row, snapshot = article_version(session, article_id, version)
    if snapshot is None:
        return no_capture(request, article_id, row.version)
    body, response = captured_page(session, data_dir(request), snapshot)
    text = decode_page(body, response.encoding, response.content_type)
    return Response(
        sanitize_page(text, response.url),
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": ARCHIVED_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "X-DNS-Prefetch-Control": "off",
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.get(
    "/api/articles/{article_id}",
    summary="One article",
    description="The object of `ufarchive show --format json`: the export record with "
    "`versions`, `republications`, `moved_to`, `events`, `provenance` and `decoding`.",
)
def api_article(session: DB, article_id: ArticleId) -> JSONResponse:
    return JSONResponse(article_detail(session, article_id))


@router.get(
    "/api/articles/{article_id}/versions",
    summary="An article's versions",
    description="Every version of the article, oldest first, as in `show --format json`.",
)
def api_versions(session: DB, article_id: ArticleId) -> JSONResponse:
    return JSONResponse(article_detail_versions(session, article_id))


@router.get(
    "/api/articles/{article_id}/diff",
    summary="Word diff of two versions",
    description="`{article_id, a, b, fields: {name: {old, new}}, body: [[op, text], ...]}` "
    "with op equal, delete or insert (archive.diff); default the last two versions.",
)
def api_diff(session: DB, article_id: ArticleId, a: DiffA = None, b: DiffB = None) -> JSONResponse:
    return JSONResponse(checked_diff(session, article_id, a, b))
