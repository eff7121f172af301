"""Raw pages in WARC files: the writer the crawler appends to and the reader `show --raw` uses.

Files are gzip WARC 1.1 under `<data_dir>/warc/`, one writer (one crawl process) per file,
rotated past a size. Each record is its own gzip member and is flushed and fsynced
before the database row that points at it is committed, so a process that dies mid-write
leaves every earlier record readable and no row points at a record that is not there.

A writer holds an exclusive `flock` on its file and keeps a marker `NAME.warc.gz.open`
beside it until it closes the file. A marker whose file nobody holds is the trace of a
writer that died: its file may end in a torn gzip member, which `archive.fixity` sets
aside before anyone serves or copies the file. Paths read from the database are checked
to stay inside `<data_dir>/warc/` (a damaged or forged row cannot make us read elsewhere).
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archive.errors import UfarchiveError

WARC_SUBDIR = "warc"
OPEN_SUFFIX = ".open"  # the marker of a file whose writer has not closed it (yet)
# Headers that describe the transfer, not the payload we store: Scrapy has already
# undone the content and transfer encodings, so the record states the real length.
_TRANSFER_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}


@dataclass(frozen=True)
class WarcLocation:
    """Where a response record is: the file (relative to the data dir) and its bytes."""

    file: str
    offset: int
    length: int
    record_id: str
    payload_digest: str | None


@dataclass(frozen=True)
class WarcRecord:
    url: str
    record_type: str
    date: str
    status: int | None
    http_headers: list[tuple[str, str]]
    payload: bytes


class WarcFileWriter:
    """Appends request/response pairs to rotating gzip WARC files of one process."""

    def __init__(self, data_dir: Path, max_bytes: int, prefix: str = "ufarchive") -> None:
        self.data_dir = data_dir
        self.directory = data_dir / WARC_SUBDIR
        self.max_bytes = max_bytes
        self.prefix = prefix
        self._fh: BinaryIO | None = None
        self._name = ""
        self._seq = 0
        self._stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        self._writer = WARCWriter(None, gzip=True, warc_version="1.1")
        # sync() may come from another thread (a crawl worker stores its batches in one)
        # while this one writes; the lock keeps it off a file being closed by a rotation
        self._closing = threading.RLock()

    def write_exchange(
        self,
        url: str,
        *,
        method: str,
        request_headers: Iterable[tuple[str, str]],
        status: int,
        reason: str,
        response_headers: Iterable[tuple[str, str]],
        body: bytes,
        fetched_at: datetime,
        ip_address: str | None = None,
        sync: bool = True,
    ) -> WarcLocation:
        """Write the response record and its request record; return the response's place.

        With `sync=False` the caller must call `sync()` before committing rows that point
        at the record (the crawl pipeline does, once per batch).
        """
        extra = _warc_headers(fetched_at, ip_address)
        headers = [(k, v) for k, v in response_headers if k.lower() not in _TRANSFER_HEADERS]
        headers.append(("Content-Length", str(len(body))))
        response = self._writer.create_warc_record(
            url,
            "response",
            payload=BytesIO(body),
            length=len(body),
            warc_headers_dict=extra,
            http_headers=StatusAndHeaders(
                f"{status} {reason}".strip(), headers, protocol="HTTP/1.1"
            ),
        )
        return self._write_pair(response, url, method, request_headers, extra, sync)

    def write_revisit(
        self,
        url: str,
        *,
        method: str,
        request_headers: Iterable[tuple[str, str]],
        status: int,
        reason: str,
        response_headers: Iterable[tuple[str, str]],
        payload_digest: str,
        refers_to: tuple[str, str, datetime],
        fetched_at: datetime,
        ip_address: str | None = None,
        sync: bool = True,
    ) -> WarcLocation:
        """A page identical to one archived before: a WARC 1.1 `revisit` record (profile
        identical-payload-digest) with the response's status and headers and no payload,
        referring to the earlier response (record id, target URI, date), and its request."""
        extra = _warc_headers(fetched_at, ip_address)
        record_id, target_uri, target_date = refers_to
        extra["WARC-Refers-To"] = record_id
        headers = [(k, v) for k, v in response_headers if k.lower() not in _TRANSFER_HEADERS]
        revisit = self._writer.create_revisit_record(
            url,
            payload_digest,
            target_uri,
            warc_date(target_date),
            http_headers=StatusAndHeaders(
                f"{status} {reason}".strip(), headers, protocol="HTTP/1.1"
            ),
            warc_headers_dict=extra,
        )
        return self._write_pair(revisit, url, method, request_headers, extra, sync)

    def _write_pair(
        self,
        record: Any,
        url: str,
        method: str,
        request_headers: Iterable[tuple[str, str]],
        extra: dict[str, str],
        sync: bool,
    ) -> WarcLocation:
        fh = self._file()
        request = self._writer.create_warc_record(
            url,
            "request",
            payload=BytesIO(b""),
            length=0,
            warc_headers_dict={k: v for k, v in extra.items() if k != "WARC-Refers-To"},
            http_headers=StatusAndHeaders(
                f"{method} {url_path(url)} HTTP/1.1", list(request_headers), is_http_request=True
            ),
        )
        record_id = str(record.rec_headers.get_header("WARC-Record-ID"))
        request.rec_headers.add_header("WARC-Concurrent-To", record_id)
        pair = BytesIO()
        self._writer.out = pair
        self._writer.write_record(record)
        length = pair.tell()
        self._writer.write_record(request)
        offset = self._append(pair.getbuffer())
        if sync:
            sync_file(fh.fileno())
        digest = record.rec_headers.get_header("WARC-Payload-Digest")
        return WarcLocation(
            file=f"{WARC_SUBDIR}/{self._name}",
            offset=offset,
            length=length,
            record_id=record_id,
            payload_digest=str(digest) if digest else None,
        )

    def _append(self, data: memoryview) -> int:
        """Append whole records; returns where they start. A write that fails (the disk is
        full) is undone: the file is cut back to where the records began, so that no half
        record stays in the middle of it for the next one to follow."""
        fh = self._fh
        assert fh is not None
        offset = fh.tell()
        try:
            while data:
                written = fh.write(data)  # unbuffered: a short write says how much went
                data = data[written or 0 :]
        except OSError:
            os.ftruncate(fh.fileno(), offset)
            fh.seek(offset)
            raise
        return offset

    def sync(self) -> None:
        """Make every record written so far durable (before rows pointing at them commit):
        those of the open file (a file rotated away was synced as it closed)."""
        with self._closing:
            if self._fh is not None:
                sync_file(self._fh.fileno())

    def close(self) -> None:
        with self._closing:
            if self._fh is not None:
                self.sync()
                # The marker goes first, the lock (with the descriptor) last: a file without
                # a marker is complete, and nobody seals a file whose lock is still held.
                open_marker(self.directory / self._name).unlink(missing_ok=True)
                self._fh.close()
                self._fh = None

    def _file(self) -> BinaryIO:
        if self._fh is not None and self._fh.tell() < self.max_bytes:
            return self._fh
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        # host and process in the name: crawl workers on many hosts share one data volume
        # (and a pid may repeat on another host), so no two writers ever open one file
        self._name = (
            f"{self.prefix}-{self._stamp}-{file_host()}-{os.getpid()}-{self._seq:05d}.warc.gz"
        )
        path = self.directory / self._name
        fh = path.open("ab", buffering=0)  # whole records go in one write (see _append)
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # held until close (or the process dies)
        open_marker(path).write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")
        self._fh = fh
        info = self._writer.create_warcinfo_record(
            self._name,
            {
                "software": "ufarchive",
                "format": "WARC File Format 1.1",
                "hostname": socket.gethostname(),
            },
        )
        record = BytesIO()
        self._writer.out = record
        self._writer.write_record(info)
        self._append(record.getbuffer())
        return fh


def file_host() -> str:
    """This host's name as it may appear in a file name."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def warc_date(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _warc_headers(fetched_at: datetime, ip_address: str | None) -> dict[str, str]:
    return {
        "WARC-Date": warc_date(fetched_at),
        **({"WARC-IP-Address": ip_address} if ip_address else {}),
    }


def payload_digest(body: bytes) -> str:
    """The WARC-Payload-Digest warcio writes for this payload (sha1, base32)."""
    import base64
    import hashlib

    return "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode("ascii")


# fdatasync is enough for an append (it covers the new size) and cheaper than fsync.
sync_file = getattr(os, "fdatasync", os.fsync)


def url_path(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def open_marker(path: Path) -> Path:
    return path.with_name(path.name + OPEN_SUFFIX)


def is_being_written(path: Path) -> bool:
    """Does a live writer hold this WARC file? (Its lock goes when the process dies.)"""
    try:
        with path.open("rb") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False


def warc_path(data_dir: Path, file: str) -> Path:
    """The WARC file a database row names, which must lie inside `<data_dir>/warc/`."""
    folder = (data_dir / WARC_SUBDIR).resolve()
    path = (data_dir / file).resolve()
    if folder not in path.parents:
        raise UfarchiveError(f"{file}: WARC file outside {data_dir / WARC_SUBDIR}: refused")
    return path


def read_record(data_dir: Path, file: str, offset: int) -> WarcRecord:
    """The record at `offset` of a WARC file under the data dir."""
    path = warc_path(data_dir, file)
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            for record in ArchiveIterator(fh):
                return _to_record(record)
    except OSError as exc:
        raise UfarchiveError(f"{path}: cannot read WARC file: {exc.strerror or exc}") from None
    raise UfarchiveError(f"{path}: no WARC record at offset {offset}")


def iter_records(path: Path, check_digests: bool = False) -> Iterator[WarcRecord]:
    """Every record of a WARC file, in order (digests verified when asked)."""
    with path.open("rb") as fh:
        for record in ArchiveIterator(fh, check_digests=check_digests):
            yield _to_record(record)


def _to_record(record: Any) -> WarcRecord:
    http = record.http_headers
    status = (
        int(http.get_statuscode()) if http is not None and record.rec_type == "response" else None
    )
    return WarcRecord(
        url=str(record.rec_headers.get_header("WARC-Target-URI") or ""),
        record_type=str(record.rec_type),
        date=str(record.rec_headers.get_header("WARC-Date") or ""),
        status=status,
        http_headers=list(http.headers) if http is not None else [],
        payload=record.content_stream().read(),
    )
