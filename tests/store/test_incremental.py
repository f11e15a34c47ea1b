"""The memory store's kept-current structures against a from-scratch computation, after every operation.

``stats`` is served from totals adjusted on every write, sort orders are patched by bisection, and
search haystacks are recomputed only for changed groups. A seeded random sequence of every kind of
write (and, under hypothesis, many more seeds) checks after each step that stats equal the full scan
(``_compute_stats``) and that every sort order and filter equals ``sorted`` + ``group_matches``.
"""

from __future__ import annotations

import dataclasses
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.core.impact import LifecycleSettings, refresh
from sentinel.core.model import ErrorGroup, GroupDelta, Priority, RemediationRecord, Result, Status
from sentinel.store.base import SORTS, GroupQuery
from sentinel.store.memory import SORT_KEYS, MemoryStore, group_matches

NOW = 1_800_000_000.0
NAMESPACES = ("shop", "data", "infra")
WORDS = ("timeout", "Deadline exceeded", "refused", "OOM killed", "panic")


def _delta(rnd: random.Random, key: str, now: float) -> GroupDelta:
    # Few distinct times and no impact (no lifecycle) on many writes: sort keys tie a lot.
    last = now - rnd.choice((0, 0, 30, 600, 3600, 7200, 90_000))
    minutes = {int(last // 60) - k: rnd.randint(1, 5) for k in rnd.sample(range(1500), rnd.randint(0, 4))}
    return GroupDelta(
        key=key,
        namespace=rnd.choice(NAMESPACES),
        workload=f"w{rnd.randint(0, 3)}",
        container="c",
        template=f"{rnd.choice(WORDS)} <*> in {key}",
        rule=rnd.choice(("r1", "r2", "r3")),
        priority=rnd.choice(tuple(Priority)),
        count=sum(minutes.values()) or 1,
        first_seen=last - rnd.choice((0, 60, 5000)),
        last_seen=last,
        pods={f"pod-{rnd.randint(0, 4)}": None},
        samples=[f"{rnd.choice(WORDS)} at line {rnd.randint(0, 99)}"] if rnd.random() < 0.8 else [],
        minute_counts=minutes,
        template_key="t" + key,
    )


def _odd(rnd: random.Random, g: ErrorGroup) -> None:
    """An arbitrary edit, including ones the engine never makes (occurrences after last_seen)."""
    choice = rnd.randrange(8)
    if choice == 0:
        g.priority = rnd.choice(tuple(Priority))
    elif choice == 1:
        g.status = rnd.choice(tuple(Status))
    elif choice == 2:
        g.last_seen -= rnd.choice((60, 4000, 100_000))  # minutes now run past last_seen
    elif choice == 3:
        g.minute_counts[int(g.last_seen // 60) + rnd.randint(1, 30)] = rnd.randint(1, 9)
    elif choice == 4:
        g.count += rnd.randint(1, 10)
        g.namespace = rnd.choice(NAMESPACES)
    elif choice == 5:
        g.samples = [*g.samples, f"{rnd.choice(WORDS)} again"]
    elif choice == 6:
        g.impact = rnd.choice((0.0, 1.5, 3.25))
    else:
        g.minute_counts.clear()


def _record(rnd: random.Random, i: int) -> RemediationRecord:
    return RemediationRecord(
        id=f"rec{i}",
        time=NOW - rnd.choice((0, 10, 500)),
        group_id="g",
        rule="r1",
        action="restart",
        namespace="shop",
        kind="Pod",
        name="p",
        result=rnd.choice(tuple(Result)),
    )


def _check(store: MemoryStore, now: float) -> None:
    for minutes in (1, 60, 1440):
        for at in (now, now + 86_400):
            assert store.stats(now=at, rate_minutes=minutes) == store._compute_stats(now=at, rate_minutes=minutes)
    groups = store.all_groups()  # insertion order: what a stable sort keeps on ties
    for sort in SORTS:
        expect = [g.id for g in sorted(groups, key=SORT_KEYS[sort])]
        assert [g.id for g in store.filtered_groups(GroupQuery(sort=sort))] == expect, sort  # type: ignore[arg-type]
        page = store.list_groups(GroupQuery(sort=sort, page=2, page_size=7))  # type: ignore[arg-type]
        assert [g.id for g in page.items] == expect[7:14] and page.total == len(expect)
    ordered = sorted(groups, key=SORT_KEYS["priority"])
    for q in (
        GroupQuery(search="deadline"),
        GroupQuery(search="TIMEOUT <*>"),
        GroupQuery(search="oom", namespace="shop"),
        GroupQuery(namespace="data", priorities=(Priority.P1, Priority.P3)),
        GroupQuery(statuses=(Status.OPEN, Status.REGRESSED), rule="r2", workload="w1"),
        GroupQuery(pod="pod-2", since=now - 700, until=now - 60),
    ):
        got = [g.id for g in store.filtered_groups(q)]
        assert got == [g.id for g in ordered if group_matches(g, q)], q
        assert store.list_groups(q).total == len(got)


def _run(seed: int, steps: int) -> None:
    rnd = random.Random(seed)
    store = MemoryStore()
    if rnd.random() < 0.7:
        store._resort_factor = 0  # always patch sort orders (a small store would mostly re-sort)
    store._patch_in_place_max = rnd.choice((0, 3, 10**9))  # splice, either, or in place
    life = LifecycleSettings(resolve_after=3000)
    now = NOW
    keys = [f"g{i:02d}" for i in range(40)]
    records = 0
    for _ in range(steps):
        now += rnd.choice((0, 0, 30, 600))
        op = rnd.randrange(100)
        if op < 40:
            deltas = [_delta(rnd, rnd.choice(keys), now) for _ in range(rnd.choice((1, 1, 2, 5, 20)))]
            store.record(deltas, now=now, lifecycle=life if rnd.random() < 0.5 else None)
        elif op < 52:
            ids = [g.id for g in store.all_groups()]
            if ids:
                g = store.get_group(rnd.choice(ids))
                assert g is not None
                _odd(rnd, g)
                store.put_group(g)
            else:
                store.record([_delta(rnd, keys[0], now)], now=now)
        elif op < 60:
            at, picked = now, rnd.random()

            def lifecycle(g: ErrorGroup, at: float = at) -> bool:
                return refresh(g, now=at, settings=life)

            def edit(g: ErrorGroup, picked: float = picked) -> bool:
                if rnd.random() < picked:
                    _odd(rnd, g)
                    return True
                return False

            store.update_groups(lifecycle if rnd.random() < 0.5 else edit)
        elif op < 66:
            groups = store.all_groups()
            old = {g.template_key for g in rnd.sample(groups, min(len(groups), rnd.randint(1, 4)))}
            new = rnd.choice(("tz", "ty", "t" + rnd.choice(keys)))
            store.apply_aliases(
                dict.fromkeys(old, new),
                templates={new: "merged <*>"},
                key_fn=lambda ns, wl, c, tk, level: f"{ns}/{wl}/{tk}" if tk in ("tz", "ty") else tk[1:],
            )
        elif op < 72:
            store.apply_retention(
                now=now,
                max_age=rnd.choice((3600.0, 50_000.0, 1e9)),
                max_groups=rnd.choice((5, 20, 1000)),
                max_records=rnd.choice((2, 1000)),
            )
        elif op < 85:
            store.add_remediation(_record(rnd, records))
            records += 1
        elif op < 95:
            if records:
                r = _record(rnd, rnd.randrange(records))
                store.update_remediation(dataclasses.replace(r, time=r.time - rnd.choice((0, 1000))))
        else:
            # what a persistent store does at start
            store._load(store.all_groups(), list(store._records), {}, None, dict(store._group_aliases))
        _check(store, now)


def test_incremental_stats_and_orders_match_a_full_scan_seeded() -> None:
    for seed in range(4):
        _run(seed, 100)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_incremental_stats_and_orders_match_a_full_scan(seed: int) -> None:
    _run(seed, 60)


def test_stats_rate_over_a_day_and_latest_times() -> None:
    store = MemoryStore()
    base = int(NOW // 60)
    deltas = [
        GroupDelta(
            key=f"k{i}", namespace="ns", workload="w", container="c", template="t", rule="r",
            priority=Priority(f"P{1 + i % 4}"), count=i + 1, first_seen=(base - i * 97) * 60.0,
            last_seen=(base - i * 97) * 60.0 + 5, minute_counts={base - i * 97: i + 1},
        )
        for i in range(16)
    ]  # fmt: skip
    store.record(deltas, now=NOW)
    s = store.stats(now=NOW, rate_minutes=1440)
    assert s == store._compute_stats(now=NOW, rate_minutes=1440)
    assert len(s.rate) == 1440 and sum(r["P1"] + r["P2"] + r["P3"] + r["P4"] for r in s.rate) == sum(
        i + 1 for i in range(16) if i * 97 < 1440
    )
    assert s.last_error_at == base * 60.0 + 5
    # the newest group moves back in time: the latest error time falls back to the next one, and
    # its minute (now after its last_seen) leaves the rate
    g = store.get_group("k0")
    assert g is not None
    g.last_seen = (base - 200) * 60.0
    store.put_group(g)
    s = store.stats(now=NOW)
    assert s.last_error_at == (base - 97) * 60.0 + 5 and s.rate[-1]["P1"] == 0
    assert s == store._compute_stats(now=NOW, rate_minutes=60)
    store.apply_retention(now=NOW, max_age=1e9, max_groups=3, max_records=10)
    assert store.stats(now=NOW, rate_minutes=1440) == store._compute_stats(now=NOW, rate_minutes=1440)
    store.apply_retention(now=NOW, max_age=0.0, max_groups=100, max_records=10)
    empty = store.stats(now=NOW)
    assert (
        empty.total_groups == 0
        and empty.last_error_at is None
        and empty == store._compute_stats(now=NOW, rate_minutes=60)
    )
