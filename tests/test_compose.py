"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from archive.settings import ENV_NAMES
from crawler.cli import app

REPO = Path(__file__).resolve().parents[1]
POSTGRES_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if "build" in s}


def test_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "postgres" in services and "scheduler" in services
    assert services["scheduler"]["build"] == "."
    assert (REPO / "Dockerfile").is_file()


def test_the_scheduler_runs_schedule_after_db_upgrade(compose: dict[str, Any]) -> None:
    services = compose["services"]
    scheduler = services["scheduler"]
    assert scheduler["command"] == ["schedule"]
    upgrades = [
        (name, condition)
        for name, condition in scheduler["depends_on"].items()
        if services[name].get("command") == ["db", "upgrade"]
    ]
    assert upgrades == [("migrate", {"condition": "service_completed_successfully"})]


def test_the_image_runs_ufarchive() -> None:
    assert re.search(r'^ENTRYPOINT \["ufarchive"\]$', dockerfile(), re.M)
    for name in re.findall(r"^\s*(?:ENV\s+)?(UFARCHIVE_\w+)=", dockerfile(), re.M):
        assert name in ENV_NAMES


def test_each_command_is_a_real_ufarchive_command(compose: dict[str, Any]) -> None:
    default = re.search(r"^CMD (\[.*\])$", dockerfile(), re.M)
    assert default is not None
    commands = {"Dockerfile CMD": yaml.safe_load(default.group(1))}
    commands |= {name: s.get("command") for name, s in app_services(compose).items()}
    for name, command in commands.items():
        assert isinstance(command, list) and command, f"{name}: command must be a list"
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0, f"{name}: `ufarchive {' '.join(command)}` is not a command"


def test_environment_names_are_real_settings(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        names = set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
        allowed = POSTGRES_ENV if name == "postgres" else set(ENV_NAMES)
        assert names <= allowed, f"{name}: unknown settings {sorted(names - allowed)}"


def test_the_database_url_matches_the_postgres_service(compose: dict[str, Any]) -> None:
    pg = compose["services"]["postgres"]["environment"]
    for name, service in app_services(compose).items():
        url = make_url(service["environment"]["UFARCHIVE_DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg", name
        assert (url.host, url.username, url.password, url.database) == (
            "postgres",
            pg["POSTGRES_USER"],
            pg["POSTGRES_PASSWORD"],
            pg["POSTGRES_DB"],
        ), name


def test_config_and_data_are_volumes(compose: dict[str, Any]) -> None:
    for name, service in app_services(compose).items():
        targets = {v.split(":")[1] for v in service["volumes"]}
        assert {"/app/config", "/data"} <= targets, name


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed"
)
def test_docker_compose_validates_it_offline() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_workers_scale_on_redis_with_aof_and_everything_long_running_has_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command, "Redis persistence (AOF) must be on"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    worker = services["worker"]
    assert worker["command"] == ["worker"]
    # `--scale worker=4` needs no fixed name and no published port
    assert "container_name" not in worker and "ports" not in worker
    assert worker["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for name in ("worker", "scheduler"):
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
        url = services[name]["environment"]["UFARCHIVE_REDIS_URL"]
        assert url.startswith("redis://redis:6379/"), name
    assert services["scheduler"]["environment"]["UFARCHIVE_CRAWL_MODE"] == "distributed"
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service, f"{name} has no healthcheck"
    assert {"pgdata", "redisdata", "data"} <= set(compose["volumes"])
