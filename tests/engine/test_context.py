"""Kubernetes context of a group, read through ``Cluster`` from the Kubernetes peer on 127.0.0.1.

The recordings hold a Deployment mid-rollout (``deployment_final``), unscheduled pods and an
``EventList`` of Normal events only (``events_demo``). Warning events, container termination
states and restart counts are set on the peer's objects by the tests in the shapes of the API
reference (modelled on docs, no recording; see tests/peers/README.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from sentinel.api.app import create_app
from sentinel.engine.context import ContextReader, read_context, rollout_status, summary_line
from sentinel.remediation.cluster import Cluster
from tests.api.conftest import serve
from tests.notify.helpers import build, line
from tests.peers.kube import KubePeer, rfc3339

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def warning(
    peer: KubePeer, name: str, *, kind: str, obj: str, reason: str, message: str, count: int, ago: float
) -> None:
    t = rfc3339(time.time() - ago)
    peer.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": "demo"},
            "involvedObject": {"kind": kind, "namespace": "demo", "name": obj},
            "reason": reason,
            "message": message,
            "source": {"component": "kubelet"},
            "firstTimestamp": t,
            "lastTimestamp": t,
            "count": count,
            "type": "Warning",
        }
    )


def crashed(pod: dict[str, Any]) -> None:
    pod["status"]["containerStatuses"] = [
        {
            "name": "nginx",
            "ready": False,
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": rfc3339(time.time())}},
        }
    ]
    pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]


@pytest.fixture
def web(kube_peer: KubePeer) -> KubePeer:
    kube_peer.node_name = "node-1"
    kube_peer.deployment("web", replicas=2)
    for e in recorded("events_demo")["items"]:  # the recorded Normal events: never shown
        e = {**e, "apiVersion": "v1", "kind": "Event"}
        e["metadata"] = {"name": e["metadata"]["name"], "namespace": "demo"}
        kube_peer.create(e)
    pods = sorted(p["metadata"]["name"] for p in kube_peer.pods("demo", "app=web"))
    kube_peer.set("pods", "demo", pods[0], crashed)
    warning(
        kube_peer,
        "w1",
        kind="Pod",
        obj=pods[0],
        reason="BackOff",
        message="Back-off restarting failed container",
        count=7,
        ago=30,
    )
    warning(
        kube_peer, "w2", kind="Deployment", obj="web", reason="FailedCreate", message="quota exceeded", count=1, ago=300
    )
    warning(
        kube_peer, "w3", kind="Pod", obj="other-7d9f8b6c5d-x2bcd", reason="BackOff", message="not ours", count=1, ago=5
    )
    return kube_peer


def cluster(peer: KubePeer, timeout: float = 5.0) -> Cluster:
    return Cluster.for_host(peer.url, peer.token, timeout=timeout)


def test_a_deployments_pods_events_replicas_and_rollout(web: KubePeer) -> None:
    ctx = read_context(cluster(web), "demo", "web", now=time.time())
    assert ctx["state"] == "ok" and ctx["errors"] == {}
    assert ctx["kind"] == "Deployment" and ctx["revision"] == "1"
    assert ctx["replicas"]["desired"] == 2
    assert len(ctx["pods"]) == ctx["pods_total"] == 2
    first, second = ctx["pods"]
    assert (first["phase"], first["ready"], first["restarts"], first["waiting"], first["node"]) == (
        "Running",
        False,
        4,
        "CrashLoopBackOff",
        "node-1",
    )
    assert first["last_termination"]["reason"] == "OOMKilled" and first["last_termination"]["exit_code"] == 137
    assert (second["ready"], second["restarts"], second["last_termination"]) == (True, 0, {})
    assert [(e["reason"], e["count"], e["object"]) for e in ctx["events"]] == [
        ("BackOff", 7, f"Pod/{first['name']}"),
        ("FailedCreate", 1, "Deployment/web"),
    ]
    assert 25 <= ctx["events"][0]["age"] <= 120
    summary = summary_line(ctx)
    assert "last termination OOMKilled (exit 137)" in summary and "Warning BackOff x7" in summary


def test_rollout_status_of_the_recorded_deployment() -> None:
    dep = recorded("deployment_final")  # 3 desired, 4 replicas, 1 updated: mid-rollout
    assert rollout_status("Deployment", dep) == "progressing: 1 of 3 new replicas updated"
    done = recorded("deployment_after_create")
    done["status"] = {**done.get("status", {}), "observedGeneration": done["metadata"]["generation"]}
    done["status"].update(replicas=3, updatedReplicas=3, availableReplicas=3)
    done["spec"]["replicas"] = 3
    assert rollout_status("Deployment", done) == "complete"


def test_no_workload_object_falls_back_to_pod_names(kube_peer: KubePeer) -> None:
    kube_peer.add_namespace("demo")
    for p in recorded("pods_final")["items"]:  # recorded pods, without their ReplicaSets
        kube_peer.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": p["metadata"]["name"], "namespace": "demo"},
                "spec": p["spec"],
            }
        )
    ctx = read_context(cluster(kube_peer), "demo", "web", now=time.time())
    assert ctx["kind"] == "" and ctx["replicas"] is None
    assert [p["name"] for p in ctx["pods"]] == sorted(p["metadata"]["name"] for p in recorded("pods_final")["items"])


@pytest.mark.parametrize(
    ("deny", "state", "reason"),
    [
        pytest.param([("list", "pods")], "unavailable", "forbidden", id="pods-forbidden-no-workload"),
        pytest.param(
            [("get", "deployments"), ("get", "statefulsets"), ("get", "daemonsets"), ("list", "pods")],
            "unavailable",
            "forbidden",
            id="everything-forbidden",
        ),
    ],
)
def test_forbidden_says_so(kube_peer: KubePeer, deny: list[tuple[str, str]], state: str, reason: str) -> None:
    for verb, resource in deny:
        kube_peer.deny(verb, resource)
    reader = ContextReader(cluster(kube_peer))
    ctx = reader.get("demo", "web", wait=5)
    reader.stop()
    assert (ctx["state"], ctx["reason"]) == (state, reason)
    assert "RBAC refused" in ctx["detail"]


def test_forbidden_events_only_keeps_the_rest(web: KubePeer) -> None:
    web.deny("list", "events")
    ctx = read_context(cluster(web), "demo", "web", now=time.time())
    assert ctx["state"] == "ok" and len(ctx["pods"]) == 2 and ctx["events"] == []
    assert ctx["errors"]["events"].startswith(
        "forbidden: RBAC refused list events demo: the service account cannot list 'events'"
    ), ctx["errors"]


def test_timeout_says_so(web: KubePeer) -> None:
    web.fail(0, delay=2.0, times=10)
    reader = ContextReader(cluster(web, timeout=0.3))
    ctx = reader.get("demo", "web", wait=5)
    reader.stop()
    assert (ctx["state"], ctx["reason"]) == ("unavailable", "timeout")


def test_no_cluster_says_so() -> None:
    ctx = ContextReader(None, no_cluster="not configured: kubeconfig missing").get("demo", "web", wait=1)
    assert ctx == {"state": "unavailable", "reason": "no cluster", "detail": "not configured: kubeconfig missing"}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_the_cache_is_bounded_and_expires(web: KubePeer) -> None:
    clock = Clock()
    reader = ContextReader(cluster(web), clock=clock, ttl=30, max_entries=2)
    for wl in ("web", "a", "b"):
        assert reader.get("demo", wl, wait=5)["state"] == "ok"
    assert reader.reads == 3
    assert reader.get("demo", "b", wait=5)["stale"] is False and reader.reads == 3  # cached
    assert reader.get("demo", "web", wait=5)["state"] == "ok" and reader.reads == 4  # evicted: read again
    clock.now += 31
    assert reader.get("demo", "web", wait=5)["stale"] is False and reader.reads == 5  # expired: read again
    reader.stop()


def test_the_poll_does_not_wait_and_the_api_shows_the_context(tmp_path: Path, web: KubePeer) -> None:
    pods = sorted(p["metadata"]["name"] for p in web.pods("demo", "app=web"))
    rt = build(tmp_path, "  destinations: []\n", [line("demo", pods[0], "nginx OOMKilled: memory limit reached")])
    rt.context = ContextReader(cluster(web))
    web.fail(0, delay=1.5, times=1)  # the first context read is slow
    result = rt.poll_once()
    assert result.ok and result.new_groups == 1
    [group] = rt.store.all_groups()
    assert rt.context.get("demo", "web")["state"] == "pending"  # the poll returned before the slow read
    for served in serve(create_app(rt), rt):
        body = served.client.get(f"/api/errors/{group.id}").json()
    rt.stop()
    ctx = body["context"]
    assert ctx["state"] == "ok" and ctx["kind"] == "Deployment"
    assert ctx["pods"][0]["last_termination"]["reason"] == "OOMKilled"
    assert ctx["events"][0]["reason"] == "BackOff"


def test_a_notification_carries_the_context_summary(tmp_path: Path, web: KubePeer) -> None:
    from tests.notify.helpers import destination
    from tests.notify.receiver import receiver

    pods = sorted(p["metadata"]["name"] for p in web.pods("demo", "app=web"))
    with receiver() as rx:
        rt = build(tmp_path, destination("hook", "webhook", rx.url), [line("demo", pods[0], "nginx OOMKilled: limit")])
        rt.context = ContextReader(cluster(web))
        assert rt.poll_once().ok
        assert rt.notifier.drain()
        rt.stop()
    [body] = rx.bodies()
    assert body["context"].startswith("Deployment 0/2 ready, rollout progressing")
    assert "2 pods, 1 not ready, 4 restarts; last termination OOMKilled (exit 137)" in body["context"]
    assert "Warning BackOff x7: Back-off restarting failed container" in body["context"]
