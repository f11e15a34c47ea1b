"""Impact, lifecycle and status transitions."""

from __future__ import annotations

import pytest

from sentinel.core.impact import LifecycleSettings, impact_score, new_group, refresh, transition
from sentinel.core.model import ErrorGroup, GroupDelta, Priority, Status

NOW = 1_800_000_000.0


def group(count: int = 10, *, last_seen: float = NOW, pods: int = 1, per_minute: int = 2) -> ErrorGroup:
    d = GroupDelta(
        key="g",
        namespace="ns",
        workload="w",
        container="c",
        template="t",
        rule="r",
        priority=Priority.P3,
        count=count,
        first_seen=last_seen - 3600,
        last_seen=last_seen,
        pods={f"p{i}": None for i in range(pods)},
        minute_counts={int(last_seen // 60) - m: per_minute for m in range(5)},
    )
    return new_group(d, now=NOW)


def test_impact_grows_with_rate_spread_and_recency() -> None:
    base = impact_score(group(), now=NOW)
    assert impact_score(group(per_minute=20), now=NOW) > base
    assert impact_score(group(pods=5), now=NOW) > base
    assert impact_score(group(last_seen=NOW - 7200), now=NOW) < base


def test_quiet_group_resolves_and_snooze_until_time_wakes() -> None:
    settings = LifecycleSettings(resolve_after=3600)
    g = group(last_seen=NOW - 4000)
    refresh(g, now=NOW, settings=settings)
    assert g.status is Status.RESOLVED and g.status_by == "engine" and "quiet" in g.status_reason
    g2 = group()
    transition(g2, "snooze", by="ann", reason="deploy in progress", now=NOW, until=NOW + 600)
    assert g2.status is Status.SNOOZED
    refresh(g2, now=NOW + 601, settings=settings)
    assert g2.status is Status.OPEN and "snooze ended" in g2.status_reason


@pytest.mark.parametrize(
    ("action", "kwargs", "message"),
    [
        pytest.param("snooze", {}, "needs 'until'", id="snooze-without-limit"),
        pytest.param("snooze", {"until": NOW - 1}, "must be in the future", id="snooze-in-past"),
        pytest.param("snooze", {"more": 0}, "at least 1", id="snooze-zero-more"),
        pytest.param("explode", {}, "unknown status action 'explode'", id="unknown-action"),
    ],
)
def test_bad_transitions_are_refused_and_change_nothing(action: str, kwargs: dict[str, float], message: str) -> None:
    g = group()
    with pytest.raises(ValueError, match=message):
        transition(g, action, by="ann", reason="", now=NOW, **kwargs)  # type: ignore[arg-type]
    assert g.status is Status.OPEN


def test_transitions_record_who_and_why() -> None:
    g = group()
    transition(g, "acknowledge", by="ann", reason="looking", now=NOW)
    assert (g.status, g.status_by, g.status_reason) == (Status.ACKNOWLEDGED, "ann", "looking")
    transition(g, "snooze", by="bob", reason="", now=NOW, more=5)
    assert g.snooze_until_count == g.count + 5
    transition(g, "reopen", by="ann", reason="", now=NOW)
    assert g.status is Status.OPEN and g.snooze_until_count is None
