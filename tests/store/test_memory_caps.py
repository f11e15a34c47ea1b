"""Issue 14's memory bound: what a store keeps per group and per audit record is compact and shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.core.model import MinuteCounts, RemediationRecord
from sentinel.store.base import RecordQuery
from sentinel.store.tinydb import TinyDBStore
from sentinel.store.validate import BadRecord, group_from_doc
from tests.store.test_stores import NOW, delta


def _record(i: int) -> RemediationRecord:
    return RemediationRecord(
        id=f"r{i}",
        time=NOW + i,
        group_id="a",
        rule="".join(["crash", "-loop"]),  # a new string object each time, as a decoder makes them
        action="restart-pod",
        namespace="".join(["sh", "op"]),
        kind="Pod",
        name="".join(["api-", "0"]),
        workload="".join(["a", "pi"]),
        reason="".join(["cool", "down"]),
    )


def test_audit_records_share_their_repeated_strings_once_stored_and_after_a_restart(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "db.json")
    for i in range(3):
        store.add_remediation(_record(i))
    store.close()
    for s in (store, TinyDBStore(tmp_path / "db.json")):
        rows = s._records
        assert len(rows) == 3
        for name in ("rule", "namespace", "name", "workload", "reason"):
            assert len({id(getattr(r, name)) for r in rows}) == 1, name
        assert [r.rule for r in s.list_remediations(RecordQuery()).items] == ["crash-loop"] * 3


def test_stored_groups_keep_minute_buckets_compact_after_a_restart(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "db.json")
    store.record([delta("a", count=3)], now=NOW)
    store.close()
    again = TinyDBStore(tmp_path / "db.json")
    g = again._groups["a"]
    assert type(g.minute_counts) is MinuteCounts and g.minute_counts == {int(NOW // 60): 3}


def test_a_stored_minute_out_of_range_names_the_field(tmp_path: Path) -> None:
    g = TinyDBStore(tmp_path / "db.json")
    g.record([delta("a")], now=NOW)
    stored = g.all_groups()[0].to_dict()
    stored["minute_counts"] = {str(2**70): 1}
    with pytest.raises(BadRecord, match="minute_counts"):
        group_from_doc(stored, where="f.json")
