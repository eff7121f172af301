"""`config/sites/*.yaml` -> validated `SiteConfig`; one file a site, checked on load.

Every problem is reported as one line naming the file, the key and what is wrong
(`SiteConfigError`), so ops can fix a site without reading a traceback.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from archive.errors import SiteConfigError
from archive.settings import (
    RevisitSettings,
    cron_trigger,
    describe_validation_error,
    load_model,
)
from crawler.addresses import is_allowed_host

NAME_RE = re.compile(r"^[a-z0-9_-]+$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
SITE_SUFFIXES = (".yaml", ".yml")
XPATH_PREFIX = "xpath:"
CSS_PREFIX = "css:"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Strict):
    """When the scheduler runs a site: exactly one of the three keys."""

    cron: str | None = None
    interval_minutes: int | None = Field(None, ge=1)
    # Seconds exist for tests and demos; production sites use minutes or cron.
    interval_seconds: int | None = Field(None, ge=1)

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is not None:
            check_cron(value)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [k for k in ("cron", "interval_minutes", "interval_seconds") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of cron, interval_minutes, interval_seconds"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def describe(self) -> str:
        if self.cron:
            return f"cron {self.cron}"
        if self.interval_minutes:
            return f"every {self.interval_minutes} min"
        return f"every {self.interval_seconds} s"


class Selectors(_Strict):
    """Per-field overrides of generic extraction: CSS, or XPath prefixed with `xpath:`."""

    title: str | None = None
    body: str | None = None
    source: str | None = None
    publish_time: str | None = None
    editor: str | None = None
    author: str | None = None
    contributor: str | None = None

    @field_validator("*")
    @classmethod
    def _check_selector(cls, value: str | None) -> str | None:
        if value is not None:
            check_selector(value)
        return value

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


class SiteConfig(_Strict):
    """One site to crawl, as `config/sites/<name>.yaml` describes it (DESIGN.md)."""

    name: str = Field(description="[a-z0-9_-]+, unique, equal to the file name.")
    title: str = Field(min_length=1, description="The display name, e.g. 中央统战部.")
    # allowed_domains comes before the URL lists so that their validator can see it.
    allowed_domains: list[str] = Field(
        min_length=1,
        description="Host names or IP addresses the crawl may fetch from (a name covers its "
        "subdomains). Nothing outside is requested, through links, redirects, feeds, "
        "sitemaps or <base>; a loopback, private or link-local address is reached only when "
        "listed here exactly (by name or address).",
    )
    start_urls: list[str] = Field(min_length=1, description="Listing pages a run starts from.")
    article_url_pattern: str = Field(description="A regex: links that are articles.")
    follow_url_pattern: str | None = Field(
        None, description="A regex: listing pages to follow (paging); null: none."
    )
    feed_urls: list[str] = Field([], description="RSS 1.0/2.0 or Atom feeds listing articles.")
    sitemap_urls: list[str] = Field([], description="Sitemaps or sitemap indexes (gzip too).")
    schedule: Schedule = Field(
        description="When the scheduler runs the site: {cron: '0 */2 * * *'} (in "
        "scheduler.timezone), {interval_minutes: 60} or {interval_seconds: N} (tests)."
    )
    keywords: list[str] = Field(
        [], description="Keep only articles whose title or body holds one of these; []: all."
    )
    max_pages: int = Field(2000, ge=1, description="Requests one run may make for this site.")
    selectors: Selectors = Field(
        Selectors(),
        description="Per-field CSS selectors (or XPath prefixed with 'xpath:') for title, "
        "body, source, publish_time, editor, author, contributor; unset fields use "
        "generic extraction.",
    )
    url_aliases: dict[str, str] = Field(
        {},
        description="Other hosts of the same pages (mobile site, mirror) -> the host that "
        "names them in canonical URLs.",
    )
    revisit: dict[str, Any] = Field(
        {}, description="Keys of settings.yaml's revisit: that differ for this site."
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("must match [a-z0-9_-]+")
        return value

    @field_validator("article_url_pattern", "follow_url_pattern")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                with warnings.catch_warnings():
                    # Python warns of a pattern whose meaning a later version will change
                    # ("Possible nested set"): refused here with the reason, not printed
                    # as a traceback-like warning (bench/fuzz.py found one)
                    warnings.simplefilter("error", FutureWarning)
                    re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regular expression: {exc}") from None
            except FutureWarning as exc:
                raise ValueError(f"ambiguous regular expression: {exc}; escape it") from None
        return value

    @field_validator("allowed_domains")
    @classmethod
    def _check_domains(cls, value: list[str]) -> list[str]:
        for domain in value:
            if not is_host(domain):
                raise ValueError(
                    f"{domain!r} is not a host name or IP address (no scheme, port or path)"
                )
        return [d.lower() for d in value]

    @field_validator("url_aliases")
    @classmethod
    def _check_aliases(cls, value: dict[str, str]) -> dict[str, str]:
        for alias, host in value.items():
            for name in (alias, host):
                if not is_host(name):
                    raise ValueError(f"{name!r} is not a host name or IP address")
        return {alias.lower(): host.lower() for alias, host in value.items()}

    @field_validator("revisit")
    @classmethod
    def _check_revisit(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            RevisitSettings.model_validate(value)
        except ValidationError as exc:
            key, problem = describe_validation_error(exc)
            raise ValueError(f"{key}: {problem}") from None
        return value

    def revisit_policy(self, base: RevisitSettings) -> RevisitSettings:
        """settings.yaml's revisit policy with this site's overrides."""
        if not self.revisit:
            return base
        return RevisitSettings.model_validate({**base.model_dump(), **self.revisit})

    @field_validator("start_urls", "feed_urls", "sitemap_urls")
    @classmethod
    def _check_urls(cls, value: list[str], info: ValidationInfo) -> list[str]:
        domains = info.data.get("allowed_domains")
        for url in value:
            check_url(url)
            host = urlsplit(url).hostname or ""
            if domains is not None and not is_allowed_host(host, domains):
                raise ValueError(f"{url} is outside allowed_domains")
        return value

    def is_allowed_host(self, host: str) -> bool:
        return is_allowed_host(host, self.allowed_domains)

    def canonical(self, url: str) -> str:
        """The canonical URL of a page of this site (its aliases applied). Memoised: a
        crawl asks it of every link it sees, often of the same URL several times."""
        return _canonical(url, tuple(self.url_aliases.items()))

    @property
    def article_re(self) -> re.Pattern[str]:
        return re.compile(self.article_url_pattern)

    @property
    def follow_re(self) -> re.Pattern[str] | None:
        return re.compile(self.follow_url_pattern) if self.follow_url_pattern else None


@functools.lru_cache(maxsize=65536)
def _canonical(url: str, aliases: tuple[tuple[str, str], ...]) -> str:
    from archive.urls import canonical_url

    return canonical_url(url, dict(aliases))


def check_cron(expr: str) -> None:
    """Raise ValueError unless `expr` is a 5-field crontab that APScheduler accepts."""
    cron_trigger(expr, "UTC")


def check_selector(selector: str) -> None:
    """Raise ValueError unless `selector` is valid CSS or `xpath:` + valid XPath 1.0."""
    from cssselect import GenericTranslator, SelectorError
    from lxml import etree

    if selector.startswith(XPATH_PREFIX):
        try:
            etree.XPath(selector[len(XPATH_PREFIX) :])
        except etree.XPathSyntaxError as exc:
            raise ValueError(f"bad XPath {selector!r}: {exc}") from None
        return
    css = selector.removeprefix(CSS_PREFIX)
    try:
        GenericTranslator().css_to_xpath(css)
    except SelectorError as exc:
        raise ValueError(
            f"unknown selector syntax {selector!r} ({exc}); use CSS, or prefix XPath with 'xpath:'"
        ) from None


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")


def is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return bool(HOSTNAME_RE.match(value.lower()))
    return True


# --- loading -------------------------------------------------------------------------------


def site_files(sites_dir: Path) -> list[Path]:
    if not sites_dir.is_dir():
        raise SiteConfigError(sites_dir, "(folder)", "no such folder; set UFARCHIVE_CONFIG")
    return sorted(p for p in sites_dir.iterdir() if p.suffix in SITE_SUFFIXES and p.is_file())


def load_site_file(path: Path) -> SiteConfig:
    site = load_model(path, SiteConfig, SiteConfigError)
    if site.name != path.stem:
        raise SiteConfigError(path, "name", f"{site.name!r} must match the file name {path.stem!r}")
    return site


def load_sites(sites_dir: Path) -> list[SiteConfig]:
    """Every site, sorted by name; the first bad file raises `SiteConfigError`."""
    sites, errors = check_sites(sites_dir)
    if errors:
        raise errors[0]
    return sites


def check_sites(
    sites_dir: Path, names: Iterable[str] | None = None
) -> tuple[list[SiteConfig], list[SiteConfigError]]:
    """Load the site files (all, or those named), collecting one error per bad file."""
    files = site_files(sites_dir)
    wanted = set(names) if names is not None else None
    if wanted is not None:
        missing = wanted - {p.stem for p in files}
        if missing:
            known = ", ".join(sorted({p.stem for p in files})) or "none"
            raise SiteConfigError(
                sites_dir,
                "(name)",
                f"no site file for {', '.join(sorted(missing))} (known: {known})",
            )
    sites: list[SiteConfig] = []
    errors: list[SiteConfigError] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            site = load_site_file(path)
        except SiteConfigError as exc:
            if wanted is None or path.stem in wanted:
                errors.append(exc)
            continue
        if site.name in seen:
            errors.append(
                SiteConfigError(
                    path, "name", f"duplicate site name {site.name!r} (also in {seen[site.name]})"
                )
            )
            continue
        seen[site.name] = path
        if wanted is None or site.name in wanted:
            sites.append(site)
    return sites, errors
