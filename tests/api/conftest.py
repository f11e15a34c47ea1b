"""The API served for real: a Runtime over the demo logs, FastAPI on uvicorn on 127.0.0.1, httpx.

No mocks: each fixture builds a real :class:`Runtime` (demo rules, a live-replay ``FileSource``
over the bundled demo logs, a ``MemoryStore``, dry-run, no cluster) and serves ``create_app`` (or
a Starlette app mounting ``api_routes``) with ``uvicorn.Server`` in a thread on a free port.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sentinel import bootstrap
from sentinel.api.app import create_app
from sentinel.engine.runtime import Runtime
from sentinel.sources.files import FileSource
from sentinel.store.base import Store
from sentinel.store.memory import MemoryStore

DEMO = Path(__file__).resolve().parents[2] / "sentinel" / "demo"
TOKEN = "s3cret-api-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

CONFIG = """\
loki:
  poll_interval: 30s
  lookback: 1h
  password: loki-password-never-shown
kubernetes:
  in_cluster: false
  kubeconfig: /nonexistent/kube-sentinel-tests-have-no-cluster
remediation:
  enabled: true
  dry_run: true
  max_actions_per_hour: 50
  per_workload_per_hour: 3
  excluded_namespaces: [kube-system, monitoring]
rules_file: {rules}
store:
  type: memory
"""


def build_runtime(tmp: Path, *, token: str | None = TOKEN, store: Store | None = None) -> Runtime:
    """A real runtime over the demo logs (replayed live: the last hour has data), not polled yet."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "config.yaml"
    config.write_text(CONFIG.format(rules=DEMO / "rules.yaml"), encoding="utf-8")
    env = {"KUBE_SENTINEL_API_TOKEN": token} if token else {}
    store = MemoryStore() if store is None else store
    return bootstrap.build_runtime(config, source=FileSource(DEMO / "logs.jsonl", live=True), store=store, env=env)


@dataclass
class Served:
    """A running server: its base URL, the runtime behind it, and an httpx client."""

    url: str
    runtime: Runtime
    client: httpx.Client
    server: uvicorn.Server

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws"


def serve(app: Any, runtime: Runtime) -> Iterator[Served]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws_ping_interval=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=10) as client:
        try:
            yield Served(url, runtime, client, server)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()


@pytest.fixture(scope="module")
def polled_runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    rt = build_runtime(tmp_path_factory.mktemp("rt"))
    result = rt.poll_once()
    assert result.ok and result.lines > 0, result
    return rt


@pytest.fixture(scope="module")
def api(polled_runtime: Runtime) -> Iterator[Served]:
    """A polled runtime's API, shared by the read-only tests of a module (they must not change it)."""
    yield from serve(create_app(polled_runtime), polled_runtime)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Served]:
    """A polled runtime of its own, for tests that change things."""
    rt = build_runtime(tmp_path)
    assert rt.poll_once().ok
    yield from serve(create_app(rt), rt)


@pytest.fixture
def unpolled(tmp_path: Path) -> Iterator[Served]:
    """A runtime that has not polled yet (not ready; the first poll creates every group)."""
    rt = build_runtime(tmp_path)
    yield from serve(create_app(rt), rt)


@pytest.fixture
def readonly(tmp_path: Path) -> Iterator[Served]:
    """A polled runtime without an API token: the API is read-only."""
    rt = build_runtime(tmp_path, token=None)
    assert rt.poll_once().ok
    yield from serve(create_app(rt), rt)
