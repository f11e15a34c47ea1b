"""``sentinel.web``: one server for the console and the API; the engine lives and dies with the server."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from sentinel import web
from sentinel.engine.runtime import current, install, uninstall
from tests.ui.conftest import APP, build_runtime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate, timeout: float = 20.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_app_script_is_found(tmp_path: Path) -> None:
    assert web.app_script(env={}) == Path(APP)
    other = tmp_path / "app.py"
    other.write_text("")
    assert web.app_script(env={web.APP_ENV: str(other)}) == other.resolve()


def test_lifespan_starts_the_engine_without_a_browser_and_stops_it() -> None:
    rt = build_runtime()
    port = _free_port()
    web.configure_streamlit("127.0.0.1", port)
    app = web.build_app(rt, script=Path(APP))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert _wait(lambda: server.started), "server did not start"
        # no browser has connected: the engine is running and has polled
        assert rt.scheduler is not None
        assert current() is rt
        assert _wait(lambda: rt.health.last_success_at is not None)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/health").status_code == 200  # the API, on the console's port
            assert client.get("/_stcore/health").text == "ok"  # Streamlit, same port
            api = client.get("/api/errors", params={"priority": "P1"}).json()
            assert api["total"] == len([g for g in rt.store.all_groups() if g.priority.value == "P1"])
            assert client.get("/errors").status_code == 200  # a console page URL
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert rt.scheduler is None  # stopped by the lifespan's exit
    assert rt.stopping.is_set()
    assert current() is None


def test_ensure_runtime_returns_the_installed_one() -> None:
    rt = build_runtime()
    install(rt)
    try:
        assert web.ensure_runtime() is rt
    finally:
        uninstall()


def test_runtime_from_env_builds_the_demo_or_the_configured_one(tmp_path: Path) -> None:
    demo = web.runtime_from_env(env={})
    assert "logs.jsonl" in demo.source.describe()  # type: ignore[attr-defined]
    assert demo.scheduler is None  # built, not started
    demo.stop()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "loki:\n  url: http://127.0.0.1:9\nstore:\n  type: memory\nkubernetes:\n  in_cluster: false\n  kubeconfig: /nonexistent\n"
    )
    rules = Path(APP).parent / "config" / "rules.yaml"
    rt = web.runtime_from_env(env={web.CONFIG_ENV: str(cfg), web.RULES_ENV: str(rules)})
    assert rt.rules_path == str(rules)
    rt.stop()


@pytest.mark.parametrize("option", sorted(web.STREAMLIT_OPTIONS))
def test_served_console_does_not_watch_files(option: str) -> None:
    from streamlit import config

    web.configure_streamlit("127.0.0.1", 8080)
    assert config.get_option(option) == web.STREAMLIT_OPTIONS[option]
