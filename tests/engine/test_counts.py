"""Counts stay exact while people change statuses and remediations are counted during polls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from sentinel.core.impact import transition
from sentinel.core.model import ErrorGroup, GroupDelta, LogEntry, Priority, Status
from sentinel.engine.runtime import Runtime
from sentinel.store.base import Store
from sentinel.store.memory import MemoryStore
from sentinel.store.tinydb import TinyDBStore

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

    rt = Runtime.build(write_config(tmp_path), source=source, clock=clock)
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
