"""The bodies of the analysts' commands (`export`, `collections ...`, `stats`); crawler.cli
declares them and calls in here. Heavy modules are imported inside the functions."""

from __future__ import annotations

import contextlib
import csv
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import ProgressColumn, Task
from rich.text import Text

from archive.errors import UfarchiveError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from archive.export import Selection
    from archive.settings import Settings


@contextlib.contextmanager
def write_session(config: Settings) -> Iterator[Session]:
    """A session in one transaction on an up-to-date archive, committed at the end."""
    from archive.db import check_schema, make_engine, make_sessionmaker

    engine = make_engine(config.database_url, writer=True)
    try:
        check_schema(engine)
        with make_sessionmaker(engine)() as session, session.begin():
            yield session
    finally:
        engine.dispose()


def selection(
    query: str | None,
    collection: str | None,
    site: str | None,
    since: datetime | None,
    until: datetime | None,
    versions: str | None = None,
) -> Selection:
    from archive.export import Filters, Selection, with_versions

    chosen = Selection(query=query, filters=Filters(site, since, until), collection=collection)
    return with_versions(chosen, versions)


# --- export ---------------------------------------------------------------------------------


class RateColumn(ProgressColumn):
    """Rows a second, for Rich's progress bar (its own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "… rows/s", style="cyan")


@contextlib.contextmanager
def progress(
    err: Console, label: str
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(on_total, on_rows) callbacks that drive a Rich bar with rows/s and ETA on a
    terminal; on a pipe or a file they do nothing, so logs get no bar."""
    if not err.is_terminal:
        yield (lambda total: None), (lambda rows: None)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=err, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(label, total=None)
        yield (
            lambda total: bar.update(task, total=total),
            lambda rows: bar.update(task, completed=rows),
        )


def run_export(
    config: Settings,
    err: Console,
    chosen: Selection,
    output: Path,
    fmt: str,
    fields: str | None,
    bom: bool | None,
    bag: bool,
) -> None:
    from archive.db import check_schema, make_engine, make_sessionmaker
    from archive.export import Options, export_file, export_summary, parse_fields

    options = Options(
        fields=parse_fields(fields),
        bom=config.export.csv_bom if bom is None else bom,
        xlsx_max_rows=config.export.xlsx_max_rows,
        parquet_row_group_rows=config.export.parquet_row_group_rows,
        data_dir=config.data_dir,
    )
    engine = make_engine(config.database_url)
    try:
        check_schema(engine)
        with (
            make_sessionmaker(engine)() as session,
            session.begin(),
            progress(err, f"exporting {fmt}") as (on_total, on_rows),
        ):
            result = export_file(
                session, output, fmt, chosen, on_rows, options=options, bag=bag,
                database_url=config.database_url, on_total=on_total,
            )  # fmt: skip
    finally:
        engine.dispose()
    err.print(export_summary(result), markup=False)
    if fmt == "warc" and len(result.files) > 1:
        err.print(f"index: {result.files[1]}", markup=False)
    err.print(f"manifest: {result.manifest}", markup=False)


# --- collections -----------------------------------------------------------------------------


def parse_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UfarchiveError(f"--ids {text}: give article ids separated by commas") from None
    if not ids:
        raise UfarchiveError(f"--ids {text!r}: no article id given")
    return ids


def create(
    config: Settings,
    out: Console,
    name: str,
    query: str | None,
    frozen_from: str | None,
    ids: str | None,
    filters: Any,
    description: str | None,
    created_by: str | None,
) -> None:
    from archive.collections import article_count, create_collection

    with write_session(config) as session:
        collection = create_collection(
            session, name, query=query, frozen_from=frozen_from,
            ids=parse_ids(ids) if ids is not None else None, filters=filters,
            description=description, created_by=created_by or current_user(),
        )  # fmt: skip
        count = article_count(session, collection)
        kind = collection.kind
    what = "matching now" if kind == "saved" else "pinned at their current versions"
    out.print(f"created {kind} collection {name!r}: {count} articles {what}", markup=False)


def current_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return None


def add_or_remove(config: Settings, out: Console, name: str, ids: list[int], add: bool) -> None:
    from archive.collections import add_articles, remove_articles

    with write_session(config) as session:
        if add:
            added, already = add_articles(session, name, ids)
            note = f" ({already} already in)" if already else ""
            out.print(f"added {added} articles to {name!r}{note}", markup=False)
        else:
            removed = remove_articles(session, name, ids)
            out.print(f"removed {removed} articles from {name!r}", markup=False)


def list_all(config: Settings, out: Console, as_json: bool, session: Session) -> None:
    from rich.table import Table

    from archive.collections import list_collections

    collections = list_collections(session)
    if as_json:
        out.print_json(json.dumps(collections, ensure_ascii=False))
        return
    if not collections:
        out.print("no collections yet (`ufarchive collections create NAME --query Q`)")
        return
    table = Table(
        "name", "kind", "articles", "query / filters", "made by", "created", "description"
    )
    for c in collections:
        defined = c["query"] or ""
        if c["filters"]:
            defined += " " + " ".join(f"{k}={v}" for k, v in c["filters"].items() if v)
        table.add_row(
            c["name"], c["kind"], str(c["articles"]), defined.strip(), c["created_by"] or "",
            (c["created_at"] or "")[:10], c["description"] or "",
        )  # fmt: skip
    out.print(table)


def show(out: Console, name: str, limit: int, as_json: bool, session: Session) -> None:
    from rich.table import Table

    from archive.collections import show_collection

    detail = show_collection(session, name, limit)
    if as_json:
        out.print_json(json.dumps(detail, ensure_ascii=False))
        return
    out.print(f"[bold]{escape(detail['name'])}[/bold] ({detail['kind']})")
    for key in ("description", "query", "filters", "created_by", "created_at", "articles"):
        if detail[key]:
            out.print(f"  {key}: {detail[key]}", markup=False)
    table = Table("id", "site", "published", "title", "version", "current")
    for item in detail["items"]:
        table.add_row(
            str(item["id"]), item["site"], (item["publish_time"] or "")[:16].replace("T", " "),
            item["title"] or "", str(item["version"]), str(item["current_version"]),
        )  # fmt: skip
    out.print(table)
    if detail["articles"] > len(detail["items"]):
        out.print(f"… {detail['articles'] - len(detail['items'])} more (--limit)", markup=False)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def rename(config: Settings, out: Console, name: str, new_name: str) -> None:
    from archive.collections import rename_collection

    with write_session(config) as session:
        rename_collection(session, name, new_name)
    out.print(f"renamed {name!r} to {new_name!r}", markup=False)


def delete(config: Settings, out: Console, name: str, yes: bool) -> None:
    import typer

    from archive.collections import article_count, delete_collection, get_collection

    with write_session(config) as session:
        count = article_count(session, get_collection(session, name))
        if not yes and not typer.confirm(
            f"delete collection {name!r} ({count} articles; they stay in the archive)?"
        ):
            raise typer.Exit(1)
        delete_collection(session, name)
    out.print(f"deleted collection {name!r}", markup=False)


# --- stats -------------------------------------------------------------------------------------


def run_stats(
    out: Console,
    session: Session,
    chosen: Selection,
    by: str,
    fmt: str,
    output: Path | None,
) -> None:
    from archive.export import ExportError, resolve
    from archive.stats import count_by, save_chart

    counts = count_by(session, resolve(session, chosen), by)
    if fmt in ("png", "svg"):
        if output is None:
            raise ExportError(f"--format {fmt}: give --output PATH for the chart")
        save_chart(counts, output, fmt, title=chart_title(chosen, by))
        out.print(f"wrote a chart of {counts.total} articles to {output}", markup=False)
        return
    header, rows = counts.table()
    if fmt == "csv":
        with contextlib.ExitStack() as stack:
            fh = (
                stack.enter_context(output.open("w", encoding="utf-8", newline=""))
                if output
                else sys.stdout
            )
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        return
    from rich.table import Table

    table = Table(*header, title=chart_title(chosen, by))
    for column in table.columns[1:]:
        column.justify = "right"
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
    out.print(table)
    note = f"; {counts.undated} without a publish time" if counts.undated else ""
    out.print(f"{counts.total} articles{note}", markup=False)


def chart_title(chosen: Selection, by: str) -> str:
    parts = [f"articles by {by}"]
    if chosen.query:
        parts.append(f"query {chosen.query}")
    if chosen.collection:
        parts.append(f"collection {chosen.collection}")
    if chosen.filters.site:
        parts.append(f"site {chosen.filters.site}")
    return " · ".join(parts)
