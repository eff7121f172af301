"""Fixity: proof that every WARC record the archive points to is there and unaltered.

`verify()` streams every WARC file once, gzip member by gzip member (each record is one
member, see archive.warc), and checks each snapshot row against the record at its
offset: the member starts there, has the row's length, carries the row's record id, and
its block and payload digests match its bytes and the row's payload digest. It lists
rows whose file or record is missing or damaged, damaged bytes no row points to, and
response records no row points to ("unreferenced": a crawl that died between writing
its records and committing their rows leaves these by design; they are not damage).

A file whose writer died may end in a torn gzip member (the write it was making).
`seal_unfinished()` (run before crawls and by `verify`) moves such a tail to
`<data_dir>/warc/torn/` and truncates the file to its last whole record, so that every
file passes `warcio check` and no reader ever meets half a record; the bytes are kept.

`run_audit()` records each verification in `fixity_audits` and raises (or clears) a
`fixity` alert for every site with damage; `ufarchive status` shows the last result.
Paths are relative to the data directory, so a copied or restored data directory
verifies the same. Never imports crawler or scrapy.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, sessionmaker
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeadersParserException

from archive.alerts import AlertView, set_alert
from archive.errors import UfarchiveError
from archive.models import Article, CrawlRun, FixityAudit, Site, Snapshot, utcnow
from archive.warc import OPEN_SUFFIX, WARC_SUBDIR, is_being_written, open_marker, sync_file

log = logging.getLogger(__name__)

FIXITY = "fixity"  # the alert kind
TORN_SUBDIR = "torn"
CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b\x08"
# Larger than any record the crawler writes (max_response_bytes is at most a few tens of
# MB); a "member" that inflates past this is damage, not a page.
MAX_MEMBER_BYTES = 1 << 30
KEPT_PROBLEMS = 200  # problems stored with an audit (the CLI lists them all)
# ufarchive-<site>-<stamp>-<pid>-<seq>.warc.gz (archive.warc.WarcFileWriter)
_FILE_SITE = re.compile(r"^ufarchive-(?P<site>[a-z0-9_-]+)-\d{14}-\d+-\d+\.warc\.gz$")
_PARSE_ERRORS = (
    ArchiveLoadFailed,
    StatusAndHeadersParserException,
    ValueError,
    EOFError,
    StopIteration,
    IndexError,
    KeyError,
)


# --- gzip members -----------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One whole gzip member of a WARC file: where it lies and what it inflates to."""

    offset: int
    length: int
    data: bytes


@dataclass(frozen=True)
class Break:
    """Bytes that are no whole gzip member; `torn` when they run to the end of the file
    (an unfinished last write), else damage in the middle of a file."""

    offset: int
    length: int
    torn: bool
    reason: str


class _Incomplete(Exception):
    """The file ended inside a member."""


class _Corrupt(Exception):
    """The bytes are not a gzip member."""


def _read_member(fh: BinaryIO, offset: int) -> Member:
    fh.seek(offset)
    inflater = zlib.decompressobj(31)  # gzip framing
    consumed = 0
    pieces: list[bytes] = []
    size = 0
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            raise _Incomplete("the file ends inside a gzip member")
        try:
            piece = inflater.decompress(chunk, MAX_MEMBER_BYTES + 1 - size)
        except zlib.error as exc:
            raise _Corrupt(f"not a gzip member: {exc}") from None
        size += len(piece)
        if size > MAX_MEMBER_BYTES or inflater.unconsumed_tail:
            raise _Corrupt("a gzip member inflating past 1 GiB")
        pieces.append(piece)
        if inflater.eof:
            used = len(chunk) - len(inflater.unused_data)
            return Member(offset, consumed + used, b"".join(pieces))
        consumed += len(chunk)


def _next_magic(fh: BinaryIO, start: int, size: int) -> int | None:
    """The next offset >= start where a gzip header could begin."""
    position = start
    while position < size:
        fh.seek(position)
        chunk = fh.read(CHUNK + len(GZIP_MAGIC) - 1)
        found = chunk.find(GZIP_MAGIC)
        if found >= 0:
            return position + found
        position += CHUNK
    return None


def walk_members(fh: BinaryIO, size: int) -> Iterator[Member | Break]:
    """Every gzip member of a file in order; damaged stretches as `Break`s, after which
    the walk goes on at the next offset where a whole member starts."""
    position = 0
    while position < size:
        try:
            member = _read_member(fh, position)
        except _Incomplete as exc:
            yield Break(position, size - position, True, str(exc))
            return
        except _Corrupt as exc:
            reason = str(exc)
            candidate = _next_magic(fh, position + 1, size)
            while candidate is not None:
                try:
                    member = _read_member(fh, candidate)
                except (_Incomplete, _Corrupt):
                    candidate = _next_magic(fh, candidate + 1, size)
                    continue
                break
            if candidate is None:
                yield Break(position, size - position, True, reason)
                return
            yield Break(position, candidate - position, False, reason)
        yield member
        position = member.offset + member.length


# --- records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordCheck:
    """What a member holds as a WARC record, and whether its digests hold."""

    record_type: str | None
    record_id: str | None
    url: str | None
    payload_digest: str | None
    problems: tuple[str, ...]


def check_record(data: bytes) -> RecordCheck:
    try:
        iterator = ArchiveIterator(BytesIO(data), check_digests=True)
        record = next(iterator)
        iterator.read_to_end()
    except _PARSE_ERRORS as exc:
        return RecordCheck(None, None, None, None, (f"not a WARC record: {exc}",))
    headers = record.rec_headers
    checker = record.digest_checker
    return RecordCheck(
        record_type=str(record.rec_type),
        record_id=_header(headers, "WARC-Record-ID"),
        url=_header(headers, "WARC-Target-URI"),
        payload_digest=_header(headers, "WARC-Payload-Digest"),
        problems=tuple(str(p) for p in checker.problems) if checker.passed is False else (),
    )


def _header(headers: Any, name: str) -> str | None:
    value = headers.get_header(name)
    return str(value) if value else None


# --- torn tails -------------------------------------------------------------------------


@dataclass(frozen=True)
class TornTail:
    file: str  # relative to the data dir
    offset: int
    length: int
    kept_as: str  # where the bytes went, relative to the data dir


def set_aside(data_dir: Path, path: Path, offset: int) -> TornTail:
    """Move the bytes of `path` from `offset` on into warc/torn/ and truncate the file."""
    torn_dir = data_dir / WARC_SUBDIR / TORN_SUBDIR
    torn_dir.mkdir(parents=True, exist_ok=True)
    keep = torn_dir / f"{path.name}.{offset}.tail"
    with path.open("r+b") as fh:
        fh.seek(offset)
        tail = fh.read()
        with keep.open("wb") as out:
            out.write(tail)
            out.flush()
            sync_file(out.fileno())
        fh.truncate(offset)
        fh.flush()
        os.fsync(fh.fileno())
    relative = f"{WARC_SUBDIR}/{path.name}"
    log.warning(
        "%s: a torn record of %d bytes at offset %d (its writer died) set aside in %s",
        relative, len(tail), offset, keep,
    )  # fmt: skip
    return TornTail(relative, offset, len(tail), f"{WARC_SUBDIR}/{TORN_SUBDIR}/{keep.name}")


def seal_file(data_dir: Path, path: Path) -> TornTail | None:
    """Set aside a torn tail of a file nobody writes; the marker goes when it is whole."""
    if is_being_written(path):
        return None
    torn = None
    if path.exists():
        size = path.stat().st_size
        with path.open("rb") as fh:
            last: Member | Break | None = None
            for last in walk_members(fh, size):  # noqa: B007 -- only the last one matters
                pass
        if isinstance(last, Break) and last.torn:
            torn = set_aside(data_dir, path, last.offset)
    open_marker(path).unlink(missing_ok=True)
    return torn


def seal_unfinished(data_dir: Path) -> list[TornTail]:
    """Seal every WARC file whose writer died without closing it (marker, no lock)."""
    folder = data_dir / WARC_SUBDIR
    if not folder.is_dir():
        return []
    torn = []
    for marker in sorted(folder.glob(f"*{OPEN_SUFFIX}")):
        tail = seal_file(data_dir, marker.with_name(marker.name.removesuffix(OPEN_SUFFIX)))
        if tail is not None:
            torn.append(tail)
    return torn


# --- the audit --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    snapshot_id: int
    article_id: int | None
    site: str | None
    file: str
    offset: int
    length: int
    record_id: str
    payload_digest: str | None


@dataclass(frozen=True)
class Problem:
    """Damage: a row whose record is missing or altered, or bytes no record survives in.

    kind: missing_file | missing_record | length | record_id | digest | unreadable |
    damaged_bytes | outside_data_dir"""

    kind: str
    file: str
    offset: int | None
    detail: str
    snapshot_id: int | None = None
    article_id: int | None = None
    site: str | None = None

    def describe(self) -> str:
        where = f"{self.file}@{self.offset}" if self.offset is not None else self.file
        who = f"snapshot {self.snapshot_id}" if self.snapshot_id is not None else "no row"
        if self.article_id is not None:
            who += f" (article {self.article_id})"
        return f"{self.kind}: {where}: {who}: {self.detail}"


@dataclass(frozen=True)
class Unreferenced:
    file: str
    offset: int
    url: str | None


@dataclass
class Report:
    files: int = 0
    bytes: int = 0
    records: int = 0  # rows checked
    records_ok: int = 0
    problems: list[Problem] = field(default_factory=list)
    unreferenced: list[Unreferenced] = field(default_factory=list)
    torn: list[TornTail] = field(default_factory=list)
    in_progress: int = 0  # files a live crawl is writing (their last record may be mid-write)

    @property
    def clean(self) -> bool:
        return not self.problems

    def damaged_by_site(self) -> dict[str, int]:
        return dict(Counter(p.site or "(unknown)" for p in self.problems))


Progress = Callable[[int, int], None]


class AuditStoppedError(UfarchiveError):
    """The audit was asked to stop (the scheduler is stopping)."""

    def __init__(self) -> None:
        super().__init__("fixity audit stopped before the end")


def _site_of_file(file: str) -> str | None:
    match = _FILE_SITE.match(Path(file).name)
    return match.group("site") if match else None


def _rows_query() -> Any:
    site_id = func.coalesce(Article.site_id, CrawlRun.site_id)
    return (
        select(
            Snapshot.id,
            Snapshot.article_id,
            Site.name,
            Snapshot.warc_file,
            Snapshot.warc_offset,
            Snapshot.warc_length,
            Snapshot.warc_record_id,
            Snapshot.payload_digest,
        )
        .outerjoin(Article, Article.id == Snapshot.article_id)
        .outerjoin(CrawlRun, CrawlRun.id == Snapshot.run_id)
        .outerjoin(Site, Site.id == site_id)
    )


def _files_to_check(
    session: Session, data_dir: Path, site: str | None, since: datetime | None
) -> list[str]:
    """The WARC files (relative names) the rows of the selection point to, and those on
    disk that belong to it (by the site in their name, by their time)."""
    query = _rows_query().with_only_columns(Snapshot.warc_file).distinct()
    conditions: list[ColumnElement[bool]] = []
    if site is not None:
        conditions.append(Site.name == site)
    if since is not None:
        conditions.append(Snapshot.fetched_at >= since)
    files = set(session.scalars(query.where(*conditions)))
    folder = data_dir / WARC_SUBDIR
    if folder.is_dir():
        for path in folder.glob("*.warc.gz"):
            if site is not None and _site_of_file(path.name) != site:
                continue
            if since is not None and path.stat().st_mtime < since.timestamp():
                continue
            files.add(f"{WARC_SUBDIR}/{path.name}")
    return sorted(files)


def _rows_of(session: Session, file: str) -> dict[int, Row]:
    rows = session.execute(_rows_query().where(Snapshot.warc_file == file))
    return {r[4]: Row(*r) for r in rows}


def _resolve(data_dir: Path, file: str) -> Path | None:
    folder = (data_dir / WARC_SUBDIR).resolve()
    path = (data_dir / file).resolve()
    return path if folder in path.parents else None


def verify(
    session: Session,
    data_dir: Path,
    *,
    site: str | None = None,
    since: datetime | None = None,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Report:
    """Check every WARC record the selected rows point to (see the module's doc);
    `should_stop` is asked between records (AuditStoppedError when it says yes)."""
    report = Report()
    files = _files_to_check(session, data_dir, site, since)
    paths = {f: _resolve(data_dir, f) for f in files}
    total = sum(p.stat().st_size for p in paths.values() if p is not None and p.is_file())
    done = 0
    for file in files:
        rows = _rows_of(session, file)
        path = paths[file]
        report.files += 1
        report.records += len(rows)
        if path is None or not path.is_file():
            kind = "outside_data_dir" if path is None else "missing_file"
            detail = "refused: outside the data dir" if path is None else "no such file"
            report.problems.extend(_row_problem(row, kind, detail) for row in rows.values())
            continue
        base = done

        def progress(position: int, base: int = base) -> None:
            if should_stop is not None and should_stop():
                raise AuditStoppedError
            if on_progress is not None:
                on_progress(base + position, total)

        _check_file(session, data_dir, file, path, rows, report, progress)
        done += path.stat().st_size
        if on_progress is not None:
            on_progress(done, total)
    report.bytes = done
    report.records_ok = report.records - sum(1 for p in report.problems if p.snapshot_id)
    return report


def _row_problem(row: Row, kind: str, detail: str) -> Problem:
    return Problem(kind, row.file, row.offset, detail, row.snapshot_id, row.article_id, row.site)


def _check_file(
    session: Session,
    data_dir: Path,
    file: str,
    path: Path,
    rows: dict[int, Row],
    report: Report,
    progress: Callable[[int], None],
) -> None:
    writing = is_being_written(path)
    size = path.stat().st_size
    seen: set[int] = set()
    candidates: list[Unreferenced] = []
    with path.open("rb") as fh:
        for item in walk_members(fh, size):
            if isinstance(item, Break):
                inside = [
                    r for r in rows.values() if item.offset <= r.offset < item.offset + item.length
                ]
                seen.update(r.offset for r in inside)
                if item.torn and writing:
                    report.in_progress += 1  # the write a live crawl is making
                elif item.torn and not inside:
                    report.torn.append(set_aside(data_dir, path, item.offset))
                else:
                    detail = f"{item.length} bytes unreadable: {item.reason}"
                    report.problems.extend(_row_problem(r, "unreadable", detail) for r in inside)
                    if not inside:
                        site = _site_of_file(file)
                        report.problems.append(
                            Problem("damaged_bytes", file, item.offset, detail, site=site)
                        )
                progress(item.offset + item.length)
                continue
            check = check_record(item.data)
            row = rows.get(item.offset)
            if row is None:
                if check.record_type in ("response", "revisit"):
                    candidates.append(Unreferenced(file, item.offset, check.url))
                elif check.problems:
                    detail, site = "; ".join(check.problems), _site_of_file(file)
                    report.problems.append(Problem("digest", file, item.offset, detail, site=site))
            else:
                seen.add(item.offset)
                problem = _compare(row, item, check)
                if problem is not None:
                    report.problems.append(problem)
            progress(item.offset + item.length)
    for offset, row in rows.items():
        if offset not in seen:
            report.problems.append(
                _row_problem(row, "missing_record", f"no record starts at offset {offset}")
            )
    if candidates and writing:  # rows of a live crawl may have been committed meanwhile
        stored = set(_rows_of(session, file))
        candidates = [c for c in candidates if c.offset not in stored]
    report.unreferenced.extend(candidates)


def _compare(row: Row, member: Member, check: RecordCheck) -> Problem | None:
    if check.record_type is None:
        return _row_problem(row, "unreadable", check.problems[0])
    if member.length != row.length:
        return _row_problem(
            row, "length", f"record is {member.length} bytes, row says {row.length}"
        )
    if check.record_id != row.record_id:
        return _row_problem(
            row, "record_id", f"record is {check.record_id}, row says {row.record_id}"
        )
    if check.problems:
        return _row_problem(row, "digest", "; ".join(check.problems))
    if row.payload_digest and check.payload_digest != row.payload_digest:
        return _row_problem(
            row, "digest", f"payload digest {check.payload_digest}, row says {row.payload_digest}"
        )
    return None


# --- audits and alerts ------------------------------------------------------------------


def run_audit(
    sessions: sessionmaker[Session],
    data_dir: Path,
    *,
    site: str | None = None,
    since: datetime | None = None,
    trigger: str = "manual",
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Report, list[AlertView]]:
    """Seal unfinished files, verify, record the audit and raise or clear `fixity` alerts.

    Alerts are cleared only by an audit that saw all of a site (no `since`)."""
    with sessions() as session, session.begin():
        audit = FixityAudit(trigger=trigger, site=site, since=since)
        session.add(audit)
        session.flush()
        audit_id = audit.id
    try:
        torn = seal_unfinished(data_dir)
        with sessions() as session:
            report = verify(
                session, data_dir, site=site, since=since, on_progress=on_progress,
                should_stop=should_stop,
            )  # fmt: skip
        report.torn[:0] = [t for t in torn if t not in report.torn]
    except BaseException as exc:
        with sessions() as session, session.begin():
            row = session.get_one(FixityAudit, audit_id)
            row.status, row.finished_at = "failed", utcnow()
            row.message = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    with sessions() as session, session.begin():
        row = session.get_one(FixityAudit, audit_id)
        row.finished_at = utcnow()
        row.status = "clean" if report.clean else "damaged"
        row.files, row.bytes, row.records = report.files, report.bytes, report.records
        row.records_ok, row.damaged = report.records_ok, len(report.problems)
        row.unreferenced, row.torn_set_aside = len(report.unreferenced), len(report.torn)
        row.damaged_by_site = report.damaged_by_site()
        row.problems = [asdict(p) for p in report.problems[:KEPT_PROBLEMS]]
        raised = _judge(session, audit_id, report, site, complete=since is None)
    return report, raised


def _judge(
    session: Session, audit_id: int, report: Report, site: str | None, complete: bool
) -> list[AlertView]:
    damaged = report.damaged_by_site()
    query = select(Site)
    if site is not None:
        query = query.where(Site.name == site)
    raised = []
    for row in session.scalars(query):
        count = damaged.get(row.name, 0)
        if not count and not complete:
            continue
        message = None
        if count:
            kinds = Counter(p.kind for p in report.problems if p.site == row.name)
            message = (
                f"{count} WARC records missing or damaged ("
                + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                + f"); audit {audit_id}: `ufarchive verify --site {row.name}` lists them"
            )
        alert = set_alert(session, row.id, FIXITY, message)
        if alert is not None:
            raised.append(AlertView(row.name, alert.kind, alert.message, alert.raised_at))
    return raised


@dataclass(frozen=True)
class FixityView:
    """The last finished audit that covered a site, as `status` shows it."""

    audit_id: int
    finished_at: datetime
    status: str  # clean | damaged
    damaged: int
    partial: bool  # covered only what changed since a date

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit": self.audit_id,
            "verified_at": self.finished_at.isoformat(timespec="seconds"),
            "status": self.status,
            "damaged": self.damaged,
            "partial": self.partial,
        }


def site_fixity(session: Session, site: str) -> FixityView | None:
    audit = session.scalar(
        select(FixityAudit)
        .where(
            FixityAudit.finished_at.is_not(None),
            FixityAudit.status.in_(("clean", "damaged")),
            (FixityAudit.site.is_(None)) | (FixityAudit.site == site),
        )
        .order_by(FixityAudit.id.desc())
        .limit(1)
    )
    if audit is None or audit.finished_at is None:
        return None
    damaged = int((audit.damaged_by_site or {}).get(site, 0))
    return FixityView(
        audit.id, audit.finished_at, "damaged" if damaged else "clean", damaged,
        audit.since is not None,
    )  # fmt: skip


def last_audits(session: Session, limit: int = 10) -> Sequence[FixityAudit]:
    return session.scalars(select(FixityAudit).order_by(FixityAudit.id.desc()).limit(limit)).all()
