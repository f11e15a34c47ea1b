"""The demo's recorded cluster state: context, rollout and source in the API and the console, no cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sentinel.api.app import create_app
from sentinel.cli import build_demo_runtime
from sentinel.core.model import ErrorGroup
from sentinel.engine.runtime import Runtime, install, uninstall
from tests.api.conftest import serve
from tests.ui.conftest import no_exception, open_page, table, texts


@pytest.fixture
def demo() -> Iterator[Runtime]:
    rt = build_demo_runtime()
    assert rt.poll_once().ok
    yield rt
    rt.stop()


def _group(rt: Runtime, workload: str, rule: str) -> ErrorGroup:
    return next(g for g in rt.store.all_groups() if g.workload == workload and g.rule == rule)


def test_the_demo_api_shows_context_rollout_and_source(demo: Runtime) -> None:
    panic = _group(demo, "checkout", "panic")
    crash = _group(demo, "cart", "crashloop-backoff")
    for served in serve(create_app(demo), demo):
        c = served.client
        detail = c.get(f"/api/errors/{panic.id}").json()
        crash_detail = c.get(f"/api/errors/{crash.id}").json()
        new = c.get("/api/errors", params={"new_since_rollout": "true", "page_size": 500}).json()
        cluster = c.get("/api/errors", params={"source": "cluster", "page_size": 500}).json()
    assert detail["context"]["state"] == "ok" and detail["context"]["kind"] == "Deployment"
    assert [p["name"] for p in detail["context"]["pods"]][0].startswith("checkout-7d4b9c8f6d-")
    rollout = detail["rollout"]
    assert (rollout["revision"], rollout["images"], rollout["new_since_rollout"]) == (
        7,
        ["registry.demo/checkout:1.4.2"],
        True,
    )
    assert rollout["summary"].startswith("new since revision 7, image registry.demo/checkout:1.4.2, ")
    assert rollout["summary"].endswith(" min after the rollout")
    assert detail["source"] == "logs" and crash_detail["source"] == "cluster"
    assert crash_detail["context"]["pods"][1]["last_termination"]["reason"] == "OOMKilled"
    assert crash_detail["rollout"]["new_since_rollout"] is False
    assert {r["workload"] for r in new["items"]} == {"checkout", "search-indexer"}
    reasons = {r["template"].split(":")[0] for r in cluster["items"]}
    assert reasons == {"CrashLoopBackOff", "OOMKilled", "ImagePullBackOff", "Unschedulable", "Evicted"}
    assert all(r["source"] == "cluster" for r in cluster["items"])


def test_the_demo_console_shows_rollout_and_source(demo: Runtime) -> None:
    panic = _group(demo, "checkout", "panic")
    crash = _group(demo, "cart", "crashloop-backoff")
    install(demo)
    try:
        at = open_page("errors", {"id": panic.id})
        at_crash = open_page("errors", {"id": crash.id})
        queue = open_page("errors", {"new_since_rollout": "true", "page_size": "100"})
    finally:
        uninstall()
    for page in (at, at_crash, queue):
        no_exception(page)
    text = texts(at)
    assert "new since revision 7, image registry.demo/checkout:1.4.2," in text
    assert "source logs (Loki)" in text
    assert "source cluster (pod status)" in texts(at_crash)
    assert "first seen in revision 3, image registry.demo/cart:2.1.0" in texts(at_crash)
    shown = table(queue, "Workload")
    assert set(shown["Workload"]) == {"checkout", "search-indexer"}
