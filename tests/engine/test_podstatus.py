"""Pod status as a second source: states read from pods, listed page by page, counted once across restarts.

The recorded pods are unscheduled and carry no container statuses; the states are set on the
peer's pods by the tests in the shapes of the API reference (modelled on docs, no recording; see
tests/peers/README.md). Pagination (``limit``/``continue``) is the recorded behaviour.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from sentinel.api.app import create_app
from sentinel.bootstrap import build_runtime
from sentinel.core.podstatus import pod_states
from sentinel.engine.incidents import Incidents
from sentinel.engine.podstatus import PodStatusWatcher, source_of
from sentinel.engine.runtime import Runtime
from sentinel.remediation.cluster import Cluster
from sentinel.sources.files import FileSource
from sentinel.sources.podstatus import PodStatusSource
from sentinel.store.memory import MemoryStore
from sentinel.store.tinydb import TinyDBStore
from tests.api.conftest import serve
from tests.peers.kube import KubePeer, rfc3339

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes"
NS = 1_000_000_000


def recorded_pod() -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / "pods_after_create.json").read_text())["items"][0])


def with_status(**status: Any) -> dict[str, Any]:
    pod = recorded_pod()
    pod["status"] = {**pod["status"], **status}
    return pod


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "nginx", "image": "nginx:1.25", "ready": False, "restartCount": 0, **fields}


FINISHED = "2026-11-28T00:50:00Z"


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(
            with_status(
                containerStatuses=[
                    container(
                        restartCount=4,
                        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
                        lastState={
                            "terminated": {
                                "reason": "OOMKilled",
                                "exitCode": 137,
                                "finishedAt": FINISHED,
                                "containerID": "containerd://abc",
                            }
                        },
                    )
                ]
            ),
            [("CrashLoopBackOff", "nginx/CrashLoopBackOff/4"), ("OOMKilled", "nginx/OOMKilled/containerd://abc")],
            id="crashloop-after-oom",
        ),
        pytest.param(
            with_status(containerStatuses=[container(state={"waiting": {"reason": "ImagePullBackOff"}})]),
            [("ImagePullBackOff", "nginx/ImagePullBackOff/0")],
            id="image-pull-backoff",
        ),
        pytest.param(
            with_status(initContainerStatuses=[container(name="init", state={"waiting": {"reason": "ErrImagePull"}})]),
            [("ErrImagePull", "init/ErrImagePull/0")],
            id="init-container-err-image-pull",
        ),
        pytest.param(
            with_status(
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "lastTransitionTime": FINISHED,
                        "message": "0/3 nodes are available: 3 Insufficient cpu.",
                    }
                ]
            ),
            [("Unschedulable", f"/Unschedulable/{FINISHED}")],
            id="unschedulable",
        ),
        pytest.param(
            with_status(phase="Failed", reason="Evicted", message="The node was low on resource: memory."),
            [("Evicted", "/Evicted/")],
            id="evicted",
        ),
        pytest.param(recorded_pod(), [], id="recorded-pending-pod-nothing"),
        pytest.param(
            with_status(containerStatuses=[container(state={"running": {}}, restartCount=2)]), [], id="running"
        ),
    ],
)
def test_pod_states(pod: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    uid = pod["metadata"]["uid"]
    got = pod_states(pod)
    assert [(s.reason, s.key) for s in got] == [(r, f"{uid}/{k}") for r, k in expected]
    for s in got:
        assert s.namespace == "demo" and s.pod == pod["metadata"]["name"]
        assert json.loads(s.line)["level"] == "error" and s.reason in s.line


def test_the_lines_carry_what_the_go_rules_match() -> None:
    from sentinel.config import load_rules

    rules = load_rules(Path(__file__).resolve().parents[2] / "config" / "rules.yaml").ruleset
    pods = {
        "crashloop-backoff": with_status(
            containerStatuses=[container(state={"waiting": {"reason": "CrashLoopBackOff"}})]
        ),
        "oom-killed": with_status(
            containerStatuses=[container(lastState={"terminated": {"reason": "OOMKilled", "finishedAt": FINISHED}})]
        ),
        "pod-evicted": with_status(reason="Evicted", message="The node was low on resource: memory."),
    }
    for rule, pod in pods.items():
        [state] = pod_states(pod)
        assert (
            rules.classify(state.line, message=state.message, level="error", namespace="demo", labels=state.labels).name
            == rule
        )


def test_a_scan_pages_through_the_list(kube_peer: KubePeer) -> None:
    kube_peer.deployment("web", replicas=5)
    cluster = Cluster.for_host(kube_peer.url, kube_peer.token, timeout=5.0)
    scan = PodStatusSource(cluster, page_limit=2).scan()
    assert (scan.pods, scan.pages) == (5, 3)
    gets = [s for s in kube_peer.seen("GET") if s.path == "/api/v1/pods"]
    assert len(gets) == 3 and all(s.query.get("limit") == "2" for s in gets)
    assert "continue" not in gets[0].query and all(s.query.get("continue") for s in gets[1:])
    scan_ns = PodStatusSource(cluster, namespaces=("demo",), page_limit=10).scan()
    assert (scan_ns.pods, scan_ns.pages) == (5, 1)
    cluster.close()


def test_source_of() -> None:
    assert [source_of(5, 0), source_of(5, 5), source_of(5, 2)] == ["logs", "cluster", "both"]


# -- counted exactly once, across a restart ---------------------------------------------------------

RULES = """\
rules:
  - name: crashloop
    match: {pattern: "CrashLoopBackOff"}
    priority: P1
    remediation: {action: none}
"""

CONFIG = """\
loki: {lookback: 30m, ingest_delay: 0s}
kubernetes: {in_cluster: false, kubeconfig: /nonexistent/kubeconfig}
remediation: {dry_run: true}
rules_file: rules.yaml
"""


def crash(peer: KubePeer, pod: str, restarts: int) -> None:
    def change(p: dict[str, Any]) -> None:
        p["status"]["containerStatuses"] = [
            {
                "name": "nginx",
                "image": "nginx",
                "ready": False,
                "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": rfc3339(time.time() - 5)}},
            }
        ]

    peer.set("pods", "demo", pod, change)


def runtime(tmp: Path, peer: KubePeer, lines: list[dict[str, Any]] | None = None) -> tuple[Runtime, Cluster]:
    (tmp / "rules.yaml").write_text(RULES)
    (tmp / "config.yaml").write_text(CONFIG)
    filler = {"ts": int((time.time() - 100) * NS), "labels": {"namespace": "other", "pod": "x-0"}, "line": "error: x"}
    (tmp / "logs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines or [filler]))
    store = TinyDBStore(str(tmp / "store.json"))
    cluster = Cluster.for_host(peer.url, peer.token, timeout=5.0)
    rt = build_runtime(tmp / "config.yaml", source=FileSource(tmp / "logs.jsonl"), store=store, env={}, cluster=cluster)
    rt.incidents = Incidents.build(rt.config, cluster, store=store, clock=rt.clock, background=False)
    return rt, cluster


def test_each_state_change_is_counted_once_across_a_restart(tmp_path: Path, kube_peer: KubePeer) -> None:
    kube_peer.deployment("web", replicas=2)
    pod = sorted(p["metadata"]["name"] for p in kube_peer.pods("demo", "app=web"))[0]
    crash(kube_peer, pod, 4)

    rt, cluster = runtime(tmp_path, kube_peer)
    assert rt.incidents.pods.scan() == 1
    assert rt.poll_once().ok
    [g] = [g for g in rt.store.all_groups() if g.namespace == "demo"]
    assert (g.count, g.workload, g.container, g.rule) == (1, "web", "nginx", "crashloop")
    assert rt.incidents.source_of(g) == "cluster"
    rt.incidents.pods.scan()  # the same state again: not counted again
    assert rt.poll_once().ok and rt.store.get_group(g.id).count == 1  # type: ignore[union-attr]
    rt.stop()
    cluster.close()

    rt, cluster = runtime(tmp_path, kube_peer)  # a restart on the same store
    assert rt.incidents.pods.scan() == 0
    assert rt.poll_once().ok and rt.store.get_group(g.id).count == 1  # type: ignore[union-attr]
    crash(kube_peer, pod, 5)  # it crashed once more: a new state change
    assert rt.incidents.pods.scan() == 1
    assert rt.poll_once().ok and rt.store.get_group(g.id).count == 2  # type: ignore[union-attr]
    rt.stop()
    cluster.close()


def test_uncommitted_states_come_again(kube_peer: KubePeer) -> None:
    """A poll that fails after taking the states commits nothing: the next one takes them again."""
    kube_peer.deployment("web", replicas=1)
    [pod] = [p["metadata"]["name"] for p in kube_peer.pods("demo", "app=web")]
    crash(kube_peer, pod, 1)
    cluster = Cluster.for_host(kube_peer.url, kube_peer.token, timeout=5.0)
    store = MemoryStore()
    watcher = PodStatusWatcher(PodStatusSource(cluster), store=store, background=False)
    watcher.scan()
    [(key, _entry)] = watcher.entries()
    assert [k for k, _ in watcher.entries()] == [key]  # not committed: still there
    watcher.commit([key], {"g1": 1})
    assert watcher.entries() == [] and store.get_state("pod_status") == {
        "counted": {key: pytest.approx(time.time(), abs=60)},
        "groups": {"g1": 1},
    }
    watcher.scan()
    assert watcher.entries() == []
    cluster.close()


def test_a_failed_scan_says_why_and_counts_nothing(kube_peer: KubePeer) -> None:
    kube_peer.deny("list", "pods")
    cluster = Cluster.for_host(kube_peer.url, kube_peer.token, timeout=5.0)
    watcher = PodStatusWatcher(PodStatusSource(cluster), store=MemoryStore(), background=False)
    assert watcher.scan() == 0 and watcher.entries() == []
    assert watcher.last_error.startswith("RBAC refused list pods"), watcher.last_error
    cluster.close()


def test_source_both_and_the_api_filter(tmp_path: Path, kube_peer: KubePeer) -> None:
    kube_peer.deployment("web", replicas=1)
    [pod] = [p["metadata"]["name"] for p in kube_peer.pods("demo", "app=web")]
    crash(kube_peer, pod, 3)
    now = time.time()
    same = '{"level":"error","msg":"CrashLoopBackOff: back-off restarting failed container nginx","reason":"CrashLoopBackOff"}'
    lines = [
        {"ts": int((now - 60) * NS), "labels": {"namespace": "demo", "pod": pod, "container": "nginx"}, "line": same},
        {
            "ts": int((now - 50) * NS),
            "labels": {"namespace": "demo", "pod": pod, "container": "side"},
            "line": "CrashLoopBackOff seen",
        },
    ]
    rt, cluster = runtime(tmp_path, kube_peer, lines)
    rt.incidents.pods.scan()
    assert rt.poll_once().ok
    by_container = {g.container: g for g in rt.store.all_groups()}
    assert by_container["nginx"].count == 2 and rt.incidents.source_of(by_container["nginx"]) == "both"
    assert rt.incidents.source_of(by_container["side"]) == "logs"
    for served in serve(create_app(rt), rt):
        both = served.client.get("/api/errors", params={"source": "both"}).json()
        logs = served.client.get("/api/errors", params={"source": "logs"}).json()
        detail = served.client.get(f"/api/errors/{by_container['nginx'].id}").json()
        bad = served.client.get("/api/errors", params={"source": "elsewhere"})
    rt.stop()
    cluster.close()
    assert [r["container"] for r in both["items"]] == ["nginx"] and both["total"] == 1
    assert [r["source"] for r in logs["items"]] == ["logs"]
    assert detail["source"] == "both"
    assert bad.status_code == 422 and "source" in bad.text


def test_a_failing_scan_shows_in_ready_and_metrics_and_clears(tmp_path: Path, kube_peer: KubePeer) -> None:
    """Informational: a forbidden pod list keeps /ready 200 (logs are still counted) but says why."""
    kube_peer.deployment("web", replicas=1)
    rt, cluster = runtime(tmp_path, kube_peer)
    assert rt.incidents.pods.health(time.time()) == "waiting for the first scan"
    kube_peer.deny("list", "pods")
    rt.incidents.pods.scan()
    for served in serve(create_app(rt), rt):
        ready = served.client.get("/ready")
        metrics = served.client.get("/metrics").text
    assert ready.status_code == 200
    assert ready.json()["checks"]["pod_status"].startswith("failing: RBAC refused list pods")
    assert "kube_sentinel_pod_status_failing 1.0" in metrics
    assert "kube_sentinel_pod_status_scan_failures_total 1.0" in metrics
    with kube_peer.lock:
        kube_peer.denied.clear()
    rt.incidents.pods.scan()
    assert rt.incidents.pods.health(time.time()) == "ok"
    later = time.time() + 3 * rt.incidents.pods.interval + 60
    assert rt.incidents.pods.health(later).startswith("stale: the last complete scan was")
    rt.stop()
    cluster.close()


def test_pod_status_is_off_without_a_cluster() -> None:
    watcher = PodStatusWatcher(None, store=MemoryStore(), background=False)
    assert watcher.health(time.time()).startswith("off: no cluster")
