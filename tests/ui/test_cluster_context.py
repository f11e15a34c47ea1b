"""The detail page's "In the cluster" section: the workload's pods and Warning events, or why not."""

from __future__ import annotations

from pathlib import Path

from sentinel.engine.context import ContextReader
from sentinel.engine.runtime import install, uninstall
from sentinel.remediation.cluster import Cluster
from tests.engine.test_context import web  # noqa: F401  (fixture: a Deployment with a crashed pod)
from tests.notify.helpers import build, line
from tests.peers.kube import KubePeer
from tests.ui.conftest import no_exception, open_page, table, texts


def test_detail_shows_pods_and_warning_events(tmp_path: Path, web: KubePeer) -> None:  # noqa: F811
    pods = sorted(p["metadata"]["name"] for p in web.pods("demo", "app=web"))
    rt = build(tmp_path, "  destinations: []\n", [line("demo", pods[0], "nginx OOMKilled: memory limit reached")])
    rt.context = ContextReader(Cluster.for_host(web.url, web.token, timeout=5))
    assert rt.poll_once().ok
    [group] = rt.store.all_groups()
    install(rt)
    try:
        at = open_page("errors", {"id": group.id})
    finally:
        uninstall()
        rt.stop()
    no_exception(at)
    text = texts(at)
    assert "In the cluster" in text
    # the peer's Deployment status counts no available replicas (it models no kubelet readiness for it)
    assert "Deployment · 0/2 ready · 2 current · rollout progressing: 0 of 2 updated replicas available" in text
    assert "revision 1" in text
    shown = table(at, "pod", "last termination")
    assert list(shown["pod"]) == pods
    assert list(shown["last termination"]) == ["OOMKilled (exit 137)", ""]
    assert list(shown["restarts"]) == [4, 0] and list(shown["node"]) == ["node-1", "node-1"]
    events = table(at, "reason", "message")
    assert list(events["reason"]) == ["BackOff", "FailedCreate"]


def test_detail_says_when_there_is_no_cluster(tmp_path: Path) -> None:
    rt = build(tmp_path, "  destinations: []\n", [line("demo", "web-7d9f8b6c5d-x2bcd", "nginx OOMKilled")])
    assert rt.poll_once().ok
    [group] = rt.store.all_groups()
    install(rt)
    try:
        at = open_page("errors", {"id": group.id})
    finally:
        uninstall()
        rt.stop()
    no_exception(at)
    assert "No cluster is configured: not configured:" in texts(at)
