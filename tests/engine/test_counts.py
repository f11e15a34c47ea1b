"""Counts stay exact while people change statuses and remediations are counted during polls."""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from sentinel.api.app import create_app
from sentinel.bootstrap import build_runtime
from sentinel.core.impact import transition
from sentinel.core.model import ErrorGroup, GroupDelta, LogEntry, Priority, Status
from sentinel.engine.runtime import MS, Runtime, install, uninstall
from sentinel.sources.loki import LokiClient
from sentinel.store.base import Store
from sentinel.store.memory import MemoryStore
from sentinel.store.tinydb import TinyDBStore
from sentinel.ui.health import count_notes
from tests.api.conftest import Served, serve
from tests.peers.loki import LokiPeer

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000
NOW = 1_800_000_000.0


class BurstSource:
    """A source that returns ``lines`` new error lines of one pod on every fetch (real entries, no I/O)."""

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.fetched = 0
        self._labels = MappingProxyType({"namespace": "shop", "pod": "api-7d4b9c8f6d-xk2l9", "container": "api"})

    def ready(self) -> tuple[bool, str]:
        return True, "ready"

    def fetch(self, start_ns: int, end_ns: int) -> Iterator[list[LogEntry]]:
        ts = max(start_ns, end_ns - 1)
        page = [LogEntry(ts, self._labels, f"ERROR request {i} failed: connection refused") for i in range(self.lines)]
        self.fetched += len(page)
        yield page


def write_config(tmp_path: Path) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text((ROOT / "config" / "rules.yaml").read_text())
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"""
loki:
  url: http://127.0.0.1:9
  lookback: 10m
  ingest_delay: 0s
kubernetes:
  in_cluster: false
  kubeconfig: {tmp_path / "no-kubeconfig"}
remediation:
  dry_run: true
rules_file: rules.yaml
store:
  type: memory
"""
    )
    return cfg


def test_status_changes_racing_polls_lose_no_occurrence(tmp_path: Path) -> None:
    """Polls and acknowledge/reopen from other threads at once: every line read is counted, exactly."""
    source = BurstSource(lines=500)
    clock_lock = threading.Lock()
    ticks = [time.time()]

    def clock() -> float:
        with clock_lock:
            ticks[0] += 0.001
            return ticks[0]

    rt = build_runtime(write_config(tmp_path), source=source, clock=clock)
    assert rt.poll_once().ok
    (group,) = rt.store.all_groups()
    done = threading.Event()
    errors: list[BaseException] = []

    def flip() -> None:
        try:
            while not done.is_set():
                for action in ("acknowledge", "reopen"):
                    rt.set_status(group.id, action, by="ann")
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    flippers = [threading.Thread(target=flip) for _ in range(3)]
    for t in flippers:
        t.start()
    try:
        for _ in range(60):
            assert rt.poll_once().ok
    finally:
        done.set()
        for t in flippers:
            t.join()
    assert not errors
    (after,) = rt.store.all_groups()
    assert after.count == source.fetched == 61 * 500
    assert rt.store.stats(now=clock()).total_occurrences == source.fetched
    rt.stop()


@pytest.fixture(params=["memory", "tinydb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return TinyDBStore(tmp_path / "db.json")


def delta(count: int, ts: float) -> GroupDelta:
    return GroupDelta(
        key="g",
        namespace="shop",
        workload="api",
        container="c",
        template="boom <*>",
        rule="r",
        priority=Priority.P3,
        count=count,
        first_seen=ts,
        last_seen=ts,
        pods={"api-0": None},
        samples=["boom 1"],
        minute_counts={int(ts // 60): count},
        template_key="tg",
    )


def test_update_group_is_atomic_with_record(store: Store) -> None:
    """Records and read-modify-writes of the same group from threads: the exact sum, every status kept."""
    store.record([delta(1, NOW)], now=NOW)
    rounds, per = 400, 7
    done = threading.Event()
    flips = [0]

    def flip() -> None:
        while not done.is_set():
            for action in ("acknowledge", "reopen"):

                def change(g: ErrorGroup, action: str = action) -> None:
                    transition(g, action, by="ann", reason="", now=NOW)
                    g.remediations += 1

                assert store.update_group("g", change) is not None
                flips[0] += 1

    threads = [threading.Thread(target=flip) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(rounds):
            store.record([delta(per, NOW + i)], now=NOW + i)
    finally:
        done.set()
        for t in threads:
            t.join()
    g = store.get_group("g")
    assert g is not None
    assert g.count == 1 + rounds * per
    assert g.remediations == flips[0]
    assert store.stats(now=NOW + rounds).total_occurrences == g.count


def test_update_group_that_raises_changes_nothing(store: Store) -> None:
    store.record([delta(3, NOW)], now=NOW)

    def bad(g: ErrorGroup) -> None:
        g.status = Status.ACKNOWLEDGED
        raise ValueError("snooze 'more' must be at least 1")

    with pytest.raises(ValueError, match="at least 1"):
        store.update_group("g", bad)
    g = store.get_group("g")
    assert g is not None and g.status is Status.OPEN and g.count == 3
    assert store.update_group("missing", bad) is None


# --- against the Loki peer, through the runtime, the API and the console -------------------------


def loki_config(tmp_path: Path, peer: LokiPeer, *, ingest_delay: str = "0s") -> Path:
    from tests.engine.test_runtime import write_config as runtime_config

    return runtime_config(tmp_path, peer, ingest_delay=ingest_delay)


def loki_runtime(
    tmp_path: Path, peer: LokiPeer, *, page_limit: int = 1000, clock: Any = time.time, **kw: str
) -> Runtime:
    source = LokiClient(
        httpx.Client(base_url=peer.url, timeout=10.0),
        query='{namespace=~".+"} |~ "(?i)(error|fatal)"',
        page_limit=page_limit,
        max_retries=1,
        sleep=lambda _s: None,
    )
    return build_runtime(loki_config(tmp_path, peer, **kw), source=source, clock=clock)


def served(rt: Runtime) -> Iterator[Served]:
    return serve(create_app(rt), rt)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_burst_beyond_loki_s_limit_never_blocks_the_rest_of_the_window(tmp_path: Path, loki_peer: LokiPeer) -> None:
    """5,200 lines at one nanosecond: the other workloads are counted, the 200 Loki cannot return are shown."""
    ts = (time.time_ns() - 120 * NS) // 1000 * 1000  # a shipper stamping at microsecond resolution
    loki_peer.add_lines(
        {"namespace": "shop", "pod": "api-7d4b9c8f6d-xk2l9", "container": "api"},
        [(ts, f"ERROR order {i} failed: connection refused") for i in range(5200)],
    )
    loki_peer.add_lines(
        {"namespace": "shop", "pod": "web-7d4b9c8f6d-xk2l8", "container": "web"},
        [(ts - NS, "ERROR checkout failed: timeout"), (ts + NS, "ERROR checkout failed: timeout again")],
    )
    loki_peer.add_lines({"namespace": "pay", "pod": "db-0", "container": "db"}, [(ts, "FATAL disk full")])
    rt = loki_runtime(tmp_path, loki_peer)

    result = rt.poll_once()

    assert result.ok, result.error
    by_workload = collections.Counter()
    for g in rt.store.all_groups():
        by_workload[(g.namespace, g.workload)] += g.count
    assert by_workload == {("shop", "api"): 5000, ("shop", "web"): 2, ("pay", "db"): 1}
    stream = '{container="api", namespace="shop", pod="api-7d4b9c8f6d-xk2l9", service_name="api"}'
    assert rt.health.counts.unread == {stream: 200}
    for s in served(rt):
        stats = s.client.get("/api/stats").json()["poll"]
        assert stats["unread_lines"] == 200 and stats["unread_streams"] == {stream: 200}
        assert metric(s.client.get("/metrics").text, "kube_sentinel_unread_lines_total") == 200
    assert any("200 unread occurrences in 1 stream" in n for n in count_notes(rt.health.counts))
    # a second poll reads nothing new and counts nothing twice; the counts survive a restart
    assert rt.poll_once().ok
    assert sum(by_workload.values()) == sum(g.count for g in rt.store.all_groups())
    rt.stop()
    again = loki_runtime(tmp_path, loki_peer)
    assert again.health.counts.unread == {stream: 200}
    again.stop()


def test_the_console_says_when_lines_were_not_counted(tmp_path: Path, loki_peer: LokiPeer) -> None:
    from streamlit.testing.v1 import AppTest

    rt = loki_runtime(tmp_path, loki_peer)
    rt.health.counts.add_unread({'{pod="a"}': 7})
    rt.health.counts.late_lines = 3
    install(rt)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        warnings = [w.value for w in at.sidebar.warning]
        assert any("Not every line was counted" in w and "7 unread occurrences" in w for w in warnings), warnings
        page = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=60)
        page.run()
        shown = " ".join(w.value for w in page.warning)
        assert "7 unread occurrences" in shown and "3 late lines" in shown
    finally:
        uninstall()
        rt.stop()


def test_late_lines_are_detected_by_counting_the_previous_window_again(tmp_path: Path, loki_peer: LokiPeer) -> None:
    now = [time.time()]
    rt = loki_runtime(tmp_path, loki_peer, clock=lambda: now[0])
    pod = {"namespace": "shop", "pod": "api-0", "container": "api"}
    loki_peer.add_lines(pod, [(int((now[0] - 60) * NS), "ERROR on time")])
    assert rt.poll_once().lines == 1
    window_end = rt.store.get_cursor()
    assert window_end is not None
    # stamped inside the window already read, reaching Loki only now: after ingest_delay
    loki_peer.add_lines(pod, [(window_end - 5 * NS, "ERROR late a"), (window_end - 1, "ERROR late b")])
    now[0] += 30
    assert rt.poll_once().lines == 0  # not re-read: the window is behind the cursor
    assert rt.health.counts.late_lines == 2
    now[0] += 30
    assert rt.poll_once().ok  # each window is checked once: not counted again
    assert rt.health.counts.late_lines == 2
    for s in served(rt):
        assert s.client.get("/api/stats").json()["poll"]["late_lines"] == 2
        assert metric(s.client.get("/metrics").text, "kube_sentinel_late_lines_total") == 2
    rt.stop()


def test_no_late_lines_when_none_arrived(tmp_path: Path, loki_peer: LokiPeer) -> None:
    now = [time.time()]
    rt = loki_runtime(tmp_path, loki_peer, clock=lambda: now[0])
    pod = {"namespace": "shop", "pod": "api-0", "container": "api"}
    for k in range(4):
        loki_peer.add_lines(pod, [(int((now[0] - 1) * NS) - i, f"ERROR {k} {i}") for i in range(3)])
        assert rt.poll_once().ok
        now[0] += 20
    assert sum(g.count for g in rt.store.all_groups()) == 12
    assert rt.health.counts.late_lines == 0
    assert len(loki_peer.requests_to("/loki/api/v1/query")) == 3  # one count per poll after the first
    rt.stop()


def test_a_query_change_between_polls_is_not_taken_for_late_lines(tmp_path: Path, loki_peer: LokiPeer) -> None:
    now = [time.time()]
    rt = loki_runtime(tmp_path, loki_peer, clock=lambda: now[0])
    pod = {"namespace": "shop", "pod": "api-0", "container": "api"}
    loki_peer.add_lines(pod, [(int((now[0] - 60) * NS), "ERROR one"), (int((now[0] - 50) * NS), "WARN two")])
    assert rt.poll_once().lines == 1
    rt.update_settings({"query": '{namespace=~".+"} |~ "(?i)(error|warn)"'}, by="ann")
    now[0] += 30
    assert rt.poll_once().ok
    assert rt.health.counts.late_lines == 0
    rt.stop()


def streams_body(*streams: tuple[object, list[list[str]]]) -> bytes:
    result = [{"stream": labels, "values": values} for labels, values in streams]
    return json.dumps({"status": "success", "data": {"resultType": "streams", "result": result}}).encode()


def test_label_values_that_are_not_strings_are_coerced_or_refused(tmp_path: Path, loki_peer: LokiPeer) -> None:
    ts = str(time.time_ns() - 60 * NS)
    loki_peer.malformed_next(
        streams_body(
            ({"namespace": 123, "pod": "api-0", "canary": True}, [[ts, "ERROR numeric namespace"]]),
            ({"namespace": {"nested": "x"}, "pod": "api-1"}, [[ts, "ERROR a"], [ts, "ERROR b"]]),
            ({"namespace": "shop", "pod": None}, [[ts, "ERROR null pod"]]),
            ({"namespace": "shop", "pod": "api-2"}, [[ts, "ERROR fine"]]),
        )
    )
    rt = loki_runtime(tmp_path, loki_peer)

    result = rt.poll_once()

    assert result.ok, result.error
    assert sorted(g.namespace for g in rt.store.all_groups()) == ["123", "shop"]
    c = rt.health.counts
    assert (c.refused_lines, c.coerced_labels) == (3, 2)
    for s in served(rt):
        errors = s.client.get("/api/errors")
        assert errors.status_code == 200, errors.text
        assert sorted(item["namespace"] for item in errors.json()["items"]) == ["123", "shop"]
        stats = s.client.get("/api/stats")
        assert stats.status_code == 200 and stats.json()["poll"]["refused_lines"] == 3
        text = s.client.get("/metrics").text
        assert metric(text, "kube_sentinel_refused_lines_total") == 3
        assert metric(text, "kube_sentinel_coerced_label_values_total") == 2
    rt.stop()


def test_a_cursor_in_the_future_is_reported_and_the_lookback_is_read(
    tmp_path: Path, loki_peer: LokiPeer, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    loki_peer.add_lines({"namespace": "shop", "pod": "api-0"}, [(int((now - 120) * NS), "ERROR two minutes ago")])
    rt = loki_runtime(tmp_path, loki_peer, clock=lambda: now)
    rt.store.set_cursor(int((now + 3600) * NS))

    with caplog.at_level(logging.WARNING, logger="sentinel.engine"):
        result = rt.poll_once()

    assert result.ok and result.lines == 1
    assert result.window[0] == pytest.approx(now - 600, abs=1)
    cursor = rt.store.get_cursor()
    assert cursor is not None and cursor % MS == 0 and cursor / NS == pytest.approx(now, abs=0.002)
    assert rt.health.counts.cursor_resets == 1
    assert any("in the future" in r.getMessage() for r in caplog.records)
    for s in served(rt):
        poll = s.client.get("/api/stats").json()["poll"]
        assert poll["cursor_resets"] == 1 and "3600s in the future" in poll["last_cursor_reset"]
    rt.stop()
