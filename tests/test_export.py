"""Exports read back with the tools analysts use (pandas, pyarrow, DuckDB, openpyxl, warcio)
and compared with the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner
from warcio.archiveiterator import ArchiveIterator

from archive.export import (
    EXPORT_COLUMNS,
    ExportError,
    Filters,
    Options,
    Selection,
    export_file,
    stream_export,
)
from archive.exporters.xlsx import CELL_LIMIT
from crawler.cli import app
from tests.exportworld import (
    ARTICLES,
    EDITED_BODY,
    LONG_BODY,
    ExportWorld,
    bulk_articles,
    expected_records,
    make_export_world,
)

UFARCHIVE = str(Path(sys.executable).with_name("ufarchive"))
FORMULA_TITLE = ARTICLES[1][2]["title"]


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> ExportWorld:
    return make_export_world(tmp_path, database_url)


def export(world: ExportWorld, *args: str) -> Any:
    result = CliRunner().invoke(app, ["export", *args], env=world.env())
    assert result.exit_code == 0, result.output
    return result


def expected(world: ExportWorld, versions: str = "latest") -> list[dict[str, Any]]:
    with world.session() as session:
        return expected_records(session, versions)


def as_text(value: Any) -> str:
    """A record value as the CSV holds it (neutralised like a spreadsheet needs)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def test_jsonl_is_the_database_byte_for_byte(world: ExportWorld, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    result = export(world, "--format", "jsonl", "--output", str(out))
    want = expected(world)
    assert f"wrote {len(want)} articles to {out}" in result.stderr
    raw = out.read_bytes()
    records = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert records == want and all(list(r) == list(EXPORT_COLUMNS) for r in records)
    assert [r["status"] for r in records].count("gone") == 1  # with its gone_at
    assert all(r["last_checked"] for r in records) and sum(bool(r["gone_at"]) for r in records) == 1
    for record in want:  # Chinese as UTF-8, not \\u escapes
        assert json.dumps(record["title"], ensure_ascii=False).encode() in raw
    frame = pd.read_json(io.BytesIO(raw), lines=True, dtype=False)
    assert frame["title"].tolist() == [r["title"] for r in want]
    assert frame["body"].tolist() == [r["body"] for r in want]


def test_csv_opens_in_excel_and_reads_back_in_pandas(world: ExportWorld, tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    export(world, "--format", "csv", "--output", str(out))
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfid,url,") and b"\r\n" in raw
    with out.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    want = expected(world)
    assert [list(r) for r in rows[:1]] == [list(EXPORT_COLUMNS)]
    assert rows == [{k: as_text(v) for k, v in r.items()} for r in want]
    # the body with newlines, quotes and commas survives RFC 4180 quoting exactly
    quoted = next(r for r in rows if r["id"] == str(want[0]["id"]))
    assert quoted["body"] == ARTICLES[0][2]["body"] and '"' in quoted["body"]
    frame = pd.read_csv(out, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert frame.to_dict("records") == rows


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(
    world: ExportWorld, tmp_path: Path
) -> None:
    out = tmp_path / "all.csv"
    export(world, "--format", "csv", "--output", str(out), "--no-bom")
    assert out.read_bytes().startswith(b"id,url,")
    with out.open(encoding="utf-8", newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    formula = rows[str(world.ids[ARTICLES[1][1]])]
    assert formula["title"] == "'" + FORMULA_TITLE
    assert formula["source"] == "'@人民网" and formula["author"] == "'+86 10 1234"
    assert formula["body"].startswith("'-2+3")
    assert rows[str(world.ids[ARTICLES[4][1]])]["body"].startswith("'\t缩进")
    cells = [v for r in rows.values() for v in r.values()]
    assert not [v for v in cells if v[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_parquet_has_typed_columns_and_reads_in_pandas_pyarrow_duckdb_and_polars(
    world: ExportWorld, tmp_path: Path
) -> None:
    out = tmp_path / "all.parquet"
    export(world, "--format", "parquet", "--output", str(out))
    table = pq.read_table(out)
    types = {f.name: str(f.type) for f in table.schema}
    assert list(types) == list(EXPORT_COLUMNS)
    assert types["publish_time"] == types["first_seen"] == "timestamp[us, tz=UTC]"
    assert types["id"] == types["version"] == types["cluster_id"] == "int64"
    assert types["is_original"] == "bool" and types["body"] == "string"
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"
    want = expected(world)
    got = table.to_pylist()
    for row, record in zip(got, want, strict=True):
        for name in EXPORT_COLUMNS:
            value = row[name]
            if (
                name in ("publish_time", "first_seen", "last_seen", "last_checked", "gone_at")
                and value
            ):
                assert value == pd.Timestamp(record[name]).to_pydatetime(), name
            else:
                assert value == record[name], name
    frame = pd.read_parquet(out)
    assert frame["title"].tolist() == [r["title"] for r in want]
    assert str(frame["publish_time"].dtype) == "datetime64[us, UTC]"
    import duckdb
    import polars

    [(count, bodies)] = duckdb.sql(f"SELECT count(*), sum(length(body)) FROM '{out}'").fetchall()
    assert count == len(want) and bodies == sum(len(r["body"]) for r in want)
    frame = polars.read_parquet(out)
    assert frame["body"].to_list() == [r["body"] for r in want]
    assert str(frame.schema["publish_time"]) == "Datetime(time_unit='us', time_zone='UTC')"


def test_xlsx_keeps_text_as_text_and_cuts_long_cells(world: ExportWorld, tmp_path: Path) -> None:
    out = tmp_path / "all.xlsx"
    export(world, "--format", "xlsx", "--output", str(out))
    book = load_workbook(out)
    assert book.sheetnames == ["articles"]
    sheet = book["articles"]
    header = [c.value for c in sheet[1]]
    assert header == [*EXPORT_COLUMNS, "truncated"]
    rows = [
        dict(zip(header, (c.value for c in row), strict=True)) for row in sheet.iter_rows(min_row=2)
    ]
    want = expected(world)
    assert len(rows) == len(want)
    for row, record in zip(rows, want, strict=True):
        for name in EXPORT_COLUMNS:
            value = record[name]
            if name == "body" and value == LONG_BODY:
                assert len(row[name]) == CELL_LIMIT and row[name].startswith(value[:1000])
                assert row[name].endswith(f"…[cut: {len(LONG_BODY):,} characters in all]")
                assert row["truncated"] == "body"
            elif name == "body" and "\x0b" in value:
                assert row[name] == value.replace("\x0b", "")
            else:
                assert row[name] == value, name
    formula_row = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == want[1]["id"])
    title = formula_row[EXPORT_COLUMNS.index("title")]
    assert title.data_type == "s" and title.value == FORMULA_TITLE


def test_xlsx_goes_on_in_a_new_sheet_past_the_row_limit(world: ExportWorld, tmp_path: Path) -> None:
    (world.config_dir / "settings.yaml").write_text("export:\n  xlsx_max_rows: 4\n", "utf-8")
    out = tmp_path / "split.xlsx"
    export(world, "--format", "xlsx", "--output", str(out), "--fields", "id,title")
    book = load_workbook(out, read_only=True)
    assert book.sheetnames == ["articles", "articles 2"]
    first, second = (list(book[name].iter_rows(values_only=True)) for name in book.sheetnames)
    assert first[0] == second[0] == ("id", "title", "truncated")
    want = expected(world)
    assert [r[:2] for r in first[1:] + second[1:]] == [(r["id"], r["title"]) for r in want]
    assert len(first) == 5 and len(second) == len(want) - 4 + 1


def test_xlsx_goes_on_in_a_new_sheet_before_a_member_needs_zip64(
    world: ExportWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sheet ends while one more row of the largest kind still fits under the zip
    member limit (2 GiB here; a byte budget just above one row's worst case in the test),
    so a million-row export never needs ZIP64 nor fails at Python's zipfile limit."""
    from archive.exporters import xlsx

    worst = 3 * (2 + 1) * (xlsx.CELL_LIMIT + 200)  # --fields id,body and the truncated column
    monkeypatch.setattr(xlsx, "ZIP32_LIMIT", worst + 50_000)
    out = tmp_path / "bytes.xlsx"
    export(world, "--format", "xlsx", "--output", str(out), "--fields", "id,body")
    book = load_workbook(out, read_only=True)
    assert len(book.sheetnames) >= 2
    rows = [
        row for name in book.sheetnames for row in list(book[name].iter_rows(values_only=True))[1:]
    ]
    assert [r[0] for r in rows] == [r["id"] for r in expected(world)]
    with zipfile.ZipFile(out) as package:
        sheets = [i for i in package.infolist() if i.filename.startswith("xl/worksheets/")]
        assert all(i.file_size <= worst + 50_000 for i in sheets)


def test_fields_and_filters_choose_columns_and_rows(world: ExportWorld, tmp_path: Path) -> None:
    out = tmp_path / "some.jsonl"
    export(world, "--format", "jsonl", "-o", str(out), "--fields", "title,id,site",
           "--site", "tzb_tw", "--since", "2024-03-11")  # fmt: skip
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert records == [
        {"title": ARTICLES[3][2]["title"], "id": world.ids[ARTICLES[3][1]], "site": "tzb_tw"}
    ]
    result = CliRunner().invoke(
        app, ["export", "--format", "csv", "-o", str(out), "--fields", "id,nosuch"], env=world.env()
    )
    assert result.exit_code == 2 and "--fields id,nosuch: unknown field nosuch" in result.stderr


def test_a_query_exports_every_match_copies_included(world: ExportWorld, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    export(world, "统战", "--format", "jsonl", "-o", str(out))
    got = [json.loads(line)["id"] for line in out.read_text("utf-8").splitlines()]
    want = [r["id"] for r in expected(world) if "统战" in (r["title"] or "") + r["body"]
            or "統戰" in (r["title"] or "") + r["body"]]  # fmt: skip
    assert got == want and len(want) >= 3
    manifest = json.loads((tmp_path / "q.jsonl.manifest.json").read_text("utf-8"))
    assert manifest["query"] == "统战" and manifest["records"] == len(want)


def test_versions_all_gives_a_row_per_version(world: ExportWorld, tmp_path: Path) -> None:
    out = tmp_path / "v.jsonl"
    export(world, "--format", "jsonl", "-o", str(out), "--versions", "all")
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert records == expected(world, "all")
    edited = [r for r in records if r["url"] == ARTICLES[-1][1]]
    assert [(r["version"], r["body"]) for r in edited] == [
        (1, ARTICLES[-1][2]["body"]),
        (2, EDITED_BODY),
    ]
    assert edited[0]["first_seen"] < edited[1]["first_seen"]


def test_the_manifest_vouches_for_the_files(world: ExportWorld, tmp_path: Path) -> None:
    out = tmp_path / "m.parquet"
    with world.session() as session:
        export_file(
            session, out, "parquet", Selection(filters=Filters(site="zytzb")),
            database_url="postgresql+psycopg://analyst:s3cret@db.example:5432/ufarchive",
        )  # fmt: skip
    manifest = json.loads((tmp_path / "m.parquet.manifest.json").read_text("utf-8"))
    assert manifest["files"] == [
        {"name": "m.parquet", "bytes": out.stat().st_size,
         "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
    ]  # fmt: skip
    assert "s3cret" not in json.dumps(manifest) and manifest["database"].startswith(
        "postgresql+psycopg://analyst:***@db.example"
    )
    assert manifest["counts_by_site"] == {"zytzb": 2} and manifest["records"] == 2
    assert manifest["filters"]["site"] == "zytzb" and manifest["schema_version"]
    assert manifest["tool"] == "ufarchive" and manifest["format"] == "parquet"


def test_a_bag_validates(world: ExportWorld, tmp_path: Path) -> None:
    import bagit

    out = tmp_path / "bagged.csv"
    result = export(world, "--format", "csv", "-o", str(out), "--bag")
    bag_dir = tmp_path / "bagged"
    assert f"to {bag_dir}" in result.stderr and not out.exists()
    bag = bagit.Bag(str(bag_dir))
    bag.validate()
    assert sorted(bag.payload_files()) == ["data/bagged.csv", "data/bagged.csv.manifest.json"]
    manifest = json.loads((bag_dir / "data" / "bagged.csv.manifest.json").read_text("utf-8"))
    data = (bag_dir / "data" / "bagged.csv").read_bytes()
    assert manifest["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    (bag_dir / "data" / "bagged.csv").write_bytes(data.replace("统战".encode(), "統戰".encode()))
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(bag_dir)).validate()
    again = CliRunner().invoke(
        app, ["export", "--format", "csv", "-o", str(out), "--bag"], env=world.env()
    )
    assert again.exit_code == 2 and "the bag folder exists already" in again.stderr


def test_the_warc_export_passes_warcio_check_and_its_cdxj_finds_each_page(
    world: ExportWorld, tmp_path: Path
) -> None:
    out = tmp_path / "pages.warc.gz"
    export(world, "--format", "warc", "-o", str(out), "--versions", "all")
    check = subprocess.run(
        [str(Path(sys.executable).with_name("warcio")), "check", "-v", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("digest pass") == 1 + 2 * (len(ARTICLES) + 1)
    with out.open("rb") as fh:
        kinds = [r.rec_type for r in ArchiveIterator(fh)]
    assert kinds == ["warcinfo"] + ["response", "request"] * (len(ARTICLES) + 1)
    lines = (tmp_path / "pages.warc.gz.cdxj").read_text("utf-8").splitlines()
    assert lines == sorted(lines) and len(lines) == len(ARTICLES) + 1
    for _, url, _ in ARTICLES:
        found = [json.loads(line.split(" ", 2)[2]) for line in lines if f'"url": "{url}"' in line]
        versions = 2 if url == ARTICLES[-1][1] else 1
        assert len(found) == versions
        payloads = []
        for entry in found:
            assert entry["filename"] == "pages.warc.gz" and entry["status"] == "200"
            with out.open("rb") as fh:
                fh.seek(int(entry["offset"]))
                record = next(iter(ArchiveIterator(fh)))
                assert record.rec_headers.get_header("WARC-Target-URI") == url
                payloads.append(record.content_stream().read())
        assert sorted(payloads) == sorted(world.html(url, v) for v in range(1, versions + 1))
    # the index made from the database is the one cdxj-indexer makes reading the file
    from cdxj_indexer.main import write_cdx_index

    write_cdx_index(str(tmp_path / "reread.cdxj"), [str(out)], {"sort": True})
    assert (tmp_path / "reread.cdxj").read_text("utf-8").splitlines() == lines
    manifest = json.loads((tmp_path / "pages.warc.gz.manifest.json").read_text("utf-8"))
    assert [f["name"] for f in manifest["files"]] == ["pages.warc.gz", "pages.warc.gz.cdxj"]
    assert manifest["records"] == len(ARTICLES) + 1 and manifest["versions"] == "all"


def test_latest_warc_holds_the_current_version_only(world: ExportWorld, tmp_path: Path) -> None:
    out = tmp_path / "latest.warc.gz"
    export(world, "--format", "warc", "-o", str(out), "--site", "gbk_city")
    with out.open("rb") as fh:
        pages = [r.content_stream().read() for r in ArchiveIterator(fh) if r.rec_type == "response"]
    assert pages == [world.html(ARTICLES[4][1]), world.html(ARTICLES[5][1], 2)]


def test_streamed_chunks_equal_the_file(world: ExportWorld, tmp_path: Path) -> None:
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"s.{fmt}"
        with world.session() as session:
            export_file(session, out, fmt)
            streamed = b"".join(stream_export(session, Selection(), fmt))
        assert streamed == out.read_bytes()
    with world.session() as session:
        parquet = b"".join(stream_export(session, Selection(), "parquet", Options(fields=("id",))))
    assert pq.read_table(io.BytesIO(parquet)).column("id").to_pylist() == [
        r["id"] for r in expected(world)
    ]


def test_a_web_stream_checks_first_and_reads_in_a_session_of_its_own(
    world: ExportWorld, tmp_path: Path
) -> None:
    from archive.collections import CollectionError
    from archive.db import make_engine, make_sessionmaker
    from archive.export import open_stream
    from archive.search import QueryError

    engine = make_engine(world.database_url)
    sessions = make_sessionmaker(engine)
    try:
        with pytest.raises(QueryError):
            open_stream(sessions, Selection(query='"unclosed'), "csv")
        with pytest.raises(CollectionError, match="no such collection"):
            open_stream(sessions, Selection(collection="nosuch"), "jsonl")
        with pytest.raises(ExportError, match="format pdf: unknown"):
            open_stream(sessions, Selection(), "pdf")
        chunks = open_stream(
            sessions, Selection(query="统战", filters=Filters(site="zytzb")), "csv"
        )
        frame = pd.read_csv(io.BytesIO(b"".join(chunks)), encoding="utf-8-sig")
        assert frame["id"].tolist() == [world.ids[ARTICLES[0][1]]]
    finally:
        engine.dispose()


def test_bad_exports_fail_in_one_line_and_leave_nothing(world: ExportWorld, tmp_path: Path) -> None:
    for args, message in [
        (["--format", "jsonl", "-o", str(tmp_path / "missing" / "x.jsonl")], "does not exist"),
        (["--format", "jsonl", "-o", str(tmp_path / "x.jsonl"), "--collection", "nosuch"],
         "collection 'nosuch': no such collection"),
        (["--format", "jsonl", "-o", str(tmp_path / "x.jsonl"), "--versions", "pinned"],
         "only a frozen collection pins versions"),
        (["--format", "warc", "-o", str(tmp_path / "x.warc"), "--fields", "id"],
         "a WARC export holds the archived records"),
        (['"unclosed', "--format", "jsonl", "-o", str(tmp_path / "x.jsonl")], "is not closed"),
    ]:  # fmt: skip
        result = CliRunner().invoke(app, ["export", *args], env=world.env())
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "data"]
    with world.session() as session, pytest.raises(ExportError):
        export_file(session, tmp_path / "x.pdf", "pdf")


def test_an_export_interrupted_by_sigint_leaves_no_file(tmp_path: Path, sqlite_url: str) -> None:
    bulk_articles(sqlite_url, 40_000)
    env = {**os.environ, "UFARCHIVE_DATABASE_URL": sqlite_url,
           "UFARCHIVE_CONFIG": str(tmp_path / "config"), "UFARCHIVE_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    process = subprocess.Popen(
        [UFARCHIVE, "export", "--format", "jsonl", "-o", str(out_dir / "big.jsonl")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def written() -> int:  # bytes in the staging folder so far
        return sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())

    deadline = time.monotonic() + 120
    while written() < 1_000_000 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the export ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and stderr.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert list(out_dir.iterdir()) == []


def test_progress_shows_on_a_terminal_and_not_in_a_pipe(tmp_path: Path, sqlite_url: str) -> None:
    import pty

    bulk_articles(sqlite_url, 20_000)
    env = {**os.environ, "UFARCHIVE_DATABASE_URL": sqlite_url, "COLUMNS": "120",
           "UFARCHIVE_CONFIG": str(tmp_path / "config"), "UFARCHIVE_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    piped = subprocess.run(
        [UFARCHIVE, "export", "--format", "jsonl", "-o", str(tmp_path / "piped.jsonl")],
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr.splitlines()[0] == f"wrote 20000 articles to {tmp_path / 'piped.jsonl'}"
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [UFARCHIVE, "export", "--format", "jsonl", "-o", str(tmp_path / "tty.jsonl")],
        env={**env, "TERM": "xterm"}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=follower,
    )  # fmt: skip
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = screen.decode("utf-8", "replace")
    assert "exporting jsonl" in text and "rows/s" in text and "ETA" in text
    assert "/20000" in text or "/20,000" in text


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "xlsx"])
def test_a_format_stopped_mid_way_cleans_up_after_itself(fmt: str) -> None:
    """An interrupt raised while rows are read (the usual place) goes through each format
    and leaves nothing for the garbage collector to fail on (pytest reports that)."""
    import gc

    from archive.exporters import WRITERS

    rows = [(1, "u", "c", "s", "t", None, None, None, None, None, "b", None, None, "h", 1, None,
             True, "live", None, None)]  # fmt: skip

    def interrupted() -> Iterator[list[tuple[Any, ...]]]:
        yield rows
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b"".join(WRITERS[fmt](interrupted(), Options()))
    gc.collect()


def test_read_ahead_gives_every_part_in_order_raises_the_readers_error_and_stops_when_closed() -> (
    None
):
    """archive.export.read_ahead (a PostgreSQL export's next batch fetched while this one is
    written): the parts in order; an error in the reading thread raised to the reader;
    a generator closed early (a web client gone) stops its thread, which took only a few
    parts ahead."""
    from archive.export import read_ahead

    assert list(read_ahead(iter(range(10)))) == list(range(10))

    def failing() -> Iterator[int]:
        yield 1
        raise OSError("server closed the connection unexpectedly")

    parts = read_ahead(failing())
    assert next(parts) == 1
    with pytest.raises(OSError, match="server closed"):
        next(parts)

    taken: list[int] = []

    def counted() -> Iterator[int]:
        for n in range(1000):
            taken.append(n)
            yield n

    parts = read_ahead(counted(), depth=2)
    assert next(parts) == 0
    parts.close()
    assert len(taken) <= 5  # the one given, two waiting, one in the thread's hands
    assert not [t for t in threading.enumerate() if t.name == "export-read-ahead"]
