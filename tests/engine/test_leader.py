"""Leader election over a Lease: the pure decision as tables, electors and runtimes against the Kubernetes peer."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel.bootstrap import build_runtime
from sentinel.config import load_config
from sentinel.core.policy import Breaker, SafetyLimits, SafetyState, cooldown_key
from sentinel.engine.leader import LeaderElector, default_identity, default_namespace
from sentinel.engine.lease import (
    SAFETY_ANNOTATION,
    LeaseAction,
    decide_lease,
    merge_summary,
    micro_time,
    parse_summary,
    parse_time,
    safety_summary,
)
from sentinel.engine.runtime import Runtime
from sentinel.errors import ConfigError, NotFound, StoreError
from sentinel.remediation.cluster import Cluster
from sentinel.remediation.ledger import SafetyLedger
from sentinel.remediation.remediator import Remediator
from sentinel.sources.loki import LokiClient
from sentinel.store.base import RecordQuery, Store
from sentinel.store.memory import MemoryStore
from tests.peers.kube import KubePeer
from tests.peers.loki import LokiPeer
from tests.remediation.conftest import make_group

NS = "kube-sentinel"
LEASE = "kube-sentinel"
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
NANO = 1_000_000_000


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def spec(
    holder: str = "b", *, renewed: float | None = T0 - 5, duration: int | None = 15, transitions: int = 3
) -> dict[str, Any]:
    s: dict[str, Any] = {"holderIdentity": holder, "leaseTransitions": transitions, "acquireTime": micro_time(T0 - 100)}
    if renewed is not None:
        s["renewTime"] = micro_time(renewed)
    if duration is not None:
        s["leaseDurationSeconds"] = duration
    return s


# -- the pure decision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lease", "now", "action", "holder", "transitions"),
    [
        pytest.param(None, T0, LeaseAction.CREATE, "a", 0, id="no-lease-create"),
        pytest.param(spec("a"), T0, LeaseAction.RENEW, "a", 3, id="ours-renew"),
        pytest.param(spec("a", renewed=T0 - 60), T0, LeaseAction.RENEW, "a", 3, id="ours-even-expired-renew"),
        pytest.param(spec("b"), T0, LeaseAction.FOLLOW, "b", None, id="held-live-follow"),
        pytest.param(spec("b", renewed=T0 - 15), T0, LeaseAction.FOLLOW, "b", None, id="exactly-at-expiry-follow"),
        pytest.param(spec("b", renewed=T0 - 15.001), T0, LeaseAction.ACQUIRE, "a", 4, id="expired-acquire"),
        pytest.param(spec(""), T0, LeaseAction.ACQUIRE, "a", 4, id="released-acquire"),
        pytest.param({}, T0, LeaseAction.ACQUIRE, "a", 1, id="empty-spec-acquire"),
        pytest.param(spec("b", renewed=None), T0, LeaseAction.ACQUIRE, "a", 4, id="never-renewed-acquire"),
        pytest.param(
            spec("b", renewed=T0 - 30, duration=60), T0, LeaseAction.FOLLOW, "b", None, id="holders-duration-counts"
        ),
        pytest.param(
            spec("b", renewed=T0 - 14, duration=None), T0, LeaseAction.FOLLOW, "b", None, id="no-duration-ours-live"
        ),
        pytest.param(
            spec("b", renewed=T0 - 16, duration=None), T0, LeaseAction.ACQUIRE, "a", 4, id="no-duration-ours-expired"
        ),
    ],
)
def test_decide_lease(
    lease: dict[str, Any] | None, now: float, action: LeaseAction, holder: str, transitions: int | None
) -> None:
    d = decide_lease(lease, "a", now, 15.0)
    assert d.action is action and d.holder == holder
    if action is LeaseAction.FOLLOW:
        assert d.spec is None and d.expires_at is not None
        return
    assert d.spec is not None
    assert d.spec["holderIdentity"] == "a" and d.spec["leaseDurationSeconds"] == 15
    assert d.spec["leaseTransitions"] == transitions
    assert parse_time(d.spec["renewTime"]) == now
    if action is LeaseAction.RENEW:
        assert d.spec["acquireTime"] == micro_time(T0 - 100)  # renewing keeps when we acquired it
    else:
        assert d.spec["acquireTime"] == d.spec["renewTime"]


def test_decide_lease_follow_says_when_the_lease_lapses() -> None:
    d = decide_lease(spec("b", renewed=T0 - 5), "a", T0, 15.0)
    assert d.expires_at == T0 + 10


def test_decide_lease_rounds_the_duration_up_to_whole_seconds() -> None:
    d = decide_lease(None, "a", T0, 7.2)
    assert d.spec is not None and d.spec["leaseDurationSeconds"] == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2027-01-15T08:00:00.000000Z", T0, id="micro-z"),
        pytest.param("2027-01-15T08:00:00.250000+00:00", T0 + 0.25, id="isoformat-offset"),
        pytest.param("2027-01-15T08:00:00Z", T0, id="seconds"),
        pytest.param("2027-01-15T09:00:00+01:00", T0, id="other-zone"),
        pytest.param("", None, id="empty"),
        pytest.param("yesterday", None, id="garbage"),
    ],
)
def test_parse_time(text: str, expected: float | None) -> None:
    assert parse_time(text) == expected


def test_identity_and_namespace_from_the_downward_api(tmp_path: Path) -> None:
    assert default_identity({"POD_NAME": "kube-sentinel-0"}) == "kube-sentinel-0"
    assert default_identity({}).endswith(f"-{os.getpid()}")
    sa = tmp_path / "namespace"
    sa.write_text("monitoring\n")
    assert default_namespace({"POD_NAMESPACE": "ops"}, service_account_file=str(sa)) == "ops"
    assert default_namespace({}, service_account_file=str(sa)) == "monitoring"
    assert default_namespace({}, service_account_file=str(tmp_path / "missing")) == "kube-sentinel"


# -- the safety summary ---------------------------------------------------------------------------


def leader_state() -> SafetyState:
    s = SafetyState()
    s.cooldowns = {cooldown_key("crash", "demo/web"): T0 + 300, cooldown_key("old", "demo/db"): T0 - 1}
    s.actions = [T0 - 4000, T0 - 60, T0 - 10]
    s.workload_actions = {"demo/web": [T0 - 60, T0 - 10], "demo/db": [T0 - 4000]}
    s.breakers = {"demo/api": Breaker(open=True, reason="3 ineffective", opened_at=T0 - 100), "demo/x": Breaker()}
    return s


def test_summary_keeps_only_what_can_still_refuse() -> None:
    doc = json.loads(safety_summary(leader_state(), T0))
    assert doc["v"] == 1
    assert doc["cooldowns"] == {"crash|demo/web": T0 + 300}
    assert doc["actions"] == [T0 - 60, T0 - 10]
    assert doc["workload_actions"] == {"demo/web": [T0 - 60, T0 - 10]}
    assert list(doc["breakers"]) == ["demo/api"]


def test_merge_takes_max_cooldowns_union_of_actions_and_open_breakers() -> None:
    summary = parse_summary(safety_summary(leader_state(), T0))
    assert summary is not None
    mine = SafetyState(
        cooldowns={"crash|demo/web": T0 + 600, "other|demo/q": T0 + 5},
        actions=[T0 - 10, T0 - 30],
        workload_actions={"demo/web": [T0 - 10]},
    )
    changed = merge_summary(mine, summary, T0)
    assert mine.cooldowns == {"crash|demo/web": T0 + 600, "other|demo/q": T0 + 5}  # ours was later: kept
    assert mine.actions == [T0 - 60, T0 - 30, T0 - 10]  # a shared time is not counted twice
    assert mine.workload_actions == {"demo/web": [T0 - 60, T0 - 10]}
    assert mine.breaker_open("demo/api") and mine.breakers["demo/api"].reason == "3 ineffective"
    assert changed == 3
    assert merge_summary(mine, summary, T0) == 0  # idempotent


def test_merge_adds_a_later_cooldown_and_skips_malformed_entries() -> None:
    mine = SafetyState(cooldowns={"crash|demo/web": T0 + 10})
    summary = {
        "v": 1,
        "cooldowns": {"crash|demo/web": T0 + 300, "bad": "soon", "lapsed|demo/x": T0 - 1},
        "actions": ["x", True, T0 - 5],
        "workload_actions": {"demo/web": "nope"},
        "breakers": ["not", "a", "mapping"],
    }
    assert merge_summary(mine, summary, T0) == 2
    assert mine.cooldowns == {"crash|demo/web": T0 + 300}
    assert mine.actions == [T0 - 5] and mine.workload_actions == {}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(None, id="absent"),
        pytest.param("{not json", id="not-json"),
        pytest.param('{"v": 99}', id="other-version"),
        pytest.param("[1, 2]", id="not-an-object"),
    ],
)
def test_unreadable_summaries_are_ignored(text: str | None) -> None:
    assert parse_summary(text) is None


def test_summary_is_bounded_dropping_oldest_actions_then_soonest_cooldowns() -> None:
    s = SafetyState()
    s.cooldowns = {f"rule|ns/w{i}": T0 + 10 + i for i in range(400)}
    s.actions = [T0 - 3000 + i for i in range(400)]
    s.workload_actions = {"ns/w": list(s.actions)}
    s.breakers = {"ns/api": Breaker(open=True, reason="x", opened_at=T0)}
    text = safety_summary(s, T0, max_bytes=8 * 1024)
    assert len(text.encode()) <= 8 * 1024
    doc = json.loads(text)
    assert doc["breakers"] == {"ns/api": {"reason": "x", "opened_at": T0}}
    assert not doc["actions"] and not doc["workload_actions"]  # actions go first
    kept = sorted(doc["cooldowns"].values())
    assert kept and kept[-1] == T0 + 409  # the longest cooldowns are kept
    small = safety_summary(leader_state(), T0, max_bytes=8 * 1024)
    assert json.loads(small)["actions"] == [T0 - 60, T0 - 10]  # nothing dropped when it fits


# -- electors against the Kubernetes API peer ----------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def peer(kube_peer: KubePeer, clock: FakeClock) -> KubePeer:
    kube_peer.clock = clock
    kube_peer.add_namespace(NS)
    return kube_peer


@pytest.fixture
def cluster(peer: KubePeer) -> Iterator[Cluster]:
    c = Cluster.for_host(peer.url, peer.token, timeout=2.0)
    yield c
    c.close()


def elector(cluster: Cluster, identity: str, clock: FakeClock, store: Store | None = None) -> LeaderElector:
    """An elector alone; with ``store``, its safety state is kept by a ledger of its own (no remediator here)."""
    return LeaderElector(
        cluster,
        namespace=NS,
        name=LEASE,
        identity=identity,
        lease_duration=15,
        renew_every=5,
        store=store,
        ledger=SafetyLedger(store, clock=clock) if store is not None else None,
        clock=clock,
    )


def lease_of(peer: KubePeer) -> dict[str, Any]:
    lease = peer.get("leases", NS, LEASE)
    assert lease is not None
    return lease


def test_one_leads_the_other_follows_and_takes_over_within_one_renewal_when_it_stops(
    peer: KubePeer, cluster: Cluster, clock: FakeClock
) -> None:
    a, b = elector(cluster, "a", clock, MemoryStore()), elector(cluster, "b", clock, MemoryStore())
    assert a.tick() is True and a.is_leader()
    assert b.tick() is False and not b.is_leader()
    assert b.holder == "a" and b.status()["role"] == "follower: read-only"
    for _ in range(3):  # renewals keep it
        clock.advance(5)
        assert a.tick() and not b.tick()
    assert lease_of(peer)["spec"]["leaseTransitions"] == 0
    assert a.release() is True and not a.is_leader()
    released = lease_of(peer)["spec"]
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert SAFETY_ANNOTATION in lease_of(peer)["metadata"]["annotations"]
    clock.advance(5)  # the follower's next renewal round
    assert b.tick() is True and b.is_leader()
    taken = lease_of(peer)["spec"]
    assert taken["holderIdentity"] == "b" and taken["leaseTransitions"] == 1
    assert a.tick() is False and a.holder == "b"
    assert a.release() is False  # not holding: nothing to release


def test_a_crashed_leader_is_replaced_after_its_lease_expires(
    peer: KubePeer, cluster: Cluster, clock: FakeClock
) -> None:
    a, b = elector(cluster, "a", clock), elector(cluster, "b", clock)
    assert a.tick() and not b.tick()
    # a crashes: it never renews again. b keeps trying every 5s.
    clock.advance(5)
    assert not b.tick()
    clock.advance(5)
    assert not b.tick()
    clock.advance(0.5)  # 10.5s after a's last renewal: a has stepped down on its own (renew deadline)
    assert not a.is_leader()
    assert not b.tick()  # ... and b still waits: the lease is not expired yet
    clock.advance(4.5)  # 15s: exactly at expiry, still held
    assert not b.tick()
    clock.advance(0.5)
    assert b.tick() is True
    spec_ = lease_of(peer)["spec"]
    assert spec_["holderIdentity"] == "b" and spec_["leaseTransitions"] == 1
    assert parse_time(spec_["renewTime"]) == clock.now


def test_an_unreachable_api_server_keeps_the_leader_only_until_its_renew_deadline(
    peer: KubePeer, cluster: Cluster, clock: FakeClock
) -> None:
    a = elector(cluster, "a", clock)
    assert a.tick()
    peer.fail(503, path="/leases/", times=10)
    clock.advance(5)
    assert a.tick() is True and "unavailable" in a.last_error  # one missed renewal: still leader
    clock.advance(5)
    assert a.tick() is False  # 10s without a renewal: steps down before anyone may take over
    peer.failures.clear()
    clock.advance(1)
    assert a.tick() is True and a.last_error == ""  # nobody took it: renewed
    assert lease_of(peer)["spec"]["leaseTransitions"] == 0


class PausingCluster(Cluster):
    """The real adapter, but every Lease read waits at a barrier: both replicas read before either writes."""

    barrier: threading.Barrier

    def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return super().get_lease(namespace, name)
        finally:
            self.barrier.wait(timeout=5)


@pytest.mark.parametrize("existing", [pytest.param(False, id="both-create"), pytest.param(True, id="both-take-over")])
def test_a_409_race_has_exactly_one_winner(peer: KubePeer, clock: FakeClock, existing: bool) -> None:
    if existing:  # a lease whose holder died long ago
        peer.create(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": LEASE, "namespace": NS},
                "spec": spec("gone", renewed=T0 - 60, transitions=2),
            }
        )
    barrier = threading.Barrier(2)
    electors = []
    for identity in ("a", "b"):
        c = PausingCluster.for_host(peer.url, peer.token, timeout=5.0)
        c.barrier = barrier
        electors.append(elector(c, identity, clock))
    results: dict[str, bool] = {}
    threads = [threading.Thread(target=lambda e=e: results.__setitem__(e.identity, e.tick())) for e in electors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(results.values()) == [False, True]
    winner = next(i for i, won in results.items() if won)
    lease = lease_of(peer)["spec"]
    assert lease["holderIdentity"] == winner
    assert lease["leaseTransitions"] == (3 if existing else 0)
    assert sum(1 for r in peer.seen(path="/leases") if r.status == 409) == 1
    loser = next(e for e in electors if e.identity != winner)
    assert not loser.is_leader() and loser.last_error == ""


def test_the_leader_publishes_its_safety_summary_and_the_next_one_merges_it_before_leading(
    peer: KubePeer, cluster: Cluster, clock: FakeClock
) -> None:
    store_a, store_b = MemoryStore(), MemoryStore()
    store_a.put_state("safety", leader_state().to_dict())
    a, b = elector(cluster, "a", clock, store_a), elector(cluster, "b", clock, store_b)
    assert a.tick() and not b.tick()
    published = parse_summary(lease_of(peer)["metadata"]["annotations"][SAFETY_ANNOTATION])
    assert published is not None and published["cooldowns"] == {"crash|demo/web": T0 + 300}
    assert store_b.get_state("safety") is None  # a follower does not merge while following
    a.release()
    assert b.tick()
    merged = SafetyState.from_dict(store_b.get_state("safety"))
    assert merged.cooldown_remaining("crash", "demo/web", clock.now) == 300
    assert merged.actions_last_hour(clock.now) == 2 and merged.breaker_open("demo/api")


def test_a_summary_merged_during_a_poll_is_kept_when_the_poll_saves(
    peer: KubePeer, cluster: Cluster, clock: FakeClock
) -> None:
    """The elector merges through the remediator's ledger (one owner, one lock): the poll's own save,
    at its end, keeps what the takeover merged in the middle of it."""
    store_a, store_b = MemoryStore(), MemoryStore()
    store_a.put_state("safety", leader_state().to_dict())
    a = elector(cluster, "a", clock, store_a)
    remediator = Remediator(store=store_b, cluster=None, limits=SafetyLimits(), clock=clock)
    b = LeaderElector(
        cluster,
        namespace=NS,
        name=LEASE,
        identity="b",
        lease_duration=15,
        renew_every=5,
        store=store_b,
        ledger=remediator.ledger,
        clock=clock,
    )
    assert a.tick() and not b.tick()
    a.release()
    group = make_group(workload="api")
    with remediator.poll():
        alert = remediator.handle(group, rule="oom", action="none", params={}, cooldown=600)
        assert alert.decision == "allowed"  # its cooldown waits in memory for the poll's end
        assert b.tick()  # the takeover merges a's summary now, in the middle of the poll
    saved = SafetyState.from_dict(store_b.get_state("safety"))
    assert saved.cooldown_remaining("crash", "demo/web", clock.now) == 300  # merged from a
    assert saved.cooldown_remaining("oom", "demo/api", clock.now) == 600  # the poll's own
    assert saved.breaker_open("demo/api")


class BrokenStore(MemoryStore):
    def put_state(self, name: str, value: dict[str, Any]) -> None:
        raise StoreError("disk full")


def test_a_replica_that_cannot_merge_the_summary_does_not_take_over(
    peer: KubePeer, cluster: Cluster, clock: FakeClock
) -> None:
    store_a = MemoryStore()
    store_a.put_state("safety", leader_state().to_dict())
    a, b = elector(cluster, "a", clock, store_a), elector(cluster, "b", clock, BrokenStore())
    assert a.tick()
    a.release()
    assert b.tick() is False and "disk full" in b.last_error
    assert lease_of(peer)["spec"]["holderIdentity"] == ""  # it never wrote the Lease


def test_without_permission_on_leases_nobody_leads(peer: KubePeer, cluster: Cluster, clock: FakeClock) -> None:
    peer.deny("create", "leases")
    a = elector(cluster, "a", clock)
    assert a.tick() is False and "rbac.yaml" in a.last_error
    with pytest.raises(NotFound):
        cluster.get_lease(NS, LEASE)


# -- runtimes ---------------------------------------------------------------------------------------

RULES = """
rules:
  - name: upstream-refused
    match:
      pattern: "connection refused"
    priority: P1
    remediation:
      action: restart-pod
      cooldown: 10m
"""


def kubeconfig_for(tmp_path: Path, peer: KubePeer) -> Path:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: peer, cluster: {{server: "{peer.url}"}}}}]
users: [{{name: me, user: {{token: "{peer.token}"}}}}]
contexts: [{{name: peer, context: {{cluster: peer, user: me}}}}]
current-context: peer
"""
    )
    return kc


def write_config(
    tmp_path: Path, kube: KubePeer, loki: LokiPeer, identity: str, *, renew: str = "5s", lease: str = "15s"
) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    cfg = tmp_path / f"config-{identity}.yaml"
    cfg.write_text(
        f"""
loki:
  url: {loki.url}
  lookback: 10m
  ingest_delay: 0s
kubernetes:
  in_cluster: false
  kubeconfig: {kubeconfig_for(tmp_path, kube)}
remediation:
  excluded_namespaces: [kube-system]
rules_file: rules.yaml
store:
  type: tinydb
  path: {tmp_path / f"store-{identity}.json"}
leader_election:
  enabled: true
  namespace: {NS}
  identity: {identity}
  lease_duration: {lease}
  renew_every: {renew}
"""
    )
    return cfg


def build(cfg: Path, loki: LokiPeer, clock: Any) -> Runtime:
    source = LokiClient(httpx.Client(base_url=loki.url, timeout=5.0), query='{namespace=~".+"}', max_retries=1)
    return build_runtime(cfg, source=source, clock=clock, env={})


def refused_line(loki: LokiPeer, pod: str, at: float, n: int) -> None:
    loki.add_lines(
        {"namespace": "demo", "pod": pod, "container": "nginx"},
        [(int(at * NANO) + i, f"ERROR upstream connection refused (attempt {i})") for i in range(n)],
    )


def failing_web_pod(kube: KubePeer, loki: LokiPeer, clock: FakeClock) -> str:
    """Deployment ``web`` whose first pod logs the error a restart-pod rule acts on; its name."""
    kube.add_namespace(NS)
    kube.deployment("web")
    pod: str = kube.pods(selector="app=web")[0]["metadata"]["name"]
    refused_line(loki, pod, clock.now - 60, 5)
    return pod


def pod_deletes(peer: KubePeer) -> int:
    """Pods restarted: restart-pod evicts (POST pods/eviction), or deletes with ``method: delete``."""
    evicted = sum(1 for r in peer.seen("POST", "/eviction") if r.status == 201)
    return evicted + sum(1 for r in peer.seen("DELETE", "/pods/") if r.status == 200)


@pytest.mark.parametrize(
    "merged", [pytest.param(True, id="summary-merged"), pytest.param(False, id="control-no-summary")]
)
def test_no_action_runs_twice_across_a_takeover(
    tmp_path: Path, kube_peer: KubePeer, loki_peer: LokiPeer, merged: bool
) -> None:
    clock = FakeClock(time.time())
    failing_web_pod(kube_peer, loki_peer, clock)
    a = build(write_config(tmp_path, kube_peer, loki_peer, "a"), loki_peer, clock)
    b = build(write_config(tmp_path, kube_peer, loki_peer, "b"), loki_peer, clock)
    assert a.elector is not None and b.elector is not None
    assert not a.health.leader and not b.health.leader  # read-only until the lease says otherwise
    assert a.lease_tick() and not b.lease_tick()
    assert b.health.role == "follower: read-only" and b.leadership()["holder"] == "a"

    r = a.poll_once()
    assert r.ok and r.remediations == 1
    assert pod_deletes(kube_peer) == 1

    # a manual action on the follower is refused and audited there, not run
    assert b.poll_once().remediations == 0  # b may poll (as `run --once` would) but does not act
    group = b.store.all_groups()[0]
    assert pod_deletes(kube_peer) == 1
    rec = b.request_action(group.id, by="alice")
    assert rec.decision == "denied" and rec.reason.startswith("follower: read-only") and "(a)" in rec.reason
    assert rec.reason_code == "follower"  # refused by decide() itself, audited as every refusal is
    assert pod_deletes(kube_peer) == 1

    a.stop()  # releases the lease: b takes over at its next round
    if not merged:
        kube_peer.set("leases", NS, LEASE, lambda o: o["metadata"]["annotations"].pop(SAFETY_ANNOTATION))
    clock.advance(5)
    assert b.lease_tick() and b.health.role == "leader"

    new_pod = kube_peer.pods(selector="app=web", live=True)[-1]["metadata"]["name"]
    refused_line(loki_peer, new_pod, clock.now - 1, 3)  # the same error comes back
    r = b.poll_once()
    assert r.ok and r.remediations >= 1
    records = b.store.list_remediations(RecordQuery(page_size=50)).items
    engine = [x for x in records if x.requested_by == "engine"]
    if merged:
        assert pod_deletes(kube_peer) == 1  # exactly one restart across the takeover
        assert engine and all(x.decision == "denied" and "cooldown" in x.reason for x in engine)
    else:
        assert pod_deletes(kube_peer) == 2  # what the merged summary prevents
    b.stop()


def test_started_runtimes_hand_over_when_the_leader_stops(
    tmp_path: Path, kube_peer: KubePeer, loki_peer: LokiPeer
) -> None:
    """The real scheduler: a lease job every renew_every; the follower takes over within one renewal."""
    kube_peer.add_namespace(NS)
    a = build(write_config(tmp_path, kube_peer, loki_peer, "a", renew="1s", lease="3s"), loki_peer, time.time)
    b = build(write_config(tmp_path, kube_peer, loki_peer, "b", renew="1s", lease="3s"), loki_peer, time.time)
    try:
        a.start()
        assert a.health.leader  # the first round runs in start(), before the first poll
        b.start()
        assert not b.health.leader and b.read_only
        a.stop()
        deadline = time.monotonic() + 3.0
        while not b.health.leader and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.health.leader
        assert lease_of(kube_peer)["spec"]["holderIdentity"] == "b"
    finally:
        a.stop()
        b.stop()
    assert lease_of(kube_peer)["spec"]["holderIdentity"] == ""  # b released it too


def test_leader_election_off_is_always_leader(tmp_path: Path, loki_peer: LokiPeer) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"loki:\n  url: {loki_peer.url}\nkubernetes:\n  in_cluster: false\n  kubeconfig: {tmp_path / 'none'}\n"
        f"rules_file: {Path(__file__).resolve().parents[2] / 'config' / 'rules.yaml'}\n"
    )
    rt = build(cfg, loki_peer, time.time)
    assert rt.elector is None and rt.health.leader and rt.leader_check()
    assert rt.leadership() == {"enabled": False, "leader": True, "role": "leader"}
    with pytest.raises(AttributeError):  # "am I leader" has one writer: the runtime's Leadership
        rt.health.leader = False  # type: ignore[misc]
    assert rt.health.leader and not rt.read_only
    rt.stop()


def test_leader_election_enabled_without_a_cluster_leads_alone(tmp_path: Path, loki_peer: LokiPeer) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"loki:\n  url: {loki_peer.url}\nkubernetes:\n  in_cluster: false\n  kubeconfig: {tmp_path / 'none'}\n"
        f"rules_file: {Path(__file__).resolve().parents[2] / 'config' / 'rules.yaml'}\n"
        "leader_election:\n  enabled: true\n"
    )
    rt = build(cfg, loki_peer, time.time)
    assert rt.elector is None and rt.health.leader  # no cluster: nothing to act on, nothing to share
    rt.stop()


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        pytest.param("lease_duration: 10s\n  renew_every: 5s", "more than twice renew_every", id="timing"),
        pytest.param("renew_every: 500ms", "at least 1s", id="renew-too-fast"),
        pytest.param("lease_name: Kube_Sentinel", "lowercase DNS name", id="bad-name"),
    ],
)
def test_bad_leader_election_settings_are_refused(tmp_path: Path, section: str, problem: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"leader_election:\n  {section}\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env={})
    assert any(p.startswith("leader_election") and problem in p for p in err.value.problems), err.value.problems


def test_shipped_config_documents_leader_election() -> None:
    root = Path(__file__).resolve().parents[2]
    le = load_config(root / "config" / "config.yaml", env={}).config.leader_election
    assert (le.enabled, le.lease_name, le.lease_duration, le.renew_every) == (False, "kube-sentinel", 15.0, 5.0)


def test_the_lease_knows_of_an_action_before_the_cluster_sees_it(
    tmp_path: Path, kube_peer: KubePeer, loki_peer: LokiPeer
) -> None:
    """A leader that dies right after an action (before the poll's end) cannot have it repeated."""
    clock = FakeClock(time.time())
    failing_web_pod(kube_peer, loki_peer, clock)
    a = build(write_config(tmp_path, kube_peer, loki_peer, "a"), loki_peer, clock)
    assert a.lease_tick()
    seen_at_delete: list[dict[str, Any] | None] = []
    kube_peer.before(
        "POST",
        "/eviction",
        lambda p: seen_at_delete.append(
            parse_summary((p.get("leases", NS, LEASE) or {})["metadata"]["annotations"].get(SAFETY_ANNOTATION))
        ),
    )
    assert a.poll_once().remediations == 1 and pod_deletes(kube_peer) == 1
    (summary,) = seen_at_delete
    assert summary is not None and any("demo/web" in key for key in summary["cooldowns"])


def test_a_new_leader_resumes_after_the_old_leaders_cursor(
    tmp_path: Path, kube_peer: KubePeer, loki_peer: LokiPeer
) -> None:
    """B never polled as a follower: it must not read (and act on) what A already handled."""
    clock = FakeClock(time.time())
    failing_web_pod(kube_peer, loki_peer, clock)
    a = build(write_config(tmp_path, kube_peer, loki_peer, "a"), loki_peer, clock)
    b_cfg = write_config(tmp_path, kube_peer, loki_peer, "b")
    b_cfg.write_text(b_cfg.read_text().replace("lookback: 10m", "lookback: 30m"))  # would reach A's lines
    b = build(b_cfg, loki_peer, clock)
    assert a.lease_tick() and not b.lease_tick()
    assert a.poll_once().remediations == 1 and pod_deletes(kube_peer) == 1
    clock.advance(11 * 60)  # past the rule's 10m cooldown: only the cursor stops a repeat now
    assert a.lease_tick()
    a.stop()
    assert b.store.get_cursor() is None
    assert b.lease_tick()
    assert b.store.get_cursor() == a.store.get_cursor()
    r = b.poll_once()
    assert r.ok and r.lines == 0
    assert pod_deletes(kube_peer) == 1
    b.stop()


def test_no_action_when_the_lease_cannot_carry_its_cooldown(
    tmp_path: Path, kube_peer: KubePeer, loki_peer: LokiPeer
) -> None:
    clock = FakeClock(time.time())
    failing_web_pod(kube_peer, loki_peer, clock)
    a = build(write_config(tmp_path, kube_peer, loki_peer, "a"), loki_peer, clock)
    assert a.lease_tick()
    kube_peer.fail(500, method="PUT", path="/leases/", times=5)
    r = a.poll_once()
    assert r.ok and pod_deletes(kube_peer) == 0
    (record,) = [x for x in a.store.list_remediations(RecordQuery()).items if x.action == "restart-pod"]
    assert record.result.value == "skipped" and "lease could not carry" in record.reason
    a.stop()


def test_a_follower_refuses_settings_changes(tmp_path: Path, kube_peer: KubePeer, loki_peer: LokiPeer) -> None:
    from sentinel.errors import SafetyRefused

    clock = FakeClock(time.time())
    kube_peer.add_namespace(NS)
    a = build(write_config(tmp_path, kube_peer, loki_peer, "a"), loki_peer, clock)
    b = build(write_config(tmp_path, kube_peer, loki_peer, "b"), loki_peer, clock)
    assert a.lease_tick() and not b.lease_tick()
    with pytest.raises(SafetyRefused, match=r"follower: read-only; change settings on the leader \(a\)"):
        b.update_settings({"dry_run": True}, by="ann")
    assert b.settings.dry_run is False and b.settings_history() == []
    assert a.update_settings({"dry_run": True}, by="ann") == {"dry_run": [False, True]}
    a.stop()
    b.stop()
