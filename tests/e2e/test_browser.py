"""The console in a real browser: Debian's chromium driven by Playwright against ``kube-sentinel demo``.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (``apt-get install chromium``,
which ``.ci/run`` does). Screenshots of each page land in ``tests/e2e/screenshots/`` (not committed).
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``kube-sentinel demo`` on a free port, until the module's tests are done (then SIGTERM)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    SHOTS.mkdir(exist_ok=True)
    log = open(SHOTS / "demo-server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "demo", "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the demo exited with {proc.returncode}; see {log.name}"
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
        assert code in (0, -signal.SIGTERM), f"the demo did not exit cleanly on SIGTERM ({code}); see {log.name}"
        assert "engine stopped" in (SHOTS / "demo-server.log").read_text()


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
                for ctx in contexts:  # two browser sessions, each with reruns
                    pg = ctx.new_page()
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
