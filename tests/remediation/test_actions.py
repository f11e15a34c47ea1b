"""Every action against the API peer: what it changes, dry-run changing nothing, conflicts, bounds."""

from __future__ import annotations

from typing import Any

import pytest

from sentinel.core.actions import ACTIONS, validate_params
from sentinel.core.model import Target
from sentinel.errors import Conflict, DisruptionBudgetRefused, Forbidden
from sentinel.remediation.actions import EXECUTORS, Context, NotApplicable, merge_diff, stuck_for
from sentinel.remediation.cluster import RESTARTED_AT, REVISION, Cluster
from tests.peers.kube import KubePeer, merge_patch
from tests.remediation.conftest import FakeClock

WEB = Target("demo", "Deployment", "web")


def run(
    cluster: Cluster, clock: FakeClock, action: str, target: Target, *, dry_run: bool = False, **params: Any
) -> dict[str, Any]:
    ctx = Context(cluster, target, validate_params(action, params), dry_run, clock())
    return EXECUTORS[action](ctx)


def snapshot(peer: KubePeer) -> dict[tuple[str, str, str], dict[str, Any]]:
    with peer.lock:
        return {k: dict(v) for k, v in peer.objects.items()}


def test_every_action_has_an_executor() -> None:
    assert set(EXECUTORS) == set(ACTIONS)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        pytest.param(
            {"a": 1, "b": {"c": 2, "d": 3}, "l": [1]}, {"a": 1, "b": {"c": 4}, "l": [2], "n": None}, id="nested"
        ),
        pytest.param({"x": {"y": 1}}, {"x": 5}, id="dict-to-scalar"),
        pytest.param({}, {"a": {"b": 1}}, id="from-empty"),
    ],
)
def test_merge_diff_turns_current_into_target(current: dict[str, Any], target: dict[str, Any]) -> None:
    patched = merge_patch(current, merge_diff(current, target))
    assert patched == {k: v for k, v in target.items() if v is not None}


# -- restart-pod -----------------------------------------------------------------------------


def _eviction(seen: Any) -> dict[str, Any]:
    assert seen.path.endswith("/eviction") and seen.content_type == "application/json"
    body: dict[str, Any] = seen.body
    assert body["apiVersion"] == "policy/v1" and body["kind"] == "Eviction"
    return body


def test_restart_pod_evicts_by_default(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web")
    pod = peer.pods()[0]
    old = pod["metadata"]["name"]
    changes = run(cluster, clock, "restart-pod", Target("demo", "Pod", old))
    assert changes == {"pod": old, "method": "evict", "evicted": True, "grace_period": None}
    names = [p["metadata"]["name"] for p in peer.pods()]
    assert old not in names and len(names) == 2
    [post] = peer.seen("POST")
    assert post.query == {} and not peer.seen("DELETE")  # an eviction, not a delete
    body = _eviction(post)
    assert body["metadata"] == {"name": old, "namespace": "demo"}
    assert body["deleteOptions"] == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "preconditions": {"uid": pod["metadata"]["uid"]},
    }


def test_restart_pod_method_delete(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web")
    old = peer.pods()[0]["metadata"]["name"]
    changes = run(cluster, clock, "restart-pod", Target("demo", "Pod", old), method="delete")
    assert changes["pod"] == old and changes["deleted"] is True and changes["method"] == "delete"
    names = [p["metadata"]["name"] for p in peer.pods()]
    assert old not in names and len(names) == 2
    [delete] = peer.seen("DELETE")
    assert delete.query == {} and "dryRun" not in delete.body and not peer.seen("POST")


@pytest.mark.parametrize("method", ["evict", "delete"])
def test_restart_bound_pod_leaves_it_terminating(
    peer: KubePeer, cluster: Cluster, clock: FakeClock, method: str
) -> None:
    peer.node_name = "node-1"
    peer.deployment("web")
    old = peer.pods()[0]["metadata"]["name"]
    changes = run(cluster, clock, "restart-pod", Target("demo", "Pod", old), grace_period=30, method=method)
    assert changes["grace_period"] == 30
    terminating = peer.pods(live=False)
    assert [p["metadata"]["name"] for p in terminating] == [old]
    assert terminating[0]["metadata"]["deletionGracePeriodSeconds"] == 30
    assert len(peer.pods(live=True)) == 2  # the ReplicaSet made a replacement


@pytest.mark.parametrize("method", ["evict", "delete"])
def test_restart_pod_dry_run(peer: KubePeer, cluster: Cluster, clock: FakeClock, method: str) -> None:
    peer.deployment("web")
    before = snapshot(peer)
    pod = peer.pods()[0]["metadata"]["name"]
    changes = run(cluster, clock, "restart-pod", Target("demo", "Pod", pod), dry_run=True, method=method)
    assert changes["method"] == method
    assert snapshot(peer) == before
    if method == "delete":
        # dry-run in the DeleteOptions body, where the server reads it; nothing in the query, which
        # the server ignores when a body is present (recorded: dryrun_query_with_body_delete_pod)
        [delete] = peer.seen("DELETE")
        assert delete.query == {} and delete.body["dryRun"] == ["All"]
    else:
        # both: the create handler reads the query, the eviction's delete its deleteOptions
        [post] = peer.seen("POST")
        assert post.query == {"dryRun": "All"} and _eviction(post)["deleteOptions"]["dryRun"] == ["All"]
        assert not peer.seen("DELETE")


@pytest.mark.parametrize("dry_run", [False, True])
def test_restart_pod_refused_by_a_disruption_budget(
    peer: KubePeer, cluster: Cluster, clock: FakeClock, dry_run: bool
) -> None:
    peer.node_name = "node-1"  # running, ready pods: the budget guards them
    peer.deployment("web", replicas=2)
    peer.pdb("web", minAvailable=2)
    before = snapshot(peer)
    pod = peer.pods()[0]["metadata"]["name"]
    with pytest.raises(DisruptionBudgetRefused, match="disruption budget web needs 2 healthy pods and has 2"):
        run(cluster, clock, "restart-pod", Target("demo", "Pod", pod), dry_run=dry_run)
    assert snapshot(peer) == before
    assert [r.status for r in peer.seen("POST")] == [429] and not peer.seen("DELETE")  # never retried as a delete


@pytest.mark.parametrize(
    "budget",
    [pytest.param({"maxUnavailable": 1}, id="maxUnavailable"), pytest.param({"minAvailable": "50%"}, id="pct")],
)
def test_restart_pod_within_a_disruption_budget(
    peer: KubePeer, cluster: Cluster, clock: FakeClock, budget: dict[str, Any]
) -> None:
    peer.node_name = "node-1"
    peer.deployment("web", replicas=2)
    peer.pdb("web", **budget)
    pdb = peer.get("poddisruptionbudgets", "demo", "web")
    assert pdb is not None and pdb["status"]["disruptionsAllowed"] == 1
    pod = peer.pods()[0]["metadata"]["name"]
    assert run(cluster, clock, "restart-pod", Target("demo", "Pod", pod))["evicted"] is True
    assert peer.get("pods", "demo", pod)["metadata"]["deletionTimestamp"]  # type: ignore[index]
    assert [r.status for r in peer.seen("POST")] == [201]


def test_restart_pod_without_a_controller_is_not_applicable(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.add_namespace("demo")
    peer.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "bare",
                "namespace": "demo",
                # an owner that is not a controller recreates nothing either
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u-1"}],
            },
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    for dry_run in (False, True):
        for method in ("evict", "delete"):
            with pytest.raises(NotApplicable, match="pod demo/bare has no controller"):
                run(cluster, clock, "restart-pod", Target("demo", "Pod", "bare"), dry_run=dry_run, method=method)
    assert peer.get("pods", "demo", "bare") is not None and not peer.seen("DELETE") and not peer.seen("POST")


# -- rollout-restart -------------------------------------------------------------------------


def test_rollout_restart(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web")
    old_pods = {p["metadata"]["name"] for p in peer.pods()}
    changes = run(cluster, clock, "rollout-restart", WEB)
    assert changes == {"restartedAt": [None, "2027-01-15T08:00:00Z"]}
    dep = peer.get("deployments", "demo", "web")
    assert dep is not None
    assert dep["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2027-01-15T08:00:00Z"
    assert dep["metadata"]["annotations"][REVISION] == "2"
    assert not old_pods & {p["metadata"]["name"] for p in peer.pods()}
    assert peer.seen("PATCH")[-1].content_type == "application/strategic-merge-patch+json"


def test_rollout_restart_statefulset(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.statefulset("db")
    run(cluster, clock, "rollout-restart", Target("demo", "StatefulSet", "db"))
    sts = peer.get("statefulsets", "demo", "db")
    assert sts is not None and RESTARTED_AT in sts["spec"]["template"]["metadata"]["annotations"]


def test_rollout_restart_dry_run(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web")
    before = snapshot(peer)
    run(cluster, clock, "rollout-restart", WEB, dry_run=True)
    assert snapshot(peer) == before


def test_rollout_restart_needs_a_workload(cluster: Cluster, clock: FakeClock) -> None:
    with pytest.raises(NotApplicable, match="Deployment or StatefulSet or DaemonSet"):
        run(cluster, clock, "rollout-restart", Target("demo", "Job", "j"))


# -- scale -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "start", "params", "expected"),
    [
        pytest.param("scale-up", 2, {}, [2, 3], id="up-step-default"),
        pytest.param("scale-up", 2, {"replicas": "+3"}, [2, 5], id="up-step-3"),
        pytest.param("scale-up", 2, {"replicas": "4"}, [2, 4], id="up-absolute"),
        pytest.param("scale-up", 9, {"replicas": "+5", "max_replicas": 10}, [9, 10], id="up-clamped-to-max"),
        pytest.param("scale-down", 3, {}, [3, 2], id="down-step-default"),
        pytest.param("scale-down", 5, {"replicas": "-10", "min_replicas": 2}, [5, 2], id="down-clamped-to-min"),
        pytest.param("scale-down", 5, {"replicas": "1"}, [5, 1], id="down-absolute"),
    ],
)
def test_scale(
    peer: KubePeer,
    cluster: Cluster,
    clock: FakeClock,
    action: str,
    start: int,
    params: dict[str, Any],
    expected: list[int],
) -> None:
    peer.deployment("web", replicas=start)
    changes = run(cluster, clock, action, WEB, **params)
    assert changes == {"replicas": expected}
    dep = peer.get("deployments", "demo", "web")
    assert dep is not None and dep["spec"]["replicas"] == expected[1]
    assert len(peer.pods(live=True)) == expected[1]


@pytest.mark.parametrize(
    ("action", "start", "params"),
    [
        pytest.param("scale-up", 10, {"max_replicas": 10}, id="up-at-max"),
        pytest.param("scale-up", 12, {"max_replicas": 10}, id="up-above-max-never-shrinks"),
        pytest.param("scale-up", 5, {"replicas": "3"}, id="up-absolute-below-current-never-shrinks"),
        pytest.param("scale-down", 1, {"min_replicas": 1}, id="down-at-min"),
        pytest.param("scale-down", 2, {"replicas": "4"}, id="down-absolute-above-current-never-grows"),
    ],
)
def test_scale_bounded_no_change(
    peer: KubePeer, cluster: Cluster, clock: FakeClock, action: str, start: int, params: dict[str, Any]
) -> None:
    peer.deployment("web", replicas=start)
    with pytest.raises(NotApplicable, match="no change"):
        run(cluster, clock, action, WEB, **params)
    assert not peer.seen("PATCH")


def test_scale_statefulset(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.statefulset("db", replicas=2)
    assert run(cluster, clock, "scale-up", Target("demo", "StatefulSet", "db")) == {"replicas": [2, 3]}
    assert {p["metadata"]["name"] for p in peer.pods()} == {"db-0", "db-1", "db-2"}


def test_scale_dry_run(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web", replicas=2)
    before = snapshot(peer)
    assert run(cluster, clock, "scale-up", WEB, dry_run=True) == {"replicas": [2, 3]}
    assert snapshot(peer) == before
    assert peer.seen("PATCH", "/scale")[-1].query == {"dryRun": "All"}


def test_scale_conflict_retried_on_fresh_read(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web", replicas=2)
    # a concurrent writer changes the Deployment between our read and our write (also to 4 replicas)
    peer.before("PATCH", "/deployments/web/scale", lambda p: p.set("deployments", "demo", "web", _replicas(4)))
    assert run(cluster, clock, "scale-up", WEB) == {"replicas": [4, 5]}
    assert [r.status for r in peer.seen("PATCH")] == [409, 200]
    assert len(peer.seen("GET", "/scale")) == 2


def test_scale_conflict_twice_gives_up(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web", replicas=2)
    peer.before("PATCH", "/scale", lambda p: p.touch("deployments", "demo", "web"), times=2)
    with pytest.raises(Conflict, match="modified"):
        run(cluster, clock, "scale-up", WEB)
    assert [r.status for r in peer.seen("PATCH")] == [409, 409]


def test_scale_forbidden(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web")
    peer.deny("patch", "deployments/scale")
    with pytest.raises(Forbidden, match="deployments/scale"):
        run(cluster, clock, "scale-up", WEB)


def _replicas(n: int) -> Any:
    def change(o: dict[str, Any]) -> None:
        o["spec"]["replicas"] = n

    return change


# -- rollback --------------------------------------------------------------------------------


def _env(peer: KubePeer, value: str) -> None:
    def change(o: dict[str, Any]) -> None:
        o["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": value}]

    peer.set("deployments", "demo", "web", change)


def _revisions(peer: KubePeer) -> dict[str, tuple[str, str | None]]:
    return {
        rs["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]: (
            rs["metadata"]["annotations"][REVISION],
            rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision-history"),
        )
        for rs in peer.list_objects("replicasets", "demo")
    }


def test_rollback_reuses_previous_replicaset(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web", env="v1")
    _env(peer, "v2")
    _env(peer, "v3")
    assert _revisions(peer) == {"v1": ("1", None), "v2": ("2", None), "v3": ("3", None)}
    changes = run(cluster, clock, "rollback", WEB)
    assert changes["revision"] == [3, 2]
    dep = peer.get("deployments", "demo", "web")
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "v2"}]
    assert "pod-template-hash" not in dep["spec"]["template"]["metadata"]["labels"]
    # as in the recording: the old ReplicaSet is reused, gets the next revision and a revision history
    assert _revisions(peer) == {"v1": ("1", None), "v2": ("4", "2"), "v3": ("3", None)}
    assert dep["metadata"]["annotations"][REVISION] == "4"
    assert peer.seen("PATCH")[-1].content_type == "application/merge-patch+json"


def test_rollback_removes_what_the_new_revision_added(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web")
    run(cluster, clock, "rollout-restart", WEB)  # revision 2 adds the restartedAt annotation
    run(cluster, clock, "rollback", WEB)
    dep = peer.get("deployments", "demo", "web")
    assert dep is not None and "annotations" not in dep["spec"]["template"]["metadata"]


def test_rollback_to_revision(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web", env="v1")
    _env(peer, "v2")
    _env(peer, "v3")
    assert run(cluster, clock, "rollback", WEB, to_revision=1)["revision"] == [3, 1]
    assert _revisions(peer)["v1"] == ("4", "1")


def test_rollback_without_history(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web")
    with pytest.raises(NotApplicable, match="no ReplicaSet for a previous revision"):
        run(cluster, clock, "rollback", WEB)
    with pytest.raises(NotApplicable, match="revision 7"):
        run(cluster, clock, "rollback", WEB, to_revision=7)


def test_rollback_dry_run(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web", env="v1")
    _env(peer, "v2")
    before = snapshot(peer)
    assert run(cluster, clock, "rollback", WEB, dry_run=True)["revision"] == [2, 1]
    assert snapshot(peer) == before


def test_rollback_conflict_retried(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web", env="v1")
    _env(peer, "v2")
    peer.before("PATCH", "/deployments/web", lambda p: p.touch("deployments", "demo", "web"))
    assert run(cluster, clock, "rollback", WEB)["revision"] == [2, 1]
    assert [r.status for r in peer.seen("PATCH")] == [409, 200]


def test_rollback_only_deployments(cluster: Cluster, clock: FakeClock) -> None:
    with pytest.raises(NotApplicable, match="needs a Deployment"):
        run(cluster, clock, "rollback", Target("demo", "StatefulSet", "db"))


# -- delete-stuck-pods -----------------------------------------------------------------------


def _terminate(peer: KubePeer, cluster: Cluster, name: str) -> None:
    cluster.delete_pod("demo", name, grace_period=30)


def test_delete_stuck_pods(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.node_name = "node-1"
    peer.deployment("web", replicas=2)
    peer.deployment("api", replicas=1)
    stuck_web = peer.pods(selector="app=web")[0]["metadata"]["name"]
    stuck_api = peer.pods(selector="app=api")[0]["metadata"]["name"]
    _terminate(peer, cluster, stuck_web)
    _terminate(peer, cluster, stuck_api)
    clock.advance(60)
    fresh = peer.pods(selector="app=web", live=True)[0]["metadata"]["name"]
    _terminate(peer, cluster, fresh)
    clock.advance(30 + 300 - 60 + 1)  # the first pods: 301s past the delete request; the fresh one: 241s
    changes = run(cluster, clock, "delete-stuck-pods", WEB)
    assert changes["deleted"] == [stuck_web]
    assert changes["terminating_for"] == {stuck_web: 331}
    assert peer.get("pods", "demo", stuck_web) is None
    assert peer.get("pods", "demo", fresh) is not None  # not stuck long enough
    assert peer.get("pods", "demo", stuck_api) is not None  # another workload's pod
    last = peer.seen("DELETE")[-1]
    assert last.query == {} and last.body["gracePeriodSeconds"] == 0 and "dryRun" not in last.body


def test_delete_stuck_pods_matches_owners_by_uid_not_name(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    """Deployment web must not force-delete the stuck pods of web-canary (names web-canary-...)."""
    peer.node_name = "node-1"
    peer.deployment("web", replicas=2)  # selector app=web: also matches the canary's pods
    peer.deployment("web-canary", replicas=2, app="web", track="canary")
    canary_rs = {rs["metadata"]["uid"] for rs in peer.list_objects("replicasets", "demo", "track=canary")}
    web_pods = [p for p in peer.pods(selector="app=web") if p["metadata"]["ownerReferences"][0]["uid"] not in canary_rs]
    canary_pods = peer.pods(selector="track=canary")
    assert len(web_pods) == 2 and len(canary_pods) == 2
    assert all(p["metadata"]["name"].startswith("web-canary-") for p in canary_pods)  # "web-" as a prefix
    for p in (*web_pods, *canary_pods):
        _terminate(peer, cluster, p["metadata"]["name"])
    clock.advance(3600)
    changes = run(cluster, clock, "delete-stuck-pods", WEB)
    web_names = sorted(p["metadata"]["name"] for p in web_pods)
    assert changes["deleted"] == web_names
    assert all(peer.get("pods", "demo", n) is None for n in web_names)
    for p in canary_pods:  # still there, still Terminating: not web's to force-delete
        left = peer.get("pods", "demo", p["metadata"]["name"])
        assert left is not None and "deletionTimestamp" in left["metadata"]
    deleted = {x.path.rsplit("/", 1)[-1] for x in peer.seen("DELETE") if x.body.get("gracePeriodSeconds") == 0}
    assert deleted == set(web_names)
    # and the canary's own action reaches exactly its own pods
    canary = run(cluster, clock, "delete-stuck-pods", Target("demo", "Deployment", "web-canary"))
    assert canary["deleted"] == sorted(p["metadata"]["name"] for p in canary_pods)


def test_delete_stuck_pods_of_an_old_replicaset_of_the_deployment(
    peer: KubePeer, cluster: Cluster, clock: FakeClock
) -> None:
    """Pods of every ReplicaSet the Deployment controls count, not only the current revision's."""
    peer.node_name = "node-1"
    peer.deployment("web", replicas=1)
    old_pod = peer.pods(selector="app=web")[0]["metadata"]["name"]
    _terminate(peer, cluster, old_pod)
    peer.set("deployments", "demo", "web", lambda d: d["spec"]["template"]["metadata"].update(annotations={"v": "2"}))
    assert len(peer.list_objects("replicasets", "demo")) == 2
    clock.advance(3600)
    assert run(cluster, clock, "delete-stuck-pods", WEB)["deleted"] == [old_pod]


def test_delete_stuck_job_pods_by_the_jobs_uid(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.add_namespace("demo")
    job = peer.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "demo"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"job-name": "migrate"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "migrate"}]},
                }
            },
        }
    )

    def job_pod(name: str, owner_uid: str) -> None:
        peer.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": "demo",
                    "labels": {"job-name": "migrate"},
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": "migrate",
                            "uid": owner_uid,
                            "controller": True,
                        }
                    ],
                },
                "spec": {"nodeName": "node-1", "containers": [{"name": "m", "image": "migrate"}]},
            }
        )
        _terminate(peer, cluster, name)

    job_pod("migrate-abcde", job["metadata"]["uid"])
    job_pod("migrate-old11", "uid-of-an-earlier-job-named-migrate")  # same name, another Job
    clock.advance(3600)
    changes = run(cluster, clock, "delete-stuck-pods", Target("demo", "Job", "migrate"))
    assert changes["deleted"] == ["migrate-abcde"]
    assert peer.get("pods", "demo", "migrate-old11") is not None


def test_delete_stuck_pods_dry_run(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.node_name = "node-1"
    peer.deployment("web", replicas=1)
    pod = peer.pods()[0]["metadata"]["name"]
    _terminate(peer, cluster, pod)
    clock.advance(1000)
    before = snapshot(peer)
    assert run(cluster, clock, "delete-stuck-pods", WEB, dry_run=True)["deleted"] == [pod]
    assert snapshot(peer) == before
    last = peer.seen("DELETE")[-1]
    assert last.query == {} and last.body["dryRun"] == ["All"] and last.body["gracePeriodSeconds"] == 0


def test_delete_stuck_pods_none_stuck(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deployment("web")
    with pytest.raises(NotApplicable, match="Terminating longer than 5m"):
        run(cluster, clock, "delete-stuck-pods", WEB)


def test_delete_stuck_statefulset_pod(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.node_name = "node-1"
    peer.statefulset("db", replicas=2)
    _terminate(peer, cluster, "db-1")
    clock.advance(600)
    assert run(cluster, clock, "delete-stuck-pods", Target("demo", "StatefulSet", "db"), older_than="2m")[
        "deleted"
    ] == ["db-1"]
    db1 = peer.get("pods", "demo", "db-1")
    assert db1 is not None and "deletionTimestamp" not in db1["metadata"]  # recreated under the same name


@pytest.mark.parametrize(
    ("meta", "now", "expected"),
    [
        pytest.param({}, 100.0, None, id="not-terminating"),
        pytest.param(
            {"deletionTimestamp": "1970-01-01T00:01:40Z", "deletionGracePeriodSeconds": 30}, 99.0, None, id="in-grace"
        ),
        pytest.param(
            {"deletionTimestamp": "1970-01-01T00:01:40Z", "deletionGracePeriodSeconds": 30},
            200.0,
            130.0,
            id="past-grace",
        ),
    ],
)
def test_stuck_for(meta: dict[str, Any], now: float, expected: float | None) -> None:
    assert stuck_for({"metadata": meta}, now) == expected
