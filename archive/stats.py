"""Counts and charts for analysts (`ufarchive stats`): articles per day, week or month (per
site), or per site, source or editor, over the same selections exports take.

Periods are Beijing time (the pages' own clock: a story published at 07:00 +08:00 on the
2nd counts on the 2nd); weeks start on Monday and are named by that day. The counting is
one GROUP BY in the database; charts are drawn with matplotlib's object API (no pyplot, no
GUI backend), imported only when a chart is asked for.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, literal
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from archive.export import Resolved, selected
from archive.models import Article, ArticleVersion, Site

By = Literal["day", "week", "month", "site", "source", "editor"]
BY = ("day", "week", "month", "site", "source", "editor")
PERIODS = ("day", "week", "month")
UNKNOWN = "(none)"
CHART_SERIES = 8  # sites drawn as their own line; the rest are summed as "other"
CHART_BARS = 30  # values in a bar chart
# Fonts with Chinese glyphs, tried in this order (Debian: fonts-wqy-microhei,
# fonts-noto-cjk); without one, Chinese labels render as boxes.
CJK_FONTS = ["Noto Sans CJK SC", "WenQuanYi Micro Hei", "Source Han Sans SC", "SimHei"]


@dataclass
class Counts:
    """Counts by `by`: rows of (key, site, count); for periods one row per period and site,
    otherwise `site` is "" (a count over all sites; for `site` the key is the site)."""

    by: str
    rows: list[tuple[str, str, int]]
    undated: int = 0  # articles without a publish time (periods only)

    @property
    def total(self) -> int:
        return sum(n for _, _, n in self.rows) + self.undated

    def sites(self) -> list[str]:
        totals: defaultdict[str, int] = defaultdict(int)
        for _, site, n in self.rows:
            totals[site] += n
        return sorted(totals, key=lambda s: (-totals[s], s))

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """Header and rows for a table or CSV: periods x sites (plus total), or key, count."""
        if self.by not in PERIODS:
            return [self.by, "articles"], [[key, n] for key, _, n in self.rows]
        sites = sorted(self.sites())
        grid: dict[str, dict[str, int]] = defaultdict(dict)
        for key, site, n in self.rows:
            grid[key][site] = n
        rows = [
            [key, *(grid[key].get(s, 0) for s in sites), sum(grid[key].values())]
            for key in sorted(grid)
        ]
        return [self.by, *sites, "total"], rows


def bucket(session: Session, by: str) -> ColumnElement[Any]:
    """The period of an article's publish time, in Beijing time, as text."""
    when = Article.publish_time
    if session.get_bind().dialect.name == "postgresql":
        local = func.timezone("Asia/Shanghai", when)
        if by == "week":
            return func.to_char(func.date_trunc("week", local), "YYYY-MM-DD")
        return func.to_char(local, "YYYY-MM-DD" if by == "day" else "YYYY-MM")
    if by == "week":  # the Sunday on or after, less six days: the Monday starting the week
        return func.date(when, "+8 hours", "weekday 0", "-6 days")
    return func.strftime("%Y-%m-%d" if by == "day" else "%Y-%m", when, "+8 hours")


def count_by(session: Session, resolved: Resolved, by: str) -> Counts:
    """Articles of the selection counted by period (and site), site, source or editor."""
    if by not in BY:
        from archive.export import ExportError

        raise ExportError(f"--by {by}: use one of {', '.join(BY)}")
    if by in PERIODS:
        key: Any = bucket(session, by)
        site: Any = Site.name
    else:
        key = {"site": Site.name, "source": ArticleVersion.source, "editor": ArticleVersion.editor}[
            by
        ]
        site = literal("")
    query = (
        selected(session, resolved, key.label("key"), site.label("site"), func.count().label("n"))
        .order_by(None)
        .group_by(key, site)
    )
    rows, undated = [], 0
    for k, s, n in session.execute(query):
        if k is None and by in PERIODS:
            undated += int(n)
        else:
            rows.append((UNKNOWN if k is None else str(k), str(s), int(n)))
    if by in PERIODS:
        rows.sort()
    else:
        rows.sort(key=lambda r: (-r[2], r[0]))
    return Counts(by, rows, undated)


def periods_between(first: str, last: str, by: str) -> list[str]:
    """Every period from `first` to `last` (their names as `bucket` gives them), gaps too."""
    if by == "month":
        year, month = map(int, first.split("-"))
        end = tuple(map(int, last.split("-")))
        out = []
        while (year, month) <= end:
            out.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out
    step = timedelta(days=7 if by == "week" else 1)
    day, end_day = date.fromisoformat(first), date.fromisoformat(last)
    out = []
    while day <= end_day:
        out.append(day.isoformat())
        day += step
    return out


def save_chart(counts: Counts, path: Path, fmt: str, title: str = "") -> None:
    """A line chart of articles per period and site, or a bar chart of the top values."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    style: dict[Any, Any] = {
        "font.sans-serif": [*CJK_FONTS, "DejaVu Sans"],
        "svg.fonttype": "none",  # text stays text in an SVG: searchable, selectable
        "svg.hashsalt": "ufarchive",  # the same chart gives the same file
    }
    with rc_context(style), warnings.catch_warnings():
        # a label in a script no installed font has: drawn as boxes, the chart still useful
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        figure = Figure(figsize=(11, 5.5), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        if counts.by in PERIODS:
            _period_chart(axes, counts)
        else:
            _bar_chart(axes, counts)
        axes.set_title(title or f"articles by {counts.by}")
        metadata = {"Date": None} if fmt == "svg" else {}
        figure.savefig(path, format=fmt, metadata=metadata, dpi=120)


def _period_chart(axes: Any, counts: Counts) -> None:
    from datetime import datetime

    if not counts.rows:
        axes.text(0.5, 0.5, "no dated articles", ha="center", transform=axes.transAxes)
        return
    keys = [k for k, _, _ in counts.rows]
    periods = periods_between(min(keys), max(keys), counts.by)
    sites = counts.sites()
    shown = sites[:CHART_SERIES] if len(sites) > CHART_SERIES + 1 else sites
    series: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, site, n in counts.rows:
        series[site if site in shown else "other"][key] += n
    fmt = "%Y-%m" if counts.by == "month" else "%Y-%m-%d"
    xs = [datetime.strptime(p, fmt) for p in periods]
    for name in [*shown, *(["other"] if "other" in series else [])]:
        axes.plot(xs, [series[name].get(p, 0) for p in periods], label=name, linewidth=1.4)
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import MaxNLocator

    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(f"articles a {counts.by}")
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper left", fontsize="small")
    axes.grid(alpha=0.3)


def _bar_chart(axes: Any, counts: Counts) -> None:
    top = counts.rows[:CHART_BARS][::-1]
    from matplotlib.ticker import MaxNLocator

    axes.barh([k for k, _, _ in top], [n for _, _, n in top])
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("articles")
