"""In-memory store: the query engine every store uses, and ``store.type: memory`` on its own."""

from __future__ import annotations

import bisect
import copy
import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from sentinel.core.impact import LifecycleSettings, absorb, merge, new_group, refresh
from sentinel.core.model import ErrorGroup, GroupDelta, Priority, RemediationRecord, Status
from sentinel.store.base import (
    MAX_PAGE_SIZE,
    ChangeKind,
    GroupChange,
    GroupQuery,
    Page,
    RecordQuery,
    StoreStats,
)

SortKey = Callable[[ErrorGroup], Any]

SORT_KEYS: dict[str, SortKey] = {
    # Most urgent first: priority, then impact, then most recent.
    "priority": lambda g: (g.priority.rank, -g.impact, -g.last_seen),
    "impact": lambda g: (-g.impact, g.priority.rank, -g.last_seen),
    "last_seen": lambda g: (-g.last_seen, g.priority.rank),
    "first_seen": lambda g: (-g.first_seen, g.priority.rank),
    "count": lambda g: (-g.count, g.priority.rank),
}


def _page_bounds(page: int, page_size: int) -> tuple[int, int, int, int]:
    page = max(1, page)
    page_size = max(1, min(MAX_PAGE_SIZE, page_size))
    start = (page - 1) * page_size
    return page, page_size, start, start + page_size


_GROUP_FIELDS = tuple(f.name for f in dataclasses.fields(ErrorGroup))
_SCALARS = (str, int, float, bool, type(None))


def _clone(g: ErrorGroup) -> ErrorGroup:
    """A copy of ``g`` that shares nothing mutable with it (``copy.deepcopy``, several times faster)."""
    c = copy.copy(g)
    c.pods = list(g.pods) if all(type(p) is str for p in g.pods) else copy.deepcopy(g.pods)
    c.samples = list(g.samples) if all(type(x) is str for x in g.samples) else copy.deepcopy(g.samples)
    c.minute_counts = dict(g.minute_counts)
    for name in _GROUP_FIELDS:
        value = getattr(c, name)
        if not isinstance(value, _SCALARS + (Enum,)) and name not in ("pods", "samples", "minute_counts"):
            setattr(c, name, copy.deepcopy(value))
    return c


def _group_dict(g: ErrorGroup) -> dict[str, Any]:
    """``g.to_dict()``, without ``dataclasses.asdict``'s recursive copying (the flush of every poll)."""
    d: dict[str, Any] = {}
    for name in _GROUP_FIELDS:
        value = getattr(g, name)
        if isinstance(value, Enum):
            value = value.value
        elif not isinstance(value, _SCALARS):
            if name == "minute_counts":
                value = {str(k): v for k, v in value.items()}
            elif type(value) is list and all(type(x) is str for x in value):
                value = list(value)
            else:
                value = copy.deepcopy(value)
        d[name] = value
    return d


def _hay(g: ErrorGroup) -> str:
    return (g.template + "\n" + g.workload + "\n" + g.namespace + "\n" + "\n".join(g.samples[-3:])).lower()


def group_matches(g: ErrorGroup, q: GroupQuery, hay: Callable[[ErrorGroup], str] = _hay) -> bool:
    if q.namespace and g.namespace != q.namespace:
        return False
    if q.workload and g.workload != q.workload:
        return False
    if q.pod and q.pod not in g.pods:
        return False
    if q.priorities and g.priority not in q.priorities:
        return False
    if q.statuses and g.status not in q.statuses:
        return False
    if q.rule and g.rule != q.rule:
        return False
    if q.since is not None and g.last_seen < q.since:
        return False
    if q.until is not None and g.first_seen > q.until:
        return False
    if q.search:
        if q.search.lower() not in hay(g):
            return False
    return True


def record_matches(r: RemediationRecord, q: RecordQuery) -> bool:
    return (
        (q.group_id is None or r.group_id == q.group_id)
        and (q.action is None or r.action == q.action)
        and (q.result is None or r.result.value == q.result)
        and (q.decision is None or r.decision == q.decision)
        and (q.namespace is None or r.namespace == q.namespace)
        and (q.rule is None or r.rule == q.rule)
        and (q.dry_run is None or r.dry_run == q.dry_run)
        and (q.since is None or r.time >= q.since)
        and (q.until is None or r.time <= q.until)
    )


class MemoryStore:
    """Everything in dicts behind one lock. Readers get copies, so nothing they do leaks back."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._groups: dict[str, ErrorGroup] = {}
        self._records: list[RemediationRecord] = []
        self._record_index: dict[str, int] = {}
        self._state: dict[str, dict[str, Any]] = {}
        self._cursor: int | None = None
        self._sorted: dict[str, list[ErrorGroup]] = {}
        self._pending: dict[str, set[str]] = {}  # sort -> ids changed since its list was sorted
        self._hays: dict[str, str] = {}  # id -> lower-cased text that ``search`` looks in
        self._version = 0  # bumped by every change that stats can see
        self._stats_cache: tuple[tuple[int, int, int], StoreStats] | None = None
        self._group_aliases: dict[str, str] = {}
        self._dirty = False

    # -- groups -------------------------------------------------------------------------------

    def record(
        self, deltas: Sequence[GroupDelta], *, now: float, lifecycle: LifecycleSettings | None = None
    ) -> list[GroupChange]:
        """Merge a poll's deltas; with ``lifecycle``, also refresh impact and burst escalation."""
        changes: list[GroupChange] = []
        with self._lock:
            for delta in deltas:
                group = self._groups.get(delta.key)
                kind: ChangeKind
                if group is None:
                    group = new_group(delta, now=now)
                    self._groups[delta.key] = group
                    kind = "new"
                else:
                    kind = "regressed" if merge(group, delta, now=now) == "regressed" else "updated"
                if lifecycle is not None and refresh(group, now=now, settings=lifecycle) and kind == "updated":
                    kind = "escalated"
                changes.append(GroupChange(kind, _clone(group), delta.count))
            if deltas:
                self._touch({d.key for d in deltas})
        return changes

    def _touch(self, ids: set[str] | None = None) -> None:
        """Groups changed: all of them (``ids`` None), or those in ``ids`` (sorted lists are then patched)."""
        self._version += 1
        self._dirty = True
        if ids is None:
            self._sorted.clear()
            self._pending.clear()
            self._hays.clear()
            return
        for gid in ids:
            self._hays.pop(gid, None)
        for sort, ordered in list(self._sorted.items()):
            pending = self._pending.setdefault(sort, set())
            pending.update(ids)
            if len(pending) * 8 > len(ordered):
                del self._sorted[sort]
                del self._pending[sort]

    def get_group(self, group_id: str) -> ErrorGroup | None:
        with self._lock:
            g = self._groups.get(group_id)
            if g is None and group_id in self._group_aliases:
                g = self._groups.get(self.resolve_id(group_id))
            return _clone(g) if g is not None else None

    def put_group(self, group: ErrorGroup) -> None:
        with self._lock:
            self._groups[group.id] = _clone(group)
            self._touch({group.id})

    def update_groups(self, fn: Callable[[ErrorGroup], bool]) -> list[ErrorGroup]:
        """Apply ``fn`` to every stored group in place; returns copies of those it reported changed."""
        changed: list[ErrorGroup] = []
        with self._lock:
            for g in self._groups.values():
                if fn(g):
                    changed.append(_clone(g))
            self._touch()
        return changed

    def apply_aliases(
        self,
        aliases: Mapping[str, str],
        *,
        templates: Mapping[str, str],
        key_fn: Callable[[str, str, str, str], str],
    ) -> int:
        """Fold groups whose template key was replaced (templates merged) into the new key's group.

        ``aliases`` maps old template keys to current ones, ``templates`` current keys to their
        text, ``key_fn(namespace, workload, container, template_key)`` gives a group id. Old group
        ids keep answering through an alias. Returns how many groups were folded or re-keyed.
        """
        moved = 0
        with self._lock:
            stale = [g for g in self._groups.values() if g.template_key in aliases]
            for g in stale:
                new_tk = aliases[g.template_key]
                new_id = key_fn(g.namespace, g.workload, g.container, new_tk)
                if new_id == g.id:
                    continue
                del self._groups[g.id]
                self._group_aliases[g.id] = new_id
                target = self._groups.get(new_id)
                if target is None:
                    g.id = new_id
                    g.template_key = new_tk
                    g.template = templates.get(new_tk, g.template)
                    self._groups[new_id] = g
                else:
                    absorb(target, g)
                    target.template = templates.get(new_tk, target.template)
                moved += 1
            if moved:
                self._touch()
        return moved

    def resolve_id(self, group_id: str) -> str:
        """The current id of a group that may since have been folded into another."""
        with self._lock:
            for _ in range(len(self._group_aliases) + 1):
                new = self._group_aliases.get(group_id)
                if new is None or new == group_id:
                    return group_id
                group_id = new
            return group_id

    def all_groups(self) -> list[ErrorGroup]:
        with self._lock:
            return [_clone(g) for g in self._groups.values()]

    def _sorted_groups(self, sort: str) -> list[ErrorGroup]:
        """Groups in ``sort`` order: cached; after a small write the cached list is patched, not re-sorted.

        The result is always exactly ``sorted(groups, key)`` (stable, in insertion order on ties): a
        changed group is put back by bisection only where no other group has an equal key.
        """
        key = SORT_KEYS.get(sort, SORT_KEYS["priority"])
        cached = self._sorted.get(sort)
        pending = self._pending.pop(sort, None)
        if cached is not None and pending:
            kept = [g for g in cached if g.id not in pending]
            for gid in pending:
                g = self._groups.get(gid)
                if g is None:
                    continue
                k = key(g)
                lo = bisect.bisect_left(kept, k, key=key)
                if lo < len(kept) and key(kept[lo]) == k:
                    cached = None  # a tie: only a full stable sort knows where it goes
                    break
                kept.insert(lo, g)
            else:
                cached = kept
                self._sorted[sort] = kept
        if cached is None:
            cached = sorted(self._groups.values(), key=key)
            self._sorted[sort] = cached
        return cached

    def _hay_of(self, g: ErrorGroup) -> str:
        h = self._hays.get(g.id)
        if h is None:
            h = self._hays[g.id] = _hay(g)
        return h

    def list_groups(self, query: GroupQuery) -> Page[ErrorGroup]:
        page, size, start, end = _page_bounds(query.page, query.page_size)
        with self._lock:
            ordered = self._sorted_groups(query.sort)
            plain = GroupQuery(sort=query.sort, page=query.page, page_size=query.page_size)
            if query == plain:
                hits: Sequence[ErrorGroup] = ordered
            else:
                hits = [g for g in ordered if group_matches(g, query, self._hay_of)]
            items = [_clone(g) for g in hits[start:end]]
            return Page(items, len(hits), page, size)

    def filtered_groups(self, query: GroupQuery) -> list[ErrorGroup]:
        """Every group that matches ``query`` (ignoring its page), in its sort order."""
        with self._lock:
            return [_clone(g) for g in self._sorted_groups(query.sort) if group_matches(g, query, self._hay_of)]

    def stats(self, *, now: float, rate_minutes: int = 60) -> StoreStats:
        """Totals and the per-minute rate; cached until the next change (or the next minute)."""
        with self._lock:
            key = (self._version, int(now // 60), rate_minutes)
            if self._stats_cache is not None and self._stats_cache[0] == key:
                return copy.deepcopy(self._stats_cache[1])
            s = self._compute_stats(now=now, rate_minutes=rate_minutes)
            self._stats_cache = (key, s)
            return copy.deepcopy(s)

    def _compute_stats(self, *, now: float, rate_minutes: int) -> StoreStats:
        s = StoreStats()
        end = int(now // 60)
        start = end - rate_minutes + 1
        rate: dict[int, dict[str, int]] = {m: {p.value: 0 for p in Priority} for m in range(start, end + 1)}
        with self._lock:
            s.total_groups = len(self._groups)
            for g in self._groups.values():
                s.total_occurrences += g.count
                p = g.priority.value
                s.by_priority[p] = s.by_priority.get(p, 0) + 1
                s.by_status[g.status.value] = s.by_status.get(g.status.value, 0) + 1
                s.by_namespace[g.namespace] = s.by_namespace.get(g.namespace, 0) + 1
                s.by_rule[g.rule] = s.by_rule.get(g.rule, 0) + 1
                if s.last_error_at is None or g.last_seen > s.last_error_at:
                    s.last_error_at = g.last_seen
                if g.last_seen >= start * 60:
                    for m, n in g.minute_counts.items():
                        bucket = rate.get(m)
                        if bucket is not None:
                            bucket[p] += n
            for r in self._records:
                s.remediations_by_result[r.result.value] = s.remediations_by_result.get(r.result.value, 0) + 1
                if s.last_remediation_at is None or r.time > s.last_remediation_at:
                    s.last_remediation_at = r.time
        for p in Priority:
            s.by_priority.setdefault(p.value, 0)
        s.rate = [{"minute": m * 60, **counts} for m, counts in sorted(rate.items())]
        return s

    # -- remediation audit ----------------------------------------------------------------------

    def add_remediation(self, record: RemediationRecord) -> None:
        with self._lock:
            self._record_index[record.id] = len(self._records)
            self._records.append(copy.deepcopy(record))
            self._dirty = True
            self._version += 1

    def update_remediation(self, record: RemediationRecord) -> None:
        with self._lock:
            i = self._record_index.get(record.id)
            if i is None:
                self.add_remediation(record)
                return
            self._records[i] = copy.deepcopy(record)
            self._dirty = True
            self._version += 1

    def list_remediations(self, query: RecordQuery) -> Page[RemediationRecord]:
        page, size, start, end = _page_bounds(query.page, query.page_size)
        with self._lock:
            hits = [r for r in reversed(self._records) if record_matches(r, query)]
            return Page([copy.deepcopy(r) for r in hits[start:end]], len(hits), page, size)

    # -- state, cursor ------------------------------------------------------------------------

    def get_state(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            v = self._state.get(name)
            return copy.deepcopy(v) if v is not None else None

    def put_state(self, name: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._state[name] = copy.deepcopy(value)
            self._dirty = True

    def get_cursor(self) -> int | None:
        with self._lock:
            return self._cursor

    def set_cursor(self, ts_ns: int) -> None:
        with self._lock:
            self._cursor = ts_ns
            self._dirty = True

    # -- upkeep -------------------------------------------------------------------------------

    def apply_retention(self, *, now: float, max_age: float, max_groups: int, max_records: int) -> int:
        """Drop groups unseen for ``max_age``, then the stalest beyond ``max_groups``; trim the audit."""
        removed = 0
        with self._lock:
            for gid in [gid for gid, g in self._groups.items() if now - g.last_seen > max_age]:
                del self._groups[gid]
                removed += 1
            if len(self._groups) > max_groups:
                stalest = sorted(self._groups.values(), key=lambda g: g.last_seen)
                for g in stalest[: len(self._groups) - max_groups]:
                    del self._groups[g.id]
                    removed += 1
            if len(self._records) > max_records:
                self._records = self._records[-max_records:]
                self._record_index = {r.id: i for i, r in enumerate(self._records)}
                self._version += 1
            if removed:
                self._touch()
        return removed

    def flush(self) -> None:
        with self._lock:
            self._dirty = False

    def writable(self) -> tuple[bool, str]:
        return True, "memory store"

    def close(self) -> None:
        self.flush()

    # -- for persistence subclasses -------------------------------------------------------------

    def _load(
        self,
        groups: Iterable[ErrorGroup],
        records: Iterable[RemediationRecord],
        state: dict[str, dict[str, Any]],
        cursor: int | None,
        group_aliases: Mapping[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._group_aliases = dict(group_aliases or {})
            self._groups = {g.id: g for g in groups}
            self._records = list(records)
            self._records.sort(key=lambda r: r.time)
            self._record_index = {r.id: i for i, r in enumerate(self._records)}
            self._state = state
            self._cursor = cursor
            self._touch()
            self._dirty = False

    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "groups": [_group_dict(g) for g in self._groups.values()],
                "remediations": [r.to_dict() for r in self._records],
                "state": copy.deepcopy(self._state),
                "cursor": self._cursor,
                "group_aliases": dict(self._group_aliases),
            }


__all__ = ["MemoryStore", "Status"]
