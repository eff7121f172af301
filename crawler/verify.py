"""`ufarchive verify`: the fixity audit (archive.fixity) with a progress bar and a summary.

Exit 0 when every record the archive points to is there and unaltered, 1 on any damage
(the problems are listed one a line, and a `fixity` alert is raised for each damaged site).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console

from archive.settings import Settings

SHOWN = 20  # unreferenced records listed in the text summary


def verify_command(
    config: Settings,
    out: Console,
    err: Console,
    site: str | None = None,
    since: datetime | None = None,
    output_format: str = "text",
) -> int:
    import json
    from dataclasses import asdict

    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from archive.db import check_schema, make_engine, make_sessionmaker
    from archive.fixity import run_audit

    engine = make_engine(config.database_url, writer=True)
    try:
        check_schema(engine)
        progress = Progress(
            TextColumn("verifying"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=err, transient=True,
        )  # fmt: skip
        with progress:
            task = progress.add_task("verify", total=None)
            report, _ = run_audit(
                make_sessionmaker(engine), config.data_dir, site=site, since=since,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )  # fmt: skip
    finally:
        engine.dispose()
    if output_format == "json":
        out.print_json(
            json.dumps(
                {
                    "clean": report.clean, "files": report.files, "bytes": report.bytes,
                    "records": report.records, "records_ok": report.records_ok,
                    "problems": [asdict(p) for p in report.problems],
                    "unreferenced": [asdict(u) for u in report.unreferenced],
                    "torn_set_aside": [asdict(t) for t in report.torn],
                },
                ensure_ascii=False,
            )
        )  # fmt: skip
    else:
        out.print(summary_table(report))
        for torn in report.torn:
            out.print(
                f"set aside: {torn.file}@{torn.offset}: a torn record of {torn.length} bytes "
                f"(its writer died mid-write), kept in {torn.kept_as}",
                markup=False,
            )
        for record in report.unreferenced[:SHOWN]:
            out.print(f"unreferenced: {record.file}@{record.offset}: {record.url}", markup=False)
        if len(report.unreferenced) > SHOWN:
            more = len(report.unreferenced) - SHOWN
            out.print(
                f"unreferenced: … and {more} more (--format json lists them all)", markup=False
            )
        for problem in report.problems:
            err.print(f"damaged: {problem.describe()}", markup=False)
    return 0 if report.clean else 1


def summary_table(report: Any) -> Any:
    from rich.table import Table

    table = Table(title="fixity: " + ("clean" if report.clean else "DAMAGED"))
    table.add_column("", justify="left")
    table.add_column("count", justify="right")
    kinds: dict[str, int] = {}
    for problem in report.problems:
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    rows = [
        ("WARC files read", report.files),
        ("bytes read", report.bytes),
        ("records checked", report.records),
        ("records intact", report.records_ok),
        *((f"damaged: {kind}", n) for kind, n in sorted(kinds.items())),
        ("unreferenced records (a crawl died before storing them; harmless)", len(report.unreferenced)),
        ("torn tails set aside", len(report.torn)),
    ]  # fmt: skip
    if report.in_progress:
        rows.append(("files a running crawl is writing", report.in_progress))
    for name, value in rows:
        table.add_row(name, f"{value:,}")
    return table
