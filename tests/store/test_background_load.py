"""A large TinyDB store loads its groups and audit in the background: writes wait, nothing is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sentinel.api.app import create_app
from sentinel.core.model import RemediationRecord
from sentinel.store.base import RecordQuery
from sentinel.store.tinydb import TinyDBStore
from tests.api.conftest import build_runtime, serve
from tests.store.test_stores import NOW, delta

N = 3000


def build(path: Path) -> dict[str, int]:
    s = TinyDBStore(path, shards=16)
    s.record([delta(f"g{i}", count=1 + i % 5) for i in range(N)], now=NOW)
    for i in range(40):
        s.add_remediation(
            RemediationRecord(
                id=f"r{i}",
                time=NOW + i,
                group_id=f"g{i}",
                rule="r",
                action="none",
                namespace="shop",
                kind="Pod",
                name="p",
            )
        )
    s.flush()
    for k in range(3):  # later commits: delta files over the shards, one removal
        s.record([delta(f"g{i}", count=2) for i in range(k, 60, 3)], now=NOW + k)
        s.flush()
    s.apply_retention(now=NOW + 10, max_age=1e9, max_groups=N - 1, max_records=1000)
    s.flush()
    counts = {g.id: g.count for g in s.all_groups()}
    s.close()
    return counts


def test_the_background_load_begins_once_the_process_serves(tmp_path: Path) -> None:
    """Parsing 100k groups in a thread would slow the server's own start (one GIL): it waits for it."""
    path = tmp_path / "db.json"
    counts = build(path)
    bg = TinyDBStore(path, shards=16, background_above=0)
    time.sleep(0.5)
    assert bg.health().loading.startswith("loading") and bg.stats(now=NOW).total_groups == 0
    bg.serving()
    bg.flush()  # waits for the load
    assert bg.health().loading == "" and {g.id: g.count for g in bg.all_groups()} == counts
    bg.close()


def test_a_store_closed_before_the_process_serves_stops_at_once(tmp_path: Path) -> None:
    build(tmp_path / "db.json")
    bg = TinyDBStore(tmp_path / "db.json", shards=16, background_above=0)
    t0 = time.perf_counter()
    bg.close()
    assert time.perf_counter() - t0 < 2.0  # not the 5 s a loader waits at most for the start


def test_background_load_ends_with_exactly_what_a_foreground_load_reads(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    counts = build(path)
    assert len(counts) == N - 1
    bg = TinyDBStore(path, shards=16, background_above=0)
    bg.serving()
    bg.record([delta("g1", count=10)], now=NOW + 20)  # waits for the load: counted on top, not lost
    bg.set_cursor(77)
    bg.flush()
    assert bg.health().loading == ""
    assert {g.id: g.count for g in bg.all_groups()} == {**counts, "g1": counts["g1"] + 10}
    assert bg.list_remediations(RecordQuery()).total == 40
    bg.close()
    fg = TinyDBStore(path, shards=16)
    assert {g.id: g.count for g in fg.all_groups()} == {**counts, "g1": counts["g1"] + 10}
    assert fg.get_cursor() == 77 and fg.health().notices == []
    fg.close()


def test_small_state_is_there_before_the_groups(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    s = TinyDBStore(path, shards=16)
    s.record([delta(f"g{i}") for i in range(500)], now=NOW)
    s.put_state("safety", {"actions": [NOW]})
    s.set_cursor(5)
    s.close()
    bg = TinyDBStore(path, shards=16, background_above=0)
    assert bg.get_state("safety") == {"actions": [NOW]} and bg.get_cursor() == 5  # at once, without waiting
    bg.serving()
    assert bg.get_group("g499") is not None  # a group not read yet is waited for, not reported missing
    bg.close()


def test_closing_while_loading_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    counts = build(path)
    for _ in range(3):
        TinyDBStore(path, shards=16, background_above=0).close()  # SIGTERM during the load: it stops reading
    again = TinyDBStore(path, shards=16)
    assert {g.id: g.count for g in again.all_groups()} == counts
    assert again.health().notices == []
    again.close()


class GatedStore(TinyDBStore):
    """The real store, its loader held at a gate so the test sees the middle of a load."""

    gate = threading.Event()

    def _take_in(self, *args: Any, **kw: Any) -> None:
        if threading.current_thread().name == "store-load":
            self.gate.wait(30)
        super()._take_in(*args, **kw)


def test_ready_while_loading_says_so_and_writes_wait(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    build(path)
    GatedStore.gate.clear()
    store = GatedStore(path, shards=16, background_above=0)
    rt = build_runtime(tmp_path / "rt", store=store)
    done = threading.Event()

    def write() -> None:
        store.record([delta("g5", count=1)], now=NOW + 30)
        done.set()

    try:
        for served in serve(create_app(rt), rt):
            body = served.client.get("/ready").json()
            assert body["ready"] is True and body["checks"]["store_load"].startswith("loading")
            writer = threading.Thread(target=write)
            writer.start()
            assert not done.wait(0.3)  # the write waits for the groups it adds to
            store.serving()  # as Runtime.start says once the process serves
            GatedStore.gate.set()
            assert done.wait(30)
            writer.join()
            assert served.client.get("/ready").json()["checks"]["store_load"] == "ok"
    finally:
        GatedStore.gate.set()
        rt.stop()
