"""Stores: the same contract for memory, TinyDB and PostgreSQL; TinyDB survives restarts and corrupt files."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.core.impact import LifecycleSettings
from sentinel.core.model import GroupDelta, Priority, RemediationRecord, Result, Status
from sentinel.store.base import GroupQuery, RecordQuery, Store
from sentinel.store.memory import MemoryStore
from sentinel.store.postgres import PostgresStore
from sentinel.store.tinydb import TinyDBStore

NOW = 1_800_000_000.0


def delta(
    key: str,
    *,
    ns: str = "shop",
    wl: str = "api",
    count: int = 1,
    ts: float = NOW,
    priority: Priority = Priority.P3,
    rule: str = "r",
    template: str = "boom <*>",
    pod: str = "api-0",
) -> GroupDelta:
    return GroupDelta(
        key=key,
        namespace=ns,
        workload=wl,
        container="c",
        template=template,
        rule=rule,
        priority=priority,
        count=count,
        first_seen=ts,
        last_seen=ts,
        pods={pod: None},
        samples=[f"line {key}"],
        minute_counts={int(ts // 60): count},
        template_key="t" + key,
    )


@pytest.fixture(params=["memory", "tinydb", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The one store contract: every test taking ``store`` runs on all three."""
    s: Store
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "tinydb":
        s = TinyDBStore(tmp_path / "db.json")
    else:
        s = PostgresStore(request.getfixturevalue("pg_url"))
    yield s
    s.close()


def test_record_counts_every_occurrence(store: Store) -> None:
    changes = store.record([delta("a", count=3)], now=NOW)
    assert [c.kind for c in changes] == ["new"]
    changes = store.record([delta("a", count=2, ts=NOW + 60, pod="api-1")], now=NOW + 60)
    assert changes[0].kind == "updated" and changes[0].added == 2
    g = store.get_group("a")
    assert g is not None
    assert g.count == 5 and g.first_seen == NOW and g.last_seen == NOW + 60
    assert g.pods == ["api-0", "api-1"] and g.pod_count == 2
    assert sum(g.minute_counts.values()) == 5


def test_filters_sort_and_pages(store: Store) -> None:
    deltas = [
        delta(
            f"g{i}",
            ns="shop" if i % 2 else "data",
            wl=f"w{i % 3}",
            count=i + 1,
            ts=NOW + i,
            priority=Priority(f"P{1 + i % 4}"),
            rule=f"rule{i % 2}",
            template=f"msg {i} happened",
        )
        for i in range(20)
    ]
    store.record(deltas, now=NOW + 30)
    page = store.list_groups(GroupQuery(namespace="shop", page_size=3))
    assert page.total == 10 and len(page.items) == 3 and page.pages == 4
    assert all(g.namespace == "shop" for g in page.items)
    ranks = [g.priority.rank for g in store.list_groups(GroupQuery(page_size=50)).items]
    assert ranks == sorted(ranks)
    counts = [g.count for g in store.list_groups(GroupQuery(sort="count", page_size=50)).items]
    assert counts == sorted(counts, reverse=True)
    assert store.list_groups(GroupQuery(priorities=(Priority.P1, Priority.P2))).total == 10
    assert store.list_groups(GroupQuery(rule="rule1", workload="w1")).total == len(
        [i for i in range(20) if i % 2 == 1 and i % 3 == 1]
    )
    assert store.list_groups(GroupQuery(search="MSG 7 ")).total == 1
    assert store.list_groups(GroupQuery(since=NOW + 15)).total == 5
    assert store.list_groups(GroupQuery(pod="api-0")).total == 20
    beyond = store.list_groups(GroupQuery(page=99, page_size=10))
    assert beyond.items == [] and beyond.total == 20


def test_stats(store: Store) -> None:
    store.record([delta("a", priority=Priority.P1, count=4), delta("b", ns="data", count=2)], now=NOW)
    s = store.stats(now=NOW)
    assert s.total_groups == 2 and s.total_occurrences == 6
    assert s.by_priority == {"P1": 1, "P2": 0, "P3": 1, "P4": 0}
    assert s.by_namespace == {"shop": 1, "data": 1}
    assert sum(row["P1"] for row in s.rate) == 4


def test_remediation_audit_newest_first_and_filters(store: Store) -> None:
    for i in range(5):
        store.add_remediation(
            RemediationRecord(
                id=f"r{i}",
                time=NOW + i,
                group_id="a",
                rule="x",
                action="restart-pod",
                namespace="shop",
                kind="Pod",
                name="p",
                decision="allowed" if i % 2 else "denied",
                result=Result.SUCCESS if i % 2 else Result.SKIPPED,
                dry_run=i == 3,
            )
        )
    page = store.list_remediations(RecordQuery(page_size=2))
    assert [r.id for r in page.items] == ["r4", "r3"] and page.total == 5
    assert store.list_remediations(RecordQuery(decision="denied")).total == 3
    assert store.list_remediations(RecordQuery(dry_run=True)).items[0].id == "r3"
    rec = store.list_remediations(RecordQuery(result="success")).items[0]
    rec.effective = False
    store.update_remediation(rec)
    assert store.list_remediations(RecordQuery(result="success")).items[0].effective is False


def test_state_and_cursor(store: Store) -> None:
    assert store.get_state("x") is None and store.get_cursor() is None
    store.put_state("x", {"a": [1, 2]})
    store.set_cursor(123)
    got = store.get_state("x")
    assert got == {"a": [1, 2]}
    assert got is not None
    got["a"].append(3)  # a copy: nothing leaks back
    assert store.get_state("x") == {"a": [1, 2]} and store.get_cursor() == 123


def test_retention(store: Store) -> None:
    store.record([delta("old", ts=NOW - 10_000), delta("new1", ts=NOW), delta("new2", ts=NOW - 5)], now=NOW)
    removed = store.apply_retention(now=NOW, max_age=3600, max_groups=1, max_records=10)
    assert removed == 2
    assert [g.id for g in store.all_groups()] == ["new1"]


def test_resolved_group_regresses_and_snooze_by_count(store: Store) -> None:
    store.record([delta("a")], now=NOW)
    g = store.get_group("a")
    assert g is not None
    g.status = Status.RESOLVED
    store.put_group(g)
    assert store.record([delta("a")], now=NOW + 1)[0].kind == "regressed"
    g = store.get_group("a")
    assert g is not None and g.status is Status.REGRESSED
    g.status, g.snooze_until_count = Status.SNOOZED, g.count + 3
    store.put_group(g)
    store.record([delta("a", count=2)], now=NOW + 2)
    assert store.get_group("a").status is Status.SNOOZED  # type: ignore[union-attr]
    store.record([delta("a", count=1)], now=NOW + 3)
    assert store.get_group("a").status is Status.OPEN  # type: ignore[union-attr]


def test_burst_escalates_one_level(store: Store) -> None:
    base = NOW - 3600
    for m in range(55):
        store.record([delta("a", ts=base + m * 60, count=1)], now=base + m * 60)
    changes = store.record([delta("a", ts=NOW - 60, count=200)], now=NOW - 59, lifecycle=LifecycleSettings())
    g = store.get_group("a")
    assert g is not None
    assert changes[0].kind == "escalated"
    assert g.escalated and g.priority is Priority.P2 and g.base_priority is Priority.P3
    assert "burst" in g.escalation_reason


def test_aliases_fold_groups(store: Store) -> None:
    store.record([delta("a", count=2), delta("b", count=3)], now=NOW)

    def key_fn(ns: str, wl: str, c: str, tk: str, level: str) -> str:
        return "merged-" + tk

    moved = store.apply_aliases({"ta": "tz", "tb": "tz"}, templates={"tz": "boom <*> <*>"}, key_fn=key_fn)
    assert moved == 2
    g = store.get_group("merged-tz")
    assert g is not None and g.count == 5 and g.template == "boom <*> <*>"
    assert store.get_group("a") is not None and store.resolve_id("a") == "merged-tz"


def test_concurrent_writers_and_readers(store: Store) -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(200):
                store.record([delta(f"k{i % 50}", ts=NOW + i)], now=NOW + i)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    def read() -> None:
        try:
            for _ in range(200):
                store.list_groups(GroupQuery(page_size=10))
                store.stats(now=NOW)
        except BaseException as err:  # pragma: no cover
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)] + [
        threading.Thread(target=read) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(g.count for g in store.all_groups()) == 600


def test_tinydb_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    s1 = TinyDBStore(path)
    s1.record([delta("a", count=7)], now=NOW)
    s1.set_cursor(42)
    s1.put_state("safety", {"actions": [1.0]})
    s1.add_remediation(
        RemediationRecord(
            id="r1", time=NOW, group_id="a", rule="x", action="none", namespace="shop", kind="Pod", name="p"
        )
    )
    s1.close()
    s2 = TinyDBStore(path)
    g = s2.get_group("a")
    assert g is not None and g.count == 7
    assert s2.get_cursor() == 42 and s2.get_state("safety") == {"actions": [1.0]}
    assert s2.list_remediations(RecordQuery()).items[0].id == "r1"
    assert s2.startup_warnings == []
    # Every file is TinyDB's format: the commit file has the meta and small state, shards the groups.
    data = json.loads(path.read_text())
    assert set(data) == {"meta", "state"} and data["meta"]["1"]["cursor"] == 42
    shards = list((tmp_path / "db.json.d" / "groups").iterdir())
    assert len(shards) == 1 and json.loads(shards[0].read_text())["groups"]["1"]["count"] == 7


def test_tinydb_flush_is_atomic_no_temp_files_left(tmp_path: Path) -> None:
    s = TinyDBStore(tmp_path / "db.json")
    for i in range(5):
        s.record([delta(f"g{i}")], now=NOW)
        s.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.json", "db.json.d"]
    left = sorted(p.name for p in (tmp_path / "db.json.d").rglob("*") if p.is_file())
    assert len(left) == 5 and not any(name.endswith(".tmp") for name in left)  # one file per shard in use


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('{"groups": {"1": {"id": "a", "priority"', id="truncated"),
        pytest.param('{"groups": []}', id="wrong-shape"),
        pytest.param('{"groups": {"1": {"id": "a"}}}', id="record-missing-fields"),
        pytest.param("[1, 2, 3]", id="not-an-object"),
    ],
)
def test_tinydb_corrupt_file_is_moved_aside_not_overwritten(tmp_path: Path, content: str) -> None:
    path = tmp_path / "db.json"
    path.write_text(content)
    s = TinyDBStore(path)
    assert s.all_groups() == []
    assert len(s.startup_warnings) == 1 and "moved aside" in s.startup_warnings[0]
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_text() == content


def test_tinydb_vanished_folder_is_reported_and_flush_fails_clearly(tmp_path: Path) -> None:
    import shutil

    from sentinel.errors import StoreError

    folder = tmp_path / "sub"
    s = TinyDBStore(folder / "db.json")
    assert s.writable()[0] is True
    shutil.rmtree(folder)
    folder.write_text("a file where the folder was")
    ok, why = s.writable()
    assert not ok and "sub" in why
    s.record([delta("a")], now=NOW)
    with pytest.raises(StoreError, match="cannot write"):
        s.flush()
    assert s.get_group("a") is not None  # nothing already held is lost


def test_huge_sample_lines_are_cut_so_a_group_stays_small(store: Store) -> None:
    from sentinel.store.memory import SAMPLE_MAX_CHARS

    big = delta("a")
    big.samples = ["x" * 100_000]
    store.record([big], now=NOW)
    again = delta("a")
    again.samples = ["y" * 50_000, "short"]
    store.record([again], now=NOW + 1)
    g = store.get_group("a")
    assert g is not None and g.count == 2
    assert [len(s) for s in g.samples] == [SAMPLE_MAX_CHARS, SAMPLE_MAX_CHARS, 5]
    assert g.samples[0].endswith("[cut: 100000 characters in all]") and g.samples[2] == "short"
