"""One safety-state load and save per poll (issue 17): the ledger decides as the store did, and stays crash safe."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

import pytest

from sentinel.core.model import Result
from sentinel.core.policy import SafetyLimits, SafetyState
from sentinel.remediation.remediator import STATE_NAME, Remediator
from sentinel.store.memory import MemoryStore
from tests.peers.kube import KubePeer
from tests.remediation.conftest import FakeClock, RemediatorFactory, make_group

LIMITS = SafetyLimits(max_actions_per_hour=5, per_workload_per_hour=2, excluded_namespaces=frozenset({"kube-system"}))


class CountingStore(MemoryStore):
    """Counts the loads and saves of the safety state."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.saves = 0

    def get_state(self, name: str) -> dict[str, Any] | None:
        if name == STATE_NAME:
            self.loads += 1
        return super().get_state(name)

    def put_state(self, name: str, value: dict[str, Any]) -> None:
        if name == STATE_NAME:
            self.saves += 1
        super().put_state(name, value)


def decisions(r: Remediator, n: int, *, action: str = "rollout-restart") -> list[tuple[str, str, str]]:
    out = []
    for i in range(n):
        rec = r.handle(
            make_group(workload=f"svc-{i % 7}", gid=f"g{i}"),
            rule=f"rule-{i % 3}",
            action=action,
            params={},
            cooldown=120.0,
        )
        out.append((rec.decision, rec.reason_code, rec.result.value))
    return out


def test_a_poll_loads_the_safety_state_once_and_saves_it_once(make_remediator: RemediatorFactory) -> None:
    store = CountingStore()
    r = make_remediator(limits=dataclasses.replace(LIMITS, enabled=False), store=store)
    with r.poll():
        assert all(d[0] == "denied" for d in decisions(r, 300))
    assert (store.loads, store.saves) == (1, 0)  # refusals change nothing
    r.set_limits(LIMITS)
    with r.poll():
        decisions(r, 300, action="none")  # alerts: each starts a cooldown
    assert (store.loads, store.saves) == (2, 1)
    assert len(SafetyState.from_dict(store.get_state(STATE_NAME)).cooldowns) == 21  # 3 rules x 7 workloads


def test_the_ledger_decides_as_the_store_did(
    peer: KubePeer, make_remediator: RemediatorFactory, clock: FakeClock
) -> None:
    """No cluster (dry-run without one): budget, per-workload cap and cooldowns, with and without a poll."""
    seen = []
    for in_poll in (False, True):
        r = make_remediator(limits=LIMITS, store=MemoryStore(), cluster_=None)
        if in_poll:
            with r.poll():
                got = decisions(r, 60)
        else:
            got = decisions(r, 60)
        seen.append(got)
    assert seen[0] == seen[1]
    codes = {d[1] for d in seen[1]}
    assert {"cooldown", "hourly-budget"} <= codes and ("allowed", "", "skipped") in seen[1]


def test_the_state_is_on_disk_before_each_cluster_call_during_a_poll(
    peer: KubePeer, make_remediator: RemediatorFactory
) -> None:
    peer.deployment("web")
    store = CountingStore()
    r = make_remediator(limits=LIMITS, store=store)
    seen_in_flight: list[bool] = []

    def check(_p: KubePeer) -> None:
        stored = SafetyState.from_dict(MemoryStore.get_state(store, STATE_NAME))
        seen_in_flight.append("demo/web" in stored.in_flight and bool(stored.cooldowns))

    peer.before("PATCH", "/deployments/web", check)
    pod = peer.pods()[0]["metadata"]["name"]
    with r.poll():
        rec = r.handle(make_group(pods=[pod]), rule="crashloop", action="rollout-restart", params={}, cooldown=60.0)
        assert rec.result is Result.SUCCESS
    assert seen_in_flight == [True]


def test_manual_requests_during_a_poll_use_the_ledger(make_remediator: RemediatorFactory) -> None:
    """A request from another thread while a poll decides is not lost when the poll saves."""
    store = MemoryStore()
    r = make_remediator(limits=LIMITS, store=store, cluster_=None)
    started, go_on = threading.Event(), threading.Event()

    def poll() -> None:
        with r.poll():
            decisions(r, 3)
            started.set()
            go_on.wait(5)

    t = threading.Thread(target=poll)
    t.start()
    assert started.wait(5)
    rec = r.handle(
        make_group(workload="by-hand", gid="gm"), rule="r", action="rollout-restart", params={}, cooldown=0, manual=True
    )
    assert rec.decision == "allowed"
    go_on.set()
    t.join(5)
    state = SafetyState.from_dict(store.get_state(STATE_NAME))
    assert state.actions_last_hour(1_800_000_000.0) == 4  # three of the poll's, one by hand


def test_refusals_and_alerts_log_at_debug_only(
    make_remediator: RemediatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    r = make_remediator(limits=dataclasses.replace(LIMITS, enabled=False))
    with caplog.at_level(logging.DEBUG, logger="sentinel.remediation.remediator"), r.poll():
        decisions(r, 50)
    info = [x for x in caplog.records if x.levelno >= logging.INFO]
    assert info == [] and sum(1 for x in caplog.records if "denied" in x.getMessage()) == 50
