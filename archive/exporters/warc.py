"""WARC export: the selection's archived response records, each followed by its request
record, copied byte for byte (gzip members, digests and record ids as archived), after a
warcinfo record that says what the export holds; and a sorted CDXJ index of the result
(cdxj-indexer, the indexer pywb's own tools use), so the file replays in pywb.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Iterator
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
    )  # fmt: skip
    return query.outerjoin(Snapshot, Snapshot.id == ArticleVersion.snapshot_id)


def warc_chunks(
    session: Session, resolved: Resolved, options: Options, tally: Tally
) -> Iterator[bytes]:
    """A warcinfo record, then per chosen version its response and request records."""
    from archive.export import BATCH, ExportError

    assert options.data_dir is not None
    yield warcinfo(options.name, options.description)
    files: OrderedDict[str, IO[bytes]] = OrderedDict()
    result = session.connection().execute(
        snapshot_query(session, resolved).execution_options(yield_per=BATCH)
    )
    try:
        for part in result.partitions():
            out = []
            for article_id, site, version, file, offset, length, record_id in part:
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
                request = _request_after(fh, offset + length, record_id)
                if request is not None:
                    out.append(request)
                tally.rows += 1
                tally.by_site[site] += 1
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


def write_cdxj(warc: Path, index: Path, name: str) -> None:
    """A sorted CDXJ index of `warc`, whose records it names as file `name`."""
    from cdxj_indexer.main import write_cdx_index

    write_cdx_index(str(index), [str(warc)], {"sort": True, "filename": name})
