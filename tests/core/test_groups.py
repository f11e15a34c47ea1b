"""The domain merge every store calls: a delta into its group, and groups following a merged template."""

from __future__ import annotations

import pytest

from sentinel.core.groups import Fold, apply_delta, fold, plan_folds
from sentinel.core.impact import LifecycleSettings
from sentinel.core.model import MAX_SAMPLE_CHARS, GroupDelta, Priority, Status

NOW = 1_800_000_000.0


def delta(key: str = "g", *, count: int = 1, ts: float = NOW, sample: str = "boom 1", tk: str = "t1") -> GroupDelta:
    return GroupDelta(
        key=key,
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
        samples=[sample],
        minute_counts={int(ts // 60): count},
        template_key=tk,
    )


def test_a_new_key_makes_a_new_group() -> None:
    g, kind = apply_delta(None, delta(count=3), now=NOW)
    assert kind == "new" and g.id == "g" and g.count == 3 and g.status is Status.OPEN


@pytest.mark.parametrize(
    ("status", "kind"),
    [pytest.param(Status.OPEN, "updated", id="open"), pytest.param(Status.RESOLVED, "regressed", id="resolved")],
)
def test_a_known_key_adds_up_and_says_what_changed(status: Status, kind: str) -> None:
    g, _ = apply_delta(None, delta(count=2), now=NOW)
    g.status = status
    same, got = apply_delta(g, delta(count=5, ts=NOW + 60), now=NOW + 60)
    assert same is g and got == kind and g.count == 7 and g.last_seen == NOW + 60


def test_a_burst_under_lifecycle_is_escalated() -> None:
    settings = LifecycleSettings(burst_factor=2, burst_min_count=5)
    g, _ = apply_delta(None, delta(count=1, ts=NOW - 1800), now=NOW - 1800, lifecycle=settings)
    g, kind = apply_delta(g, delta(count=200), now=NOW, lifecycle=settings)
    assert kind == "escalated" and g.priority.rank < Priority.P3.rank


def test_huge_samples_are_cut_on_merge() -> None:
    g, _ = apply_delta(None, delta(), now=NOW)
    g, _ = apply_delta(g, delta(sample="x" * (MAX_SAMPLE_CHARS * 3)), now=NOW)
    assert max(len(s) for s in g.samples) <= MAX_SAMPLE_CHARS


def test_folds_rekey_or_absorb() -> None:
    a, _ = apply_delta(None, delta("a", count=2, tk="ta"), now=NOW)
    b, _ = apply_delta(None, delta("b", count=3, tk="tb"), now=NOW)
    c, _ = apply_delta(None, delta("c", count=1, tk="tc"), now=NOW)

    def key(ns: str, wl: str, container: str, tk: str, level: str) -> str:
        return f"k-{tk}"

    plan = plan_folds([a, b, c], {"ta": "tz", "tb": "tz"}, key_fn=key)
    assert plan == [Fold("a", "k-tz", "tz"), Fold("b", "k-tz", "tz")]  # c's template did not change
    first = fold(a, None, plan[0], templates={"tz": "boom <*> <*>"})
    assert first is a and a.id == "k-tz" and a.template == "boom <*> <*>" and a.template_key == "tz"
    merged = fold(b, first, plan[1], templates={"tz": "boom <*> <*>"})
    assert merged is a and a.count == 5


def test_a_fold_onto_its_own_id_is_not_planned() -> None:
    a, _ = apply_delta(None, delta("k-tz", tk="ta"), now=NOW)
    assert plan_folds([a], {"ta": "tz"}, key_fn=lambda ns, wl, c, tk, level: f"k-{tk}") == []
