"""End to end in headless chromium (Debian's, through playwright): an archivist searches
统战, opens a hit, reads it in traditional script, opens the version diff of the edited
article, follows a republication, and opens the archived page view of a page full of
scripts, handlers, a meta refresh, a form and external resources, which must run nothing
and load nothing from outside. Every page visited is saved as a screenshot (the path is
printed). SQLite only: tests/test_web_*.py cover PostgreSQL in process."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser import artifacts_dir, chromium, live_server, need_chromium
from tests.exportworld import ARTICLES
from tests.webworld import COPY_URL, HOSTILE_URL, ORIGINAL_URL, XSS_URL, WebWorld, make_web_world

EDITED_URL = ARTICLES[-1][1]
ARTICLE_LINK = re.compile(r"^/articles/(\d+)$")


#: How chromium's own console reports begin (a load or a script it refused).
BROWSER_REPORTS = ("Refused to", "Blocked script execution", "Blocked form submission")
#: Elements and attributes of the hostile page that must not reach the archived view.
HOSTILE_LEFTOVERS = """() => {
  const found = [];
  for (const el of document.querySelectorAll(
      "script, form, iframe, object, embed, base, meta[http-equiv]")) found.push(el.outerHTML);
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      const value = attr.value.toLowerCase();
      if (attr.name.startsWith("on") || value.includes("javascript:")
          || value.includes("evil.example")) found.push(el.tagName + " " + attr.name);
    }
  }
  for (const sheet of document.querySelectorAll("style")) {
    if (sheet.textContent.includes("evil.example")) found.push("style " + sheet.textContent);
  }
  return found;
}"""


@dataclass
class Site:
    """The served world, the browser, and what the browser did: every request, every
    dialog, every console message; requests off the test server's origin are refused and
    kept in `foreign`."""

    world: WebWorld
    origin: str
    browser: Any
    shots: Path
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)

    def context(self, **options: Any) -> Any:
        context = self.browser.new_context(**options)

        def route(route: Any) -> None:
            url = route.request.url
            if url == self.origin or url.startswith(self.origin + "/"):
                route.continue_()
            else:  # never reaches the network: the test fails on it below
                self.foreign.append(url)
                route.abort()

        context.set_default_timeout(5000)
        context.route("**/*", route)
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("page", self.watch)
        return context

    def watch(self, page: Any) -> None:
        def dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message} on {page.url}")
            d.dismiss()

        page.on("dialog", dialog)
        page.on("console", lambda m: self.console.append((m.type, m.text)))

    def shot(self, page: Any, name: str, full_page: bool = True) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 1000, path
        return path

    def id(self, url: str) -> int:
        return self.world.ids[url]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Site]:
    need_chromium()  # skip (or fail under CI=true) before building anything
    root = tmp_path_factory.mktemp("browser")
    world = make_web_world(root, f"sqlite:///{root / 'data' / 'ufarchive.sqlite3'}")
    shots = artifacts_dir("web-browser")
    for old in shots.glob("*.png"):
        old.unlink()
    with live_server(world.app()) as server, chromium() as browser:
        yield Site(world, server.origin, browser, shots)
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if capture is not None:  # shown even when pytest captures the output
        with capture.global_and_fixture_disabled():
            print(f"\nscreenshots of the browser tests: {shots}")


def hits(page: Any) -> list[int]:
    """The article ids the page links to, in page order, once each."""
    found: list[int] = []
    for href in page.eval_on_selector_all(
        "main a[href]", "as => as.map(a => a.getAttribute('href'))"
    ):
        match = ARTICLE_LINK.match(href.split("?")[0].split("#")[0])
        if match and int(match.group(1)) not in found:
            found.append(int(match.group(1)))
    return found


def test_search_read_diff_republication(site: Site) -> None:
    started = time.monotonic()
    context = site.context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(site.origin + "/")
    site.shot(page, "01-home")

    # search 统战 from the box on /: the query lands in the URL (a permalink)
    page.locator("input[name=q]").first.fill("统战")
    page.locator("input[name=q]").first.press("Enter")
    page.wait_for_load_state()
    assert "q=%E7%BB%9F%E6%88%98" in page.url or "q=统战" in page.url, page.url
    cluster = {site.id(ORIGINAL_URL), site.id(COPY_URL)}
    found = hits(page)
    assert cluster & set(found), found
    assert "<mark>" in page.inner_html("main")  # highlighted snippets
    site.shot(page, "02-search")

    # open the hit of the first article (or its copy: one hit for the cluster), then read
    # it in traditional script
    page.locator("main a.hit-title", has_text="中央统战部召开党外人士座谈会").first.click()
    page.wait_for_url(re.compile(r"/articles/\d+$"))
    opened = int(page.url.rsplit("/", 1)[1])
    assert opened in cluster, page.url
    assert "中央统战部召开党外人士座谈会" in page.inner_text("main")
    site.shot(page, "03-article")
    page.click("main a[href*='script=hant']")
    page.wait_for_url(re.compile(r"script=hant"))
    assert "中央統戰部" in page.inner_text("main")
    site.shot(page, "04-article-hant")

    # the republication cluster: each member links the other, on another site
    (other,) = cluster - {opened}
    page.goto(f"{site.origin}/articles/{opened}")
    page.click(f"main a[href='/articles/{other}']")
    page.wait_for_url(re.compile(rf"/articles/{other}$"))
    assert "中央统战部召开党外人士座谈会" in page.inner_text("main")
    assert f"/articles/{opened}" in page.inner_html("main")  # and back
    copy_host = "www.ycstzb.example.cn" if other == site.id(COPY_URL) else "www.zytzb.gov.cn"
    assert copy_host in page.inner_text("main")
    site.shot(page, "05-republication")

    # the edited article: from its page to the diff of its two versions
    page.goto(f"{site.origin}/articles/{site.id(EDITED_URL)}")
    page.click(f"main a[href*='/articles/{site.id(EDITED_URL)}/diff']")
    page.wait_for_url(re.compile(rf"/articles/{site.id(EDITED_URL)}/diff"))
    deleted = " ".join(page.locator("main del").all_inner_texts())
    inserted = " ".join(page.locator("main ins").all_inner_texts())
    assert "一" in deleted and "二" in inserted, (deleted, inserted)  # 第一版 -> 第二版
    site.shot(page, "06-diff")

    context.close()
    assert not site.dialogs and not site.foreign, (site.dialogs, site.foreign)
    assert time.monotonic() - started < 20


def test_archived_page_runs_nothing_and_loads_nothing(site: Site) -> None:
    site.requests.clear()
    site.console.clear()
    context = site.context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    article = site.id(HOSTILE_URL)
    page.goto(f"{site.origin}/articles/{article}")
    page.click(f"main a[href='/articles/{article}/archived']")
    url = f"{site.origin}/articles/{article}/archived"
    page.wait_for_url(url)
    frame_element = page.wait_for_selector(f"iframe[src='/articles/{article}/archived/raw']")
    sandbox = frame_element.get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox, sandbox
    raw = frame_element.content_frame()
    assert raw is not None
    raw.wait_for_load_state()
    assert "统战部召开民主党派座谈会" in raw.inner_text("body")  # the captured page is shown
    page.wait_for_timeout(1500)  # the meta refresh said 0 s: it had its chance
    assert page.url == url
    assert all(not f.url.startswith("http") or f.url.startswith(site.origin) for f in page.frames)
    assert raw.url == f"{site.origin}/articles/{article}/archived/raw", raw.url
    titles = [f.evaluate("document.title") for f in page.frames]
    assert "ran" not in titles, titles
    # what would run or call out is gone from the document the frame shows
    left = raw.evaluate(HOSTILE_LEFTOVERS)
    assert left == [], left
    site.shot(page, "07-archived")

    raw_page = context.new_page()  # the raw route opened on its own runs nothing either
    response = raw_page.goto(f"{site.origin}/articles/{article}/archived/raw")
    assert response is not None and response.status == 200
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "script-src" not in csp.replace("'none'", ""), csp
    raw_page.wait_for_timeout(500)
    assert raw_page.url.startswith(site.origin) and raw_page.title() != "ran"
    site.shot(raw_page, "08-archived-raw")
    context.close()

    assert not site.dialogs, site.dialogs
    assert not site.foreign, site.foreign
    assert site.requests and all(u.startswith(site.origin + "/") for u in site.requests)
    # the console holds the browser's own reports (blocked by the sandbox or the CSP) only
    scripts = [text for _, text in site.console if not text.startswith(BROWSER_REPORTS)]
    assert not scripts, site.console


def test_stored_markup_is_text(site: Site) -> None:
    context = site.context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{site.origin}/?q=统战标题")
    assert site.id(XSS_URL) in hits(page)
    site.shot(page, "09-search-xss")
    page.goto(f"{site.origin}/articles/{site.id(XSS_URL)}")
    text = page.inner_text("main")
    assert '统战标题<script>alert("xss")</script>' in text, text[:500]
    assert "来源<script>" in text and "作者<b>粗</b>" in text
    assert page.locator("main script, main img[src=x]").count() == 0
    page.wait_for_timeout(300)
    site.shot(page, "10-article-xss")
    context.close()
    assert not site.dialogs, site.dialogs
    assert not site.foreign, site.foreign


def test_phone_viewport(site: Site) -> None:
    context = site.context(
        viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True,
        has_touch=True,
    )  # fmt: skip
    page = context.new_page()
    for name, path in (
        ("11-phone-search", "/?q=统战"),
        ("12-phone-article", f"/articles/{site.id(ORIGINAL_URL)}"),
    ):
        page.goto(site.origin + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide on a 375 px phone"
        site.shot(page, name, full_page=False)
    context.close()
    assert not site.dialogs and not site.foreign


def test_works_without_javascript(site: Site) -> None:
    context = site.context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto(site.origin + "/")
    page.locator("main input[name=q]").fill("统战")
    page.locator("main button[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/\?q="))
    assert {site.id(ORIGINAL_URL), site.id(COPY_URL)} & set(hits(page))
    page.click("main a[href^='/facets']")  # the facets a script would have fetched
    page.wait_for_url(re.compile(r"/facets\?"))
    assert "zytzb" in page.inner_text("main")
    site.shot(page, "13-nojs-facets")
    page.goto(f"{site.origin}/articles/{site.id(EDITED_URL)}")
    page.click(f"main a[href*='/articles/{site.id(EDITED_URL)}/diff']")
    assert page.locator("main del").count() and page.locator("main ins").count()
    context.close()
    assert not site.dialogs and not site.foreign


def test_every_page_keeps_to_its_policy(site: Site) -> None:
    """Each page of the UI renders under its CSP with nothing refused (an inline script or
    style would show as a console report) and nothing fetched from elsewhere."""
    site.console.clear()
    context = site.context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    edited = site.id(EDITED_URL)
    tour = [
        ("/?q=统战&sort=newest", "14-search-newest"), ("/facets?q=统战", "15-facets"),
        (f"/articles/{edited}?script=hans", "16-article-hans"),
        (f"/articles/{edited}/diff?a=1&b=2", "17-diff"), ("/browse", "18-browse"),
        ("/sites", "19-sites"), ("/sites/zytzb", "20-site"), ("/changes", "21-changes"),
        ("/collections", "22-collections"), ("/login", "23-login"), ("/api/docs", "24-api-docs"),
    ]  # fmt: skip
    for path, name in tour:
        response = page.goto(site.origin + path)
        assert response is not None and response.status == 200, (path, response)
        page.wait_for_load_state("load")
        assert not site.console, (path, site.console)
        site.shot(page, name)
    missing = page.goto(site.origin + "/articles/999999")
    assert missing is not None and missing.status == 404
    assert "返回搜索" in page.inner_text("main") and "Traceback" not in page.content()
    site.shot(page, "25-not-found")
    context.close()
    assert not site.dialogs and not site.foreign, (site.dialogs, site.foreign)
