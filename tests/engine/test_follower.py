"""A follower's changes take effect: two runtimes on one real PostgreSQL, the Lease over the Kubernetes peer.

The leader ``a`` holds the Lease; the follower ``b`` shares its database. A settings change, a
breaker reset or a manual action asked on ``b`` is queued in the store and run by ``a`` through
the same path as a local request (its limits, its audit, its answer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel.api.app import create_app
from sentinel.bootstrap import build_runtime
from sentinel.core.policy import Breaker
from sentinel.engine.relay import EXPIRES_AFTER, STALE_AFTER, Queued
from sentinel.engine.runtime import Runtime
from sentinel.errors import ConfigError, SafetyRefused
from sentinel.sources.loki import LokiClient
from sentinel.store.base import CommandQueue, RecordQuery, command_queue
from tests.api.conftest import AUTH, TOKEN, serve
from tests.engine.test_leader import NS, FakeClock, kubeconfig_for, pod_deletes
from tests.peers.kube import KubePeer
from tests.peers.loki import LokiPeer

WORKLOAD = "demo/web"
# The rule only records (action none): every restart here is one a person asked for.
RULES = """
rules:
  - name: upstream-refused
    match:
      pattern: "connection refused"
    priority: P1
    remediation:
      action: none
      cooldown: 10m
"""


def shared_config(tmp_path: Path, kube: KubePeer, loki: LokiPeer, identity: str, url: str) -> Path:
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
  type: postgresql
  url: "{url}"
leader_election:
  enabled: true
  namespace: {NS}
  identity: {identity}
  lease_duration: 15s
  renew_every: 5s
"""
    )
    return cfg


def build(cfg: Path, loki: LokiPeer, clock: Any) -> Runtime:
    source = LokiClient(httpx.Client(base_url=loki.url, timeout=5.0), query='{namespace=~".+"}', max_retries=1)
    return build_runtime(cfg, source=source, clock=clock, env={"KUBE_SENTINEL_API_TOKEN": TOKEN})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def pair(
    tmp_path: Path, kube_peer: KubePeer, loki_peer: LokiPeer, pg_url: str, clock: FakeClock
) -> Iterator[tuple[Runtime, Runtime]]:
    """Leader ``a`` and follower ``b``, one database, neither started (the tests run the leader's job)."""
    kube_peer.add_namespace(NS)
    kube_peer.deployment("web")
    a = build(shared_config(tmp_path, kube_peer, loki_peer, "a", pg_url), loki_peer, clock)
    b = build(shared_config(tmp_path, kube_peer, loki_peer, "b", pg_url), loki_peer, clock)
    assert a.lease_tick() and not b.lease_tick()
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()


@contextmanager
def leader_running(rt: Runtime) -> Iterator[None]:
    """The leader's command job, run as its scheduler runs it (here every 20 ms instead of every second)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            rt.run_commands()
            stop.wait(0.02)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=10)


def queue_of(rt: Runtime) -> CommandQueue:
    q = command_queue(rt.store)
    assert q is not None
    return q


def web_groups(a: Runtime, kube: KubePeer, loki: LokiPeer, clock: FakeClock, *namespaces: str) -> dict[str, str]:
    """Error groups of deployment web's pod, one per namespace its lines are labelled with (one poll by the
    leader; the follower sees them in the shared store): their ids by namespace."""
    pod = kube.pods(selector="app=web")[0]["metadata"]["name"]
    for ns in namespaces:
        loki.add_lines(
            {"namespace": ns, "pod": pod, "container": "nginx"},
            [(int((clock.now - 60) * 1e9) + i, f"ERROR upstream connection refused (attempt {i})") for i in range(3)],
        )
    assert a.poll_once().ok
    ids = {g.namespace: g.id for g in a.store.all_groups()}
    assert sorted(ids) == sorted(namespaces)
    return ids


def web_group(a: Runtime, kube: KubePeer, loki: LokiPeer, clock: FakeClock) -> str:
    return web_groups(a, kube, loki, clock, "demo")["demo"]


def time_passes(a: Runtime, clock: FakeClock, seconds: float) -> None:
    """``seconds`` go by while the leader renews its Lease every 5 s, as its scheduler does."""
    while seconds > 0:
        step = min(5.0, seconds)
        clock.advance(step)
        seconds -= step
        assert a.lease_tick()


def open_breaker(a: Runtime, workload: str = WORKLOAD) -> None:
    state = a.remediator.state()
    state.breakers[workload] = Breaker(open=True, reason="3 ineffective actions in a row", opened_at=a.clock() - 60)
    a.store.put_state("safety", state.to_dict())
    a.store.flush()


# -- settings ------------------------------------------------------------------------------------


def test_a_followers_settings_change_takes_effect_on_the_leader(pair: tuple[Runtime, Runtime]) -> None:
    a, b = pair
    assert command_queue(b.store) is not None and b.read_only
    with leader_running(a):
        changed = b.update_settings({"dry_run": True, "max_actions_per_hour": 7}, by="ann")
    assert changed == {"dry_run": [False, True], "max_actions_per_hour": [a.config.remediation.max_actions_per_hour, 7]}
    assert a.settings.dry_run and a.remediator.limits.dry_run  # in force on the leader, which acts
    assert a.remediator.limits.max_actions_per_hour == 7
    (entry,) = a.settings_history()
    assert entry["by"] == "ann via b" and set(entry["changes"]) == {"dry_run", "max_actions_per_hour"}
    assert b.settings.dry_run and b.settings.max_actions_per_hour == 7  # the follower's console is current
    assert b.settings_history()[0]["by"] == "ann via b"
    (event,) = b.events.recent(frozenset({"settings"}))  # the follower's /ws clients hear of it
    assert event.data["by"] == "ann via b" and event.data["settings"]["dry_run"] is True


def test_a_bad_settings_field_from_a_follower_comes_back_named(pair: tuple[Runtime, Runtime]) -> None:
    """The LogQL query is checked against Loki by the leader: its error names the field, nothing is saved."""
    a, b = pair
    with leader_running(a), pytest.raises(ConfigError) as err:
        b.update_settings({"query": '{namespace="demo"} |~ "(unclosed"'}, by="ann")
    (problem,) = err.value.problems
    assert problem.startswith("query: ") and "parse error" in problem
    assert str(err.value).startswith("settings: invalid change, nothing was saved")
    assert a.settings.query == a.config.loki.query and a.settings_history() == []


def test_a_command_older_than_a_minute_is_refused_as_expired(pair: tuple[Runtime, Runtime], clock: FakeClock) -> None:
    a, b = pair
    assert b.commands.relay is not None
    b.commands.relay.wait = 0.0  # answer at once: queued
    with pytest.raises(Queued) as queued:
        b.update_settings({"dry_run": True}, by="ann")
    cmd_id = queued.value.command.id
    assert queue_of(b).command(cmd_id).state == "pending"  # type: ignore[union-attr]
    time_passes(a, clock, EXPIRES_AFTER + 1)  # the leader was away for longer than a person should wait
    assert a.run_commands() == 1
    cmd = queue_of(b).command(cmd_id)
    assert cmd is not None and cmd.state == "refused" and cmd.done_by == "a"
    assert cmd.result is not None and cmd.result["error"] == "expired" and "61s ago on b" in cmd.result["message"]
    assert not a.settings.dry_run and a.settings_history() == []


# -- breakers ------------------------------------------------------------------------------------


def test_a_followers_breaker_reset_resets_the_leaders_breaker(pair: tuple[Runtime, Runtime]) -> None:
    a, b = pair
    open_breaker(a)
    assert b.remediator.state().breaker_open(WORKLOAD)  # the follower sees the leader's breaker
    with leader_running(a):
        assert b.reset_breaker(WORKLOAD, by="bob") is True
    state = a.remediator.state()
    assert not state.breaker_open(WORKLOAD) and state.breakers[WORKLOAD].reset_by == "bob via b"
    assert not b.remediator.state().breaker_open(WORKLOAD)
    (event,) = b.events.recent(frozenset({"remediation"}))
    assert event.data["event"] == "breaker.reset" and event.data["by"] == "bob via b" and event.data["was_open"]
    with pytest.raises(KeyError):
        b.reset_breaker("demo/none", by="bob")  # no breaker there: as on the leader, nothing is queued


# -- manual actions ------------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [pytest.param(False, id="real"), pytest.param(True, id="dry-run")])
def test_a_followers_manual_action_runs_once_on_the_leader(
    pair: tuple[Runtime, Runtime], kube_peer: KubePeer, loki_peer: LokiPeer, clock: FakeClock, dry_run: bool
) -> None:
    a, b = pair
    if dry_run:
        a.update_settings({"dry_run": True}, by="ops")
    gid = web_group(a, kube_peer, loki_peer, clock)
    assert pod_deletes(kube_peer) == 0  # the rule only records
    with leader_running(a):
        rec = b.request_action(gid, action="restart-pod", by="carl")
    assert rec.decision == "allowed" and rec.result.value == "success" and rec.dry_run is dry_run
    assert rec.requested_by == "carl via b" and rec.reached_cluster
    (event,) = b.events.recent(frozenset({"remediation"}))  # the follower's /ws clients hear of it
    assert event.data["id"] == rec.id and event.data["requested_by"] == "carl via b"
    evictions = [r for r in kube_peer.seen("POST", "/eviction") if r.status == 201]
    assert len(evictions) == 1  # once, by the leader
    assert ("dryRun" in evictions[0].query) is dry_run
    live = {p["metadata"]["name"] for p in kube_peer.pods(selector="app=web", live=True)}
    assert (rec.name in live) is dry_run  # a real eviction took the pod away; a dry run left it
    audit = a.store.list_remediations(RecordQuery(action="restart-pod")).items
    assert [(x.id, x.requested_by) for x in audit] == [(rec.id, "carl via b")]
    assert a.run_commands() == 0 and len(kube_peer.seen("POST", "/eviction")) == 1  # never a second time
    assert [x.id for x in b.store.list_remediations(RecordQuery(action="restart-pod")).items] == [rec.id]


def test_a_followers_action_is_refused_by_the_leaders_limits_with_the_same_code(
    pair: tuple[Runtime, Runtime], kube_peer: KubePeer, loki_peer: LokiPeer, clock: FakeClock
) -> None:
    a, b = pair
    ids = web_groups(a, kube_peer, loki_peer, clock, "kube-system", "demo")
    excluded, gid = ids["kube-system"], ids["demo"]
    with leader_running(a):
        rec = b.request_action(excluded, action="restart-pod", by="carl")
    local = a.request_action(excluded, action="restart-pod", by="carl")
    assert rec.decision == local.decision == "denied"
    assert rec.reason_code == local.reason_code == "excluded-namespace" and rec.reason == local.reason
    assert rec.requested_by == "carl via b"

    # the per-workload cap, lowered on the leader: its first action spends it
    a.update_settings({"per_workload_per_hour": 1}, by="ops")
    assert a.request_action(gid, action="restart-pod", by="ops").decision == "allowed"
    with leader_running(a):
        rec = b.request_action(gid, action="restart-pod", by="carl")
    assert rec.decision == "denied" and rec.reason_code == "workload-cap", rec.reason

    # the hourly budget, spent by that same action
    a.update_settings({"per_workload_per_hour": 3, "max_actions_per_hour": 1}, by="ops")
    with leader_running(a):
        rec = b.request_action(gid, action="restart-pod", by="carl")
    assert rec.decision == "denied" and rec.reason_code == "hourly-budget", rec.reason
    assert pod_deletes(kube_peer) == 1


def queue_a_restart(
    pair: tuple[Runtime, Runtime], kube_peer: KubePeer, loki_peer: LokiPeer, clock: FakeClock
) -> Queued:
    """A restart asked on the follower b, queued for the leader a (b does not wait for it)."""
    a, b = pair
    gid = web_group(a, kube_peer, loki_peer, clock)
    assert b.commands.relay is not None
    b.commands.relay.wait = 0.0
    with pytest.raises(Queued) as queued:
        b.request_action(gid, action="restart-pod", by="carl")
    return queued.value


def test_an_expired_action_is_not_run(
    pair: tuple[Runtime, Runtime], kube_peer: KubePeer, loki_peer: LokiPeer, clock: FakeClock
) -> None:
    a, _b = pair
    queued = queue_a_restart(pair, kube_peer, loki_peer, clock)
    time_passes(a, clock, EXPIRES_AFTER + 5)
    assert a.run_commands() == 1
    assert pod_deletes(kube_peer) == 0
    cmd = queue_of(a).command(queued.command.id)
    assert cmd is not None and cmd.state == "refused" and cmd.result is not None and cmd.result["error"] == "expired"
    assert a.store.list_remediations(RecordQuery(action="restart-pod")).total == 0


def test_a_command_taken_by_a_leader_that_died_is_never_run_again(
    pair: tuple[Runtime, Runtime], kube_peer: KubePeer, loki_peer: LokiPeer, clock: FakeClock
) -> None:
    """Taken is committed before acting: a leader that dies after taking leaves it "running", never re-run."""
    a, b = pair
    queued = queue_a_restart(pair, kube_peer, loki_peer, clock)
    cmd_id = queued.command.id
    (taken,) = queue_of(a).take_commands(by="a-before-the-crash", now=clock())  # ... and then it died
    assert taken.id == cmd_id and taken.state == "running"
    assert a.run_commands() == 0  # the next round (or the next leader) does not take it again
    time_passes(a, clock, STALE_AFTER + 1)
    assert a.run_commands() == 0
    cmd = queue_of(b).command(cmd_id)
    assert cmd is not None and cmd.state == "failed" and cmd.result is not None
    assert cmd.result["error"] == "abandoned"
    with pytest.raises(SafetyRefused, match="could not run it"):
        from sentinel.engine.relay import raise_refusal

        raise_refusal(cmd)
    assert pod_deletes(kube_peer) == 0


# -- through the follower's API ----------------------------------------------------------------


def test_the_followers_api_answers_as_the_leader_would(
    pair: tuple[Runtime, Runtime], kube_peer: KubePeer, loki_peer: LokiPeer, clock: FakeClock
) -> None:
    a, b = pair
    gid = web_group(a, kube_peer, loki_peer, clock)
    open_breaker(a)
    with contextmanager(serve)(create_app(b), b) as served:
        c = served.client
        with leader_running(a):
            r = c.post("/api/settings", json={"dryRun": True}, headers={**AUTH, "X-Sentinel-User": "ann"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["changed"] == {"dry_run": [False, True]} and body["by"] == "ann"
            assert body["settings"]["dry_run"] is True and c.get("/api/settings").json()["settings"]["dry_run"]

            r = c.post("/api/settings", json={"query": '{namespace="demo"} |~ "("'}, headers=AUTH)
            assert r.status_code == 422 and r.json()["problems"][0].startswith("query: "), r.text

            r = c.post(
                "/api/safety/breakers/reset", json={"workload": WORKLOAD}, headers={**AUTH, "X-Sentinel-User": "bob"}
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["was_open"] is True and body["breaker"]["state"] == "closed"
            assert body["breaker"]["reset_by"] == "bob via b"

            r = c.post(f"/api/errors/{gid}/remediate", json={"action": "restart-pod"}, headers=AUTH)
            assert r.status_code == 200, r.text
            assert r.json()["decision"] == "allowed" and r.json()["dry_run"] is True
            assert r.json()["requested_by"] == "api via b"

            r = c.post(f"/api/errors/{gid}/remediate", json={"action": "reboot-node"}, headers=AUTH)
            assert r.status_code == 422 and r.json()["detail"] == "invalid action", r.text
            assert "reboot-node" in r.json()["problems"][0]
            assert c.post("/api/errors/feedface/remediate", json={}, headers=AUTH).status_code == 404

        # the leader away: 202 and the command to follow
        assert b.commands.relay is not None
        b.commands.relay.wait = 0.2
        r = c.post("/api/settings", json={"max_actions_per_hour": 9}, headers=AUTH)
        assert r.status_code == 202, r.text
        queued = r.json()
        assert (
            queued["state"] == "pending" and r.headers["location"] == queued["url"] == f"/api/commands/{queued['id']}"
        )
        seen = c.get(queued["url"]).json()
        assert (seen["state"], seen["status"], seen["kind"], seen["via"]) == ("pending", None, "settings", "b")
        assert a.run_commands() == 1
        seen = c.get(queued["url"]).json()
        assert (seen["state"], seen["status"], seen["done_by"]) == ("done", 200, "a")
        assert seen["result"] == {"changed": {"max_actions_per_hour": [a.config.remediation.max_actions_per_hour, 9]}}
        assert a.settings.max_actions_per_hour == 9

        assert c.get("/api/commands/0123abcd").status_code == 404
        assert c.get("/api/commands/not-hex!").status_code == 422


def test_the_leaders_scheduler_runs_the_queue_every_second(pair: tuple[Runtime, Runtime]) -> None:
    a, b = pair
    assert a.commands_every() == 1.0
    a.start()
    assert a.scheduler is not None and a.scheduler.job_interval("commands") == 1.0
    assert b.update_settings({"dry_run": True}, by="ann") == {"dry_run": [False, True]}  # within the 5 s wait
    assert a.settings.dry_run


def test_with_a_store_that_is_not_shared_there_is_no_queue(tmp_path: Path, loki_peer: LokiPeer) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"loki:\n  url: {loki_peer.url}\nkubernetes:\n  in_cluster: false\n  kubeconfig: {tmp_path / 'none'}\n"
        f"rules_file: {Path(__file__).resolve().parents[2] / 'config' / 'rules.yaml'}\n"
        f"store:\n  type: tinydb\n  path: {tmp_path / 'store.json'}\n"
    )
    rt = build(cfg, loki_peer, time.time)
    try:
        assert command_queue(rt.store) is None and rt.commands.relay is None and rt.commands_every() is None
        assert rt.run_commands() == 0
        with contextmanager(serve)(create_app(rt), rt) as served:
            r = served.client.get("/api/commands/0123abcd")
            assert r.status_code == 404 and "store.type: postgresql" in r.json()["detail"]
    finally:
        rt.stop()


# -- through the follower's console --------------------------------------------------------------


def test_the_followers_console_sends_its_changes_to_the_leader(pair: tuple[Runtime, Runtime]) -> None:
    from sentinel.engine.runtime import install, uninstall
    from tests.ui.conftest import no_exception, open_page, texts

    a, b = pair
    open_breaker(a)
    install(b)
    try:
        at = open_page("settings")
        no_exception(at)
        assert "Follower replica" in texts(at) and "sent to the leader" in texts(at)
        at.text_input(key="b_token").set_value(TOKEN)
        with leader_running(a):
            at.button(key=f"reset_{WORKLOAD}").click().run()
        no_exception(at)
        assert any(f"Breaker for {WORKLOAD} reset" in s.value for s in at.success), texts(at)
        assert a.remediator.state().breakers[WORKLOAD].reset_by == "console via b"

        assert b.commands.relay is not None
        b.commands.relay.wait = 0.0  # the leader away: the console says where the change went
        at.text_input(key="s_token").set_value(TOKEN)
        at.number_input(key="s_max_actions_per_hour").set_value(5)
        at.button[[x.label for x in at.button].index("Save and apply")].click().run()
        no_exception(at)
        assert any("Queued for the leader" in s.value for s in at.success), texts(at)
        assert a.run_commands() == 1 and a.settings.max_actions_per_hour == 5
    finally:
        uninstall()
