"""Issue 14's memory bound: what a store keeps per group and per audit record is compact and shared."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from sentinel.core.model import ErrorGroup, MinuteCounts, Priority, RemediationRecord
from sentinel.store.base import RecordQuery
from sentinel.store.index import _ORDER_KEYS, SORT_KEYS
from sentinel.store.tinydb import TinyDBStore
from sentinel.store.validate import BadRecord, group_from_doc
from tests.store.test_stores import NOW, delta

set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "kube-sentinel-hypothesis"))  # as test_fingerprint.py


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


floats = st.floats(allow_nan=False, allow_infinity=True) | st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1.5, -1.5])


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(list(Priority)), floats, floats, floats, st.integers(-(2**63) + 1, 2**63 - 1)),
        min_size=2,
        max_size=30,
    ),
    sort=st.sampled_from(sorted(SORT_KEYS)),
)
def test_packed_sort_keys_order_groups_exactly_as_the_sort_keys_do(
    rows: list[tuple[Priority, float, float, float, int]], sort: str
) -> None:
    groups = []
    for i, (p, impact, last, first, count) in enumerate(rows):
        g = ErrorGroup(
            id=f"g{i}", namespace="n", workload="w", container="c", template="t", rule="r",
            priority=p, base_priority=p, count=count, first_seen=first, last_seen=last, impact=impact,
        )  # fmt: skip
        groups.append(g)
    stable = sorted(groups, key=SORT_KEYS[sort])  # ties keep insertion order
    packed = sorted(range(len(groups)), key=lambda n: _ORDER_KEYS[sort](groups[n], n))
    assert [g.id for g in stable] == [groups[n].id for n in packed]


def test_a_sort_key_costs_one_small_int_per_group() -> None:
    g = ErrorGroup(
        id="a", namespace="n", workload="w", container="c", template="t", rule="r", priority=Priority.P2,
        base_priority=Priority.P2, count=5, first_seen=1.8e9, last_seen=1.8e9 + 1.25, impact=12.345,
    )  # fmt: skip
    assert all(sys.getsizeof(kf(g, 99_999)) <= 56 for kf in _ORDER_KEYS.values())
