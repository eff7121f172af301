"""Pages and API of the web UI: browse (a calendar of articles per Beijing day, one day's
articles), sites (the read-only ops view: counts, runs, alerts) and changes (what the
revisits found, also as an Atom feed). Queries live in archive.browse; this renders."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from archive import browse
from archive.models import Site
from web.deps import db, render, templates

router = APIRouter()
SessionDep = Annotated[Session, Depends(db)]
CHANGES_PAGE = 50
FEED_ENTRIES = 50
WEEKDAYS = ("一", "二", "三", "四", "五", "六", "日")
KIND_LABELS = {"changed": "修改", "gone": "删除", "moved": "迁移", "restored": "恢复"}
STATUS_LABELS = {
    "running": "运行中", "succeeded": "成功", "failed": "失败", "timeout": "超时",
    "killed": "被终止", "interrupted": "中断", "live": "在线", "gone": "已删除", "moved": "已迁移",
}  # fmt: skip

ALERT_LABELS = {
    "failing": "连续失败", "no_articles": "找不到文章链接", "extraction": "抽取失败",
    "stale": "久未成功", "unreachable": "网站无法访问", "mass_gone": "大量删除",
}  # fmt: skip

SiteQuery = Annotated[str, Query(description="Only this site (its name); empty: every site.")]
MonthQuery = Annotated[
    str, Query(description="The month shown, YYYY-MM (default: the newest article's).")
]
KindQuery = Annotated[
    str, Query(description="Only this kind: changed (or edited), gone, moved, restored.")
]


def beijing(value: datetime | str | None, seconds: bool = False) -> str:
    """A time as archivists read it: Beijing time, `YYYY-MM-DD HH:MM`."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(browse.BEIJING).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )


def _page(request: Request, name: str, **context: Any) -> Response:
    return render(
        request, name, beijing=beijing, kind_labels=KIND_LABELS, status_labels=STATUS_LABELS,
        alert_labels=ALERT_LABELS,
        **context,
    )  # fmt: skip


FIELD_LABELS = {
    "title": "标题", "body": "正文", "source": "来源", "publish_time": "时间", "editor": "责任编辑",
    "author": "作者", "contributor": "供稿", "images": "图片",
}  # fmt: skip


def describe(change: browse.Change) -> str:
    """One line on what a revisit found (plain text: the template escapes it)."""
    detail = change.detail
    if change.kind == "changed":
        fields = [FIELD_LABELS.get(str(f), str(f)) for f in detail.get("fields") or []]
        text = f"第 {change.version} 版" if change.version else "新版本"
        return text + (f"：{'、'.join(fields)}有变化" if fields else "")
    if change.kind == "gone":
        if detail.get("status"):
            return f"HTTP {detail['status']}"
        reason = detail.get("reason")
        phrase = detail.get("phrase")
        return "：".join(str(x) for x in (reason, phrase) if x) or "页面已不存在"
    if change.kind == "moved":
        return f"转到 {detail.get('target_url') or detail.get('moved_to') or '?'}"
    if change.kind == "restored":
        was = detail.get("was")
        return (
            f"页面重新出现（之前{STATUS_LABELS.get(str(was), str(was))}）"
            if was
            else "页面重新出现"
        )
    return ""


def _filter_query(**values: str) -> str:
    """`site=..&kind=..&` of the filters that are set (for links that add page=)."""
    return "".join(f"{k}={quote(v, safe='')}&" for k, v in values.items() if v)


def _site(session: Session, name: str) -> Site | None:
    return browse.site_row(session, name) if name else None


def _level(n: int, top: int) -> int:
    """A cell's shade, 0 (none) to 4 (the month's busiest days)."""
    return 0 if not n else min(4, 1 + (4 * n - 1) // max(top, 1))


# --- browse ---------------------------------------------------------------------------


def _calendar(session: Session, site: Site | None, month_text: str) -> dict[str, Any]:
    month = (
        browse.parse_month(month_text)
        if month_text
        else browse.latest_month(session, site) or date.today().replace(day=1)
    )
    counts = browse.day_counts(session, site, month)
    top = max(counts.values(), default=0)
    weeks = [
        [None if d is None else {"day": d, "n": counts.get(d, 0), "level": _level(counts.get(d, 0), top)}
         for d in week]
        for week in browse.month_grid(month)
    ]  # fmt: skip
    return {
        "month": month, "weeks": weeks, "total": sum(counts.values()), "counts": counts,
        "prev": browse.shift_month(month, -1), "next": browse.shift_month(month, 1),
    }  # fmt: skip


@router.get("/browse", include_in_schema=False)
def browse_page(
    request: Request, session: SessionDep, site: SiteQuery = "", month: MonthQuery = ""
) -> Response:
    site_row = _site(session, site)
    return _page(
        request, "browse.html", title="浏览", site=site_row,
        sites=browse.all_sites(session),
        months=browse.month_counts(session, site_row),
        undated=browse.undated_count(session, site_row),
        weekdays=WEEKDAYS, **_calendar(session, site_row, month),
    )  # fmt: skip


def _day_page(request: Request, session: Session, site_row: Site | None, day_text: str) -> Response:
    day = browse.parse_day(day_text)
    articles = browse.day_articles(session, site_row, day)
    return _page(
        request, "day.html", title=f"{day.isoformat()} 的文章", site=site_row, day=day,
        articles=articles, month=day.replace(day=1),
    )  # fmt: skip


@router.get("/browse/{day}", include_in_schema=False)
def browse_day_all(request: Request, session: SessionDep, day: str) -> Response:
    try:
        browse.parse_day(day)
    except browse.BrowseError:
        try:  # /browse/zytzb: that site's calendar
            site_row = browse.site_row(session, day)
        except browse.SiteNotFoundError:
            raise browse.BrowseError(
                f"{day!r}: neither a day (YYYY-MM-DD) nor a site of the archive"
            ) from None
        return RedirectResponse(f"/browse?site={quote(site_row.name)}", status_code=303)
    return _day_page(request, session, None, day)


@router.get("/browse/{site}/{day}", include_in_schema=False)
def browse_day(request: Request, session: SessionDep, site: str, day: str) -> Response:
    return _day_page(request, session, browse.site_row(session, site), day)


@router.get(
    "/api/calendar",
    summary="Articles per day of a month",
    description="Articles counted per publish day in Beijing time (+08:00) for one month, "
    "as the /browse calendar shows them: `{site, month, days: {YYYY-MM-DD: n}, total}`.",
)
def api_calendar(
    session: SessionDep, site: SiteQuery = "", month: MonthQuery = ""
) -> dict[str, Any]:
    site_row = _site(session, site)
    found = _calendar(session, site_row, month)
    return {
        "site": site or None, "month": found["month"].strftime("%Y-%m"),
        "days": {d.isoformat(): n for d, n in sorted(found["counts"].items())},
        "total": found["total"],
    }  # fmt: skip


@router.get(
    "/api/browse/{day}",
    summary="The articles of one day",
    description="Articles published on a Beijing day (YYYY-MM-DD), in publish order: "
    "`[{id, site, title, url, publish_time, first_seen, status, version}]`.",
)
def api_day(
    session: SessionDep,
    day: Annotated[str, Path(description="The day, YYYY-MM-DD (Beijing time).")],
    site: SiteQuery = "",
) -> list[dict[str, Any]]:
    site_row = _site(session, site)
    return [a.to_dict() for a in browse.day_articles(session, site_row, browse.parse_day(day))]


# --- sites ----------------------------------------------------------------------------


@router.get("/sites", include_in_schema=False)
def sites_page(request: Request, session: SessionDep) -> Response:
    return _page(request, "sites.html", title="网站", sites=browse.site_summaries(session))


@router.get("/sites/{name}", include_in_schema=False)
def site_page(request: Request, session: SessionDep, name: str) -> Response:
    site_row = browse.site_row(session, name)
    return _page(
        request, "site.html", title=site_row.title or site_row.name, site=site_row,
        summary=browse.site_summary(session, site_row),
        runs=browse.runs(session, name, limit=20),
        articles=browse.recent_articles(session, site_row, limit=20),
    )  # fmt: skip


@router.get(
    "/api/sites",
    summary="Every site with counts, last run and alerts",
    description="One object a site in the archive: article counts (in all, live, gone, "
    "moved), the last run (start, end, status, new/changed), failures in a row, the last "
    "run's revisits, open alerts and the last fixity check. Keys shared with "
    "`ufarchive status --format json` mean the same.",
)
def api_sites(session: SessionDep) -> list[dict[str, Any]]:
    return browse.site_summaries(session)


@router.get(
    "/api/sites/{name}",
    summary="One site: counts, last runs, alerts, recent articles",
    description="The object of /api/sites plus `runs` (the last 20) and `recent_articles`.",
)
def api_site(
    session: SessionDep, name: Annotated[str, Path(description="The site's name.")]
) -> dict[str, Any]:
    site_row = browse.site_row(session, name)
    return {
        **browse.site_summary(session, site_row),
        "runs": browse.runs(session, name, limit=20),
        "recent_articles": [a.to_dict() for a in browse.recent_articles(session, site_row)],
    }


@router.get(
    "/api/runs",
    summary="Crawl runs, newest first",
    description="Each run's start, end, outcome (status, message) and counters (requests, "
    "articles new/changed/unchanged/gone/failed, errors, revisits).",
)
def api_runs(
    session: SessionDep,
    site: SiteQuery = "",
    limit: Annotated[int, Query(ge=1, le=1000, description="How many runs.")] = 20,
) -> list[dict[str, Any]]:
    return browse.runs(session, site or None, limit)


# --- changes --------------------------------------------------------------------------


@router.get("/changes", include_in_schema=False)
def changes_page(
    request: Request,
    session: SessionDep,
    site: SiteQuery = "",
    kind: KindQuery = "",
    page: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    total, rows = browse.changes(
        session, site or None, kind or None, CHANGES_PAGE, (page - 1) * CHANGES_PAGE
    )
    pages = max(1, -(-total // CHANGES_PAGE))
    return _page(
        request, "changes.html", title="变更", changes=rows, total=total, page=page,
        pages=pages, site=site, kind=kind, kinds=browse.KINDS, describe=describe,
        filter_q=_filter_query(site=site, kind=kind),
        sites=[s.name for s in browse.all_sites(session)],
    )  # fmt: skip


@router.get(
    "/changes.atom",
    summary="What the revisits found, as an Atom feed",
    description="The newest 50 changes (as /changes, with the same filters) as Atom 1.0.",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}},
)
def changes_feed(
    request: Request, session: SessionDep, site: SiteQuery = "", kind: KindQuery = ""
) -> Response:
    _, rows = browse.changes(session, site or None, kind or None, FEED_ENTRIES)
    base = str(request.base_url).rstrip("/")
    query = request.url.query
    updated = rows[0].at if rows else datetime(2000, 1, 1, tzinfo=browse.BEIJING)
    return templates.TemplateResponse(
        request, "changes.atom",
        {"changes": rows, "base": base, "self_url": f"{base}/changes.atom" + (f"?{query}" if query else ""),
         "html_url": f"{base}/changes" + (f"?{query}" if query else ""), "updated": updated,
         "kind_labels": KIND_LABELS, "site": site, "kind": kind, "describe": describe},
        media_type="application/atom+xml",
    )  # fmt: skip


@router.get(
    "/api/changes",
    summary="What the revisits found, newest first",
    description="Article events (changed, gone, moved, restored) with the article's "
    "current title, URL and a `link` to its diff (an edit) or the article: "
    "`{total, offset, changes: [...]}`.",
)
def api_changes(
    session: SessionDep,
    site: SiteQuery = "",
    kind: KindQuery = "",
    limit: Annotated[int, Query(ge=1, le=1000, description="How many changes.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Skip this many (paging).")] = 0,
) -> dict[str, Any]:
    total, rows = browse.changes(session, site or None, kind or None, limit, offset)
    return {"total": total, "offset": offset, "changes": [c.to_dict() for c in rows]}
