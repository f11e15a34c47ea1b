"""MinuteCounts: a group's per-minute buckets, compact (issue 14) and a mapping like the dict it replaced."""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from sentinel.core.impact import MINUTES_KEPT, merge, rate_per_minute
from sentinel.core.model import ErrorGroup, GroupDelta, MinuteCounts, Priority

set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "kube-sentinel-hypothesis"))  # as test_fingerprint.py

minutes = st.dictionaries(st.integers(0, 40_000_000), st.integers(-(10**9), 10**9), max_size=80)


@settings(max_examples=200, deadline=None)
@given(start=minutes, ops=st.lists(st.tuples(st.sampled_from("set del add"), minutes), max_size=8))
def test_behaves_like_the_dict_it_replaced(start: dict[int, int], ops: list[tuple[str, dict[int, int]]]) -> None:
    model = dict(start)
    mc = MinuteCounts(start)
    for op, arg in ops:
        for m, n in arg.items():
            if op == "set":
                model[m] = n
                mc[m] = n
            elif op == "del" and m in model:
                del model[m]
                del mc[m]
        if op == "add":
            for m, n in arg.items():
                model[m] = model.get(m, 0) + n
            mc.add(arg)
    assert mc == model and dict(mc.items()) == model and len(mc) == len(model) and list(mc) == sorted(model)
    assert all(mc[m] == n and mc.get(m) == n for m, n in model.items())
    assert mc.get(-1) is None and (-1 in mc) is False and bool(mc) == bool(model)
    lo, hi = sorted((min(model, default=0) + 3, max(model, default=0) - 3))
    assert mc.total(lo, hi) == sum(n for m, n in model.items() if lo <= m < hi)


def test_sixty_minutes_cost_sixteen_bytes_each_not_a_dict() -> None:
    counts = {29_930_000 + i: 30 + i for i in range(60)}
    mc = MinuteCounts(counts)
    assert sys.getsizeof(mc) + sys.getsizeof(mc._b) <= 16 * 60 + 100 < sys.getsizeof(counts)


def test_copies_share_nothing_that_changes() -> None:
    mc = MinuteCounts({1: 2})
    for c in (copy.copy(mc), copy.deepcopy(mc)):
        c[1] = 5
        c.add({3: 1})
        assert mc == {1: 2} and c == {1: 5, 3: 1}


def test_a_group_built_with_a_dict_keeps_it_compact_and_serialises_as_before() -> None:
    g = ErrorGroup(
        id="a", namespace="n", workload="w", container="c", template="t", rule="r",
        priority=Priority.P3, base_priority=Priority.P3, count=3, first_seen=0.0, last_seen=60.0,
        minute_counts={2: 1, 1: 2},
    )  # fmt: skip
    assert type(g.minute_counts) is MinuteCounts
    d = g.to_dict()
    assert d["minute_counts"] == {"1": 2, "2": 1}
    assert ErrorGroup.from_dict(json.loads(json.dumps(d))) == g


def test_merge_keeps_a_day_of_minutes() -> None:
    g = ErrorGroup(
        id="a", namespace="n", workload="w", container="c", template="t", rule="r",
        priority=Priority.P3, base_priority=Priority.P3, count=1, first_seen=0.0, last_seen=0.0,
        minute_counts={0: 1},
    )  # fmt: skip
    d = GroupDelta(key="a", namespace="n", workload="w", container="c", template="t", rule="r",
                   priority=Priority.P3, count=2, first_seen=0.0, last_seen=(MINUTES_KEPT + 5) * 60.0,
                   minute_counts=dict.fromkeys(range(1, MINUTES_KEPT + 6), 1))  # fmt: skip
    merge(g, d, now=d.last_seen)
    assert len(g.minute_counts) == MINUTES_KEPT and min(g.minute_counts) == 6
    assert rate_per_minute(g, now=d.last_seen, minutes=5) == 1.0


def test_a_minute_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"within \+-2\*\*62"):
        MinuteCounts({2**70: 1})
