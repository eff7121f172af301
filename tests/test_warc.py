"""WARC files: records read back with their digests, and a writer killed mid-file loses nothing earlier."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from archive.warc import WarcFileWriter, iter_records, read_record


def write(writer: WarcFileWriter, n: int) -> object:
    body = f"<html><body>统一战线 {n}</body></html>".encode("gbk")
    return writer.write_exchange(
        f"http://127.0.0.1:9/a{n}.html", method="GET", request_headers=[("User-Agent", "t")], status=200,
        reason="OK", response_headers=[("Content-Type", "text/html; charset=gbk"), ("Content-Encoding", "gzip")],
        body=body, fetched_at=datetime(2024, 2, 7, 2, 29, 35, tzinfo=UTC),
    )  # fmt: skip


def test_records_read_back_with_digests_and_files_rotate(tmp_path: Path) -> None:
    writer = WarcFileWriter(tmp_path, max_bytes=1_000_000)
    writer.max_bytes = 1500  # rotate every few records
    locations = [write(writer, n) for n in range(6)]
    writer.close()
    files = {loc.file for loc in locations}  # type: ignore[attr-defined]
    assert len(files) > 1
    for n, loc in enumerate(locations):
        record = read_record(tmp_path, loc.file, loc.offset)  # type: ignore[attr-defined]
        assert record.payload.decode("gbk").endswith(f"统一战线 {n}</body></html>")
        assert record.date.startswith("2024-02-07T02:29:35")
        assert ("Content-Encoding", "gzip") not in record.http_headers  # the body is stored decoded
        assert ("Content-Length", str(len(record.payload))) in record.http_headers
    for file in files:
        kinds = [r.record_type for r in iter_records(tmp_path / file, check_digests=True)]
        assert kinds[0] == "warcinfo" and kinds.count("response") == kinds.count("request")


def test_a_writer_killed_mid_file_leaves_earlier_records_readable(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from datetime import UTC, datetime
        from pathlib import Path
        from archive.warc import WarcFileWriter
        writer = WarcFileWriter(Path({str(tmp_path)!r}), max_bytes=10**9)
        n = 0
        while True:
            loc = writer.write_exchange(f"http://127.0.0.1:9/{{n}}.html", method="GET", request_headers=[],
                status=200, reason="OK", response_headers=[], body=b"x" * 5000 + str(n).encode(),
                fetched_at=datetime.now(UTC))
            print(loc.file, loc.offset, flush=True)
            n += 1
    """)
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        written = [child.stdout.readline().split() for _ in range(20)]
        time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    for n, (file, offset) in enumerate(written):
        record = read_record(tmp_path, file, int(offset))
        assert record.payload.endswith(str(n).encode())
    # the torn tail (if any) is the only casualty: every complete record iterates with its digest
    read = []
    try:
        for record in iter_records(tmp_path / written[0][0], check_digests=True):
            read.append(record)
    except Exception:  # noqa: BLE001 - a torn last gzip member may raise; earlier ones must not
        pass
    assert sum(r.record_type == "response" for r in read) >= len(written)
