"""WARC export: the selection's archived response records, each followed by its request
record, copied byte for byte (gzip members, digests and record ids as archived), after a
warcinfo record that says what the export holds; and a sorted CDXJ index of the result,
so the file replays in pywb.

The index lines are made while the records are copied, from what the snapshots table
already says of each record (URL, time, status, type, digest) and where it lands in the
output, in the very form cdxj-indexer gives (a test compares the two): having
cdxj-indexer read the finished file again took 6x the CPU of the whole export (it
parses every record's headers in Python). Keys are SURTs (`surt`, as pywb computes them
on lookup); lines are sorted by cdxj-indexer's external merge sort (32 MB runs).
"""

from __future__ import annotations

import json
import re
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Select
from sqlalchemy.orm import Session
from warcio.warcwriter import WARCWriter

from archive.models import Article, ArticleVersion, Site, Snapshot

if TYPE_CHECKING:
    from archive.export import Options, Resolved, Tally

OPEN_FILES = 8  # WARC files kept open at once (records of one crawl sit together)
READ_SIZE = 1 << 16
REQUEST_MAX_BYTES = 1 << 20  # a request record is headers only; past this it is not one


def snapshot_query(session: Session, resolved: Resolved) -> Select[Any]:
    from archive.export import selected

    query = selected(
        session, resolved, Article.id, Site.name, ArticleVersion.version,
        Snapshot.warc_file, Snapshot.warc_offset, Snapshot.warc_length, Snapshot.warc_record_id,
        Snapshot.url, Snapshot.fetched_at, Snapshot.status_code, Snapshot.content_type,
        Snapshot.payload_digest,
    )  # fmt: skip
    return query.outerjoin(Snapshot, Snapshot.id == ArticleVersion.snapshot_id)


def warc_chunks(
    session: Session,
    resolved: Resolved,
    options: Options,
    tally: Tally,
    index: IO[str] | None = None,
) -> Iterator[bytes]:
    """A warcinfo record, then per chosen version its response and request records; with
    `index`, an unsorted CDXJ line a response written to it (see `sort_cdxj`)."""
    from archive.export import BATCH, ExportError

    assert options.data_dir is not None
    head = warcinfo(options.name, options.description)
    yield head
    position = len(head)  # where the next record lands in the output
    files: OrderedDict[str, IO[bytes]] = OrderedDict()
    result = session.connection().execute(
        snapshot_query(session, resolved).execution_options(yield_per=BATCH)
    )
    try:
        for part in result.partitions():
            out = []
            lines = []
            for (article_id, site, version, file, offset, length, record_id, url, fetched_at,
                 status, content_type, digest) in part:  # fmt: skip
                if file is None:
                    tally.skipped += 1
                    continue
                fh = _open(files, options.data_dir / file)
                fh.seek(offset)
                response = fh.read(length)
                if len(response) != length or not response.startswith(b"\x1f\x8b"):
                    raise ExportError(
                        f"{options.data_dir / file}: no WARC record at offset {offset} "
                        f"(article {article_id} version {version}); run `ufarchive verify`"
                    )
                out.append(response)
                if index is not None:
                    lines.append(cdxj_line(url, fetched_at, status, content_type, digest,
                                           length, position, options.name))  # fmt: skip
                position += length
                request = _request_after(fh, offset + length, record_id)
                if request is not None:
                    out.append(request)
                    position += len(request)
                tally.rows += 1
                tally.by_site[site] += 1
            if index is not None:
                index.writelines(lines)
            yield b"".join(out)
            if tally.on_rows is not None:
                tally.on_rows(tally.rows)
    finally:
        for fh in files.values():
            fh.close()


def _open(files: OrderedDict[str, IO[bytes]], path: Path) -> IO[bytes]:
    from archive.export import ExportError

    key = str(path)
    fh = files.get(key)
    if fh is not None:
        files.move_to_end(key)
        return fh
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise ExportError(f"{path}: cannot read WARC file: {exc.strerror or exc}") from None
    files[key] = fh
    if len(files) > OPEN_FILES:
        files.popitem(last=False)[1].close()
    return fh


def _request_after(fh: IO[bytes], offset: int, response_id: str) -> bytes | None:
    """The gzip member at `offset` if it is the request record of that response (the
    crawler writes it right after the response: archive.warc.WarcFileWriter)."""
    fh.seek(offset)
    inflate = zlib.decompressobj(wbits=31)
    raw = bytearray()
    head = b""
    while not inflate.eof:
        chunk = fh.read(READ_SIZE)
        if not chunk:
            return None
        raw += chunk
        if len(raw) > REQUEST_MAX_BYTES:
            return None
        try:
            head += inflate.decompress(chunk)
        except zlib.error:
            return None
    member = bytes(raw[: len(raw) - len(inflate.unused_data)])
    headers = head.split(b"\r\n\r\n", 1)[0]
    is_request = b"\r\nWARC-Type: request\r\n" in headers
    if is_request and f"WARC-Concurrent-To: {response_id}".encode() in headers:
        return member
    return None


def warcinfo(name: str, description: str) -> bytes:
    """The export's own warcinfo record: what made it and what it holds."""
    from importlib.metadata import version

    out = BytesIO()
    writer = WARCWriter(out, gzip=True, warc_version="1.1")
    record = writer.create_warcinfo_record(
        name,
        {
            "software": f"ufarchive {version('ufarchive')}",
            "format": "WARC File Format 1.1",
            "description": " ".join(description.split()) or "ufarchive export",
        },
    )
    writer.write_record(record)
    return out.getvalue()


_MIME_END = re.compile(r"[;\s]")


def cdxj_line(
    url: str,
    fetched_at: datetime,
    status: int,
    content_type: str | None,
    digest: str | None,
    length: int,
    offset: int,
    filename: str,
) -> str:
    """A response record's CDXJ line, as cdxj-indexer writes it (key, 14-digit UTC time,
    JSON of string values, absent ones left out)."""
    fields: dict[str, str] = {"url": url}
    if content_type:
        fields["mime"] = _MIME_END.split(content_type, 1)[0].strip()
    fields["status"] = str(status)
    if digest:
        fields["digest"] = digest
    fields.update(length=str(length), offset=str(offset), filename=filename)
    stamp = fetched_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return f"{url_key(url)} {stamp} {json.dumps(fields)}\n"


def url_key(url: str) -> str:
    import surt

    try:
        return str(surt.surt(url))
    except ValueError:  # what surt cannot parse is keyed as it is, like cdxj-indexer does
        return url


def sort_cdxj(unsorted: Path, index: Path) -> None:
    """Sort CDXJ lines into the index file pywb reads (external merge sort: flat memory)."""
    from cdxj_indexer.main import SortingWriter

    with unsorted.open(encoding="utf-8") as lines, index.open("x", encoding="utf-8") as out:
        writer = SortingWriter(out)
        for line in lines:
            writer.write(line)
        writer.flush()
