"""Settings: `config/settings.yaml` plus the `UFARCHIVE_*` environment; the bottom layer.

Both packages read settings from here; it imports nothing of ours but `errors`.
Every setting is documented in `config/settings.yaml` and in the README.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from archive.errors import ConfigError

ENV_CONFIG = "UFARCHIVE_CONFIG"
ENV_DATA_DIR = "UFARCHIVE_DATA_DIR"
ENV_DATABASE_URL = "UFARCHIVE_DATABASE_URL"
ENV_REDIS_URL = "UFARCHIVE_REDIS_URL"
ENV_CRAWL_MODE = "UFARCHIVE_CRAWL_MODE"  # crawl.mode, so one config folder serves compose too
#: The environment names that override settings; the compose test checks against this.
ENV_NAMES = (ENV_CONFIG, ENV_DATA_DIR, ENV_DATABASE_URL, ENV_REDIS_URL, ENV_CRAWL_MODE)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

SETTINGS_FILE = "settings.yaml"
SQLITE_FILE = "ufarchive.sqlite3"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _cron(value: str | None) -> str | None:
    """A 5-field crontab that APScheduler accepts (None: off)."""
    if value is not None:
        cron_trigger(value, "UTC")
    return value


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_weekdays(field: str) -> str:
    """A crontab weekday field as APScheduler reads it: crontab counts 0 (and 7) as Sunday,
    APScheduler's `from_crontab` 0 as Monday, so `0 3 * * 0` would run on Mondays. Numbers
    become names (`1-5` -> mon,tue,wed,thu,fri; `*/2` -> sun,tue,thu,sat); names and `*`
    stay as they are."""
    if field == "*" or not any(c.isdigit() for c in field):
        return field
    days: list[str] = []
    for part in field.split(","):
        base, _, step = part.partition("/")
        if not base.replace("-", "").replace("*", "").isdigit() and base != "*":
            days.append(part)  # names (mon-fri): the same in both
            continue
        first, _, last = base.partition("-")
        lo, hi = (0, 7) if base == "*" else (int(first), int(last) if last else int(first))
        if step and not last and base != "*":
            hi = 7  # 1/2: from Monday on, every other day
        if not (0 <= lo <= 7 and 0 <= hi <= 7) or (step and not step.isdigit()):
            raise ValueError(f"bad weekday {part!r} (0-7, Sunday is 0 or 7)")
        for day in range(lo, hi + 1, int(step) if step else 1):
            days.append(_WEEKDAYS[day])
    return ",".join(dict.fromkeys(days))


def cron_trigger(expr: str, timezone: Any) -> Any:
    """An APScheduler CronTrigger of a 5-field crontab, weekdays counted as crontab does
    (`cron_weekdays`); ValueError naming the expression when it is not one."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"bad cron {expr!r}: need 5 fields (minute hour day month weekday)")
    try:
        fields[4] = cron_weekdays(fields[4])
        return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)
    except ValueError as exc:
        raise ValueError(f"bad cron {expr!r}: {exc}") from None


# Every field has a description: docs/configuration.md is generated from them
# (scripts/configuration_doc.py), and a test fails when the two differ.


class CrawlSettings(_Strict):
    """Politeness and limits for every crawl (Scrapy settings are derived from these)."""

    user_agent: str = Field(
        "ufarchive/0.1 (news archive; +https://example.org/ufarchive)",
        description="The User-Agent header of every request; name a contact.",
    )
    obey_robots_txt: bool = Field(True, description="Fetch nothing robots.txt forbids.")
    concurrent_requests: int = Field(
        16, ge=1, le=256, description="Requests in flight across all sites of one crawl process."
    )
    concurrent_requests_per_domain: int = Field(
        4, ge=1, le=64, description="Requests in flight to one domain."
    )
    download_delay_seconds: float = Field(
        0.5, ge=0, description="Minimum gap between two requests to one domain."
    )
    autothrottle: bool = Field(True, description="Adapt the delay to the server's latency.")
    autothrottle_target_concurrency: float = Field(
        2.0, gt=0, description="Requests in flight per server that AutoThrottle aims at."
    )
    download_timeout_seconds: float = Field(
        30, gt=0, description="A request (connect, headers and whole body) ends after this."
    )
    retry_times: int = Field(
        3, ge=0, le=20, description="Retries of a 5xx, 429, 408 or network error; 0: none."
    )
    retry_backoff_seconds: float = Field(
        1.0, ge=0, description="The first retry waits this long; each further one twice as long."
    )
    retry_after_max_seconds: float = Field(
        300, ge=0, description="A server's longer Retry-After (429/503) is cut to this."
    )
    redirect_max_times: int = Field(
        10, ge=1, description="Redirects followed; one more is recorded as a redirect loop."
    )
    max_response_bytes: int = Field(
        20_000_000,
        ge=1024,
        description="A larger response (after decompression) is dropped and recorded as "
        "an error of kind too_large.",
    )
    depth_limit: int = Field(
        50, ge=0, description="Link hops from a start URL (bounds calendar traps); 0: none."
    )
    stop_pagination_when_no_new: bool = Field(
        True, description="Stop paging a listing once one of its pages brings nothing new."
    )
    warc_max_bytes: int = Field(
        1_000_000_000, ge=1_000_000, description="A WARC file past this size rotates to a new one."
    )
    derive_process_after: int | None = Field(
        200,
        ge=0,
        description="Once a run has stored this many new or changed articles, their search "
        "entries and republication clusters are made by a second process (a second core); "
        "null: always in the crawl process.",
    )
    # Distributed crawling (crawler.distributed): `schedule` pushes each due site's run into
    # Redis for `ufarchive worker` processes instead of crawling it in a child process.
    mode: Literal["local", "distributed"] = Field(
        "local",
        description="local: `schedule` crawls each site in a child process; distributed: it "
        "pushes each due site's run into Redis for `ufarchive worker` processes.",
    )
    redis_key_prefix: str = Field(
        "ufarchive:", min_length=1, description="The prefix of every Redis key of this archive."
    )
    # A worker that has not said it is alive for this long is dead: its requests go back
    # to the queue for the others.
    worker_timeout_seconds: float = Field(
        30,
        gt=0,
        description="A worker silent this long is dead; its requests go back to the queue.",
    )


class RevisitTier(_Strict):
    """Articles first seen or last changed within `age_days` are checked every
    `every_hours` (0: on every run); the last tier leaves `age_days` out (all older)."""

    age_days: float | None = Field(
        None, gt=0, description="Articles first seen or last changed within this many days."
    )
    every_hours: float = Field(ge=0, description="Checked this often; 0: on every run.")


DEFAULT_TIERS = (
    RevisitTier(age_days=3, every_hours=0),
    RevisitTier(age_days=30, every_hours=24),
    RevisitTier(age_days=365, every_hours=24 * 7),
    RevisitTier(every_hours=24 * 30),
)

SOFT_404_PHRASES = (
    "页面不存在", "頁面不存在", "该信息已删除", "該信息已刪除", "您访问的页面不存在",
    "您訪問的頁面不存在", "信息已撤回", "資訊已撤回", "信息已删除", "文章已删除",
    "页面已删除", "您要访问的页面不存在", "页面找不到", "找不到该页面", "404 Not Found",
)  # fmt: skip


class RevisitSettings(_Strict):
    """Revisits of known articles (archive.revisit), in settings.yaml and per site."""

    enabled: bool = Field(True, description="Revisit known articles at all.")
    tiers: tuple[RevisitTier, ...] = Field(
        DEFAULT_TIERS,
        description="How often an article is checked, by the age of its first sighting or "
        "last change (RevisitTier: age_days, every_hours), youngest first; the last tier "
        "leaves out age_days.",
    )
    changed_speedup: float = Field(
        2.0, ge=1, description="An article that changed before is due this many times as often."
    )
    max_revisits: float = Field(
        0.5,
        ge=0,
        le=1,
        description="The share of a site's max_pages one run may spend on revisits, most "
        "overdue first.",
    )
    soft_404_phrases: tuple[str, ...] = Field(
        SOFT_404_PHRASES,
        description="A 200 page saying one of these, with no more article text than "
        "soft_404_max_body_chars, is gone.",
    )
    soft_404_max_body_chars: int = Field(
        200, ge=0, description="The most article text a soft-404 page may have."
    )
    unreachable_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="More than this share of a run's revisits failing (no answer, 5xx, "
        "robots.txt, another domain), at least unreachable_min_failures of them, or every "
        "start URL failing: the site is unreachable and nothing is marked gone.",
    )
    unreachable_min_failures: int = Field(
        3, ge=1, description="The fewest failed revisits that make a site unreachable."
    )
    mass_gone_share: float = Field(
        0.3,
        gt=0,
        le=1,
        description="More than this share of a run's revisits gone (and at least "
        "mass_gone_min): the takedowns are recorded and alert mass_gone is raised.",
    )
    mass_gone_min: int = Field(5, ge=1, description="The fewest takedowns that make mass_gone.")
    quick_checks: bool = Field(
        True,
        description="Ask the due articles first with a lean HTTP client (aiohttp), under "
        "the crawl's robots.txt, boundary and politeness rules: a 304 is recorded without "
        "Scrapy's engine, any other answer goes to the crawl as that article's download. "
        "False: every revisit goes through Scrapy.",
    )

    @model_validator(mode="after")
    def _tiers_in_order(self) -> RevisitSettings:
        ages = [tier.age_days for tier in self.tiers]
        if not ages or ages[-1] is not None or None in ages[:-1]:
            raise ValueError("the last tier, and only it, leaves out age_days (all older)")
        bounded = [age for age in ages if age is not None]
        if bounded != sorted(bounded):
            raise ValueError("tiers must go from the youngest age_days to the oldest")
        return self


class SchedulerSettings(_Strict):
    """How `ufarchive schedule` runs the sites' jobs."""

    timezone: str = Field(
        "Asia/Shanghai", description="The time zone of cron schedules (an IANA name)."
    )
    max_concurrent_crawls: int = Field(2, ge=1, description="Crawls running at once.")
    misfire_grace_seconds: int = Field(
        3600, ge=1, description="A run this late still runs; several late runs coalesce into one."
    )
    crawl_timeout_minutes: int = Field(
        120, ge=1, description="Wall-clock limit of one crawl process (SIGTERM, then SIGKILL)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address of /healthz and /metrics.")
    metrics_port: int = Field(
        9410, ge=0, le=65535, description="Port of /healthz and /metrics; 0 picks a free one."
    )
    alert_failures_in_a_row: int = Field(
        3, ge=1, description="Alert `failing` when this many runs of a site fail in a row."
    )
    alert_extraction_failed_percent: float = Field(
        50,
        gt=0,
        le=100,
        description="Alert `extraction` when extraction fails on more than this share of "
        "a run's article pages.",
    )
    alert_stale_intervals: int = Field(
        3, ge=1, description="Alert `stale` after this many of a site's intervals without success."
    )
    alert_webhook_url: str | None = Field(
        None,
        description="Alerts are POSTed here as JSON; null: only logged and shown by `status`. "
        "Treated as a secret: never logged or shown.",
    )
    verify_cron: str | None = Field(
        "30 3 * * sun",
        description="When the scheduler runs the fixity audit (`ufarchive verify`), a cron "
        "in `timezone`; weekly by default; null: never. Damage raises the `fixity` alert. "
        "Name weekdays (sun, mon ...): APScheduler counts 0 as Monday, cron as Sunday.",
    )

    @field_validator("verify_cron")
    @classmethod
    def _check_verify_cron(cls, value: str | None) -> str | None:
        return _cron(value)


class WebSettings(_Strict):
    """The web UI (`ufarchive serve`, and `schedule --web`)."""

    host: str = Field("127.0.0.1", description="Address the web UI binds.")
    port: int = Field(8410, ge=0, le=65535, description="Port of the web UI.")
    public: bool = Field(
        True,
        description="Read-only pages without a login; false: a login for everything. "
        "Changes (collections, exports) always need one. Public on an address other than "
        "loopback prints a warning.",
    )
    secret_key: str | None = Field(
        None,
        description="Signs session cookies; null: a random key kept in data_dir/web-secret "
        "(give every web process of one archive the same key). Treated as a secret.",
    )
    session_hours: int = Field(12, ge=1, description="A login lasts this long.")
    workers: int = Field(
        0,
        ge=0,
        le=32,
        description="Processes of `ufarchive serve`; 0: one a CPU core, at most 4 (one Python "
        "process serves about one core's worth of pages). `schedule --web` serves in one.",
    )
    login_attempts_per_minute: int = Field(
        5, ge=1, description="Failed logins allowed per client address and minute."
    )


class ExportSettings(_Strict):
    """`ufarchive export` (archive.export)."""

    csv_bom: bool = Field(
        True,
        description="CSV starts with a UTF-8 BOM, so Excel reads Chinese correctly "
        "(--no-bom turns it off for one export).",
    )
    xlsx_max_rows: int = Field(
        1_048_575,
        ge=1,
        le=1_048_575,
        description="Data rows on one XLSX sheet; past it the export goes on on a new sheet.",
    )
    parquet_row_group_rows: int = Field(
        10_000, ge=100, description="Rows in one Parquet row group."
    )


class LoggingSettings(_Strict):
    """What the long-running commands log, on stderr."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object a line."
    )


class SettingsFile(_Strict):
    """The schema of `config/settings.yaml`; every key is optional."""

    data_dir: str | None = Field(
        None,
        description="Where WARC files, logs and the embedded SQLite database live "
        "(UFARCHIVE_DATA_DIR overrides it); null: ./data.",
    )
    database_url: str | None = Field(
        None,
        description="Any SQLAlchemy URL (UFARCHIVE_DATABASE_URL overrides it); null: SQLite "
        "in data_dir. Production: postgresql+psycopg://user:password@host:5432/ufarchive. "
        "Its password is never logged or shown.",
    )
    redis_url: str | None = Field(
        None,
        description="The Redis of distributed crawling (UFARCHIVE_REDIS_URL overrides it); "
        "null: redis://127.0.0.1:6379/0.",
    )
    crawl: CrawlSettings = Field(CrawlSettings(), description=CrawlSettings.__doc__)
    revisit: RevisitSettings = Field(RevisitSettings(), description=RevisitSettings.__doc__)
    scheduler: SchedulerSettings = Field(SchedulerSettings(), description=SchedulerSettings.__doc__)
    web: WebSettings = Field(WebSettings(), description=WebSettings.__doc__)
    logging: LoggingSettings = Field(LoggingSettings(), description=LoggingSettings.__doc__)
    export: ExportSettings = Field(ExportSettings(), description=ExportSettings.__doc__)


#: Settings whose values are secrets: their validation errors never echo the value.
SECRET_KEYS = ("database_url", "scheduler.alert_webhook_url", "web.secret_key")


@dataclass(frozen=True)
class Settings:
    """Resolved settings: file values, then environment overrides, then defaults."""

    config_dir: Path
    data_dir: Path
    database_url: str
    crawl: CrawlSettings
    scheduler: SchedulerSettings
    web: WebSettings
    logging: LoggingSettings
    revisit: RevisitSettings = field(default_factory=RevisitSettings)
    redis_url: str = DEFAULT_REDIS_URL
    export: ExportSettings = field(default_factory=ExportSettings)

    @property
    def sites_dir(self) -> Path:
        return self.config_dir / "sites"

    @property
    def warc_dir(self) -> Path:
        return self.data_dir / "warc"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read `settings.yaml` from the config folder and apply `UFARCHIVE_*` overrides.

    A missing `settings.yaml` means all defaults; a broken one raises `ConfigError`.
    """
    env = os.environ if env is None else env
    config_dir = Path(env.get(ENV_CONFIG) or "config")
    path = config_dir / SETTINGS_FILE
    file = load_model(path, SettingsFile, ConfigError) if path.exists() else SettingsFile()
    data_dir = Path(env.get(ENV_DATA_DIR) or file.data_dir or "data")
    database_url = env.get(ENV_DATABASE_URL) or file.database_url or sqlite_url(data_dir)
    crawl = file.crawl
    if env.get(ENV_CRAWL_MODE):
        try:
            crawl = CrawlSettings.model_validate(
                {**crawl.model_dump(), "mode": env[ENV_CRAWL_MODE]}
            )
        except ValidationError:
            raise ConfigError(
                ENV_CRAWL_MODE,
                "(environment)",
                f"{env[ENV_CRAWL_MODE]!r}: use local or distributed",
            ) from None
    return Settings(
        config_dir=config_dir,
        data_dir=data_dir,
        database_url=database_url,
        crawl=crawl,
        scheduler=file.scheduler,
        web=file.web,
        logging=file.logging,
        revisit=file.revisit,
        redis_url=env.get(ENV_REDIS_URL) or file.redis_url or DEFAULT_REDIS_URL,
        export=file.export,
    )


def sqlite_url(data_dir: Path) -> str:
    """The embedded default: one SQLite file in the data dir."""
    return f"sqlite:///{data_dir / SQLITE_FILE}"


# --- YAML files into pydantic models, with one-line errors ------------------------------

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping; errors name the file and position."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, "(file)", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, "(file)", f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise error(path, where, f"YAML syntax error: {one_line(problem)}") from None
    except yaml.YAMLError as exc:
        raise error(path, "(yaml)", f"YAML error: {one_line(str(exc))}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(path, "(top level)", f"expected a mapping of keys, got {type(data).__name__}")
    return data


def load_model(path: Path, model: type[M], error: type[ConfigError] = ConfigError) -> M:
    """Validate a YAML file against `model`; the first problem becomes one error line."""
    data = read_yaml(path, error)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        key, problem = describe_validation_error(exc)
        raise error(path, key, problem) from None


def describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(dotted key, problem) of the first error, worded for a person editing YAML."""
    first = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        problem = "unknown key"
    elif kind == "missing":
        problem = "missing required key"
    else:
        msg = re.sub(r"^(Value|Assertion) error, ", "", first["msg"])
        value = first.get("input")
        # Our own validators name the value already; pydantic's built-in messages do not.
        # A secret's value is never echoed (it would land in logs and terminals).
        named = kind in ("value_error", "assertion_error")
        shown = f" (got {value!r})" if not named and isinstance(value, str | int | float) else ""
        if key in SECRET_KEYS:
            shown = ""
        problem = f"{msg}{shown}"
    more = len(exc.errors()) - 1
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return key, one_line(problem)


def one_line(text: str) -> str:
    return " ".join(text.split())
