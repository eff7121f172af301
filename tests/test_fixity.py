"""`ufarchive verify`: a crawled archive verifies clean (and so does a copy of its data dir);
every kind of damage is found, listed, alerted and exits 1; a torn last record left by a
dead writer is set aside so that the file passes `warcio check`."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from archive.db import make_engine, make_sessionmaker
from archive.errors import UfarchiveError
from archive.fixity import run_audit, seal_unfinished, verify, walk_members
from archive.models import Alert, FixityAudit, Snapshot
from archive.warc import WarcFileWriter, is_being_written, open_marker, read_record
from crawler.cli import app
from tests.crawlworld import World, make_world
from tests.siteserver import SiteServer

WARCIO = [str(Path(sys.executable).parent / "warcio"), "check"]


@pytest.fixture
def world(crawled: Callable[..., World]) -> World:
    """zytzb crawled once (a copy of the session's crawl of it)."""
    return crawled("zytzb")


def run_verify(world: World, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["verify", *args], env={**world.env(), "COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def warc_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "warc").glob("*.warc.gz"))


def write(writer: WarcFileWriter, n: int) -> object:
    return writer.write_exchange(
        f"http://127.0.0.1:9/tzyw/t{n}.html", method="GET", request_headers=[("User-Agent", "t")],
        status=200, reason="OK", response_headers=[("Content-Type", "text/html; charset=utf-8")],
        body=f"<html><body><p>统一战线 {n}</p></body></html>".encode(),
        fetched_at=datetime(2024, 3, 1, 1, 0, tzinfo=UTC),
    )  # fmt: skip


def test_a_crawled_archive_verifies_clean(world: World) -> None:
    code, stdout, _ = run_verify(world)
    assert code == 0, stdout
    assert "fixity: clean" in stdout
    snapshots = world.snapshots()
    assert f"records checked{' ' * 3}" in stdout or "records checked" in stdout
    with world.session() as session:
        audit = session.scalars(select(FixityAudit)).one()
        assert (audit.status, audit.records, audit.records_ok) == (
            "clean", len(snapshots), len(snapshots),
        )  # fmt: skip
        assert audit.files == len({s.warc_file for s in snapshots}) and audit.bytes > 0
    status = CliRunner().invoke(app, ["status", "--format", "json"], env=world.env())
    fixity = json.loads(status.stdout)[0]["fixity"]
    assert (fixity["status"], fixity["damaged"]) == ("clean", 0)
    for path in warc_files(world.data_dir):
        assert subprocess.run([*WARCIO, str(path)], check=False).returncode == 0


def test_every_kind_of_damage_is_listed_alerted_and_exits_1(world: World) -> None:
    snapshots = world.snapshots()
    assert len(snapshots) >= 6
    first, second, third, fourth, fifth = snapshots[:5]
    with world.session() as session, session.begin():
        for snapshot, values in (
            (first, {"payload_digest": "sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
            (second, {"warc_record_id": "<urn:uuid:00000000-0000-0000-0000-000000000000>"}),
            (third, {"warc_length": third.warc_length + 1}),
            (fourth, {"warc_offset": fourth.warc_offset + 1}),
        ):
            session.execute(update(Snapshot).where(Snapshot.id == snapshot.id).values(**values))
    # a flipped byte inside the fifth record's compressed bytes
    path = world.data_dir / fifth.warc_file
    data = bytearray(path.read_bytes())
    data[fifth.warc_offset + fifth.warc_length // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    code, stdout, stderr = run_verify(world)
    assert code == 1
    assert "fixity: DAMAGED" in stdout
    lines = [line for line in stderr.splitlines() if line.startswith("damaged: ")]
    kinds = {line.split()[1].rstrip(":"): line for line in lines}
    assert set(kinds) == {"digest", "record_id", "length", "missing_record", "unreadable"}
    assert f"snapshot {first.id} " in kinds["digest"]
    assert f"snapshot {fifth.id} " in kinds["unreadable"]
    with world.session() as session:
        alert = session.scalars(select(Alert).where(Alert.kind == "fixity")).one()
        assert alert.cleared_at is None and "5 WARC records missing or damaged" in alert.message
    status = CliRunner().invoke(app, ["status"], env={**world.env(), "COLUMNS": "200"})
    assert "ALERT zytzb fixity: 5 WARC records" in status.stdout
    # put the rows and the byte back: clean again, and the alert clears itself
    path.write_bytes(bytes(data[: fifth.warc_offset + fifth.warc_length // 2]) + bytes(
        [data[fifth.warc_offset + fifth.warc_length // 2] ^ 0xFF]
    ) + bytes(data[fifth.warc_offset + fifth.warc_length // 2 + 1 :]))  # fmt: skip
    with world.session() as session, session.begin():
        for snapshot in (first, second, third, fourth):
            session.execute(
                update(Snapshot)
                .where(Snapshot.id == snapshot.id)
                .values(
                    payload_digest=snapshot.payload_digest,
                    warc_record_id=snapshot.warc_record_id,
                    warc_length=snapshot.warc_length,
                    warc_offset=snapshot.warc_offset,
                )
            )
    assert run_verify(world)[0] == 0
    with world.session() as session:
        assert session.scalars(select(Alert).where(Alert.kind == "fixity")).one().cleared_at


def test_a_missing_file_and_a_row_pointing_outside_the_data_dir(world: World) -> None:
    snapshots = world.snapshots()
    files = sorted({s.warc_file for s in snapshots})
    (world.data_dir / files[0]).rename(world.root / "elsewhere.warc.gz")
    with world.session() as session, session.begin():
        session.execute(
            update(Snapshot)
            .where(Snapshot.id == snapshots[-1].id)
            .values(warc_file="warc/../../elsewhere.warc.gz")
        )
    code, _, stderr = run_verify(world, "--site", "zytzb")
    assert code == 1
    assert "damaged: missing_file" in stderr and "damaged: outside_data_dir" in stderr
    with world.session() as session, pytest.raises(UfarchiveError, match="outside"):
        read_record(world.data_dir, "warc/../../elsewhere.warc.gz", 0)


def test_a_copied_data_dir_verifies_clean(
    tmp_path: Path, sqlite_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world = make_world(tmp_path / "a", f"sqlite:///{tmp_path}/a/data/ufarchive.sqlite3",
                       site_server, ("zytzb",))  # fmt: skip
    world.crawl()
    copy = tmp_path / "restored" / "data"
    shutil.copytree(world.data_dir, copy)
    shutil.rmtree(world.data_dir)  # nothing may still point at the old place
    env = {"UFARCHIVE_CONFIG": str(world.config_dir), "UFARCHIVE_DATA_DIR": str(copy)}
    result = CliRunner().invoke(app, ["verify"], env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "fixity: clean" in result.stdout


def test_unreferenced_records_are_listed_but_are_not_damage(world: World) -> None:
    writer = WarcFileWriter(world.data_dir, 10_000_000, prefix="ufarchive-zytzb")
    write(writer, 1)
    write(writer, 2)
    writer.close()
    code, stdout, _ = run_verify(world, "--format", "json")
    assert code == 0
    report = json.loads(stdout)
    assert report["clean"] and len(report["unreferenced"]) == 2
    assert report["unreferenced"][0]["url"] == "http://127.0.0.1:9/tzyw/t1.html"
    code, stdout, _ = run_verify(world)
    assert code == 0 and stdout.count("unreferenced: warc/ufarchive-zytzb-") == 2
    assert "@" in stdout and "http://127.0.0.1:9/tzyw/t2.html" in stdout


def test_a_torn_last_record_is_set_aside_and_the_file_passes_warcio_check(tmp_path: Path) -> None:
    writer = WarcFileWriter(tmp_path, 10_000_000)
    locations = [write(writer, n) for n in range(3)]
    path = tmp_path / locations[0].file  # type: ignore[attr-defined]
    assert is_being_written(path) and open_marker(path).exists()
    assert seal_unfinished(tmp_path) == []  # a live writer's file is left alone
    # the writer dies in the middle of its fourth record: half a gzip member, lock gone
    size = path.stat().st_size
    write(writer, 3)
    whole = path.read_bytes()
    writer._fh.close()  # type: ignore[union-attr]  # the process's death releases the lock
    path.write_bytes(whole[: size + (len(whole) - size) // 2])
    assert not is_being_written(path) and open_marker(path).exists()
    # (`warcio check` says nothing of a torn last member: it stops reading there)
    with path.open("rb") as fh:
        last = list(walk_members(fh, path.stat().st_size))[-1]
    assert getattr(last, "torn", False) and last.offset == size
    torn = seal_unfinished(tmp_path)
    assert [(t.file, t.offset) for t in torn] == [(f"warc/{path.name}", size)]
    assert path.stat().st_size == size and not open_marker(path).exists()
    kept = tmp_path / torn[0].kept_as
    assert kept.read_bytes() == whole[size : size + (len(whole) - size) // 2]
    assert subprocess.run([*WARCIO, str(path)], check=False).returncode == 0
    for n, location in enumerate(locations):
        record = read_record(tmp_path, location.file, location.offset)  # type: ignore[attr-defined]
        assert f"统一战线 {n}".encode() in record.payload


def test_damage_in_the_middle_of_a_file_does_not_hide_the_records_after_it(tmp_path: Path) -> None:
    writer = WarcFileWriter(tmp_path, 10_000_000)
    locations = [write(writer, n) for n in range(4)]
    writer.close()
    path = tmp_path / locations[0].file  # type: ignore[attr-defined]
    data = bytearray(path.read_bytes())
    second = locations[1]
    data[second.offset + 12 : second.offset + 40] = b"\0" * 28  # type: ignore[attr-defined]
    path.write_bytes(bytes(data))
    with path.open("rb") as fh:
        items = list(walk_members(fh, len(data)))
    starts = [getattr(i, "offset", None) for i in items if not hasattr(i, "torn")]
    breaks = [i for i in items if hasattr(i, "torn")]
    assert len(breaks) == 1 and not breaks[0].torn  # type: ignore[attr-defined]
    for location in (locations[0], locations[2], locations[3]):
        assert location.offset in starts  # type: ignore[attr-defined]
    assert gzip.decompress(bytes(data[locations[3].offset :]))  # type: ignore[attr-defined]


def test_an_audit_of_a_database_with_nothing_stored(sqlite_url: str, tmp_path: Path) -> None:
    from archive.db import upgrade

    engine = make_engine(sqlite_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    report, raised = run_audit(sessions, tmp_path / "data")
    assert report.clean and report.files == 0 and raised == []
    with sessions() as session:
        assert verify(session, tmp_path / "data").records == 0
    engine.dispose()


def test_the_scheduler_runs_the_weekly_audit_and_alerts_on_damage(
    tmp_path: Path, sqlite_url: str, site_server: Callable[..., SiteServer]
) -> None:
    from archive.settings import load_settings
    from crawler.scheduling import VERIFY_JOB, CrawlScheduler
    from tests.test_scheduling import Webhook, add_scheduler_settings

    webhook = Webhook()
    try:
        world = make_world(tmp_path, sqlite_url, site_server, ("zytzb",))
        world.crawl()
        add_scheduler_settings(world, webhook=webhook.url)
        settings = load_settings(world.env())
        assert settings.scheduler.verify_cron == "30 3 * * sun"  # weekly, by default
        snapshot = world.snapshots()[0]
        with world.session() as session, session.begin():
            session.execute(
                update(Snapshot).where(Snapshot.id == snapshot.id).values(warc_offset=1)
            )
        scheduler = CrawlScheduler(settings, [])  # no site: no crawl starts
        scheduler.start()
        try:
            job = scheduler.scheduler.get_job(VERIFY_JOB)
            assert job is not None and job.executor == "fixity"
            assert job.next_run_time.weekday() == 6  # Sunday
            assert (job.next_run_time.hour, job.next_run_time.minute) == (3, 30)
            scheduler.run_verify()  # what the job runs when its time comes
        finally:
            scheduler.stop()
        deadline = datetime.now(UTC).timestamp() + 10
        while not webhook.received and datetime.now(UTC).timestamp() < deadline:
            import time

            time.sleep(0.1)
        [hook] = webhook.received
        assert (hook["site"], hook["kind"]) == ("zytzb", "fixity")
        with world.session() as session:
            audit = session.scalars(select(FixityAudit)).one()
            assert (audit.trigger, audit.status, audit.damaged) == ("schedule", "damaged", 1)
        status = CliRunner().invoke(app, ["status"], env={**world.env(), "COLUMNS": "220"})
        assert "DAMAGED (1)" in status.stdout and "ALERT zytzb fixity" in status.stdout
    finally:
        webhook.close()
