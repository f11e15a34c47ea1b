"""The engine cycle against a real Loki-compatible peer on 127.0.0.1 and a TinyDB store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sentinel.bootstrap import build_runtime
from sentinel.engine.runtime import Runtime
from sentinel.errors import ConfigError
from sentinel.sources.loki import LokiClient
from sentinel.store.tinydb import TinyDBStore
from tests.peers.loki import LokiPeer

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000


class Sleeps:
    """Records backoff sleeps instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def write_config(tmp_path: Path, peer: LokiPeer, extra: str = "", *, ingest_delay: str = "0s") -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text((ROOT / "config" / "rules.yaml").read_text())
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"""
loki:
  url: {peer.url}
  lookback: 10m
  ingest_delay: {ingest_delay}
  max_lookback: 1h
kubernetes:
  in_cluster: false
  kubeconfig: {tmp_path / "no-kubeconfig"}
remediation:
  dry_run: true
rules_file: rules.yaml
store:
  type: tinydb
  path: {tmp_path / "store.json"}
{extra}
"""
    )
    return cfg


def build(
    cfg: Path,
    peer: LokiPeer,
    *,
    page_limit: int = 1000,
    sleeps: Sleeps | None = None,
    clock: Callable[[], float] = time.time,
) -> Runtime:
    source = LokiClient(
        httpx.Client(base_url=peer.url, timeout=5.0),
        query='{namespace=~".+"} |~ "(?i)(error|fatal|panic|exception|fail)"',
        page_limit=page_limit,
        max_retries=2,
        sleep=sleeps or Sleeps(),
    )
    return build_runtime(cfg, source=source, clock=clock)


def total_count(rt: Runtime) -> int:
    return sum(g.count for g in rt.store.all_groups())


def add_shared_timestamp_lines(peer: LokiPeer, *, start_ns: int, n: int, per_ts: int, tag: str) -> int:
    """``n`` error lines over 3 pods, ``per_ts`` of them on each timestamp (distinct text: Loki dedups exact copies)."""
    added = 0
    for p in range(3):
        entries = [
            (start_ns + (i // per_ts) * 1000, f"ERROR {tag} request {i} pod{p} failed: connection refused")
            for i in range(p, n, 3)
        ]
        added += peer.add_lines({"namespace": "shop", "pod": f"api-7d4b9c8f6d-xk2l{p}", "container": "api"}, entries)
    return added


def test_poll_pages_through_shared_timestamps_without_loss_or_double_count(tmp_path: Path, loki_peer: LokiPeer) -> None:
    start = time.time_ns() - 5 * 60 * NS
    added = add_shared_timestamp_lines(loki_peer, start_ns=start, n=12_000, per_ts=7, tag="a")
    rt = build(write_config(tmp_path, loki_peer), loki_peer, page_limit=500)
    result = rt.poll_once()
    assert result.ok, result.error
    assert result.lines == added == 12_000
    assert total_count(rt) == 12_000
    assert len(loki_peer.requests_to("/loki/api/v1/query_range")) >= 24
    rt.stop()


def test_resume_after_restart_neither_loses_nor_recounts(tmp_path: Path, loki_peer: LokiPeer) -> None:
    cfg = write_config(tmp_path, loki_peer)
    t0 = time.time_ns() - 5 * 60 * NS
    first = add_shared_timestamp_lines(loki_peer, start_ns=t0, n=3000, per_ts=5, tag="first")
    rt = build(cfg, loki_peer, page_limit=400)
    assert rt.poll_once().ok
    cursor = rt.store.get_cursor()
    rt.stop()  # flushes the TinyDB file

    assert cursor is not None
    second = add_shared_timestamp_lines(loki_peer, start_ns=cursor + 1, n=900, per_ts=4, tag="second")
    rt2 = build(cfg, loki_peer, page_limit=400, clock=lambda: time.time() + 1.0)  # "now" is after those lines
    assert rt2.store.get_cursor() == cursor
    r = rt2.poll_once()
    assert r.ok and r.lines == second
    assert total_count(rt2) == first + second
    # and once more: nothing new, nothing counted again
    assert rt2.poll_once().lines == 0
    assert total_count(rt2) == first + second
    rt2.stop()


def test_failed_poll_changes_nothing_and_is_retried_whole(tmp_path: Path, loki_peer: LokiPeer) -> None:
    add_shared_timestamp_lines(loki_peer, start_ns=time.time_ns() - 60 * NS, n=2000, per_ts=3, tag="x")
    sleeps = Sleeps()
    rt = build(write_config(tmp_path, loki_peer), loki_peer, page_limit=300, sleeps=sleeps)
    # Loki fails for longer than the client retries: the whole poll fails
    loki_peer.fail_next(503, times=3)  # 1 try + 2 retries
    result = rt.poll_once()
    assert not result.ok and "503" in result.error
    assert sleeps.delays, "the client backed off before giving up"
    assert total_count(rt) == 0 and rt.store.get_cursor() is None
    assert rt.health.consecutive_errors == 1
    assert rt.ready() == (True, {})  # readiness does not depend on Loki (issue 15)
    assert rt.poll_state()[0] == "failing" and "503" in rt.poll_state()[1]
    result = rt.poll_once()
    assert result.ok and total_count(rt) == 2000
    assert rt.ready() == (True, {}) and rt.poll_state()[0] == "ok"
    rt.stop()


def test_catch_up_is_capped_by_max_lookback(tmp_path: Path, loki_peer: LokiPeer) -> None:
    rt = build(write_config(tmp_path, loki_peer), loki_peer)
    now = time.time()
    rt.store.set_cursor(int((now - 5 * 3600) * NS))
    start, end = rt.window(now)
    assert (end - start) / NS == pytest.approx(3600, abs=1)
    rt.store.set_cursor(int((now - 120) * NS))
    start, _ = rt.window(now)
    assert (now - start / NS) == pytest.approx(120, abs=1)
    rt.stop()


def test_bad_logql_surfaces_lokis_message(tmp_path: Path, loki_peer: LokiPeer) -> None:
    rt = build(write_config(tmp_path, loki_peer), loki_peer)
    rt.source = LokiClient(httpx.Client(base_url=loki_peer.url), query='{namespace=~".+"} |~ (error', sleep=Sleeps())
    result = rt.poll_once()
    assert not result.ok
    assert "parse error" in result.error
    rt.stop()


def test_reload_with_bad_rules_keeps_previous_rules(tmp_path: Path, loki_peer: LokiPeer) -> None:
    cfg = write_config(tmp_path, loki_peer)
    rt = build(cfg, loki_peer)
    before = len(rt.rules)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: broken\n    match: {pattern: '(oops'}\n    priority: P1\n")
    ok, message = rt.reload_rules(force=True)
    assert not ok and "missing )" in message and "rules.yaml" in message
    assert len(rt.rules) == before
    ready, problems = rt.ready()
    assert "rules" in problems and "previous rules kept" in problems["rules"]
    rules.write_text("rules:\n  - name: only\n    match: {pattern: 'boom'}\n    priority: P1\n")
    ok, _ = rt.reload_rules(force=True)
    assert ok and [r.name for r in rt.rules.rules] == ["only"]
    assert "rules" not in rt.ready()[1]
    rt.stop()


def test_settings_change_all_or_nothing_persisted_and_recorded(tmp_path: Path, loki_peer: LokiPeer) -> None:
    cfg = write_config(tmp_path, loki_peer)
    rt = build(cfg, loki_peer)
    before = rt.settings
    with pytest.raises(ConfigError) as info:
        rt.update_settings(
            {"dry_run": False, "max_actions_per_hour": -3, "poll_interval": "often", "colour": "red"}, by="alice"
        )
    problems = "\n".join(info.value.problems)
    assert "max_actions_per_hour" in problems and "poll_interval" in problems and "colour: unknown field" in problems
    assert rt.settings == before
    changes = rt.update_settings(
        {"dry_run": False, "max_actions_per_hour": 7, "excluded_namespaces": ["kube-system", "prod"]}, by="alice"
    )
    assert changes["max_actions_per_hour"] == [50, 7]
    assert rt.remediator.limits.max_actions_per_hour == 7 and "prod" in rt.remediator.limits.excluded_namespaces
    assert rt.settings_history()[-1]["by"] == "alice"
    rt.stop()
    rt2 = build(cfg, loki_peer)
    assert rt2.settings.max_actions_per_hour == 7 and rt2.settings.dry_run is False
    rt2.stop()


def test_corrupt_store_at_start_is_moved_aside_and_reported(tmp_path: Path, loki_peer: LokiPeer) -> None:
    (tmp_path / "store.json").write_text("{not json")
    rt = build(write_config(tmp_path, loki_peer), loki_peer)
    assert any("moved aside" in w for w in rt.warnings)
    assert isinstance(rt.store, TinyDBStore)
    rt.stop()


def test_scheduler_polls_and_applies_a_new_interval_live(tmp_path: Path, loki_peer: LokiPeer) -> None:
    add_shared_timestamp_lines(loki_peer, start_ns=time.time_ns() - 30 * NS, n=30, per_ts=1, tag="s")
    rt = build(write_config(tmp_path, loki_peer), loki_peer)
    rt.start()
    try:
        deadline = time.time() + 10
        while rt.health.last_success_at is None and time.time() < deadline:
            time.sleep(0.05)
        assert rt.health.polls >= 1 and total_count(rt) == 30
        rt.update_settings({"poll_interval": "5s"}, by="bob")
        assert rt.scheduler is not None and rt.scheduler.job_interval("poll") == 5
    finally:
        rt.stop()
    assert rt.scheduler is None


def test_console_override_survives_restart_until_the_file_changes(tmp_path: Path, loki_peer: LokiPeer) -> None:
    cfg = write_config(tmp_path, loki_peer)
    rt = build(cfg, loki_peer)
    rt.update_settings({"dry_run": False, "max_actions_per_hour": 9}, by="ann")
    rt.stop()
    rt2 = build(cfg, loki_peer)
    assert rt2.settings.dry_run is False and rt2.settings.max_actions_per_hour == 9
    rt2.stop()
    # the operator edits config.yaml: the file's newer value wins over the older console override
    cfg.write_text(
        cfg.read_text().replace(
            "remediation:\n  dry_run: true", "remediation:\n  dry_run: true\n  max_actions_per_hour: 20"
        )
    )
    rt3 = build(cfg, loki_peer)
    assert rt3.settings.max_actions_per_hour == 20
    assert rt3.settings.dry_run is False  # this field's file value did not change: the override stays
    rt3.stop()


def test_query_setting_applies_live_and_after_restart(tmp_path: Path, loki_peer: LokiPeer) -> None:
    cfg = write_config(tmp_path, loki_peer)
    rt = build_runtime(cfg)  # the runtime's own Loki client
    new_query = '{namespace="shop"} |= "boom"'
    rt.update_settings({"query": new_query}, by="ann")
    assert rt.poll_once().ok
    assert loki_peer.requests_to("/loki/api/v1/query_range")[-1].param("query") == new_query
    rt.stop()
    rt2 = build_runtime(cfg)
    assert rt2.poll_once().ok
    assert loki_peer.requests_to("/loki/api/v1/query_range")[-1].param("query") == new_query
    rt2.stop()


def test_stopping_ends_a_poll_waiting_between_retries(tmp_path: Path, loki_peer: LokiPeer) -> None:
    import threading

    cfg = write_config(tmp_path, loki_peer)
    rt = build_runtime(cfg)  # its Loki client sleeps through the runtime's stop flag
    loki_peer.fail_next(503, times=20, retry_after="20")
    results = []
    worker = threading.Thread(target=lambda: results.append(rt.poll_once()))
    worker.start()
    while not loki_peer.requests_to("/loki/api/v1/query_range"):
        worker.join(0.01)
    rt.stopping.set()  # what stop() does first on SIGTERM
    worker.join(10)
    assert not worker.is_alive()
    assert not results[0].ok and "stopping" in results[0].error
    assert len(loki_peer.requests_to("/loki/api/v1/query_range")) == 1  # no further attempt after the stop
    rt.stop()


def test_in_cluster_outside_a_pod_means_no_cluster_not_the_local_kubeconfig(
    tmp_path: Path, loki_peer: LokiPeer
) -> None:
    import os

    from sentinel.bootstrap import build_cluster
    from sentinel.config import load_config

    assert "KUBERNETES_SERVICE_HOST" not in os.environ
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kubernetes:\n  in_cluster: true\n")
    cluster, why = build_cluster(load_config(cfg, env={}).config)
    assert cluster is None and "does not run in a pod" in why


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [
        pytest.param(1, None, 2.0, id="backoff-1"),
        pytest.param(3, None, 8.0, id="backoff-3"),
        pytest.param(9, None, 30.0, id="capped-at-interval"),
        pytest.param(1, 45.0, 45.0, id="retry-after-wins"),
        pytest.param(5, 1.0, 30.0, id="backoff-when-longer"),
        pytest.param(1, 99_999.0, 3600.0, id="retry-after-capped"),
    ],
)
def test_retry_delay_honours_retry_after(failures: int, retry_after: float | None, expected: float) -> None:
    from sentinel.engine.scheduler import retry_delay

    assert retry_delay(failures, interval=30.0, retry_after=retry_after) == expected


def test_late_lines_are_read_by_the_next_poll(tmp_path: Path, loki_peer: LokiPeer) -> None:
    """A line stamped before a poll's end but stored in Loki after that poll is still counted."""
    cfg = write_config(tmp_path, loki_peer).read_text().replace("  ingest_delay: 0s\n", "  ingest_delay: 10s\n")
    (tmp_path / "config.yaml").write_text(cfg)
    now = [time.time()]
    rt = build(tmp_path / "config.yaml", loki_peer, clock=lambda: now[0])
    loki_peer.add_lines({"namespace": "shop", "pod": "api-0"}, [(int((now[0] - 60) * NS), "ERROR early one")])
    assert rt.poll_once().lines == 1
    # stamped 3 s ago, arriving only now (an agent's batch): still after the cursor (now - 10 s)
    loki_peer.add_lines({"namespace": "shop", "pod": "api-0"}, [(int((now[0] - 3) * NS), "ERROR late one")])
    now[0] += 30
    assert rt.poll_once().lines == 1
    assert total_count(rt) == 2
    rt.stop()


def test_merges_of_a_failed_poll_still_fold_stored_groups(tmp_path: Path, loki_peer: LokiPeer) -> None:
    from tests.peers.loki import Fault

    cfg = write_config(tmp_path, loki_peer)
    labels = {"namespace": "shop", "pod": "api-0", "container": "api"}
    t = time.time_ns() - 120 * NS
    loki_peer.add_lines(labels, [(t, "ERROR cache lookup failed for tenant alpha")])
    now = [time.time()]
    rt = build(cfg, loki_peer, page_limit=2, clock=lambda: now[0])
    assert rt.poll_once().ok and len(rt.store.all_groups()) == 1
    cursor = rt.store.get_cursor()
    assert cursor is not None
    loki_peer.add_lines(
        labels,
        [
            (cursor + 1, "ERROR cache lookup failed for tenant beta"),
            (cursor + 2, "ERROR cache lookup failed for tenant gamma"),
        ],
    )
    now[0] += 5
    loki_peer.inject(Fault(path="/loki/api/v1/query_range"), 1)  # a full page: the templates merge ...
    loki_peer.fail_next(503, times=3)  # ... then the poll fails and its batch is dropped
    assert not rt.poll_once().ok
    assert rt.pipeline.fingerprinter.merges > 0  # the failed poll did merge the templates
    assert rt.poll_once().ok
    groups = rt.store.all_groups()
    assert len(groups) == 1 and groups[0].count == 3 and "<*>" in groups[0].template
    rt.stop()
