"""Pages and API of the web UI: search (`/`), its facets and timeline (`/facets`, a request
of its own so that counting every match never slows the result page), `/api/search`,
`/api/facets` and `/api/export` (streamed by archive.export, for logged-in users)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.responses import Response

from archive.export import (
    EXPORT_COLUMNS,
    FORMATS,
    MEDIA_TYPES,
    Filters,
    Options,
    Selection,
    describe,
    open_stream,
    parse_fields,
    with_versions,
)
from archive.facets import Facets, cluster_members, facet_counts, frozen_names, newest_articles
from archive.search import FIELDS, QueryError, parse_day, search
from web.deps import current_user, db, render, require_user, web_state

router = APIRouter()

PAGE_SIZE = 20
MAX_PAGE = 500  # deeper pages: narrow the query (each page reads every row before it)
EXTENSIONS = {
    "csv": "csv",
    "jsonl": "jsonl",
    "parquet": "parquet",
    "xlsx": "xlsx",
    "warc": "warc.gz",
}
FORMAT_LABELS = {
    "csv": "CSV（Excel）",
    "jsonl": "JSONL",
    "parquet": "Parquet",
    "xlsx": "XLSX（Excel）",
    "warc": "WARC（存档记录）",
}
STATUS_LABELS = {"live": "在线", "gone": "已删除", "moved": "已迁移"}
#: The query language in one table (docs/searching.md has the long form).
HELP = [
    ("统战", "含“统战”（简繁体均可，統戰 亦可）"),
    ("统战 侨务", "两个词都含（AND）"),
    ('"统一战线 工作"', "按顺序紧邻的短语"),
    ("侨务 OR 宗教", "任一词"),
    ("-台湾", "不含该词"),
    ("site:zytzb", "只看某网站（-site: 排除）"),
    ("source:人民日报", "来源包含"),
    ("editor:李雪", "责任编辑包含"),
    ("author:周晓萌", "作者包含"),
    ("since:2024-03 until:2024-06", "发布时间范围（年、月或日，北京时间，含 until 当期）"),
    ("status:gone", "状态：live 在线、gone 已删除、moved 已迁移"),
    ("changed:yes", "被修改过（多于一个版本）"),
]

Sort = Literal["relevance", "newest"]
QParam = Annotated[str, Query(description="A query in the language of `ufarchive search`.")]


def short_time(value: str | None) -> str:
    """An ISO 8601 time as the pages show it: 2024-03-01 09:00."""
    return value[:16].replace("T", " ") if value else "—"


def page_url(q: str, sort: str, page: int = 1) -> str:
    params: dict[str, Any] = {"q": q}
    if sort != "relevance":
        params["sort"] = sort
    if page > 1:
        params["page"] = page
    return "/?" + urlencode(params)


def with_filter(q: str, name: str, value: str) -> str | None:
    """The query with one more filter `name:value` (quoted when it holds a space); None
    when the language cannot say it (a value with a double quote in it)."""
    if '"' in value or not value.strip():
        return None
    if any(c.isspace() for c in value):
        value = f'"{value}"'
    return f"{q.strip()} {name}:{value}".strip()


@dataclass
class Bar:
    month: str
    count: int
    x: float
    y: float
    height: float
    href: str | None


@dataclass
class Timeline:
    width: int
    height: int
    bar_width: float
    bars: list[Bar]
    first: str
    last: str
    peak: int


def timeline(facets: Facets, q: str, width: int = 300, height: int = 90) -> Timeline | None:
    """Bars of hits a month (one a month that has any), laid out over every month from
    the first to the last; the template draws them as inline SVG."""
    if not facets.timeline:
        return None
    peak = max(n for _, n in facets.timeline)
    step = width / len(facets.timeline)
    plot = height - 4
    bars = []
    for k, (month, count) in enumerate(facets.timeline):
        if count == 0:
            continue
        tall = max(2.0, plot * count / peak)
        href = with_filter(q, "since", month)
        bars.append(
            Bar(
                month, count, round(k * step + step * 0.1, 2), round(height - tall, 2),
                round(tall, 2), page_url(f"{href} until:{month}", "relevance") if href else None,
            )
        )  # fmt: skip
    return Timeline(
        width, height, round(max(1.0, step * 0.8), 2), bars, facets.timeline[0][0],
        facets.timeline[-1][0], peak,
    )  # fmt: skip


def facet_groups(facets: Facets, q: str) -> list[dict[str, Any]]:
    """The facet lists as the template shows them: a label, and (value, count, link)."""

    def entries(
        items: list[tuple[str, int]], name: str, label: Any = None
    ) -> list[tuple[str, int, str | None]]:
        out = []
        for value, count in items:
            target = with_filter(q, name, value)
            shown = label(value) if label else value
            out.append((shown, count, page_url(target, "relevance") if target else None))
        return out

    months = []
    for month, count in facets.months:
        target = with_filter(q, "since", month)
        months.append((month, count, page_url(f"{target} until:{month}", "relevance")))
    edited = [
        ("修改过", facets.edited, page_url(f"{q.strip()} changed:yes".strip(), "relevance")),
        ("未修改", facets.unedited, page_url(f"{q.strip()} changed:no".strip(), "relevance")),
    ]
    return [
        {"key": "site", "label": "网站", "entries": entries(facets.sites, "site")},
        {"key": "month", "label": "年月", "entries": months},
        {"key": "source", "label": "来源", "entries": entries(facets.sources, "source")},
        {"key": "editor", "label": "责任编辑", "entries": entries(facets.editors, "editor")},
        {"key": "status", "label": "状态",
         "entries": entries(facets.statuses, "status", lambda s: STATUS_LABELS.get(s, s))},
        {"key": "edited", "label": "修改", "entries": [e for e in edited if e[1]]},
    ]  # fmt: skip


# --- pages ---------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def search_page(
    request: Request,
    session: Annotated[Session, Depends(db)],
    q: str = "",
    sort: Sort = "relevance",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    user = current_user(request)
    context: dict[str, Any] = {
        "title": q.strip() or "搜索", "query": q, "sort": sort, "page": page, "help": HELP,
        "fields": FIELDS, "formats": [(f, FORMAT_LABELS[f]) for f in FORMATS],
        "short_time": short_time, "status_labels": STATUS_LABELS, "result": None,
        "error": None, "newest": [], "collections": frozen_names(session) if user else [],
        "flash": request.session.pop("flash", None) if user else None,
    }  # fmt: skip
    if not q.strip():
        context["newest"] = newest_articles(session)
        return render(request, "search.html", **context)
    try:
        result = search(session, q, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, sort=sort)
    except QueryError as exc:
        context["error"] = str(exc).strip().splitlines()[0]
        return render(request, "search.html", status_code=400, **context)
    members = cluster_members(
        session, {c for h in result.hits if h.republications and (c := h.record["cluster_id"])}
    )
    hits = []
    for hit in result.hits:
        copies = [
            m for m in members.get(hit.record["cluster_id"], []) if m["id"] != hit.record["id"]
        ]
        # archive.search.snippet escaped the body and added only <mark>: safe to show as HTML
        hits.append({"record": hit.record, "snippet": Markup(hit.snippet),
                     "copies": copies, "republications": hit.republications})  # fmt: skip
    pages = max(1, math.ceil(result.total / PAGE_SIZE))
    context.update(
        result=result, hits=hits, pages=pages,
        prev_url=page_url(q, sort, page - 1) if page > 1 else None,
        next_url=page_url(q, sort, page + 1)
        if len(result.hits) == PAGE_SIZE and page * PAGE_SIZE < result.total and page < MAX_PAGE
        else None,
        sort_urls={s: page_url(q, s) for s in ("relevance", "newest")},
        facets_url="/facets?" + urlencode({"q": q}),
        export_query=q,
    )  # fmt: skip
    return render(request, "search.html", **context)


@router.get("/facets", include_in_schema=False)
def facets_page(
    request: Request,
    session: Annotated[Session, Depends(db)],
    q: str = "",
    fragment: bool = False,
) -> Response:
    """The facets and timeline of a query: an HTML fragment for search.js (`fragment=1`),
    else a page of its own (without JavaScript, the search page links here)."""
    template = "search_facets.html" if fragment else "search_facets_page.html"
    try:
        facets = facet_counts(session, q)
    except QueryError as exc:
        message = str(exc).strip().splitlines()[0]
        return render(request, template, status_code=400, title="分面统计", query=q,
                      error=message, back_url="/")  # fmt: skip
    return render(
        request, template, title="分面统计", query=q, error=None, facets=facets,
        groups=facet_groups(facets, q), timeline=timeline(facets, q),
        back_url=page_url(q, "relevance") if q.strip() else "/",
    )  # fmt: skip


# --- API -----------------------------------------------------------------------------------


@router.get(
    "/api/search",
    summary="Search the archive",
    description="The hits of a query in the language of `ufarchive search`, one a "
    "republication cluster: a JSON array of `search --format json` objects (the export "
    "record without body, plus snippet, score, republications). A malformed query is a "
    '400 with {"detail": the parser\'s one-line message}.',
)
def api_search(
    session: Annotated[Session, Depends(db)],
    q: QParam,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many hits.")] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000, description="Skip this many hits.")] = 0,
    sort: Annotated[Sort, Query(description="relevance or newest.")] = "relevance",
) -> JSONResponse:
    result = search(session, q, limit=limit, offset=offset, sort=sort, count=False)
    return JSONResponse([hit.to_dict() for hit in result.hits])


@router.get(
    "/api/facets",
    summary="Facet and timeline counts of a query",
    description="Counts of every article the query matches (copies included): by site, "
    "month (Beijing time), 来源 source, 责任编辑 editor, status, edited (more than one "
    "version); the top 10 of each, and hits a month for a timeline. An empty query counts "
    "the whole archive.",
)
def api_facets(
    session: Annotated[Session, Depends(db)],
    q: Annotated[str, Query(description="A query (empty: the whole archive).")] = "",
) -> JSONResponse:
    return JSONResponse(facet_counts(session, q).to_dict())


@router.get(
    "/api/export",
    summary="Export articles (streamed)",
    description="The export records of a query, a collection, a site or a date range, in "
    "csv, jsonl, parquet, xlsx or warc, streamed as `ufarchive export` writes them "
    "(`pandas.read_csv(url)` and `pandas.read_json(url, lines=True)` read them directly). "
    "Needs a login.",
    response_class=StreamingResponse,
)
def api_export(
    request: Request,
    _user: Annotated[str, Depends(require_user)],
    format: Annotated[
        Literal["csv", "jsonl", "parquet", "xlsx", "warc"], Query(description="Output format.")
    ] = "jsonl",
    q: Annotated[str, Query(description="A search query (empty: no query).")] = "",
    collection: Annotated[str | None, Query(description="Only this collection.")] = None,
    site: Annotated[str | None, Query(description="Only this site.")] = None,
    since: Annotated[
        str | None, Query(description="Published on or after (YYYY-MM-DD, Beijing time).")
    ] = None,
    until: Annotated[
        str | None, Query(description="Published before (YYYY-MM-DD, Beijing time).")
    ] = None,
    versions: Annotated[
        Literal["latest", "all", "pinned"] | None,
        Query(description="latest, all (a record per version) or pinned (a frozen collection's)."),
    ] = None,
    fields: Annotated[
        str | None,
        Query(description=f"Columns, comma-separated (default all: {','.join(EXPORT_COLUMNS)})."),
    ] = None,
) -> StreamingResponse:
    state = web_state(request)
    config = state.settings.export
    filters = Filters(
        site=site or None,
        since=parse_day(since, since, "since") if since else None,
        until=parse_day(until, until, "until") if until else None,
    )
    selection = with_versions(
        Selection(query=q or None, filters=filters, collection=collection or None), versions
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    filename = f"ufarchive-{stamp}.{EXTENSIONS[format]}"
    options = Options(
        fields=parse_fields(fields), bom=config.csv_bom, xlsx_max_rows=config.xlsx_max_rows,
        parquet_row_group_rows=config.parquet_row_group_rows, data_dir=state.settings.data_dir,
        name=filename, description=describe(selection),
    )  # fmt: skip
    chunks = open_stream(state.sessions, selection, format, options)
    disposition = f'attachment; filename="{filename}"'
    if collection:  # its name too, for browsers that read RFC 6266's filename*
        named = f"ufarchive-{collection}-{stamp}.{EXTENSIONS[format]}"
        disposition += f"; filename*=UTF-8''{quote(named, safe='')}"
    return StreamingResponse(
        chunks, media_type=MEDIA_TYPES[format], headers={"Content-Disposition": disposition}
    )
