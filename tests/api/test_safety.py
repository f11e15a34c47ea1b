"""``/api/safety``: the remediation safety state (limits, budget, cooldowns, breakers); breaker resets."""

from __future__ import annotations

import pytest

from sentinel.core.policy import Breaker, cooldown_key
from sentinel.engine.leader import LeaderElector
from sentinel.engine.runtime import Runtime
from sentinel.remediation.cluster import Cluster
from tests.api.conftest import AUTH, TOKEN, Served
from tests.peers.kube import KubePeer

WORKLOAD = "shop/checkout"


def _open_breaker(rt: Runtime, workload: str = WORKLOAD, *, ineffective: int = 3) -> float:
    """Open ``workload``'s breaker in the persisted safety state, as the remediator does after K misses."""
    now = rt.clock()
    state = rt.remediator.state()
    state.breakers[workload] = Breaker(open=True, reason="3 ineffective actions in a row", opened_at=now - 60)
    state.ineffective[workload] = ineffective
    rt.store.put_state("safety", state.to_dict())
    return now - 60


def test_safety_state_is_shown(fresh: Served) -> None:
    rt = fresh.runtime
    now = rt.clock()
    state = rt.remediator.state()
    state.cooldowns[cooldown_key("oom-killed", "shop/cart")] = now + 600
    state.actions += [now - 30, now - 20]
    state.workload_actions["shop/cart"] = [now - 30, now - 20]
    rt.store.put_state("safety", state.to_dict())
    opened_at = _open_breaker(rt)

    r = fresh.client.get("/api/safety")
    assert r.status_code == 200, r.text
    body = r.json()
    summary = rt.remediator.summary()
    limits = rt.remediator.limits
    assert body["limits"] == {
        "enabled": limits.enabled,
        "dry_run": limits.dry_run,
        "max_actions_per_hour": limits.max_actions_per_hour,
        "per_workload_per_hour": limits.per_workload_per_hour,
        "excluded_namespaces": sorted(limits.excluded_namespaces),
        "breaker_threshold": limits.breaker_threshold,
        "effectiveness_window": limits.effectiveness_window,
    }
    used = summary["actions_last_hour"]
    assert used >= 2
    assert body["budget"] == {"used": used, "limit": 50, "remaining": 50 - used}
    per_workload = {w["workload"]: w for w in body["workloads"]}
    assert per_workload["shop/cart"] == {
        "workload": "shop/cart",
        "actions_last_hour": 2,
        "limit": 3,
        "in_flight": False,
    }
    cooldowns = {(c["rule"], c["workload"]): c for c in body["cooldowns"]}
    assert len(cooldowns) == len(summary["cooldowns"])
    cart = cooldowns[("oom-killed", "shop/cart")]
    assert cart["until"] == pytest.approx(now + 600)
    assert 0 < cart["remaining"] <= 600
    assert body["breakers"] == [
        {
            "workload": WORKLOAD,
            "state": "open",
            "reason": "3 ineffective actions in a row",
            "opened_at": pytest.approx(opened_at),
            "reset_by": "",
            "reset_at": None,
            "ineffective": 3,
        }
    ]
    assert body["cluster"]["configured"] is False and body["cluster"]["host"] is None
    assert "no cluster configured" in body["cluster"]["note"]
    for secret in (TOKEN, "loki-password-never-shown"):
        assert secret not in r.text


def test_empty_safety_state(unpolled: Served) -> None:
    body = unpolled.client.get("/api/safety").json()
    assert body["budget"]["used"] == 0 and body["budget"]["remaining"] == 50
    assert body["workloads"] == [] and body["cooldowns"] == [] and body["breakers"] == []
    assert body["pending_checks"] == 0


def test_breaker_reset_closes_it_records_who_and_publishes(fresh: Served) -> None:
    rt = fresh.runtime
    _open_breaker(rt)
    assert rt.remediator.state().breaker_open(WORKLOAD)
    r = fresh.client.post(
        "/api/safety/breakers/reset", json={"workload": WORKLOAD}, headers={**AUTH, "X-Sentinel-User": "dana"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["workload"] == WORKLOAD and body["was_open"] is True and body["by"] == "dana"
    assert body["breaker"]["state"] == "closed" and body["breaker"]["reset_by"] == "dana"
    assert body["breaker"]["ineffective"] == 0  # the count of misses starts over
    # persisted: the remediator's own state (what decide() reads) has it closed, with who
    state = rt.remediator.state()
    assert not state.breaker_open(WORKLOAD)
    assert state.breakers[WORKLOAD].reset_by == "dana" and state.breakers[WORKLOAD].reset_at is not None
    # shown
    shown = fresh.client.get("/api/safety").json()["breakers"]
    assert [(b["workload"], b["state"], b["reset_by"]) for b in shown] == [(WORKLOAD, "closed", "dana")]
    # published for the live feed (/ws)
    events = rt.events.recent(frozenset({"remediation"}))
    resets = [e for e in events if e.data.get("event") == "breaker.reset"]
    assert len(resets) == 1
    assert resets[0].data["workload"] == WORKLOAD and resets[0].data["by"] == "dana" and resets[0].data["was_open"]
    # a second reset finds it closed: still 200, nothing was open
    again = fresh.client.post("/api/safety/breakers/reset", json={"workload": WORKLOAD}, headers=AUTH)
    assert again.status_code == 200 and again.json()["was_open"] is False
    assert rt.remediator.state().breakers[WORKLOAD].reset_by == "dana"  # the person who closed it stays named


def test_reset_of_an_unknown_breaker_is_404(fresh: Served) -> None:
    _open_breaker(fresh.runtime)
    before = fresh.runtime.remediator.state().to_dict()
    r = fresh.client.post("/api/safety/breakers/reset", json={"workload": "shop/nothing-here"}, headers=AUTH)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert "shop/nothing-here" in r.json()["detail"]
    assert fresh.runtime.remediator.state().to_dict() == before
    assert not [e for e in fresh.runtime.events.recent() if e.data.get("event") == "breaker.reset"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({}, "workload", id="missing"),
        pytest.param({"workload": "checkout"}, "workload", id="no-namespace"),
        pytest.param({"workload": "a/b/c"}, "workload", id="two-slashes"),
        pytest.param({"workload": "shop/\u0007"}, "workload", id="control-character"),
        pytest.param({"workload": WORKLOAD, "force": True}, "force", id="unknown-field"),
    ],
)
def test_bad_reset_body_is_422(fresh: Served, body: dict[str, object], field: str) -> None:
    _open_breaker(fresh.runtime)
    r = fresh.client.post("/api/safety/breakers/reset", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert any(p.startswith(field) for p in r.json()["problems"]), r.json()
    assert fresh.runtime.remediator.state().breaker_open(WORKLOAD)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
    ],
)
def test_reset_needs_the_token(fresh: Served, headers: dict[str, str]) -> None:
    _open_breaker(fresh.runtime)
    r = fresh.client.post("/api/safety/breakers/reset", json={"workload": WORKLOAD}, headers=headers)
    assert r.status_code == 401
    assert fresh.runtime.remediator.state().breaker_open(WORKLOAD)


def test_read_only_api_refuses_reset_but_shows_the_state(readonly: Served) -> None:
    _open_breaker(readonly.runtime)
    r = readonly.client.post("/api/safety/breakers/reset", json={"workload": WORKLOAD}, headers=AUTH)
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    assert readonly.runtime.remediator.state().breaker_open(WORKLOAD)
    assert readonly.client.get("/api/safety").json()["breakers"][0]["state"] == "open"


def test_a_follower_refuses_reset(fresh: Served, kube_peer: KubePeer) -> None:
    """Each replica has its own store: a reset on a follower would change nothing that decides."""
    rt = fresh.runtime
    _open_breaker(rt)
    kube_peer.add_namespace("kube-sentinel")
    cluster = Cluster.for_host(kube_peer.url, kube_peer.token, timeout=2.0)
    try:
        other = LeaderElector(cluster, namespace="kube-sentinel", identity="sentinel-0", clock=rt.clock)
        assert other.tick()  # another replica holds the Lease
        rt.use_elector(
            LeaderElector(
                cluster,
                namespace="kube-sentinel",
                identity="sentinel-1",
                store=rt.store,
                ledger=rt.remediator.ledger,
                clock=rt.clock,
            )
        )
        assert not rt.lease_tick() and rt.read_only
        r = fresh.client.post("/api/safety/breakers/reset", json={"workload": WORKLOAD}, headers=AUTH)
    finally:
        cluster.close()
    assert r.status_code == 409 and "sentinel-0" in r.json()["detail"]
    assert rt.remediator.state().breaker_open(WORKLOAD)
