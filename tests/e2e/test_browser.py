"""The console in a real browser: Debian's chromium driven by Playwright against ``kube-sentinel demo``.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (``apt-get install chromium``,
which ``.ci/run`` does). Screenshots of each page land in ``tests/e2e/screenshots/`` (not committed);
``screenshots/1440x900/`` holds one per page at 1440x900, written by the layout test.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(__file__).resolve().parent / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent: apt-get install chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def demo(name: str, *, store: Path | None = None) -> Iterator[str]:
    """``kube-sentinel demo`` on a free port until the block ends (then SIGTERM); its log in SHOTS."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    SHOTS.mkdir(exist_ok=True)
    log_path = SHOTS / f"{name}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    extra = ["--store", str(store)] if store else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "demo", "--listen", f"127.0.0.1:{port}", *extra],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the demo exited with {proc.returncode}; see {log_path}"
            try:
                if httpx.get(f"{base}/api/errors", timeout=2).json().get("total", 0) > 0:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert time.monotonic() < deadline, "the demo did not serve errors within 60s"
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()  # SIGTERM: uvicorn's graceful shutdown, then the lifespan stops the engine
        try:
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        # uvicorn shuts down gracefully, then re-raises the signal it caught: killed by SIGTERM is clean
        assert code in (0, -signal.SIGTERM), f"the demo did not exit cleanly on SIGTERM ({code}); see {log_path}"
        assert "engine stopped" in log_path.read_text()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The demo, shared by the tests that only read or make harmless changes."""
    with demo("demo-server") as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 2200}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def _settled(page: Any) -> None:
    """The script run is over and lazily loaded element code (metrics, code blocks, charts) has arrived."""
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')",
        timeout=30_000,
    )
    page.wait_for_load_state("networkidle")


def _loaded(page: Any, title: str) -> None:
    page.locator("h1", has_text=title).first.wait_for()
    _settled(page)


def test_overview_shows_metrics_and_a_chart(server: str, page: Any) -> None:
    page.goto(server + "/")
    _loaded(page, "Overview")
    metric = page.locator('[data-testid="stMetric"]', has_text="P1 critical").first
    metric.wait_for()
    api = httpx.get(f"{server}/api/stats", timeout=10)
    assert api.status_code == 200
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.locator(".js-plotly-plot").count() >= 3
    assert page.get_by_text("Live feed").count() >= 1
    _settled(page)
    # it refreshes itself (st.fragment(run_every=5s)): the uptime line moves without a reload
    uptime = page.get_by_text("engine up", exact=False).first
    first = uptime.inner_text()
    page.wait_for_function(
        "t => [...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
        ".some(e => e.innerText.includes('engine up') && e.innerText !== t)",
        arg=first,
        timeout=20_000,
    )
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)


def _csv_ids(text: str) -> set[str]:
    return {row["id"] for row in csv.DictReader(io.StringIO(text))}


def _api_ids(server: str, params: dict[str, str]) -> set[str]:
    ids: set[str] = set()
    page_no = 1
    while True:
        body = httpx.get(
            f"{server}/api/errors", params={**params, "page": str(page_no), "page_size": "500"}, timeout=10
        ).json()
        ids.update(item["id"] for item in body["items"])
        if page_no >= body["pages"]:
            return ids
        page_no += 1


def test_errors_filter_and_csv_matches_the_api(server: str, page: Any) -> None:
    page.goto(server + "/errors")
    _loaded(page, "Errors")
    page.get_by_text("error groups", exact=False).first.wait_for()
    # choose P1 in the Priority filter
    page.locator('[data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option", name="P1 critical").click()
    page.keyboard.press("Escape")
    page.wait_for_url("**priority=P1**")
    _loaded(page, "Errors")
    assert "priority=P1" in page.url
    page.screenshot(path=str(SHOTS / "errors.png"), full_page=True)

    for attempt in range(3):  # the demo keeps polling: a new P1 group may land between the two reads
        before = _api_ids(server, {"priority": "P1"})
        with page.expect_download() as info:
            page.get_by_role("button", name="Download CSV").click()
        download = info.value
        text = Path(download.path()).read_text(encoding="utf-8")
        after = _api_ids(server, {"priority": "P1"})
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows and {r["priority"] for r in rows} == {"P1"}
        if _csv_ids(text) in (before, after):
            break
        assert attempt < 2, f"CSV ids {sorted(_csv_ids(text))} != API ids {sorted(after)}"

    # selecting a row opens its detail (the row marker is the grid's first column)
    grid = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    assert grid is not None
    page.mouse.click(grid["x"] + 16, grid["y"] + 35 + 17)
    page.wait_for_url("**id=**")
    page.get_by_role("heading", name="Why it is here").wait_for()

    # the same view from a shared link, then one group's detail by ?id=
    page.goto(server + "/errors?priority=P1&sort=count")
    _loaded(page, "Errors")
    gid = next(iter(after))
    page.goto(f"{server}/errors?id={gid}")
    page.get_by_role("heading", name="Why it is here").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.locator('[data-testid="stMetricValue"]').first.wait_for()
    page.locator('[data-testid="stCode"]').first.wait_for()
    _settled(page)
    page.screenshot(path=str(SHOTS / "error-detail.png"), full_page=True)


def test_settings_save(server: str, page: Any) -> None:
    page.goto(server + "/settings")
    _loaded(page, "Settings")
    field = page.get_by_role("textbox", name="Poll interval")
    field.fill("2s")  # invalid: shown beside the field, nothing saved
    page.get_by_role("button", name="Save and apply").click()
    page.get_by_text("must be between 5s and 1h").first.wait_for()
    assert httpx.get(f"{server}/api/settings", timeout=10).json()["settings"]["poll_interval"] == 5.0
    page.get_by_role("textbox", name="Poll interval").fill("7s")
    page.get_by_role("button", name="Save and apply").click()
    page.get_by_text("Saved and applied").first.wait_for()
    _settled(page)
    body = httpx.get(f"{server}/api/settings", timeout=10).json()
    assert body["settings"]["poll_interval"] == 7.0
    assert body["history"] and body["history"][0]["changes"]["poll_interval"][1] == 7.0
    page.screenshot(path=str(SHOTS / "settings.png"), full_page=True)


@pytest.mark.parametrize(("path", "title"), [("/rules", "Rules"), ("/history", "History")])
def test_other_pages_render(server: str, page: Any, path: str, title: str) -> None:
    page.goto(server + path)
    _loaded(page, title)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(SHOTS / f"{path.strip('/')}.png"), full_page=True)


def test_bare_streamlit_run_starts_one_engine(browser: Any) -> None:
    """``streamlit run app.py`` alone: app.py starts the demo engine once, whatever the sessions."""
    port = _free_port()
    SHOTS.mkdir(exist_ok=True)
    log_path = SHOTS / "streamlit-run.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("KUBE_SENTINEL_")},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{base}/_stcore/health", timeout=2).text == "ok":
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "streamlit run did not come up"
                time.sleep(0.3)
            contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
            try:
                for i, ctx in enumerate(contexts):  # two browser sessions, each with reruns
                    pg = ctx.new_page()
                    if i == 0:  # the very first visit is a deep link: app.py's navigation still holds
                        pg.goto(base + "/settings")
                        _loaded(pg, "Settings")
                        _sidebar_is_ours(pg)
                    pg.goto(base + "/")
                    _loaded(pg, "Overview")
                    pg.locator('[data-testid="stMetric"]', has_text="P1 critical").first.wait_for()
                    pg.goto(base + "/errors")
                    _loaded(pg, "Errors")
            finally:
                for ctx in contexts:
                    ctx.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
    text = log_path.read_text()
    assert text.count("engine started by app.py") == 1, text
    assert text.count("scheduler started") == 1, text


# -- issue 15: links, paths, layout, banners, risky settings; issue 11: hostile text ---------------


def _sidebar_is_ours(page: Any) -> None:
    """The console's own sidebar: our page titles, the banners and "Your name" (not Streamlit's
    automatic page list of file names)."""
    page.get_by_label("Your name", exact=True).wait_for()
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    for title in ("Overview", "Errors", "Rules", "History", "Settings"):
        assert title in nav, nav
    assert "app" not in nav.split(), nav
    assert page.get_by_text("No cluster: decisions are recorded only").count() >= 1


def test_a_deep_link_first_after_start_keeps_the_navigation(browser: Any) -> None:
    """A bookmarked link as the very first visit after a start, then new sessions: all navigate."""
    with demo("deep-link-server") as base:
        gid = httpx.get(f"{base}/api/errors", timeout=10).json()["items"][0]["id"]
        for path, heading in [(f"/errors?id={gid}", "Why it is here"), ("/settings", "Settings"), ("/", "Overview")]:
            ctx = browser.new_context(viewport={"width": 1440, "height": 900})
            try:
                pg = ctx.new_page()
                pg.set_default_timeout(30_000)
                pg.goto(base + path)
                pg.get_by_role("heading", name=heading).first.wait_for()
                _settled(pg)
                _sidebar_is_ours(pg)
            finally:
                ctx.close()


def test_the_go_tools_detail_link_opens_the_detail(server: str, page: Any) -> None:
    gid = httpx.get(f"{server}/api/errors", timeout=10).json()["items"][0]["id"]
    page.goto(f"{server}/errors/{gid}")
    page.get_by_role("heading", name="Why it is here").wait_for()
    assert page.url.endswith(f"/errors?id={gid}")
    page.locator('[data-testid="stMetricValue"]').first.wait_for()
    _sidebar_is_ours(page)


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/no-such-page"])
def test_unknown_paths_show_a_404_page(server: str, page: Any, path: str) -> None:
    response = page.goto(server + path)
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    page.get_by_role("link", name="Errors").click()
    _loaded(page, "Errors")


OVERFLOW_JS = """() => {
  const wide = e => e.scrollWidth > e.clientWidth + 1;
  const grids = [...document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')]
    .filter(wide).map(e => [e.scrollWidth, e.clientWidth]);
  const metrics = [...document.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricLabel"]')]
    .filter(m => [m, ...m.querySelectorAll('*')].some(wide)).map(m => m.innerText);
  return {page: wide(document.documentElement), grids, metrics};
}"""


HEADERS_JS = """() => [...document.querySelector('[data-testid="stDataFrame"]').querySelectorAll('th')]
  .map(th => th.textContent.trim())"""


def test_every_page_shows_its_key_columns_at_1440x900(server: str, browser: Any) -> None:
    """No horizontal scrolling in any table, no truncated metric card, at 1440x900 with the sidebar open."""
    shots = SHOTS / "1440x900"
    shots.mkdir(parents=True, exist_ok=True)
    gid = httpx.get(f"{server}/api/errors", params={"sort": "first_seen"}, timeout=10).json()["items"][0]["id"]
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        pg = ctx.new_page()
        pg.set_default_timeout(30_000)
        for name, path, title in [
            ("overview", "/", "Overview"),
            ("errors", "/errors", "Errors"),
            ("error-detail", f"/errors?id={gid}", "·"),
            ("rules", "/rules", "Rules"),
            ("history", "/history", "History"),
            ("settings", "/settings", "Settings"),
        ]:
            pg.goto(server + path)
            _loaded(pg, title)
            if name in ("errors", "history"):
                pg.wait_for_function(f"({HEADERS_JS})().length > 0")
                header = pg.evaluate(HEADERS_JS)
                keys = ("Last seen", "First seen", "Remediated") if name == "errors" else ("By", "Group")
                assert all(k in header for k in keys), header
            pg.wait_for_timeout(500)  # the grid measures its columns after it is drawn
            found = pg.evaluate(OVERFLOW_JS)
            assert found == {"page": False, "grids": [], "metrics": []}, (name, found)
            pg.screenshot(path=str(shots / f"{name}.png"))
    finally:
        ctx.close()


def test_risky_settings_need_a_confirmation_naming_them(server: str, page: Any) -> None:
    page.goto(server + "/settings")
    _loaded(page, "Settings")
    page.locator("label", has_text="Dry-run").first.click()  # the toggle: dry-run off
    page.get_by_role("button", name="Save and apply").click()
    named = "turn dry-run OFF: actions will change the cluster"
    page.get_by_text("Please confirm these risky changes").wait_for()
    assert httpx.get(f"{server}/api/settings", timeout=10).json()["settings"]["dry_run"] is True  # not yet
    page.screenshot(path=str(SHOTS / "settings-confirm.png"), full_page=True)
    page.get_by_role("button", name=f"Confirm: {named}").click()
    page.get_by_text("Saved and applied").first.wait_for()
    body = httpx.get(f"{server}/api/settings", timeout=10).json()
    assert body["settings"]["dry_run"] is False
    assert body["history"][0]["confirmed"] == [named]
    # put it back (safe: no confirmation asked)
    _settled(page)
    page.locator("label", has_text="Dry-run").first.click()
    page.get_by_role("button", name="Save and apply").click()
    page.get_by_text("Saved and applied").first.wait_for()
    assert httpx.get(f"{server}/api/settings", timeout=10).json()["settings"]["dry_run"] is True


def test_hostile_lines_and_labels_are_shown_as_text(browser: Any, tmp_path: Path) -> None:
    """Lines and labels carrying Markdown and HTML, through the demo's pipeline into its store: every
    page shows them as text; no image, link or element comes out of them."""
    from sentinel.store.tinydb import TinyDBStore
    from tests.ui import hostile

    store_path = tmp_path / "store.json"
    store = TinyDBStore(store_path)
    rt = hostile.seed(tmp_path / "hostile.jsonl", store=store)
    gid = next(g.id for g in rt.store.all_groups() if g.namespace == hostile.NAMESPACE)
    rt.stop()
    store.close()
    with demo("hostile-server", store=store_path) as base:
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        try:
            pg = ctx.new_page()
            pg.set_default_timeout(30_000)
            requested: list[str] = []
            pg.on("request", lambda r: requested.append(r.url))
            for path, title in [
                (f"/errors?id={gid}", "evil"),
                ("/errors?namespace=" + hostile.NAMESPACE, "Errors"),
                ("/", "Overview"),
                ("/history", "History"),
            ]:
                pg.goto(base + path.replace("[", "%5B").replace("]", "%5D").replace("(", "%28").replace(")", "%29"))
                _loaded(pg, title)
                pg.wait_for_timeout(500)
                for url in hostile.HOSTILE_URLS:
                    assert pg.locator(f'img[src*="{url}"], a[href*="{url}"], [src*="{url}"]').count() == 0, path
                assert pg.locator("[data-testid=stMain] b", has_text="b").count() == 0
                if "id=" in path:
                    shown = pg.evaluate("() => document.querySelector('[data-testid=stMain]').innerText")
                    shown = shown.replace("\u2060", "")  # the invisible word joiner that keeps URLs text
                    h1 = pg.locator("h1").first.inner_text()
                    assert hostile.NAMESPACE in h1, h1  # shown, as written
                    assert hostile.CONTAINER in shown and hostile.LINE in shown
                    pg.screenshot(path=str(SHOTS / "hostile-detail.png"), full_page=True)
            assert not [u for u in requested if "127.0.0.1:9/" in u], requested
        finally:
            ctx.close()


def test_bulk_acknowledge_from_the_queue(server: str, page: Any) -> None:
    # a priority with at least two open groups in the demo (the rules decide which priorities occur)
    groups = httpx.get(f"{server}/api/errors", params={"status": "open", "page_size": 500}, timeout=10).json()["items"]
    by_priority = Counter(g["priority"] for g in groups)
    prio = next(p for p in ("P4", "P3", "P2", "P1") if by_priority[p] >= 2)
    page.goto(server + f"/errors?priority={prio}")
    _loaded(page, "Errors")
    page.locator('[data-testid="stExpander"] summary', has_text="Bulk actions on this page").click()
    chooser = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Error groups").first
    chooser.wait_for()
    for _ in range(2):  # the first two rows offered, one at a time: each choice reruns the page
        chooser.locator("input").first.click()
        page.get_by_role("option").first.click()
        page.keyboard.press("Escape")
        _settled(page)
    apply = page.get_by_role("button", name=re.compile(r"^Apply to ([2-9]|\d\d+) groups$"))
    apply.wait_for()
    chosen = int(re.findall(r"\d+", apply.inner_text())[0])
    assert chosen >= 2
    apply.click()
    page.get_by_text(f"acknowledge: {chosen} group(s)").wait_for()
    page.screenshot(path=str(SHOTS / "errors-bulk.png"), full_page=True)
    acked = httpx.get(f"{server}/api/errors", params={"status": "acknowledged"}, timeout=10).json()["items"]
    assert len([g for g in acked if g["status_by"] == "console" and g["priority"] == prio]) == chosen
