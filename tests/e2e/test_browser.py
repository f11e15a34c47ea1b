"""The console in a real browser: Debian's chromium driven by Playwright against ``kube-sentinel demo``.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (``apt-get install chromium``,
which ``.ci/run`` does). Screenshots of each page land in ``tests/e2e/screenshots/`` (not committed).
"""

from __future__ import annotations

import csv
import io
import os
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
    log = open(SHOTS.parent / "demo-server.log", "w")  # noqa: SIM115 - closed below
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
        assert code == 0, f"the demo did not exit cleanly on SIGTERM ({code}); see {log.name}"
        assert "engine stopped" in (SHOTS.parent / "demo-server.log").read_text()


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
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def _loaded(page: Any, title: str) -> None:
    page.get_by_role("heading", name=title).first.wait_for()
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)


def test_overview_shows_metrics_and_a_chart(server: str, page: Any) -> None:
    page.goto(server + "/")
    _loaded(page, "🛡️ Overview")
    metric = page.locator('[data-testid="stMetric"]', has_text="P1 critical").first
    metric.wait_for()
    api = httpx.get(f"{server}/api/stats", timeout=10)
    assert api.status_code == 200
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.locator(".js-plotly-plot").count() >= 3
    assert page.get_by_text("Live feed").count() >= 1
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)


def _csv_ids(text: str) -> set[str]:
    return {row["id"] for row in csv.DictReader(io.StringIO(text))}


def _api_ids(server: str, params: dict[str, str]) -> set[str]:
    ids: set[str] = set()
    page_no = 1
    while True:
        body = httpx.get(f"{server}/api/errors", params={**params, "page": str(page_no), "page_size": "500"}, timeout=10).json()
        ids.update(item["id"] for item in body["items"])
        if page_no >= body["pages"]:
            return ids
        page_no += 1


def test_errors_filter_and_csv_matches_the_api(server: str, page: Any) -> None:
    page.goto(server + "/errors")
    _loaded(page, "🚨 Errors")
    page.get_by_text("error groups", exact=False).first.wait_for()
    # choose P1 in the Priority filter
    page.locator('[data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option", name="🔴 P1 critical").click()
    page.keyboard.press("Escape")
    page.wait_for_url("**priority=P1**")
    _loaded(page, "🚨 Errors")
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

    # the same view from a shared link, then one group's detail by ?id=
    page.goto(server + "/errors?priority=P1&sort=count")
    _loaded(page, "🚨 Errors")
    gid = next(iter(after))
    page.goto(f"{server}/errors?id={gid}")
    page.get_by_role("heading", name="Why it is here").wait_for()
    page.get_by_text("Samples").first.wait_for()
    page.screenshot(path=str(SHOTS / "error-detail.png"), full_page=True)


def test_settings_save(server: str, page: Any) -> None:
    page.goto(server + "/settings")
    _loaded(page, "⚙️ Settings")
    field = page.get_by_label("Poll interval")
    field.fill("2s")  # invalid: shown beside the field, nothing saved
    page.get_by_role("button", name="Save and apply").click()
    page.get_by_text("must be between 5s and 1h").first.wait_for()
    assert httpx.get(f"{server}/api/settings", timeout=10).json()["settings"]["poll_interval"] == 5.0
    page.get_by_label("Poll interval").fill("7s")
    page.get_by_role("button", name="Save and apply").click()
    page.get_by_text("Saved and applied").first.wait_for()
    body = httpx.get(f"{server}/api/settings", timeout=10).json()
    assert body["settings"]["poll_interval"] == 7.0
    assert body["history"] and body["history"][0]["changes"]["poll_interval"][1] == 7.0
    page.screenshot(path=str(SHOTS / "settings.png"), full_page=True)


@pytest.mark.parametrize(("path", "title"), [("/rules", "📏 Rules"), ("/history", "📜 History")])
def test_other_pages_render(server: str, page: Any, path: str, title: str) -> None:
    page.goto(server + path)
    _loaded(page, title)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(SHOTS / f"{path.strip('/')}.png"), full_page=True)
