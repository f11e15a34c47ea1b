"""Every action in both modes through the remediator, and the defence in depth behind dry-run.

Dry-run must travel where the API server reads it (a DELETE's body, the query of PATCH/POST, both
for an eviction) and change nothing; the remediator reads each target back afterwards, and a dry
run that changed anything halts the whole remediator until a person resets it. The peer's
``dry_run_ignored`` switch plays a server that carries a dry run out for real (what the real
v1.28 server does with ``?dryRun=All`` next to a DELETE body: ``dryrun_query_with_body_delete_pod``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sentinel.core.model import Result
from sentinel.core.policy import REMEDIATOR, SafetyLimits
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import RecordQuery
from sentinel.store.memory import MemoryStore
from tests.peers.kube import KubePeer, Seen
from tests.remediation.conftest import FakeClock, RemediatorFactory, make_group

LIMITS = SafetyLimits(max_actions_per_hour=20, per_workload_per_hour=10, excluded_namespaces=frozenset({"kube-system"}))
DRY = dataclasses.replace(LIMITS, dry_run=True)
Objects = dict[tuple[str, str, str], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    action: str
    params: dict[str, Any]
    method: str  # the HTTP method of the write
    setup: Callable[[KubePeer, FakeClock], str]  # -> the pod the group points at
    done: Callable[[KubePeer, str], bool]  # the intended change happened (for real)


def _web(peer: KubePeer, clock: FakeClock) -> str:
    peer.deployment("web", replicas=2)
    return str(peer.pods(selector="app=web")[0]["metadata"]["name"])


def _web_v2(peer: KubePeer, clock: FakeClock) -> str:
    _web(peer, clock)

    def v2(o: dict[str, Any]) -> None:
        o["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "v2"}]

    peer.set("deployments", "demo", "web", v2)
    return str(peer.pods(selector="app=web", live=True)[0]["metadata"]["name"])


def _stuck(peer: KubePeer, clock: FakeClock) -> str:
    peer.node_name = "node-1"
    pod = _web(peer, clock)
    with peer.lock:  # Terminating since long ago: the kubelet never finished
        meta = peer.objects[("pods", "demo", pod)]["metadata"]
        meta["deletionTimestamp"] = "2027-01-15T07:00:00Z"
        meta["deletionGracePeriodSeconds"] = 30
    return pod


def _env(peer: KubePeer) -> str:
    dep = peer.get("deployments", "demo", "web") or {}
    return str(dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"])


def _replicas(peer: KubePeer) -> int:
    return int((peer.get("deployments", "demo", "web") or {})["spec"]["replicas"])


def _template_annotations(peer: KubePeer) -> dict[str, str]:
    dep = peer.get("deployments", "demo", "web") or {}
    return dict(dep["spec"]["template"]["metadata"].get("annotations") or {})


CASES = [
    pytest.param(
        Case("restart-pod", {}, "POST", _web, lambda p, pod: p.get("pods", "demo", pod) is None), id="restart-pod-evict"
    ),
    pytest.param(
        Case("restart-pod", {"method": "delete"}, "DELETE", _web, lambda p, pod: p.get("pods", "demo", pod) is None),
        id="restart-pod-delete",
    ),
    pytest.param(
        Case(
            "rollout-restart",
            {},
            "PATCH",
            _web,
            lambda p, _: "kubectl.kubernetes.io/restartedAt" in _template_annotations(p),
        ),
        id="rollout-restart",
    ),
    pytest.param(Case("scale-up", {}, "PATCH", _web, lambda p, _: _replicas(p) == 3), id="scale-up"),
    pytest.param(Case("scale-down", {}, "PATCH", _web, lambda p, _: _replicas(p) == 1), id="scale-down"),
    pytest.param(Case("rollback", {}, "PATCH", _web_v2, lambda p, _: _env(p) == "v1"), id="rollback"),
    pytest.param(
        Case("delete-stuck-pods", {}, "DELETE", _stuck, lambda p, pod: p.get("pods", "demo", pod) is None),
        id="delete-stuck-pods",
    ),
]


def objects(peer: KubePeer) -> Objects:
    with peer.lock:
        return copy.deepcopy(peer.objects)


def writes(peer: KubePeer) -> list[Seen]:
    return [r for r in peer.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def act(r: Remediator, pod: str, case: Case, **kw: Any) -> Any:
    return r.handle(
        make_group(pods=[pod]),
        rule="crashloop",
        action=case.action,
        params=case.params,
        cooldown=kw.pop("cooldown", 0.0),
        **kw,
    )


def dry_run_where_the_server_reads_it(seen: Seen) -> None:
    if seen.method == "DELETE":  # the body: the server ignores the query of a DELETE with a body
        assert seen.query == {} and seen.body["dryRun"] == ["All"]
    elif seen.path.endswith("/eviction"):  # both: the handler reads the query, the delete its options
        assert seen.query == {"dryRun": "All"} and seen.body["deleteOptions"]["dryRun"] == ["All"]
    else:
        assert seen.query == {"dryRun": "All"}


@pytest.mark.parametrize("case", CASES)
def test_dry_run_changes_nothing_and_is_read_back(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock, case: Case
) -> None:
    pod = case.setup(peer, clock)
    before = objects(peer)
    r = make_remediator(limits=DRY)
    rec = act(r, pod, case)
    assert rec.result is Result.SUCCESS and rec.dry_run and rec.reached_cluster, rec
    assert rec.reason == "dry-run: the API server accepted it; read back, nothing changed"
    assert objects(peer) == before
    sent = writes(peer)
    assert sent and {s.method for s in sent} == {case.method}
    for s in sent:
        dry_run_where_the_server_reads_it(s)
    assert not r.state().halted


@pytest.mark.parametrize("case", CASES)
def test_for_real_the_change_happens_once(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock, case: Case
) -> None:
    pod = case.setup(peer, clock)
    rec = act(make_remediator(limits=LIMITS), pod, case)
    assert rec.result is Result.SUCCESS and not rec.dry_run and rec.reached_cluster, rec
    assert case.done(peer, pod)
    sent = writes(peer)
    assert len([s for s in sent if s.status < 400]) == 1  # exactly one write took effect
    for s in sent:
        assert "dryRun" not in s.query and "dryRun" not in (s.body or {})
        assert "dryRun" not in ((s.body or {}).get("deleteOptions") or {})


@pytest.mark.parametrize("case", CASES)
def test_a_dry_run_that_changes_the_cluster_halts_the_remediator(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock, store: MemoryStore, case: Case
) -> None:
    pod = case.setup(peer, clock)
    peer.deployment("api", replicas=1)
    peer.dry_run_ignored.add(case.method)  # the server carries the dry run out for real
    r = make_remediator(limits=DRY)
    rec = act(r, pod, case)
    assert case.done(peer, pod)  # it really happened: the read-back must see it
    assert rec.result is Result.FAILED and rec.reason == "dry-run changed the cluster: remediator halted"
    assert "read back after the dry run" in rec.error and rec.changes["changed_by_dry_run"]
    state = r.state()
    assert state.halted and state.breakers[REMEDIATOR].reason.startswith(f"a dry run of {case.action}")
    peer.dry_run_ignored.clear()

    # every action is refused now, anywhere, even one a person asks for; nothing reaches the cluster
    api_pod = peer.pods(selector="app=api")[0]["metadata"]["name"]
    n = len(writes(peer))
    for manual in (False, True):
        refused = r.handle(
            make_group(workload="api", pods=[api_pod], gid="g-api"),
            rule="other",
            action="rollout-restart",
            params={},
            cooldown=0.0,
            manual=manual,
        )
        assert refused.decision == "denied" and refused.reason_code == "remediator-halted"
        assert "remediator halted" in refused.reason and "a person must reset it" in refused.reason
    assert len(writes(peer)) == n
    # an alert (action none) touches nothing and is still recorded
    alert = r.handle(make_group(workload="api", gid="g-api"), rule="alert", action="none", params={}, cooldown=0.0)
    assert alert.decision == "allowed"

    assert r.reset_breaker(REMEDIATOR, "alice")
    again = r.handle(
        make_group(workload="api", pods=[api_pod], gid="g-api"),
        rule="other",
        action="rollout-restart",
        params={},
        cooldown=0.0,
    )
    assert again.result is Result.SUCCESS and again.dry_run


def test_a_status_update_during_a_dry_run_is_not_ours(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock
) -> None:
    """The resourceVersion moves when a controller updates status; none of our writes touches status."""
    pod = _web(peer, clock)

    def status_update(p: KubePeer) -> None:
        with p.lock:
            dep = p.objects[("deployments", "demo", "web")]
            dep["status"]["readyReplicas"] = 1
            p._bump(dep)

    peer.before("PATCH", "/deployments/web", status_update)
    rv_before = (peer.get("deployments", "demo", "web") or {})["metadata"]["resourceVersion"]
    r = make_remediator(limits=DRY)
    rec = act(r, pod, Case("rollout-restart", {}, "PATCH", _web, lambda p, _: False))
    assert (peer.get("deployments", "demo", "web") or {})["metadata"]["resourceVersion"] != rv_before
    assert rec.result is Result.SUCCESS and not r.state().halted


def test_a_spec_change_by_someone_else_during_a_dry_run_halts(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock
) -> None:
    """Fail closed: a spec change during the dry run cannot be told apart from ours."""
    pod = _web(peer, clock)
    peer.before(
        "PATCH", "/scale", lambda p: p.set("deployments", "demo", "web", lambda o: o["spec"].update(replicas=5))
    )
    r = make_remediator(limits=DRY)
    rec = act(r, pod, Case("scale-up", {}, "PATCH", _web, lambda p, _: False))
    assert rec.result is Result.FAILED and "replicas 2 -> 5" in rec.error and r.state().halted


# -- eviction and disruption budgets through the remediator ----------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
def test_eviction_refused_by_a_budget_is_audited_not_retried(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock, dry_run: bool
) -> None:
    peer.node_name = "node-1"
    pod = _web(peer, clock)
    peer.pdb("web", minAvailable=2)
    before = objects(peer)
    r = make_remediator(limits=DRY if dry_run else LIMITS)
    rec = act(r, pod, Case("restart-pod", {}, "POST", _web, lambda p, _: False), cooldown=600.0)
    assert rec.decision == "allowed" and rec.result is Result.SKIPPED and rec.reached_cluster
    assert rec.reason.startswith("refused by a PodDisruptionBudget")
    assert "disruption budget web needs 2 healthy pods and has 2" in rec.error
    assert objects(peer) == before and not peer.seen("DELETE")  # never retried as a delete
    assert not r.state().halted
    # the cooldown holds: the next poll does not try again at once
    clock.advance(60)
    again = act(r, pod, Case("restart-pod", {}, "POST", _web, lambda p, _: False), cooldown=600.0)
    assert again.decision == "denied" and again.reason_code == "cooldown"
    assert len(peer.seen("POST", "/eviction")) == 1


# -- an audit log that stays readable ---------------------------------------------------------


def test_repeated_refusals_fold_into_one_record(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock, store: MemoryStore
) -> None:
    pod = _web(peer, clock)
    r = make_remediator(limits=LIMITS)
    case = Case("rollout-restart", {}, "PATCH", _web, lambda p, _: False)
    first = act(r, pod, case, cooldown=600.0)
    assert first.result is Result.SUCCESS
    times = []
    for _ in range(5):  # five polls inside the cooldown: one refusal, five times
        clock.advance(30)
        times.append(clock.now)
        act(r, pod, case, cooldown=600.0)
    records = list(reversed(store.list_remediations(RecordQuery(page_size=100)).items))
    assert [x.decision for x in records] == ["allowed", "denied"]
    folded = records[1]
    assert folded.count == 5 and folded.time == times[0] and folded.last_time == times[-1]
    assert folded.reason_code == "cooldown" and "remaining" in folded.reason
    # another refusal for that rule and workload starts a record of its own, and so does the next action
    r.set_limits(dataclasses.replace(LIMITS, enabled=False))
    act(r, pod, case, cooldown=600.0)
    act(r, pod, case, cooldown=600.0)
    r.set_limits(LIMITS)
    clock.advance(600)
    assert act(r, pod, case, cooldown=600.0).result is Result.SUCCESS
    clock.advance(30)
    act(r, pod, case, cooldown=600.0)
    records = list(reversed(store.list_remediations(RecordQuery(page_size=100)).items))
    assert [(x.decision, x.reason_code, x.count) for x in records] == [
        ("allowed", "", 1),
        ("denied", "cooldown", 5),
        ("denied", "disabled", 2),
        ("allowed", "", 1),
        ("denied", "cooldown", 1),
    ]
    # only the actions that reached the cluster count as remediations
    stats = store.stats(now=clock.now)
    assert stats.remediations_reached == 2 and sum(stats.remediations_by_result.values()) == 5


def test_other_workloads_do_not_break_a_fold(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock, store: MemoryStore
) -> None:
    r = make_remediator(limits=dataclasses.replace(LIMITS, enabled=False))
    for _ in range(3):
        for workload in ("web", "api"):
            r.handle(make_group(workload=workload), rule="crashloop", action="rollout-restart", params={}, cooldown=0)
    records = store.list_remediations(RecordQuery(page_size=100)).items
    assert sorted((x.workload, x.count) for x in records) == [("demo/api", 3), ("demo/web", 3)]


def test_folded_records_persist(peer: KubePeer, make_remediator: RemediatorFactory, tmp_path: Any) -> None:
    from sentinel.store.tinydb import TinyDBStore

    path = tmp_path / "sentinel.json"
    first = TinyDBStore(path)
    r = make_remediator(limits=dataclasses.replace(LIMITS, enabled=False), store=first)
    for _ in range(4):
        r.handle(make_group(), rule="crashloop", action="rollout-restart", params={}, cooldown=0)
    first.close()
    [record] = TinyDBStore(path).list_remediations(RecordQuery(page_size=10)).items
    assert record.count == 4 and record.reason_code == "disabled" and not record.reached_cluster


def test_a_dry_run_that_fails_halfway_is_read_back_too(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock
) -> None:
    """delete-stuck-pods, two stuck pods: the first dry-run delete is carried out, the second fails."""
    peer.node_name = "node-1"
    peer.deployment("web", replicas=2)
    names = sorted(p["metadata"]["name"] for p in peer.pods(selector="app=web"))
    with peer.lock:
        for name in names:
            meta = peer.objects[("pods", "demo", name)]["metadata"]
            meta["deletionTimestamp"] = "2027-01-15T07:00:00Z"
            meta["deletionGracePeriodSeconds"] = 30
    peer.dry_run_ignored.add("DELETE")
    peer.fail(500, method="DELETE", path=names[1])
    r = make_remediator(limits=DRY)
    rec = act(r, names[0], Case("delete-stuck-pods", {}, "DELETE", _stuck, lambda p, _: False))
    assert rec.result is Result.FAILED and r.state().halted
    assert f"Pod demo/{names[0]} is gone" in rec.error and "500" in rec.error


def test_only_actions_that_reached_the_cluster_count(
    peer: KubePeer, make_remediator: RemediatorFactory, store: MemoryStore
) -> None:
    pod = _web(peer, FakeClock())
    r = make_remediator(limits=LIMITS)
    nothing_to_do = r.handle(make_group(pods=[pod]), rule="a", action="rollback", params={}, cooldown=0)
    assert nothing_to_do.result is Result.SKIPPED and not nothing_to_do.reached_cluster  # no previous revision
    gone = r.handle(make_group(pods=["web-gone-x"]), rule="b", action="restart-pod", params={}, cooldown=0)
    assert gone.result is Result.SKIPPED and not gone.reached_cluster
    peer.deny("patch", "deployments/scale")
    refused = r.handle(make_group(pods=[pod]), rule="c", action="scale-up", params={}, cooldown=0)
    assert refused.result is Result.FAILED and refused.reached_cluster  # the API server refused it
    done = r.handle(make_group(pods=[pod]), rule="d", action="rollout-restart", params={}, cooldown=0)
    assert done.result is Result.SUCCESS and done.reached_cluster
    assert store.stats(now=0).remediations_reached == 2
