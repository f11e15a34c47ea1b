"""The remediator end to end against the API peer: every refusal, dry-run, errors, breaker, persistence, races."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from sentinel.core.model import RemediationRecord, Result
from sentinel.core.policy import IN_FLIGHT_TTL, SafetyLimits
from sentinel.errors import StoreError
from sentinel.remediation.cluster import RBAC_FILE
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import RecordQuery
from sentinel.store.memory import MemoryStore
from sentinel.store.tinydb import TinyDBStore
from tests.peers.kube import KubePeer
from tests.remediation.conftest import FakeClock, RemediatorFactory, make_group

LIMITS = SafetyLimits(max_actions_per_hour=10, per_workload_per_hour=3, excluded_namespaces=frozenset({"kube-system"}))


def audit(store: MemoryStore) -> list[RemediationRecord]:
    return list(reversed(store.list_remediations(RecordQuery(page_size=500)).items))


def web_group(peer: KubePeer, **kw: Any) -> Any:
    return make_group(pods=[peer.pods(selector="app=web")[0]["metadata"]["name"]], **kw)


def handle(r: Remediator, group: Any, action: str = "rollout-restart", **kw: Any) -> RemediationRecord:
    kw.setdefault("rule", "crashloop")
    kw.setdefault("params", {})
    kw.setdefault("cooldown", 300.0)
    return r.handle(group, action=action, **kw)


# -- success, dry-run, record-only -----------------------------------------------------------


def test_rollout_restart_success_is_audited(
    peer: KubePeer, make_remediator: RemediatorFactory, store: MemoryStore
) -> None:
    peer.deployment("web")
    r = make_remediator(limits=LIMITS)
    rec = handle(r, web_group(peer), requested_by="engine")
    assert rec.result is Result.SUCCESS and rec.decision == "allowed" and not rec.dry_run
    assert (rec.namespace, rec.kind, rec.name, rec.workload) == ("demo", "Deployment", "web", "demo/web")
    assert rec.changes["restartedAt"][1] == "2027-01-15T08:00:00Z"
    assert audit(store) == [rec]
    s = r.state()
    assert s.actions_last_hour(1_800_000_000.0) == 1 and not s.in_flight and len(s.pending) == 1


def test_scale_up_changes_are_recorded(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web", replicas=2)
    rec = handle(make_remediator(limits=LIMITS), web_group(peer), "scale-up", params={"replicas": "+2"})
    assert rec.result is Result.SUCCESS and rec.changes == {"replicas": [2, 4]}
    assert rec.params == {"replicas": "+2"}


def test_dry_run_goes_to_the_api_server_and_changes_nothing(
    peer: KubePeer, make_remediator: RemediatorFactory, store: MemoryStore
) -> None:
    peer.deployment("web", replicas=2)
    r = make_remediator(limits=dataclasses.replace(LIMITS, dry_run=True))
    rec = handle(r, web_group(peer), "scale-up")
    assert rec.result is Result.SUCCESS and rec.dry_run and rec.changes == {"replicas": [2, 3]}
    assert "dry-run" in rec.reason
    dep = peer.get("deployments", "demo", "web")
    assert dep is not None and dep["spec"]["replicas"] == 2
    assert peer.seen("PATCH")[-1].query == {"dryRun": "All"}
    assert not r.state().pending  # nothing to judge


def test_dry_run_still_fails_on_rbac(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    peer.deny("patch", "deployments")
    rec = handle(make_remediator(limits=dataclasses.replace(LIMITS, dry_run=True)), web_group(peer))
    assert rec.result is Result.FAILED and rec.dry_run and RBAC_FILE in rec.error


class CountingStore(MemoryStore):
    """A memory store that counts flushes (and can refuse them, as a full disk would)."""

    def __init__(self, *, broken: bool = False) -> None:
        super().__init__()
        self.flushes = 0
        self.broken = broken

    def flush(self) -> None:
        self.flushes += 1
        if self.broken:
            raise StoreError("store file /data/sentinel.json: cannot write: [Errno 28] No space left on device")
        super().flush()


def test_action_none_records_only(peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock) -> None:
    """What the engine gets when it calls handle() for a rule whose action is none."""
    counting = CountingStore()
    r = make_remediator(limits=LIMITS, store=counting)
    rec = handle(r, make_group(pods=["web-1"]), "none", params=None, cooldown=60)
    assert (rec.decision, rec.result, rec.reason) == ("allowed", Result.SKIPPED, "record only (action none)")
    assert not rec.dry_run and rec.error == "" and rec.workload == "demo/web"
    assert audit(counting) == [rec]
    assert not peer.seen()  # no call at all
    assert counting.flushes == 0  # nothing reaches the cluster, so nothing to flush first
    again = handle(r, make_group(pods=["web-1"]), "none", cooldown=60)
    assert again.decision == "denied" and "cooldown" in again.reason
    s = r.state()
    assert s.actions == [] and s.workload_actions == {} and s.in_flight == {}
    clock.advance(60)
    assert handle(r, make_group(pods=["web-1"]), "none", cooldown=60).decision == "allowed"


def test_action_none_spends_neither_budget_nor_workload_cap(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    r = make_remediator(limits=dataclasses.replace(LIMITS, max_actions_per_hour=1, per_workload_per_hour=1))
    for n in range(5):  # alert-only rules firing again and again on the same workload
        rec = handle(r, web_group(peer), "none", rule=f"alert-{n}")
        assert rec.decision == "allowed" and rec.reason == "record only (action none)"
    assert r.state().actions_last_hour(1_800_000_000.0) == 0
    real = handle(r, web_group(peer), "rollout-restart")
    assert real.result is Result.SUCCESS  # the one real action of the hour is still there
    # and with the budget now spent, alerts are still recorded
    spent = handle(r, web_group(peer), "rollout-restart", rule="other")
    assert spent.decision == "denied" and "hourly budget" in spent.reason
    late = handle(r, web_group(peer), "none", rule="alert-late")
    assert late.decision == "allowed" and late.result is Result.SKIPPED
    assert len(peer.seen("PATCH")) == 1


def test_action_none_in_an_excluded_namespace_is_recorded_not_refused(
    peer: KubePeer, make_remediator: RemediatorFactory
) -> None:
    r = make_remediator(limits=LIMITS)
    group = make_group(namespace="kube-system", workload="coredns", pods=["coredns-1"])
    rec = handle(r, group, "none", rule="timeout")
    assert (rec.decision, rec.result, rec.reason) == ("allowed", Result.SKIPPED, "record only (action none)")
    assert "cooldown" in handle(r, group, "none", rule="timeout").reason  # once per cooldown, not per poll
    assert "excluded" in handle(r, group, "restart-pod").reason  # a real action there still is refused
    assert not peer.seen()


def test_action_none_in_dry_run_is_still_record_only(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    rec = handle(make_remediator(limits=dataclasses.replace(LIMITS, dry_run=True)), make_group(), "none")
    assert (rec.decision, rec.result, rec.reason) == ("allowed", Result.SKIPPED, "record only (action none)")
    assert not peer.seen()


def test_no_cluster_runs_dry(make_remediator: RemediatorFactory, store: MemoryStore) -> None:
    r = make_remediator(limits=LIMITS, cluster_=None)
    rec = handle(r, make_group(pods=["web-abc-1"]), "restart-pod")
    assert rec.dry_run and rec.result is Result.SKIPPED
    assert "no cluster configured" in rec.reason
    assert r.summary()["cluster"] is None and "no cluster configured" in r.summary()["cluster_note"]
    assert r.state().actions_last_hour(1_800_000_000.0) == 1  # accounted like the real thing


# -- targets ---------------------------------------------------------------------------------


def test_restart_pod_target_gone_is_skipped(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    rec = handle(make_remediator(limits=LIMITS), make_group(pods=["web-gone-xyz"]), "restart-pod")
    assert rec.result is Result.SKIPPED and rec.reason.startswith("target gone")
    assert (rec.kind, rec.name) == ("Pod", "web-gone-xyz")


def test_restart_pod_targets_the_pod_of_the_newest_occurrence(
    peer: KubePeer, make_remediator: RemediatorFactory
) -> None:
    peer.deployment("web", replicas=2)
    a, b = (p["metadata"]["name"] for p in peer.pods(selector="app=web"))
    group = make_group(pods=[a, b], last_pod=a)  # A logged the newest occurrence, though listed first
    rec = handle(make_remediator(limits=LIMITS), group, "restart-pod")
    assert rec.result is Result.SUCCESS and (rec.kind, rec.name) == ("Pod", a)
    assert rec.changes["pod"] == a
    assert peer.get("pods", "demo", a) is None and peer.get("pods", "demo", b) is not None
    assert [x.path.split("/")[-2] for x in peer.seen("POST", "/eviction")] == [a]


def test_workload_actions_resolve_through_the_newest_pod(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web", replicas=1)
    peer.deployment("api", replicas=1)
    web_pod = peer.pods(selector="app=web")[0]["metadata"]["name"]
    api_pod = peer.pods(selector="app=api")[0]["metadata"]["name"]
    # a group whose newest occurrence came from the api pod resolves to api, whatever pods[-1] is
    group = make_group(workload="api", pods=[api_pod, web_pod], last_pod=api_pod)
    rec = handle(make_remediator(limits=LIMITS), group, "rollout-restart")
    assert rec.result is Result.SUCCESS and (rec.kind, rec.name) == ("Deployment", "api")


def test_restart_pod_refuses_a_pod_no_controller_would_recreate(
    peer: KubePeer, make_remediator: RemediatorFactory, store: MemoryStore
) -> None:
    peer.add_namespace("demo")
    peer.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "debug-shell", "namespace": "demo", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "sh", "image": "busybox"}]},
        }
    )
    rec = handle(make_remediator(limits=LIMITS), make_group(pods=["debug-shell"]), "restart-pod")
    assert rec.decision == "allowed" and rec.result is Result.SKIPPED
    assert "no controller would recreate it" in rec.reason and "demo/debug-shell" in rec.reason
    assert (rec.kind, rec.name) == ("Pod", "debug-shell")
    assert peer.get("pods", "demo", "debug-shell") is not None
    assert not peer.seen("DELETE") and not peer.seen("POST")
    assert audit(store) == [rec]


def test_restart_pod_success(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    group = web_group(peer)
    rec = handle(make_remediator(limits=LIMITS), group, "restart-pod")
    assert rec.result is Result.SUCCESS and rec.kind == "Pod" and rec.name == group.pods[-1]
    assert peer.get("pods", "demo", group.pods[-1]) is None


def test_workload_action_falls_back_to_the_group_workload(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web", replicas=1)
    rec = handle(make_remediator(limits=LIMITS), make_group(pods=["web-gone-xyz"]), "scale-up")
    assert rec.result is Result.SUCCESS and (rec.kind, rec.name) == ("Deployment", "web")


def test_workload_not_found_fails(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.add_namespace("demo")
    rec = handle(make_remediator(limits=LIMITS), make_group(pods=[]), "rollout-restart")
    assert rec.result is Result.FAILED and "no Deployment or StatefulSet or DaemonSet named 'web'" in rec.error


def test_not_applicable_is_skipped(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    rec = handle(make_remediator(limits=LIMITS), web_group(peer), "rollback")
    assert rec.result is Result.SKIPPED and "no ReplicaSet for a previous revision" in rec.reason


def test_invalid_params_fail_clearly(make_remediator: RemediatorFactory) -> None:
    rec = handle(make_remediator(limits=LIMITS), make_group(), "scale-up", params={"replicas": "lots"})
    assert rec.result is Result.FAILED and "params.replicas" in rec.error
    rec = handle(make_remediator(limits=LIMITS), make_group(), "reboot-cluster")
    assert rec.result is Result.FAILED and "unknown action" in rec.error


# -- every refusal reason, end to end -------------------------------------------------------


def test_disabled_refuses_and_records(peer: KubePeer, make_remediator: RemediatorFactory, store: MemoryStore) -> None:
    peer.deployment("web")
    rec = handle(make_remediator(limits=dataclasses.replace(LIMITS, enabled=False)), web_group(peer))
    assert rec.decision == "denied" and rec.result is Result.SKIPPED and "disabled" in rec.reason
    assert not peer.seen("PATCH") and audit(store) == [rec]


def test_excluded_namespace_is_never_touched(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    rec = handle(
        make_remediator(limits=LIMITS), make_group(namespace="kube-system", workload="coredns", pods=["coredns-1"])
    )
    assert rec.decision == "denied" and "excluded" in rec.reason
    assert not peer.seen()


def test_cooldown_keyed_on_rule_and_workload(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock
) -> None:
    peer.deployment("web")
    r = make_remediator(limits=LIMITS)
    assert handle(r, web_group(peer), "restart-pod").result is Result.SUCCESS
    clock.advance(10)
    # the restarted pod has a new name: same rule, same workload -> still cooling down
    second = handle(r, web_group(peer), "restart-pod")
    assert second.decision == "denied" and "cooldown" in second.reason and "4m50s remaining" in second.reason
    assert handle(r, web_group(peer), "restart-pod", rule="other-rule").result is Result.SUCCESS
    clock.advance(300)
    assert handle(r, web_group(peer), "restart-pod").result is Result.SUCCESS


def test_hourly_budget(peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock) -> None:
    r = make_remediator(limits=dataclasses.replace(LIMITS, max_actions_per_hour=2))
    for name in ("a", "b"):
        peer.deployment(name)
    results = [handle(r, make_group(workload=w), "rollout-restart").decision for w in ("a", "b", "c")]
    assert results == ["allowed", "allowed", "denied"]
    denied = handle(r, make_group(workload="c"), "rollout-restart")
    assert "hourly budget spent: 2 of 2" in denied.reason
    clock.advance(3600)
    peer.deployment("c")
    assert handle(r, make_group(workload="c"), "rollout-restart").result is Result.SUCCESS


def test_per_workload_cap(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock, store: MemoryStore
) -> None:
    peer.deployment("web")
    r = make_remediator(limits=LIMITS)
    decisions = []
    for n in range(4):
        decisions.append(handle(r, web_group(peer), "rollout-restart", rule=f"rule-{n}").decision)
    assert decisions == ["allowed", "allowed", "allowed", "denied"]
    assert "per-workload cap" in audit_last(store).reason


def audit_last(store: MemoryStore) -> RemediationRecord:
    return store.list_remediations(RecordQuery(page_size=1)).items[0]


def test_manual_request_bypasses_cooldown_not_budget(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    r = make_remediator(limits=dataclasses.replace(LIMITS, per_workload_per_hour=2))
    assert handle(r, web_group(peer)).result is Result.SUCCESS
    manual = handle(r, web_group(peer), requested_by="alice", manual=True)
    assert manual.result is Result.SUCCESS and manual.requested_by == "alice"
    refused = handle(r, web_group(peer), requested_by="alice", manual=True)
    assert refused.decision == "denied" and "per-workload cap" in refused.reason


# -- cluster errors become failed records ---------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        pytest.param(lambda p: p.deny("patch", "deployments"), "cannot patch 'deployments'", id="403"),
        pytest.param(lambda p: p.fail(404, method="PATCH"), "not found", id="404"),
        pytest.param(
            lambda p: p.fail(422, method="PATCH", message="spec.template: Invalid value"), "rejected", id="422"
        ),
        pytest.param(lambda p: p.fail(500, method="PATCH"), "unavailable (500)", id="500"),
        pytest.param(lambda p: p.fail(503, method="PATCH"), "unavailable (503)", id="503"),
        pytest.param(lambda p: p.fail(0, method="PATCH", delay=1.5), "timed out", id="timeout"),
    ],
)
def test_cluster_errors_become_failed_records(
    peer: KubePeer, make_remediator: RemediatorFactory, setup: Any, needle: str
) -> None:
    peer.deployment("web")
    setup(peer)
    r = make_remediator(limits=LIMITS)
    rec = handle(r, web_group(peer))
    assert rec.result is Result.FAILED and needle in rec.error
    assert len(rec.error) < 700
    assert not r.state().in_flight  # the target is free again
    assert r.state().actions_last_hour(1_800_000_000.0) == 1


def test_403_names_verb_resource_and_rbac(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web", replicas=2)
    peer.deny("patch", "deployments/scale")
    rec = handle(make_remediator(limits=LIMITS), web_group(peer), "scale-up")
    assert rec.result is Result.FAILED
    assert "cannot patch 'deployments/scale' in API group 'apps'" in rec.error and RBAC_FILE in rec.error


def test_409_retried_once_then_failed(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web", replicas=2)
    peer.before("PATCH", "/scale", lambda p: p.touch("deployments", "demo", "web"))
    ok = handle(make_remediator(limits=LIMITS), web_group(peer), "scale-up")
    assert ok.result is Result.SUCCESS
    peer.before("PATCH", "/scale", lambda p: p.touch("deployments", "demo", "web"), times=2)
    failed = handle(make_remediator(limits=LIMITS), web_group(peer), "scale-up", rule="other")
    assert failed.result is Result.FAILED and "conflict" in failed.error


def test_unexpected_bug_is_a_failed_record_not_a_crash(
    peer: KubePeer, make_remediator: RemediatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    peer.deployment("web")
    # an answer our code does not expect (replicas not a number) makes it raise something unplanned
    peer.fail(200, method="GET", path="/scale", body={"kind": "Scale", "metadata": {}, "spec": {"replicas": "many"}})
    r = make_remediator(limits=LIMITS)
    rec = handle(r, web_group(peer), "scale-up")
    assert rec.result is Result.FAILED and rec.reason == "internal error" and "ValueError" in rec.error
    assert "crashed" in caplog.text
    assert not r.state().in_flight


def test_garbage_answer_is_unavailable(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    peer.fail(502, method="GET", path="/scale", body="<html>bad gateway</html>")
    rec = handle(make_remediator(limits=LIMITS), web_group(peer), "scale-up")
    assert rec.result is Result.FAILED and "unavailable (502)" in rec.error


# -- effectiveness and the breaker -----------------------------------------------------------


def _minutes(at: float, before: int, after: int) -> dict[int, int]:
    m = int(at // 60)
    return {m - 2: before, m + 2: after}


def test_effectiveness_verdicts_and_breaker(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock, store: MemoryStore
) -> None:
    peer.deployment("web")
    limits = dataclasses.replace(LIMITS, per_workload_per_hour=10, breaker_threshold=3, effectiveness_window=300)
    r = make_remediator(limits=limits)
    group = web_group(peer)
    verdicts = []
    for n in range(3):
        rec = handle(r, group, cooldown=0)
        assert rec.result is Result.SUCCESS
        assert r.evaluate_effectiveness(lambda _id: None, clock.now + 60) == []  # not due yet
        clock.advance(7 * 60)
        g = dataclasses.replace(group, minute_counts=_minutes(rec.time, 10, 10))  # same rate: ineffective
        [judged] = r.evaluate_effectiveness(lambda _id, g=g: g, clock.now)  # type: ignore[misc]
        verdicts.append(judged.effective)
        assert judged.changes["errors_before"] == 10 and judged.changes["errors_after"] == 10
        if n < 2:
            assert not r.state().breaker_open("demo/web")
    assert verdicts == [False, False, False]
    assert r.state().breaker_open("demo/web")
    stored = {x.id: x.effective for x in audit(store)}
    assert list(stored.values()) == [False, False, False]

    refused = handle(r, group, cooldown=0)
    assert refused.decision == "denied" and "breaker open" in refused.reason
    assert "a person must reset it" in refused.reason
    # a person may still act by hand while the breaker is open
    assert handle(r, group, cooldown=0, manual=True, requested_by="alice").result is Result.SUCCESS

    assert r.reset_breaker("demo/web", "alice")
    assert r.summary()["breakers"]["demo/web"]["reset_by"] == "alice"
    assert handle(r, group, cooldown=0).result is Result.SUCCESS


def test_effective_action(peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock) -> None:
    peer.deployment("web")
    r = make_remediator(limits=LIMITS)
    group = web_group(peer)
    rec = handle(r, group)
    clock.advance(7 * 60)
    g = dataclasses.replace(group, minute_counts=_minutes(rec.time, 10, 1))
    [judged] = r.evaluate_effectiveness(lambda _id: g, clock.now)
    assert judged.effective is True
    assert r.evaluate_effectiveness(lambda _id: g, clock.now + 600) == []  # judged once


def test_effectiveness_without_minute_counts_uses_last_seen(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock
) -> None:
    peer.deployment("web")
    r = make_remediator(limits=LIMITS)
    group = web_group(peer)
    rec = handle(r, group)
    clock.advance(7 * 60)
    came_back = dataclasses.replace(group, minute_counts={}, last_seen=rec.time + 120)
    [judged] = r.evaluate_effectiveness(lambda _id: came_back, clock.now)
    assert judged.effective is False


# -- persistence -----------------------------------------------------------------------------


def test_safety_state_survives_a_restart(
    peer: KubePeer, make_remediator: RemediatorFactory, store: MemoryStore, clock: FakeClock
) -> None:
    peer.deployment("web")
    limits = dataclasses.replace(LIMITS, breaker_threshold=1, per_workload_per_hour=10)
    first = make_remediator(limits=limits)
    rec = handle(first, web_group(peer))
    assert rec.result is Result.SUCCESS
    clock.advance(10)

    second = make_remediator(limits=limits)  # a new process on the same store
    again = handle(second, web_group(peer))
    assert again.decision == "denied" and "cooldown" in again.reason
    assert second.state().actions_last_hour(clock.now) == 1

    clock.advance(7 * 60)
    g = dataclasses.replace(web_group(peer), minute_counts=_minutes(rec.time, 5, 5))
    [judged] = make_remediator(limits=limits).evaluate_effectiveness(lambda _id: g, clock.now)
    assert judged.id == rec.id and judged.effective is False
    third = make_remediator(limits=limits)
    assert third.state().breaker_open("demo/web")
    assert "breaker open" in handle(third, web_group(peer), cooldown=0).reason


def test_state_is_persisted_before_acting(
    peer: KubePeer, make_remediator: RemediatorFactory, store: MemoryStore
) -> None:
    peer.deployment("web")
    seen: list[dict[str, Any] | None] = []
    # while the PATCH is on the wire, look at what the store already holds
    peer.before("PATCH", "/deployments/web", lambda p: seen.append(store.get_state("safety")))
    handle(make_remediator(limits=LIMITS), web_group(peer))
    [during] = seen
    assert during is not None
    assert during["in_flight"] == {"demo/web": 1_800_000_000.0}
    assert during["actions"] == [1_800_000_000.0]
    assert "crashloop|demo/web" in during["cooldowns"]
    records = audit(store)
    assert len(records) == 1 and records[0].result is Result.SUCCESS


def test_crash_after_acting_before_the_poll_flush_keeps_the_cooldown(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock, tmp_path: Path
) -> None:
    """The process dies right after deleting a pod, before the end-of-poll flush: the restart must not repeat it."""
    peer.deployment("web", replicas=2)
    path = tmp_path / "sentinel.json"
    first_store = TinyDBStore(path)
    group = web_group(peer)
    first = make_remediator(limits=LIMITS, store=first_store)
    rec = handle(first, group, "restart-pod", cooldown=3600)
    assert rec.result is Result.SUCCESS
    assert len(peer.seen("POST", "/eviction")) == 1
    # no flush and no close of the first store: it "crashed"; a new process opens the same file
    second_store = TinyDBStore(path)
    assert not second_store.startup_warnings
    [in_progress] = audit(second_store)
    assert in_progress.id == rec.id and in_progress.reason == "in progress"
    restarted = make_remediator(limits=LIMITS, store=second_store)
    assert restarted.state().actions_last_hour(clock.now) == 1  # the spent budget survived too
    now_again = handle(restarted, group, "restart-pod", cooldown=3600)
    assert now_again.decision == "denied" and "in flight" in now_again.reason  # the crashed action's mark
    clock.advance(IN_FLIGHT_TTL + 1)  # the stale in-flight mark lapses; the cooldown does not
    later = handle(restarted, group, "restart-pod", cooldown=3600)
    assert later.decision == "denied" and later.result is Result.SKIPPED
    assert "cooldown for rule 'crashloop' on demo/web" in later.reason
    assert len(peer.seen("POST", "/eviction")) == 1  # the pod was evicted once, not again after the restart


def test_safety_state_that_cannot_be_saved_means_no_action(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    broken = CountingStore(broken=True)
    r = make_remediator(limits=LIMITS, store=broken)
    rec = handle(r, web_group(peer), "restart-pod")
    assert rec.result is Result.FAILED and "could not be saved" in rec.reason and "No space left" in rec.error
    assert broken.flushes == 1
    assert not peer.seen()  # the cluster was never called
    assert not r.state().in_flight  # the workload is free again; the cooldown stays (fail safe)
    assert r.state().cooldown_remaining("crashloop", "demo/web", 1_800_000_000.0) > 0


def test_state_is_flushed_before_a_dry_run_call(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    counting = CountingStore()
    flushes_at_call: list[int] = []
    peer.before("POST", "/eviction", lambda _p: flushes_at_call.append(counting.flushes))
    rec = handle(
        make_remediator(limits=dataclasses.replace(LIMITS, dry_run=True), store=counting),
        web_group(peer),
        "restart-pod",
    )
    assert rec.result is Result.SUCCESS and rec.dry_run
    assert flushes_at_call == [1]


def test_set_limits_applies_to_the_next_decision(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web")
    r = make_remediator(limits=LIMITS)
    r.set_limits(dataclasses.replace(LIMITS, enabled=False))
    assert "disabled" in handle(r, web_group(peer)).reason
    r.set_limits(dataclasses.replace(LIMITS, dry_run=True))
    assert handle(r, web_group(peer)).dry_run


# -- concurrency -----------------------------------------------------------------------------


def test_two_polls_racing_for_one_target(
    peer: KubePeer, make_remediator: RemediatorFactory, store: MemoryStore
) -> None:
    peer.deployment("web", replicas=2)
    r = make_remediator(limits=LIMITS)
    group = web_group(peer)
    gate = threading.Barrier(2)
    # hold the first action on the wire so that the second poll arrives while it is in flight
    in_patch = threading.Event()
    release = threading.Event()

    def slow(_peer: KubePeer) -> None:
        in_patch.set()
        release.wait(5)

    peer.before("PATCH", "/scale", slow)
    results: list[RemediationRecord] = []

    def poll() -> None:
        gate.wait()
        results.append(handle(r, group, "scale-up", cooldown=0.0))  # no cooldown: only the in-flight mark stops it

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for t in threads:
        t.start()
    assert in_patch.wait(5)
    # The first action is held on the wire until the second poll has decided.
    for _ in range(500):
        if results:
            break
        threads[0].join(0.01)
    assert len(results) == 1 and results[0].decision == "denied"
    release.set()
    for t in threads:
        t.join(10)
    assert sorted(x.decision for x in results) == ["allowed", "denied"]
    denied = next(x for x in results if x.decision == "denied")
    assert "in flight" in denied.reason
    assert len(peer.seen("PATCH", "/scale")) == 1
    dep = peer.get("deployments", "demo", "web")
    assert dep is not None and dep["spec"]["replicas"] == 3


def test_two_remediators_on_one_store_do_not_double_act(peer: KubePeer, make_remediator: RemediatorFactory) -> None:
    peer.deployment("web", replicas=2)
    a, b = make_remediator(limits=LIMITS), make_remediator(limits=LIMITS)
    group = web_group(peer)
    out: list[RemediationRecord] = []
    peer.before("PATCH", "/scale", lambda _p: out.append(handle(b, group, "scale-up")))
    out.append(handle(a, group, "scale-up"))
    assert [x.decision for x in out] == ["denied", "allowed"]
    assert "in flight" in out[0].reason
