"""Owner resolution through ownerReferences against the Kubernetes peer: cache, expiry, fallbacks."""

from __future__ import annotations

from typing import Any

import pytest

from sentinel.config import load_rules
from sentinel.core.model import LogEntry
from sentinel.engine.pipeline import Pipeline
from sentinel.remediation.cluster import Cluster
from sentinel.remediation.owners import OwnerResolver
from tests.peers.kube import KubePeer
from tests.remediation.conftest import FakeClock

RULES = load_rules("config/rules.yaml").ruleset


def _pod(name: str, owner: dict[str, Any] | None, namespace: str = "demo", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [{"name": "a", "image": "a"}]}}


def _ref(kind: str, name: str, uid: str = "00000000-0000-0000-0000-000000000001", api: str = "v1") -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": True, "blockOwnerDeletion": True}


@pytest.fixture
def resolver(cluster: Cluster, clock: FakeClock) -> OwnerResolver:
    return OwnerResolver(cluster, ttl=60.0, clock=clock)


def test_deployment_pods_resolve_to_the_deployment_across_rollouts(peer: KubePeer, resolver: OwnerResolver) -> None:
    peer.deployment("web")
    first = {p["metadata"]["name"] for p in peer.pods()}
    peer.set("deployments", "demo", "web", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="x"))
    second = {p["metadata"]["name"] for p in peer.pods()} - first
    assert second, "the rollout made new pods under a new ReplicaSet"
    assert len(peer.list_objects("replicasets", "demo")) == 2  # one per revision
    for pod in second:
        assert resolver.workload("demo", pod) == "web"
    gets = [s.path for s in peer.seen("GET")]
    assert any("/replicasets/" in path for path in gets)  # resolved through the ReplicaSet's owner


def test_canary_and_stable_sharing_app_label_stay_apart(peer: KubePeer, resolver: OwnerResolver) -> None:
    peer.deployment("web", app="web", track="stable")
    peer.deployment("web-canary", app="web", track="canary")
    got = {resolver.workload_of({"namespace": "demo", "pod": p["metadata"]["name"], "app": "web"}) for p in peer.pods()}
    assert got == {"web", "web-canary"}


def test_statefulset_daemonset_cronjob_and_static_pods(peer: KubePeer, resolver: OwnerResolver) -> None:
    peer.statefulset("orders-postgresql")
    peer.create(_pod("agent-q8xz2", _ref("DaemonSet", "agent", api="apps/v1")))
    job = peer.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "backup-28391160",
                "namespace": "demo",
                "ownerReferences": [_ref("CronJob", "backup", api="batch/v1")],
            },
            "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b"}]}}},
        }
    )
    peer.create(_pod("backup-28391160-m4x7q", _ref("Job", "backup-28391160", job["metadata"]["uid"], "batch/v1")))
    peer.create(_pod("kube-scheduler-cp-1", _ref("Node", "cp-1"), namespace="kube-system"))
    # a name no rule can read: only ownerReferences know it belongs to the StatefulSet
    peer.create(_pod("custom-name", _ref("StatefulSet", "orders-postgresql", api="apps/v1")))
    assert resolver.workload("demo", "orders-postgresql-1") == "orders-postgresql"
    assert resolver.workload("demo", "agent-q8xz2") == "agent"
    assert resolver.workload("demo", "backup-28391160-m4x7q") == "backup"
    assert resolver.workload("kube-system", "kube-scheduler-cp-1") == "kube-scheduler"
    assert resolver.workload("demo", "custom-name") == "orders-postgresql"


def test_answers_are_cached_then_expire(peer: KubePeer, resolver: OwnerResolver, clock: FakeClock) -> None:
    peer.deployment("web", replicas=1)
    pod = peer.pods()[0]["metadata"]["name"]
    assert resolver.workload("demo", pod) == "web"
    calls = len(peer.seen("GET"))
    assert resolver.workload("demo", pod) == "web"
    assert len(peer.seen("GET")) == calls  # from the cache
    clock.advance(61)
    assert resolver.workload("demo", pod) == "web"
    assert len(peer.seen("GET")) > calls  # expired: asked again


def test_cache_is_bounded(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web", replicas=3)
    resolver = OwnerResolver(cluster, max_entries=2, clock=clock)
    for p in peer.pods():
        resolver.workload("demo", p["metadata"]["name"])
    assert resolver.cached == 2


def test_gone_pod_gets_the_name_rule(peer: KubePeer, resolver: OwnerResolver) -> None:
    peer.add_namespace("demo")
    assert resolver.workload("demo", "api-7d4b9c8f6d-xk2lp") == "api"


def test_forbidden_falls_back_and_stops_asking(peer: KubePeer, resolver: OwnerResolver, clock: FakeClock) -> None:
    peer.deployment("web", replicas=1)
    peer.deny("get", "pods")
    pod = peer.pods()[0]["metadata"]["name"]
    assert resolver.workload("demo", pod) == "web"  # the name rule
    asked = len(peer.seen("GET"))
    assert resolver.workload("demo", "other-7d4b9c8f6d-xk2lp") == "other"
    assert len(peer.seen("GET")) == asked  # backing off: no call
    assert resolver.fallbacks == 2


def test_slow_api_falls_back_within_the_client_timeout(peer: KubePeer, clock: FakeClock) -> None:
    peer.add_namespace("demo")
    peer.create(_pod("custom-name", _ref("StatefulSet", "db", api="apps/v1")))
    slow = Cluster.for_host(peer.url, peer.token, timeout=0.3)
    try:
        resolver = OwnerResolver(slow, clock=clock)
        peer.fail(0, delay=1.0, path="/pods/", times=2)  # the client retries once
        assert resolver.workload("demo", "custom-name") == "custom-name"  # fallback, not an exception
        clock.advance(61)  # the backoff is over: the API answers again
        assert resolver.workload("demo", "custom-name") == "db"
    finally:
        slow.close()


def test_pipeline_groups_by_the_resolved_owner(peer: KubePeer, resolver: OwnerResolver) -> None:
    peer.add_namespace("demo")
    peer.create(_pod("custom-name", _ref("StatefulSet", "db", api="apps/v1")))
    pipeline = Pipeline(rules=RULES, workloads=resolver.workload_of)
    batch = pipeline.process([LogEntry(1, {"namespace": "demo", "pod": "custom-name"}, "ERROR boom")])
    assert [d.workload for d in batch.deltas.values()] == ["db"]
    # rules reloaded: the resolver stays
    assert pipeline.with_rules(RULES).workloads == resolver.workload_of
