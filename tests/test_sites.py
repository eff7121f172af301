"""Site files: every kind of broken file is one line naming file, key and problem; exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from archive.errors import SiteConfigError
from crawler.cli import app
from crawler.sites import load_site_file, load_sites
from tests.conftest import SITE_TEMPLATE, write_site

REPO = Path(__file__).resolve().parents[1]

# (file name, text after the template or a replacement, the key the error must name, a word of the problem)
BROKEN = [
    ("yaml_syntax", "title: [unclosed\n", "line ", "YAML syntax error"),
    ("unknown_key", "colour: red\n", "colour", "unknown key"),
    ("missing_key", ("article_url_pattern", None), "article_url_pattern", "missing required key"),
    (
        "bad_regex",
        ("article_url_pattern", "'/tzyw/(\\d+\\.html$'"),
        "article_url_pattern",
        "bad regular expression",
    ),
    (  # found by bench/fuzz.py: Python's FutureWarning, printed, instead of an error
        "ambiguous_regex",
        ("follow_url_pattern", "'/tzyw/[[a-z]]+/'"),
        "follow_url_pattern",
        "ambiguous regular expression: Possible nested set",
    ),
    ("bad_cron", ("schedule", '{cron: "61 * * * *"}'), "schedule.cron", "bad cron"),
    ("short_cron", ("schedule", '{cron: "0 2 * *"}'), "schedule.cron", "5 fields"),
    (
        "two_schedules",
        ("schedule", "{cron: '0 * * * *', interval_minutes: 5}"),
        "schedule",
        "exactly one",
    ),
    ("bad_css", "selectors: {title: 'h1[['}\n", "selectors.title", "unknown selector syntax"),
    ("bad_xpath", "selectors: {body: 'xpath://div[@'}\n", "selectors.body", "bad XPath"),
    (
        "unknown_prefix",
        "selectors: {editor: 'regex:编辑(.*)'}\n",
        "selectors.editor",
        "unknown selector syntax",
    ),
    ("unknown_field", "selectors: {summary: p}\n", "selectors.summary", "unknown key"),
    ("bad_name", ("name", "Bad Name"), "name", "[a-z0-9_-]+"),
    (
        "bad_domain",
        ("allowed_domains", "[https://www.example.gov.cn/]"),
        "allowed_domains",
        "not a host name",
    ),
    ("outside", ("start_urls", "[https://other.gov.cn/]"), "start_urls", "outside allowed_domains"),
    ("not_http", ("start_urls", "[ftp://www.example.gov.cn/]"), "start_urls", "not an http(s) URL"),
    ("bad_int", "max_pages: lots\n", "max_pages", "valid integer"),
    (
        "bad_alias",
        "url_aliases: {'m example': www.example.gov.cn}\n",
        "url_aliases",
        "not a host name",
    ),
    ("not_mapping", "REPLACE:- just\n- a list\n", "(top level)", "expected a mapping"),
]


def make_broken(config_dir: Path, name: str, change: str | tuple[str, str | None]) -> Path:
    path = config_dir / "sites" / f"{name}.yaml"
    if isinstance(change, str) and change.startswith("REPLACE:"):
        path.write_text(change.removeprefix("REPLACE:"), encoding="utf-8")
        return path
    if isinstance(change, str):
        return write_site(config_dir, name, change)
    key, value = change
    lines = [
        line if not line.startswith(key + ":") else (f"{key}: {value}" if value is not None else "")
        for line in SITE_TEMPLATE.format(name=name).splitlines()
    ]
    text = "\n".join(lines) + "\n"
    if key == "name":
        text = text.replace(f"name: {value}", f"name: '{value}'")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "change", "key", "problem"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_file_is_one_line_naming_file_and_key(
    config_dir: Path,
    env: dict[str, str],
    name: str,
    change: str | tuple[str, str | None],
    key: str,
    problem: str,
) -> None:
    write_site(config_dir, "good")
    path = make_broken(config_dir, name, change)
    result = CliRunner().invoke(app, ["sites", "check"], env=env)
    assert result.exit_code == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr
    line = errors[0]
    assert line.startswith(f"error: {path}: {key}"), line
    assert problem in line
    assert "Traceback" not in result.output + result.stderr
    assert "ok: good" in result.stdout  # the good file is still checked


def test_duplicate_names_are_reported(config_dir: Path, env: dict[str, str]) -> None:
    write_site(config_dir, "dup")
    (config_dir / "sites" / "dup.yml").write_text(
        SITE_TEMPLATE.format(name="dup"), encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["sites", "check"], env=env)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {config_dir / 'sites' / 'dup.yml'}: name: duplicate site name 'dup' "
        f"(also in {config_dir / 'sites' / 'dup.yaml'})"
    )


def test_name_must_match_the_file(config_dir: Path) -> None:
    path = config_dir / "sites" / "one.yaml"
    path.write_text(SITE_TEMPLATE.format(name="two"), encoding="utf-8")
    with pytest.raises(SiteConfigError, match="must match the file name 'one'"):
        load_site_file(path)


def test_check_one_site_ignores_the_others(config_dir: Path, env: dict[str, str]) -> None:
    write_site(config_dir, "good")
    write_site(config_dir, "broken", "colour: red\n")
    result = CliRunner().invoke(app, ["sites", "check", "good"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ok: good ({config_dir / 'sites' / 'good'}.yaml)"
    result = CliRunner().invoke(app, ["sites", "check", "nosuch"], env=env)
    assert result.exit_code == 2
    assert "no site file for nosuch (known: broken, good)" in result.stderr


def test_a_full_site_file_loads(config_dir: Path) -> None:
    write_site(
        config_dir, "full",
        "feed_urls: [https://www.example.gov.cn/rss.xml]\n"
        "sitemap_urls: [https://sub.www.example.gov.cn/sitemap.xml]\n"
        "keywords: [统战, 統戰]\nmax_pages: 50\n"
        "selectors: {title: h1.title, body: 'xpath://div[@id=\"content\"]', source: null}\n",
    )  # fmt: skip
    (site,) = load_sites(config_dir / "sites")
    assert site.name == "full" and site.max_pages == 50 and site.keywords == ["统战", "統戰"]
    assert site.selectors.given() == {"title": "h1.title", "body": 'xpath://div[@id="content"]'}
    assert site.article_re.search("/tzyw/202402/t20240207_123456.html")
    assert site.follow_re is not None and site.follow_re.search("/tzyw/index_3.html")
    assert site.schedule.describe() == "cron 0 */2 * * *"
    assert site.is_allowed_host("sub.www.example.gov.cn") and not site.is_allowed_host(
        "example.gov.cn"
    )


def test_ip_addresses_and_interval_schedules(config_dir: Path) -> None:
    template = SITE_TEMPLATE.replace(
        "https://www.example.gov.cn/", "http://127.0.0.1:8123/"
    ).replace("[www.example.gov.cn]", "[127.0.0.1]")
    write_site(
        config_dir,
        "local",
        template=template.replace('{{cron: "0 */2 * * *"}}', "{{interval_seconds: 2}}"),
    )
    (site,) = load_sites(config_dir / "sites")
    assert site.allowed_domains == ["127.0.0.1"] and site.schedule.interval_seconds == 2
    assert site.schedule.describe() == "every 2 s"


def test_sites_list_shows_a_table(config_dir: Path, env: dict[str, str]) -> None:
    write_site(config_dir, "alpha")
    write_site(
        config_dir,
        "beta",
        template=SITE_TEMPLATE.replace('{{cron: "0 */2 * * *"}}', "{{interval_minutes: 30}}"),
    )
    result = CliRunner().invoke(app, ["sites", "list"], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "alpha" in line or "beta" in line]
    assert len(lines) == 2
    assert (
        "测试统战网" in lines[0]
        and "cron 0 */2 * * *" in lines[0]
        and "https://www.example.gov.cn/tzyw/" in lines[0]
    )
    assert "every 30 min" in lines[1]


def test_shipped_site_files_are_valid() -> None:
    sites = load_sites(REPO / "config" / "sites")
    assert sites, "config/sites/ ships at least one site"


def test_shipped_site_files_match_the_real_sites_url_shapes() -> None:
    """Each shipped file gives sample article URLs of the real site (which its pattern must
    match) or says that the article shape is not known; and says what it knows of listings."""
    for path in sorted((REPO / "config" / "sites").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        site = load_site_file(path)
        samples = re.findall(r"^# sample article: (\S+)$", text, re.M)
        if "Article URL shape: NOT known" not in text:
            assert samples, f"{path.name}: no sample article and no 'NOT known'"
        for url in samples:
            assert site.article_re.search(url), f"{path.name}: pattern misses {url}"
            assert site.is_allowed_host(urlsplit(url).hostname or ""), url
        assert "Listing" in text or "listing" in text, path.name
    zytzb = load_site_file(REPO / "config" / "sites" / "zytzb.yaml")
    assert zytzb.article_re.search("/zytzb/2024-11/08/article_2024110814262019636.shtml")
    assert not zytzb.is_allowed_host("zytzb.chinanews.com")


def test_sites_check_as_a_user_runs_it(config_dir: Path, env: dict[str, str]) -> None:
    path = write_site(config_dir, "cron", "")
    path.write_text(path.read_text(encoding="utf-8").replace("0 */2", "0 */99"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "crawler", "sites", "check"], env={**env, "PATH": ""}, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(
        f"error: {path}: schedule.cron: bad cron"
    )
