"""The console's port as a probe or a script sees it: ``kube-sentinel demo`` (console + API, one port).

Unknown ``/api/*`` paths answer JSON 404 (405 for a known path with another method), unknown console
paths a 404 page, ``/errors/{id}`` (the Go tool's link) leads to the detail (issue 15, items 1 and 3).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    """``kube-sentinel demo`` in a process of its own (Streamlit allows one served app per process);
    yields a client and one group id once the first poll stored groups."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("console") / "demo.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "demo", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                deadline = time.monotonic() + 60
                while True:
                    assert proc.poll() is None, log_path.read_text()
                    try:
                        items = client.get("/api/errors").json().get("items", [])
                        if items:
                            break
                    except (httpx.HTTPError, ValueError):
                        pass
                    assert time.monotonic() < deadline, "the demo did not serve errors within 60s"
                    time.sleep(0.3)
                yield client, str(items[0]["id"])
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()


@pytest.mark.parametrize(
    "path", ["/api/nonexistent", "/api/errors/x/y", "/api", "/api/", "/api/stats/extra", "/api/v1/errors"]
)
def test_unknown_api_paths_answer_json_404(console: tuple[httpx.Client, str], path: str) -> None:
    client, _ = console
    for method in ("GET", "POST"):
        r = client.request(method, path)
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.headers["content-type"] == "application/json"
        assert path.rstrip("/") in r.json()["detail"] and r.json()["problems"] == []


def test_a_known_api_path_with_another_method_is_405_json(console: tuple[httpx.Client, str]) -> None:
    client, _ = console
    r = client.delete("/api/errors")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json()["detail"] == "DELETE is not allowed on /api/errors: use GET"


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/livez", "/readyz", "/nope", "/error", "/settings2", "/index.php", "/errors/x/y", "/settings/x"],
)
def test_unknown_console_paths_are_a_404_page(console: tuple[httpx.Client, str], path: str) -> None:
    client, _ = console
    r = client.get(path)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "Not found" in r.text and path in r.text and 'href="/errors"' in r.text


def test_a_hostile_unknown_path_is_escaped_in_the_404_page(console: tuple[httpx.Client, str]) -> None:
    client, _ = console
    r = client.get("/<script>alert(1)</script>")
    assert r.status_code == 404 and "<script>alert" not in r.text and "&lt;script&gt;" in r.text


@pytest.mark.parametrize(
    "path", ["/", "/errors", "/rules", "/history", "/settings", "/favicon.png", "/manifest.json", "/_stcore/health"]
)
def test_console_pages_and_streamlit_files_still_answer(console: tuple[httpx.Client, str], path: str) -> None:
    client, _ = console
    assert client.get(path).status_code == 200


def test_probes_and_api_still_answer(console: tuple[httpx.Client, str]) -> None:
    client, _ = console
    assert client.get("/health").json()["status"] == "alive"
    assert client.get("/ready").status_code == 200
    assert "kube_sentinel_poll_healthy" in client.get("/metrics").text
    assert client.get("/api/errors").json()["total"] > 0


def test_the_go_tools_detail_link_leads_to_the_detail(console: tuple[httpx.Client, str]) -> None:
    client, gid = console
    r = client.get(f"/errors/{gid}")
    assert r.status_code == 307 and r.headers["location"] == f"/errors?id={gid}"
    followed = client.get(f"/errors/{gid}", follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url).endswith(f"/errors?id={gid}")
    assert client.get("/errors/a%20b%3Fx").headers["location"] == "/errors?id=a%20b%3Fx"  # quoted again
