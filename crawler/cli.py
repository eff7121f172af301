"""`ufarchive`: the command line of DESIGN.md (Typer + Rich); also `python -m crawler`.

Commands import heavy modules inside the function, so `ufarchive --help` stays fast.
Errors: a `UfarchiveError` is one line on stderr and exit 2; anything else is one line
pointing at the log file and exit 1; tracebacks only with `--debug`.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from archive.errors import UfarchiveError
from archive.redact import redact

if TYPE_CHECKING:
    from archive.settings import Settings

log = logging.getLogger("ufarchive")
# Off a terminal (pipes, logs, CI) Rich would squeeze tables into 80 columns.
WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
out = Console(highlight=False, soft_wrap=True, width=WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=WIDTH)

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


class UfarchiveGroup(TyperGroup):
    """Turns every failure below it into one line and an exit code (see module doc)."""

    def invoke(self, ctx: Any) -> Any:  # Typer's vendored click Context
        try:
            return super().invoke(ctx)
        except UfarchiveError as exc:
            if ctx.params.get("debug"):
                raise
            err.print(f"error: {redact(str(exc), known_secrets())}", markup=False)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # usage errors and deliberate exits: Typer reports them itself
        except KeyboardInterrupt:
            err.print("interrupted", markup=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            where = write_crash_log(exc)
            message = redact(first_line(exc), known_secrets())
            err.print(
                f"internal error: {type(exc).__name__}: {message} "
                f"(traceback in {where}; rerun with --debug)",
                markup=False,
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=UfarchiveGroup,
    name="ufarchive",
    help="Scheduled crawler and searchable archive of United Front (统战) news.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Create or upgrade the archive's database schema.", no_args_is_help=True)
sites_app = typer.Typer(help="List and validate the sites in config/sites/.", no_args_is_help=True)
collections_app = typer.Typer(
    help="Named sets of articles that analysts build and export.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(sites_app, name="sites")
app.add_typer(collections_app, name="collections")
users_app = typer.Typer(
    help="The web UI's accounts (passwords stored as argon2 hashes).", no_args_is_help=True
)
app.add_typer(users_app, name="users")


class TextOrJson(enum.StrEnum):
    text = "text"
    json = "json"


class ExportFormat(enum.StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"
    xlsx = "xlsx"
    warc = "warc"


def version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"ufarchive {version('ufarchive')}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Scheduled crawler and searchable archive of United Front (统战) news.

    Configuration: UFARCHIVE_CONFIG (default ./config), UFARCHIVE_DATA_DIR (default ./data),
    UFARCHIVE_DATABASE_URL (default SQLite in the data dir).
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from archive import redact as redaction

    redaction.install(known_secrets())


def known_secrets() -> list[str]:
    """The secrets of the settings in force (those of the environment if the file is broken)."""
    from archive.redact import secret_values
    from archive.settings import ENV_DATABASE_URL

    try:
        return secret_values(settings())
    except UfarchiveError:
        return secret_values(database_url=os.environ.get(ENV_DATABASE_URL))


# --- helpers ----------------------------------------------------------------------------


def settings() -> Settings:
    from archive.settings import load_settings

    return load_settings()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def write_crash_log(exc: BaseException) -> Path:
    """Append the traceback to the data dir's log (or a temp file if that fails)."""
    text = redact("".join(traceback.format_exception(exc)), known_secrets())
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    candidates: list[Path] = []
    with contextlib.suppress(UfarchiveError):  # a broken config must not hide the crash
        candidates.append(settings().data_dir / "logs" / "ufarchive.log")
    candidates.append(Path(tempfile.gettempdir()) / "ufarchive-crash.log")
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f"--- {stamp} {' '.join(sys.argv)}\n{text}\n")
            return path
        except OSError:
            continue
    return candidates[-1]


# --- db ---------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema, or upgrade it to this version's; safe to run again."""
    from archive.db import current_revision, describe_url, make_engine, upgrade

    config = settings()
    engine = make_engine(config.database_url, writer=True)
    try:
        before = current_revision_or_none(engine)
        upgrade(engine)
        after = current_revision(engine)
        where = describe_url(config.database_url)
        if before == after:
            out.print(f"{where}: schema already at revision {after}", markup=False)
        else:
            out.print(
                f"{where}: schema upgraded from {before or 'nothing'} to {after}", markup=False
            )
            refill_search_index(engine)
            count_common_codes(engine)
        complete_gin_index(engine)
    finally:
        engine.dispose()


def complete_gin_index(engine: Any) -> None:
    """Build the halves of the search index's GIN index that a rebuild killed before it
    built them left missing (PostgreSQL: archive.search.rebuild_index)."""
    from archive.search import build_gin_halves

    if engine.dialect.name != "postgresql":
        return
    started = time.monotonic()
    with err.status("building the search index's GIN index…"):
        built = build_gin_halves(engine)
    if built:
        out.print(
            f"search index: built {', '.join(built)}, which an interrupted rebuild left"
            f" missing ({time.monotonic() - started:.0f} s)",
            markup=False,
        )


def count_common_codes(engine: Any) -> None:
    """Count the search index's common codes when an upgrade brought their counts (revision
    0021, PostgreSQL) to an index that has entries: here, not in the scheduler's first few
    passes, which count a hundred at a time while crawls wait."""
    from sqlalchemy import text

    from archive.db import make_sessionmaker
    from archive.search import refresh_common_codes

    if engine.dialect.name != "postgresql":
        return
    with make_sessionmaker(engine)() as session, session.begin():
        if session.scalar(text("SELECT EXISTS (SELECT 1 FROM search_common_codes)")):
            return
        if not session.scalar(text("SELECT EXISTS (SELECT 1 FROM search_docs)")):
            return
        started = time.monotonic()
        session.execute(text("ANALYZE search_docs"))
        done = refresh_common_codes(session.connection())
    out.print(
        f"search counts: {done.added} common character pairs counted "
        f"({time.monotonic() - started:.0f} s)",
        markup=False,
    )


def refill_search_index(engine: Any) -> None:
    """Rebuild the search index when an upgrade left it empty (a new index format)."""
    from archive.db import make_sessionmaker
    from archive.search import coverage

    sessions = make_sessionmaker(engine)
    with sessions() as session:
        indexed, stored = coverage(session)
    if indexed or not stored:
        return
    count = rebuild_with_progress(sessions, "rebuilding the search index")
    out.print(f"search index rebuilt: {count} articles (its format changed)", markup=False)


def rebuild_with_progress(sessions: Any, label: str) -> int:
    """archive.search.rebuild_index (one transaction on SQLite; on PostgreSQL the entries in
    one, then the GIN index's halves), with its progress on stderr."""
    from archive.search import rebuild_index

    with err.status(f"{label}…") as status, sessions() as session, session.begin():
        return rebuild_index(
            session,
            workers=os.cpu_count() or 1,  # tokenising on every core (bench/search.py)
            on_progress=lambda done, total: status.update(f"{label}… {done}/{total}"),
            on_step=lambda step: status.update(f"{label}… {step}"),
        )


def current_revision_or_none(engine: Any) -> str | None:
    from sqlalchemy.exc import OperationalError

    from archive.db import current_revision, describe_url
    from archive.errors import DatabaseError

    try:
        return current_revision(engine)
    except OperationalError as exc:
        raise DatabaseError(
            f"{describe_url(str(engine.url))}: {first_line(exc.orig or exc)}"
        ) from None


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and whether it is up to date."""
    from archive.db import describe_url, head_revision, make_engine

    config = settings()
    engine = make_engine(config.database_url)
    try:
        current = current_revision_or_none(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else f"needs `ufarchive db upgrade` to {head}"
    out.print(f"{describe_url(config.database_url)}: {current or 'empty'} ({state})", markup=False)


# --- sites ------------------------------------------------------------------------------


@sites_app.command("list")
def sites_list() -> None:
    """A table of the configured sites: name, title, schedule, start URLs."""
    from rich.table import Table

    from crawler.sites import check_sites

    sites, errors = check_sites(settings().sites_dir)
    table = Table("name", "title", "schedule", title=f"{len(sites)} sites")
    table.add_column("start URLs", overflow="fold")
    for site in sites:
        table.add_row(site.name, site.title, site.schedule.describe(), "\n".join(site.start_urls))
    out.print(table)
    report_site_errors(errors)


@sites_app.command("check")
def sites_check(
    name: Annotated[str | None, typer.Argument(help="Check only this site (default: all).")] = None,
) -> None:
    """Validate site files; one line per bad file (file, key, problem) and exit 2."""
    from crawler.sites import check_sites

    config = settings()
    sites, errors = check_sites(config.sites_dir, [name] if name else None)
    for site in sites:
        out.print(f"ok: {site.name} ({config.sites_dir / site.name}.yaml)", markup=False)
    report_site_errors(errors)


@sites_app.command("probe")
def sites_probe(
    url: Annotated[str, typer.Argument(help="A listing page of the site (a news column).")],
    name: Annotated[
        str | None, typer.Option(help="The site's name (default: from the host name).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the site file here.")
    ] = None,
) -> None:
    """Fetch a listing page, its robots.txt, feeds and sitemaps; print a proposed site file."""
    from crawler.probe import probe_site

    text = probe_site(url, settings().crawl, name).site_file()
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UfarchiveError(f"{output}: cannot write: {exc.strerror or exc}") from None
    err.print(f"wrote {output}; check it with `ufarchive sites check`", markup=False)


def report_site_errors(errors: list[Any]) -> None:
    for error in errors:
        err.print(f"error: {error}", markup=False)
    if errors:
        raise typer.Exit(2)


# --- commands whose issues have not landed yet ------------------------------------------


@app.command()
def crawl(
    names: Annotated[
        list[str] | None, typer.Argument(help="Sites to crawl (default: all).")
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Refetch known articles (conditional requests).")
    ] = False,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Queue the runs in Redis for `ufarchive worker` processes and wait for them.",
        ),
    ] = False,
) -> None:
    """Crawl the named sites (or all) once, now, and store what is new or changed."""
    from rich.live import Live

    from crawler.runner import RunView, run_crawl

    def render(runs: list[RunView]) -> Any:
        return runs_table(
            runs, title="crawling…" if any(r.finished_at is None for r in runs) else "crawl"
        )

    with Live(render([]), console=err, transient=True, refresh_per_second=4) as live:
        if distributed:
            if refresh:
                raise UfarchiveError("--refresh: not available with --distributed yet")
            from crawler.distributed import crawl_distributed

            runs = crawl_distributed(
                names, settings=settings(), on_progress=lambda rs: live.update(render(rs)),
                notice=lambda text: err.print(f"warning: {text}", markup=False),
            )  # fmt: skip
        else:
            runs = run_crawl(names, refresh=refresh, on_progress=lambda rs: live.update(render(rs)))
    out.print(runs_table(runs, title="crawl"))
    print_alerts([r.site for r in runs])
    failed = [r for r in runs if not r.ok]
    for run in failed:
        err.print(f"error: {run.site}: run {run.run_id} {run.status}: {run.message}", markup=False)
    if failed:
        raise typer.Exit(1)


def print_alerts(sites: list[str]) -> None:
    """The active alerts of these sites, one line each, on stderr; after a crawl, which
    has waited for a restarting database, so this waits for it too."""
    from archive.alerts import AlertView, active_alerts
    from archive.db import retrying

    def read() -> list[AlertView]:
        with archive_session(settings()) as session:
            return [alert for site in sites for alert in active_alerts(session, site)]

    for alert in retrying(read, "reading the alerts"):
        err.print(f"ALERT {alert.site} {alert.kind}: {alert.message}", markup=False)


def runs_table(runs: list[Any], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    # checked: known articles revisited and answered (304: of them not modified)
    for name in ("run", "site", "status", "started", "took", "requests", "new", "checked", "304",
                 "changed", "same", "gone", "moved", "restored", "failed", "errors",
                 "workers"):  # fmt: skip
        table.add_column(
            name, justify="right" if name not in ("site", "status", "started") else "left"
        )
    for r in runs:
        took = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
        status = r.status + (" (unreachable)" if r.unreachable else "")
        table.add_row(
            str(r.run_id), r.site, status, r.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            f"{took:.1f}s" if took is not None else "…", str(r.requests), str(r.articles_new),
            str(r.revisits_checked), str(r.revisits_not_modified), str(r.articles_changed),
            str(r.articles_unchanged), str(r.articles_gone), str(r.articles_moved),
            str(r.articles_restored), str(r.articles_failed), str(r.error_count),
            workers_cell(r.workers),
        )  # fmt: skip
    return table


def workers_cell(workers: int | None) -> str:
    """How many crawl workers a run had; `-` for a run of one local crawl process."""
    return "-" if workers is None else str(workers)


@app.command()
def worker(
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Log here instead of stderr.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Exit 0 if a worker of this host is alive in Redis (healthchecks)."
        ),
    ] = False,
) -> None:
    """A crawl worker: crawl the runs queued in Redis (UFARCHIVE_REDIS_URL) until stopped.

    Run any number, on any host, with the same config folder, database and Redis. SIGTERM
    or Ctrl-C stops it after handing back what it holds; a second signal stops it at once.
    """
    if check:
        from crawler.distributed import check_host_worker

        alive = check_host_worker(settings())
        out.print(alive or "no live worker on this host", markup=False)
        raise typer.Exit(0 if alive else 1)
    from crawler.worker import run_worker

    run_worker(settings(), str(log_file) if log_file else None)


@app.command()
def schedule(
    web: Annotated[
        bool,
        typer.Option("--web", help="Serve the web UI too (web.host:web.port), as make run does."),
    ] = False,
) -> None:
    """Run every site on its schedule until stopped: the long-running main job.

    SIGTERM/SIGINT stop it cleanly (running crawls checkpoint and resume at the next
    start); SIGHUP or a changed site file reloads the sites. Serves /healthz and /metrics
    on scheduler.metrics_host:metrics_port of settings.yaml; with --web, the web UI too
    (one Ctrl-C stops both).
    """
    from crawler.scheduling import run_scheduler

    config = settings()
    if not web:
        run_scheduler(config)
        return
    from web.server import WebThread, exposure_warning

    warning = exposure_warning(config, config.web.host)
    if warning:
        err.print(warning, markup=False)
    ui = WebThread(config, config.web.host, config.web.port)
    ui.start()
    out.print(f"web UI on {ui.url}", markup=False)
    try:
        run_scheduler(config)
    finally:
        ui.stop()


@app.command()
def runs(
    site: Annotated[str | None, typer.Option(help="Only this site's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    errors: Annotated[bool, typer.Option("--errors", help="List each run's errors too.")] = False,
) -> None:
    """List crawl runs: start, end, outcome and counters."""
    from sqlalchemy import select

    from archive.db import check_schema, make_engine, make_sessionmaker
    from archive.models import CrawlRun, Site
    from crawler.runner import run_view

    engine = make_engine(settings().database_url)
    try:
        check_schema(engine)
        with make_sessionmaker(engine)() as session:
            query = select(CrawlRun).join(Site).order_by(CrawlRun.id.desc()).limit(limit)
            if site:
                query = query.where(Site.name == site)
            rows = session.scalars(query).all()
            out.print(runs_table([run_view(r) for r in rows], title=f"{len(rows)} runs"))
            if errors:
                for row in rows:
                    for e in row.errors:
                        out.print(f"run {row.id} {e.kind} {e.url or ''} {e.message}", markup=False)
    finally:
        engine.dispose()


@app.command()
def status(
    format: Annotated[
        TextOrJson, typer.Option("--format", help="text table or JSON.")
    ] = TextOrJson.text,
) -> None:
    """Per site: last run, outcome, articles new/changed, failures in a row, next run, alerts."""
    import json

    from crawler.scheduling import site_statuses

    statuses, errors = site_statuses(settings())
    if format is TextOrJson.json:
        typer.echo(json.dumps([s.to_dict() for s in statuses], ensure_ascii=False, indent=2))
    else:
        out.print(status_view(statuses))
        for status_ in statuses:
            for alert in status_.alerts:
                out.print(f"ALERT {alert.site} {alert.kind}: {alert.message}", markup=False)
    for error in errors:
        err.print(f"error: {error}", markup=False)


STATUS_COLUMNS = ("site", "schedule", "last run", "started", "outcome", "workers", "new",
                  "changed", "revisits", "failures in a row", "warnings", "next run", "verified",
                  "alerts")  # fmt: skip


def status_rows(statuses: list[Any]) -> list[list[str]]:
    def when(value: datetime | None) -> str:
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"

    rows = []
    for s in statuses:
        rows.append([
            s.site, s.schedule, str(s.last_run_id or "-"), when(s.last_started),
            s.last_status or "never run", workers_cell(s.workers), str(s.articles_new),
            str(s.articles_changed), s.describe_revisits(), str(s.failures_in_a_row),
            str(s.extraction_warnings), when(s.next_run), verified(s.fixity),
            ", ".join(a.kind for a in s.alerts) or "-",
        ])  # fmt: skip
    return rows


def status_view(statuses: list[Any]) -> Any:
    """One table, a row a site, when it fits the terminal; otherwise one block a site
    (a squeezed 14-column table would break every cell over several lines)."""
    from rich.console import Group
    from rich.measure import Measurement
    from rich.table import Table

    rows = status_rows(statuses)
    table = Table(title=f"{len(statuses)} sites")
    for name in STATUS_COLUMNS:
        right = name in ("new", "changed", "last run", "warnings")
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if Measurement.get(out, out.options.update_width(10_000), table).maximum <= out.width:
        return table
    blocks: list[Any] = [f"{len(statuses)} sites"]
    for row in rows:
        block = Table(title=row[0], title_justify="left", show_header=False, box=None)
        block.add_column(style="bold", no_wrap=True)
        block.add_column(overflow="fold")
        for name, value in zip(STATUS_COLUMNS[1:], row[1:], strict=True):
            block.add_row(name, value)
        blocks.append(block)
    return Group(*blocks)


def verified(fixity: Any) -> str:
    """The last fixity audit of a site, in a cell: when, and clean or how many damaged."""
    if fixity is None:
        return "never"
    state = "clean" if not fixity.damaged else f"DAMAGED ({fixity.damaged})"
    return f"{fixity.finished_at.astimezone().strftime('%Y-%m-%d %H:%M')} {state}"


@app.command()
def extract(
    file: Annotated[Path, typer.Argument(help="A saved HTML page.")],
    url: Annotated[str | None, typer.Option(help="The page's URL (resolves links).")] = None,
    site: Annotated[str | None, typer.Option(help="Use this site's selectors.")] = None,
    format: Annotated[
        TextOrJson,
        typer.Option(
            "--format",
            help="text: the article's fields as JSON; json: also provenance, encoding, warnings.",
        ),
    ] = TextOrJson.text,
) -> None:
    """Extract an article from a saved page and print it as JSON."""
    import json

    from crawler.extract import extract as extract_article

    selectors: dict[str, str] = {}
    if site:
        from crawler.sites import load_site_file

        selectors = load_site_file(settings().sites_dir / f"{site}.yaml").selectors.given()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UfarchiveError(f"{file}: cannot read: {exc.strerror or exc}") from None
    article = extract_article(data, url=url, selectors=selectors)
    result = article.report() if format is TextOrJson.json else article.to_dict()
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@app.command()
def reparse(
    site: Annotated[str | None, typer.Option(help="Only this site's articles.")] = None,
) -> None:
    """Re-run extraction on stored raw snapshots; new versions only where a field changed."""
    from archive.db import check_schema, make_engine, make_sessionmaker
    from crawler.reparse import reparse as reparse_archive

    config = settings()
    engine = make_engine(config.database_url, writer=True)
    try:
        check_schema(engine)
        with err.status("reparsing…") as status:
            counts = reparse_archive(
                config, make_sessionmaker(engine), site,
                on_progress=lambda done, total: status.update(f"reparsing… {done}/{total}"),
            )  # fmt: skip
    finally:
        engine.dispose()
    out.print(
        f"checked {counts.checked}: {counts.changed} changed (new version), {counts.unchanged} unchanged, "
        f"{counts.recovered} recovered, {counts.failed} still without title and body",
        markup=False,
    )


class SortOrder(enum.StrEnum):
    relevance = "relevance"
    newest = "newest"


@app.command()
def search(
    query: Annotated[
        str,
        typer.Argument(
            help='Words, "phrases", OR, -exclude, site: source: editor: author: since: until:.'
        ),
    ],
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    since: Annotated[
        datetime | None, typer.Option(formats=DATE_FORMATS, help="Published on or after.")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=DATE_FORMATS, help="Published before.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many hits.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many hits (paging).")] = 0,
    sort: Annotated[SortOrder, typer.Option(help="relevance or newest.")] = SortOrder.relevance,
    all_copies: Annotated[
        bool, typer.Option("--all-copies", help="Every republication, not one a cluster.")
    ] = False,
    format: Annotated[
        TextOrJson, typer.Option("--format", help="text table or JSON.")
    ] = TextOrJson.text,
) -> None:
    """Search the archive (Chinese words of any length, either script)."""
    import json

    from archive.search import coverage
    from archive.search import search as run_search

    config = settings()
    with archive_session(config) as session:
        result = run_search(
            session, query, site=site, since=as_beijing(since), until=as_beijing(until),
            limit=limit, offset=offset, sort=sort.value, all_copies=all_copies,
        )  # fmt: skip
        indexed, stored = coverage(session)
    if indexed < stored:
        err.print(
            f"warning: the search index covers {indexed} of {stored} articles; "
            "run `ufarchive reindex`",
            markup=False,
        )
    if format is TextOrJson.json:
        typer.echo(json.dumps([hit.to_dict() for hit in result.hits], ensure_ascii=False, indent=2))
        return
    print_hits(result)


def total_text(result: Any) -> str:
    """The number of matches, "about N" where it was estimated from a sample."""
    return f"about {result.total:,}" if result.estimated else str(result.total)


def print_hits(result: Any) -> None:
    import html
    import re

    from rich.table import Table
    from rich.text import Text

    if not result.hits:
        out.print(f"no hits ({total_text(result)} matching articles)", markup=False)
        return
    table = Table(box=None, show_edge=False, pad_edge=False)
    for name in ("id", "published", "site", "title / snippet", "copies"):
        table.add_column(name, no_wrap=name != "title / snippet", overflow="fold")
    for hit in result.hits:
        record = hit.record
        cell = Text(record["title"] or "(no title)", style="bold")
        cell.append("\n")
        for k, part in enumerate(re.split(r"</?mark>", hit.snippet)):
            cell.append(html.unescape(part), style="reverse" if k % 2 else "")
        table.add_row(
            str(record["id"]),
            (record["publish_time"] or "")[:16].replace("T", " "),
            record["site"],
            cell,
            str(hit.republications + 1) if hit.republications else "",
        )
    out.print(table)
    out.print(f"{total_text(result)} matching articles; {len(result.hits)} shown", markup=False)
    if result.ranked:
        err.print(
            f"note: relevance ranks the newest {result.ranked:,} matches; narrow the query "
            "(more words, site:, since:) to rank older ones, or use --sort newest",
            markup=False,
        )


@app.command()
def show(
    article_id: Annotated[int, typer.Argument(metavar="ID", help="Article id.")],
    versions_to_diff: Annotated[
        list[int] | None,
        typer.Argument(metavar="[A B]", help="With --diff: the two versions (default: last two)."),
    ] = None,
    format: Annotated[TextOrJson, typer.Option("--format", help="text or JSON.")] = TextOrJson.text,
    raw: Annotated[bool, typer.Option("--raw", help="Print the exact archived bytes.")] = False,
    version: Annotated[
        int | None, typer.Option(min=1, help="With --raw: this version's bytes (default: current).")
    ] = None,
    list_versions: Annotated[
        bool, typer.Option("--versions", help="List the versions and what changed in each.")
    ] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Word diff of two versions: show ID --diff [A B].")
    ] = False,
) -> None:
    """Show an article with its metadata, versions, history and republications."""
    import json

    from archive.articles import article_detail, raw_bytes

    if versions_to_diff and (not diff or len(versions_to_diff) != 2):
        raise UfarchiveError(
            "show: give two version numbers after --diff (show ID --diff A B), or none"
        )
    config = settings()
    with archive_session(config) as session:
        if raw:
            data = raw_bytes(session, config.data_dir, article_id, version)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        if diff:
            from archive.diff import diff_versions

            a, b = versions_to_diff or (None, None)
            changes = diff_versions(session, article_id, a, b)
            if format is TextOrJson.json:
                typer.echo(json.dumps(changes, ensure_ascii=False, indent=2))
            else:
                print_diff(changes)
            return
        detail = article_detail(session, article_id)
    if format is TextOrJson.json:
        typer.echo(json.dumps(detail, ensure_ascii=False, indent=2))
    elif list_versions:
        print_versions(detail)
    else:
        print_article(detail)


def print_article(detail: dict[str, Any]) -> None:
    from rich.table import Table

    out.print(f"[bold]{escape(detail['title'] or '(no title)')}[/bold]")
    meta = Table.grid(padding=(0, 2))
    for key in ("id", "site", "url", "publish_time", "source", "editor", "author", "contributor", "status",
                "moved_to", "version", "first_seen", "last_seen", "last_checked", "gone_at",
                "cluster_id", "content_hash"):  # fmt: skip
        value = detail[key]
        if value is not None:
            meta.add_row(key, str(value))
    out.print(meta)
    out.print()
    out.print(detail["body"], markup=False)
    out.print()
    print_versions(detail)
    if detail["republications"]:
        table = Table("id", "site", "url", "publish time", "original", title="republications")
        for r in detail["republications"]:
            table.add_row(
                str(r["id"]),
                r["site"],
                r["url"],
                r["publish_time"] or "",
                "yes" if r["is_original"] else "",
            )
        out.print(table)


def print_versions(detail: dict[str, Any]) -> None:
    """The versions (what changed in each, from the events) and the article's history."""
    from rich.table import Table

    changed = {
        e["version"]: ", ".join(e["detail"].get("fields", []))
        for e in detail["events"]
        if e["kind"] == "changed"
    }
    versions = Table(
        "version", "first seen", "last seen", "title", "publish time", "changed",
        title=f"versions of article {detail['id']}",
    )  # fmt: skip
    for v in detail["versions"]:
        versions.add_row(
            str(v["version"]), v["first_seen"], v["last_seen"], v["title"] or "",
            v["publish_time"] or "", changed.get(v["version"], "" if v["version"] == 1 else "(reparse)"),
        )  # fmt: skip
    out.print(versions)
    if detail["events"]:
        history = Table("at", "event", "version", "detail", title="history")
        for e in detail["events"]:
            what = ", ".join(f"{k}: {v}" for k, v in e["detail"].items() if v is not None)
            history.add_row(e["at"], e["kind"], str(e["version"] or ""), what)
        out.print(history)


def print_diff(changes: dict[str, Any]) -> None:
    """Deleted words struck through in red, inserted ones underlined in green; off a
    terminal, git's word-diff markers ([-deleted-]{+inserted+})."""
    from rich.text import Text

    plain = not out.is_terminal
    out.print(
        f"article {changes['article_id']}: version {changes['a']} -> {changes['b']}", markup=False
    )
    for name, values in changes["fields"].items():
        out.print(f"{name}: {values['old']} -> {values['new']}", markup=False)
    if not any(op != "equal" for op, _ in changes["body"]):
        out.print("body: unchanged", markup=False)
        return
    text = Text()
    for op, piece in changes["body"]:
        if op == "equal":
            text.append(piece)
        elif plain:
            text.append(f"[-{piece}-]" if op == "delete" else f"{{+{piece}+}}")
        else:
            text.append(piece, style="red strike" if op == "delete" else "green underline")
    out.print(text)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


@contextlib.contextmanager
def archive_session(config: Settings) -> Iterator[Any]:
    """A read session on an up-to-date archive (one-line error if it is not)."""
    from archive.db import check_schema, make_engine, make_sessionmaker

    engine = make_engine(config.database_url)
    try:
        check_schema(engine)
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


class Versions(enum.StrEnum):
    latest = "latest"
    all = "all"
    pinned = "pinned"


SinceOption = Annotated[
    datetime | None, typer.Option(formats=DATE_FORMATS, help="Published on or after.")
]
UntilOption = Annotated[
    datetime | None, typer.Option(formats=DATE_FORMATS, help="Published before.")
]


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    format: Annotated[ExportFormat, typer.Option("--format", help="Output format.")],
    query: Annotated[str | None, typer.Argument(help="Optional search query.")] = None,
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    versions: Annotated[
        Versions | None,
        typer.Option(
            help="latest, all (a row or record per version) or pinned (a frozen "
            "collection's; its default)."
        ),
    ] = None,
    fields: Annotated[
        str | None, typer.Option(help="Columns to write, comma-separated (default: all).")
    ] = None,
    bom: Annotated[
        bool | None, typer.Option("--bom/--no-bom", help="CSV: a UTF-8 BOM first (Excel).")
    ] = None,
    bag: Annotated[
        bool, typer.Option("--bag", help="Package output and manifest as a BagIt bag.")
    ] = False,
) -> None:
    """Export articles (all, a query, or a collection) as csv, jsonl, parquet, xlsx or warc.

    Writes PATH and PATH.manifest.json (a WARC export also PATH.cdxj); nothing appears
    under those names until the export is complete.
    """
    from crawler.analysts import run_export, selection

    chosen = selection(query, collection, site, as_beijing(since), as_beijing(until),
                       versions.value if versions else None)  # fmt: skip
    run_export(settings(), err, chosen, output, format.value, fields, bom, bag)


class StatsBy(enum.StrEnum):
    day = "day"
    week = "week"
    month = "month"
    site = "site"
    source = "source"
    editor = "editor"


class StatsFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    png = "png"
    svg = "svg"


@app.command()
def stats(
    by: Annotated[StatsBy, typer.Option("--by", help="Count by period, site, source or editor.")],
    query: Annotated[str | None, typer.Argument(help="Optional search query.")] = None,
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    format: Annotated[
        StatsFormat, typer.Option("--format", help="table, csv, or a png/svg chart.")
    ] = StatsFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (charts need one).")
    ] = None,
) -> None:
    """Count articles by day, week, month (per site), site, source or editor; or chart them."""
    from crawler.analysts import run_stats, selection

    chosen = selection(query, collection, site, as_beijing(since), as_beijing(until))
    with archive_session(settings()) as session:
        run_stats(out, session, chosen, by.value, format.value, output)


def as_beijing(when: datetime | None) -> datetime | None:
    """Dates typed without a zone are Beijing time, like the pages they filter."""
    from datetime import timedelta, timezone

    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=timezone(timedelta(hours=8)))


@app.command()
def dedup(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Recompute all clusters.")] = False,
) -> None:
    """Recompute republication clusters (and their originals) from stored text."""
    from archive.db import check_schema, make_engine, make_sessionmaker
    from archive.dedup import rebuild as rebuild_clusters
    from archive.dedup import summary

    config = settings()
    engine = make_engine(config.database_url, writer=True)
    try:
        check_schema(engine)
        sessions = make_sessionmaker(engine)
        if rebuild:
            with err.status("clustering…"), sessions() as session, session.begin():
                count = rebuild_clusters(session)
            err.print(f"clustered {count} articles", markup=False)
        with sessions() as session:
            articles, clusters, copies = summary(session)
    finally:
        engine.dispose()
    out.print(
        f"{articles} articles, {clusters} republication clusters holding {copies} articles; "
        f"{articles - copies + clusters} distinct stories",
        markup=False,
    )


@app.command()
def reindex() -> None:
    """Rebuild the search index from stored articles."""
    from archive.db import check_schema, make_engine, make_sessionmaker

    config = settings()
    engine = make_engine(config.database_url, writer=True)
    try:
        check_schema(engine)
        sessions = make_sessionmaker(engine)
        count = rebuild_with_progress(sessions, "indexing")
    finally:
        engine.dispose()
    out.print(f"indexed {count} articles", markup=False)


@app.command()
def verify(
    site: Annotated[str | None, typer.Option(help="Only this site's WARC files.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(formats=DATE_FORMATS, help="Only files with records fetched on or after."),
    ] = None,
    format: Annotated[
        TextOrJson, typer.Option("--format", help="text summary or JSON.")
    ] = TextOrJson.text,
) -> None:
    """Fixity audit: every WARC record the archive points to is there and unaltered.

    Checks offset, length, record id and digests; lists damaged rows and unreferenced
    records; sets aside torn tails left by a crashed crawl. Exit 1 on any damage.
    """
    from crawler.verify import verify_command

    code = verify_command(settings(), out, err, site, as_beijing(since), format.value)
    if code:
        raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default web.host, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default web.port, 8410).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=32, help="Processes (default web.workers: one a core, at most 4)."),
    ] = None,
) -> None:
    """Serve the web UI for searching, browsing and reading the archive."""
    from web.server import exposure_warning
    from web.server import serve as run_web

    config = settings()
    bind = host or config.web.host
    warning = exposure_warning(config, bind)
    if warning:
        err.print(warning, markup=False)
    run_web(config, bind, config.web.port if port is None else port, workers)


@collections_app.command("list")
def collections_list(
    format: Annotated[TextOrJson, typer.Option("--format", help="text or JSON.")] = TextOrJson.text,
) -> None:
    """List collections: kind, article count, query, who made them."""
    from crawler.analysts import list_all

    config = settings()
    with archive_session(config) as session:
        list_all(config, out, format is TextOrJson.json, session)


@collections_app.command("create")
def collections_create(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    query: Annotated[
        str | None, typer.Option(help="Saved: this search, run again at every export.")
    ] = None,
    frozen_from: Annotated[
        str | None, typer.Option(help="Frozen: the articles this search finds now.")
    ] = None,
    ids: Annotated[str | None, typer.Option(help="Frozen: these article ids (1,2,3).")] = None,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who made it (default: your user name).")
    ] = None,
) -> None:
    """Create a collection: saved (--query) or frozen (--frozen-from, --ids)."""
    from archive.export import Filters
    from crawler.analysts import create

    filters = Filters(site, as_beijing(since), as_beijing(until))
    create(settings(), out, name, query, frozen_from, ids, filters, description, by)


@collections_app.command("add")
def collections_add(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    ids: Annotated[list[int], typer.Argument(help="Article ids.")],
) -> None:
    """Add articles to a frozen collection, pinned at their current versions."""
    from crawler.analysts import add_or_remove

    add_or_remove(settings(), out, name, ids, add=True)


@collections_app.command("remove")
def collections_remove(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    ids: Annotated[list[int], typer.Argument(help="Article ids.")],
) -> None:
    """Remove articles from a frozen collection (they stay in the archive)."""
    from crawler.analysts import add_or_remove

    add_or_remove(settings(), out, name, ids, add=False)


@collections_app.command("show")
def collections_show(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    limit: Annotated[int, typer.Option(min=1, help="How many articles to list.")] = 50,
    format: Annotated[TextOrJson, typer.Option("--format", help="text or JSON.")] = TextOrJson.text,
) -> None:
    """Show a collection and its first articles (with pinned and current versions)."""
    from crawler.analysts import show

    with archive_session(settings()) as session:
        show(out, name, limit, format is TextOrJson.json, session)


@collections_app.command("rename")
def collections_rename(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME", help="Its new name.")],
) -> None:
    """Rename a collection."""
    from crawler.analysts import rename

    rename(settings(), out, name, new_name)


@collections_app.command("delete")
def collections_delete(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a collection (its articles stay in the archive); asks first."""
    from crawler.analysts import delete

    delete(settings(), out, name, yes)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (scripts).")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Set a new password for an existing user.")
    ] = False,
) -> None:
    """Add a web UI user (asks for the password twice; it is stored only as a hash)."""
    from archive.users import add_user, check_password
    from crawler.analysts import write_session

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    check_password(password)
    with write_session(settings()) as session:
        add_user(session, name, password, replace=replace)
    out.print(f"user {name} {'updated' if replace else 'added'}", markup=False)


@users_app.command("list")
def users_list() -> None:
    """List the web UI's users and their last login."""
    from archive.users import list_users

    with archive_session(settings()) as session:
        for user in list_users(session):
            last = user.last_login.isoformat(timespec="seconds") if user.last_login else "never"
            out.print(f"{user.name}\tlast login {last}", markup=False)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Remove a web UI user."""
    from archive.users import remove_user
    from crawler.analysts import write_session

    with write_session(settings()) as session:
        remove_user(session, name)
    out.print(f"user {name} removed", markup=False)


def main() -> None:
    app(prog_name="ufarchive")
