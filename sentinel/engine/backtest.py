"""The pattern backtest, and the process-wide bound on expensive requests anyone can make.

The backtest runs an RE2 pattern over stored samples; the rule tester parses a line. Both can be
called by anyone who reaches the API or the console, so at most :data:`MAX_CONCURRENT` of them run
at once in the process; one more is refused at once (the API answers 429) rather than queued.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sentinel.core.rules import PatternError, compile_pattern
from sentinel.store.base import MAX_PAGE_SIZE, GroupQuery, Store

MAX_CONCURRENT = 2
MAX_GROUPS = 20_000  # the default, and what the API allows at most
BUSY = f"busy: {MAX_CONCURRENT} expensive requests (backtests, rule tests) are already running; try again shortly"


class Limiter:
    """At most ``limit`` holders at once; a caller past that is told so at once, never queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sem = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[bool]:
        got = self._sem.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._sem.release()


EXPENSIVE = Limiter(MAX_CONCURRENT)  # process-wide on purpose: the CPU it protects is


@dataclass(slots=True)
class Backtest:
    pattern: str
    error: str = ""
    groups_scanned: int = 0
    groups_total: int = 0
    samples_scanned: int = 0
    groups_matched: int = 0
    samples_matched: int = 0
    occurrences: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def partial(self) -> bool:
        return self.groups_scanned < self.groups_total


def backtest(
    store: Store,
    pattern: str,
    *,
    max_groups: int = MAX_GROUPS,
    max_rows: int = 200,
    limiter: Limiter | None = None,
) -> Backtest:
    """Run an RE2 pattern over the stored samples of the most recently seen groups.

    ``groups_matched`` counts groups with at least one matching sample; ``occurrences`` adds up their
    counts (what the pattern would have caught); ``by_rule`` says which rule holds them today.
    At most :data:`MAX_CONCURRENT` run at once in the process (``limiter``, default :data:`EXPENSIVE`):
    past that, ``error`` says so and nothing is scanned.
    """
    result = Backtest(pattern=pattern)
    with (limiter or EXPENSIVE).slot() as got:
        if not got:
            result.error = BUSY
            return result
        return _backtest(result, store, pattern, max_groups=max_groups, max_rows=max_rows)


def _backtest(result: Backtest, store: Store, pattern: str, *, max_groups: int, max_rows: int) -> Backtest:
    t0 = time.perf_counter()
    try:
        regex = compile_pattern(pattern)
    except PatternError as err:
        result.error = err.reason
        return result
    query = GroupQuery(sort="last_seen", page_size=MAX_PAGE_SIZE)
    page_no = 1
    while result.groups_scanned < max_groups:
        page = store.list_groups(replace(query, page=page_no))
        result.groups_total = page.total
        for g in page.items:
            result.groups_scanned += 1
            hit = ""
            for s in g.samples:
                result.samples_scanned += 1
                if regex.search(s) is not None:
                    result.samples_matched += 1
                    hit = hit or s
            if hit:
                result.groups_matched += 1
                result.occurrences += g.count
                result.by_rule[g.rule] += 1
                if len(result.rows) < max_rows:
                    result.rows.append(
                        {
                            "priority": g.priority.value,
                            "rule today": g.rule,
                            "count": g.count,
                            "namespace": g.namespace,
                            "workload": g.workload,
                            "sample": hit,
                            "id": g.id,
                        }
                    )
            if result.groups_scanned >= max_groups:
                break
        if page_no >= page.pages or not page.items:
            break
        page_no += 1
    result.seconds = time.perf_counter() - t0
    return result
