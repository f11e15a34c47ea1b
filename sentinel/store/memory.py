"""In-memory store: keeps groups, the audit and state for every store, and is ``store.type: memory`` on its own.

One concern (issue 13's size rule): keeping groups, records and state. What a write does to a group is decided in :mod:`sentinel.core.groups`; the sort orders, haystacks
and running totals that make reads cheap are in :mod:`sentinel.store.index`.
"""

from __future__ import annotations

import bisect
import copy
import ctypes
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sentinel.core.groups import apply_delta, fold, plan_folds
from sentinel.core.impact import LifecycleSettings
from sentinel.core.model import ErrorGroup, GroupDelta, Priority, RemediationRecord, Status
from sentinel.store.base import (
    GroupChange,
    GroupQuery,
    Page,
    RecordQuery,
    StoreHealth,
    StoreStats,
)
from sentinel.store.index import (
    _PRIORITY_INDEX,
    _PRIORITY_VALUES,
    SAMPLE_MAX_CHARS,
    SORT_KEYS,
    Indexed,
    Totals,
    _clone,
    _compact,
    _counted,
    _group_dict,
    _Order,
    _page_bounds,
    group_matches,
    record_matches,
)
from sentinel.store.validate import compact_record


def give_back_memory() -> None:
    """Return the freed heap of a load (parsed JSON, validation) to the system: glibc keeps it otherwise."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class MemoryStore(Indexed):
    """Everything in dicts behind one lock. Readers get copies, so nothing they do leaks back.

    Reads stay cheap right after a write: each sort order is kept sorted and patched by bisection
    for the groups a write changed, search haystacks are recomputed only for those groups, and the
    stats totals are adjusted per changed group rather than recounted.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._groups: dict[str, ErrorGroup] = {}
        self._seq: dict[str, int] = {}  # id -> insertion number (the order of ``_groups``)
        self._next_seq = 0
        self._records: list[RemediationRecord] = []
        self._record_index: dict[str, int] = {}
        self._by_group: dict[str, list[int]] = {}  # group id -> positions of its records, oldest first
        self._state: dict[str, dict[str, Any]] = {}
        self._cursor: int | None = None
        self._orders: dict[str, _Order] = {}
        self._pending: dict[str, set[str]] = {}  # sort -> ids changed since its order was patched
        self._hays: dict[str, str] = {}  # id -> lower-cased text that ``search`` looks in
        self._stale_hays: set[str] | None = None  # ids whose haystack must be recomputed; None: all
        self._totals = Totals()
        self._group_aliases: dict[str, str] = {}
        self._dirty = False
        # What changed since the last flush, for stores that write only that (see tinydb.py).
        self._dirty_ids: set[str] | None = set()  # group ids changed or removed; None: all of them
        self._new_records: list[RemediationRecord] = []  # audit records added or updated
        self._dirty_state: set[str] = set()
        self._records_trimmed = False

    # -- groups -------------------------------------------------------------------------------

    def _insert(self, group: ErrorGroup) -> None:
        """Store a group under an id not stored yet (it goes last in insertion order)."""
        self._groups[group.id] = _compact(group)
        self._seq[group.id] = self._next_seq
        self._next_seq += 1

    def _remove(self, group_id: str) -> ErrorGroup:
        g = self._groups.pop(group_id)
        self._seq.pop(group_id, None)
        self._totals.remove(g)
        return g

    def record(
        self, deltas: Sequence[GroupDelta], *, now: float, lifecycle: LifecycleSettings | None = None
    ) -> list[GroupChange]:
        """Merge a poll's deltas; with ``lifecycle``, also refresh impact and burst escalation."""
        changes: list[GroupChange] = []
        touched: set[str] = set()
        with self._lock:
            totals = self._totals
            try:
                for delta in deltas:
                    touched.add(delta.key)
                    group = self._groups.get(delta.key)
                    if group is None:
                        group, kind = apply_delta(None, delta, now=now, lifecycle=lifecycle)
                        self._insert(group)
                        totals.add(group)
                    else:
                        totals.remove(group)  # out before it changes, back in after
                        try:
                            group, kind = apply_delta(group, delta, now=now, lifecycle=lifecycle)
                        finally:
                            totals.add(group)
                    changes.append(GroupChange(kind, _clone(group), delta.count))
            finally:
                if touched:
                    self._touch(touched)
        return changes

    def _touch(self, ids: Iterable[str] | None = None) -> None:
        """Groups changed: all of them (``ids`` None), or those in ``ids`` (sort orders are then patched)."""
        self._dirty = True
        if ids is None:
            self._dirty_ids = None
            self._orders.clear()
            self._pending.clear()
            self._hays.clear()
            self._stale_hays = None
            return
        ids = set(ids)
        if self._dirty_ids is not None:
            self._dirty_ids.update(ids)
        self._stale_haystacks(ids)
        self._repatch(ids)

    def get_group(self, group_id: str) -> ErrorGroup | None:
        with self._lock:
            g = self._groups.get(group_id)
            if g is None and group_id in self._group_aliases:
                g = self._groups.get(self.resolve_id(group_id))
            return _clone(g) if g is not None else None

    def put_group(self, group: ErrorGroup) -> None:
        with self._lock:
            new = _clone(group)
            old = self._groups.get(group.id)
            if old is None:
                self._insert(new)
            else:
                self._totals.remove(old)
                self._groups[group.id] = new  # keeps its place in insertion order
            self._totals.add(new)
            self._touch({group.id})

    def update_group(self, group_id: str, fn: Callable[[ErrorGroup], object]) -> ErrorGroup | None:
        """Read, change and write back one group atomically with respect to ``record`` and every other write.

        ``fn`` changes a copy of the group (an id folded into another resolves to the group it
        went into), under the store's lock; the copy then replaces the stored group. If ``fn``
        raises, nothing is changed. Returns a copy of the new group, or None if there is none.
        """
        with self._lock:
            gid = group_id if group_id in self._groups else self.resolve_id(group_id)
            old = self._groups.get(gid)
            if old is None:
                return None
            new = _clone(old)
            fn(new)
            if new.id != gid:
                raise ValueError(f"update_group: the change must keep the group id {gid!r}, got {new.id!r}")
            self._totals.remove(old)
            self._groups[gid] = new  # keeps its place in insertion order
            self._totals.add(new)
            self._touch({gid})
            return _clone(new)

    def update_groups(self, fn: Callable[[ErrorGroup], bool]) -> list[ErrorGroup]:
        """Apply ``fn`` to every stored group in place; returns copies of those it reported changed."""
        changed: list[ErrorGroup] = []
        with self._lock:
            totals = self._totals
            new_hays: set[str] = set()
            written: set[str] = set()
            try:
                for gid, g in self._groups.items():
                    # What stats count and what search reads, before: ``fn`` may change anything.
                    counted = _counted(g, copy.copy(g.minute_counts))  # a copy shares the bytes: cheap
                    hay = (g.template, g.workload, g.namespace, g.samples[-3:])
                    try:
                        if fn(g):
                            changed.append(_clone(g))
                            written.add(gid)
                    finally:
                        if _counted(g) != counted:
                            totals.take_out(counted)
                            totals.add(g)
                            written.add(gid)
                        if (g.template, g.workload, g.namespace, g.samples[-3:]) != hay:
                            new_hays.add(gid)
            finally:
                written |= new_hays
                if written:
                    self._dirty = True
                    if self._dirty_ids is not None:
                        self._dirty_ids.update(written)
                self._stale_haystacks(new_hays)
                self._refile_changed(new_hays)
        return changed

    def apply_aliases(
        self,
        aliases: Mapping[str, str],
        *,
        templates: Mapping[str, str],
        key_fn: Callable[[str, str, str, str, str], str],
    ) -> int:
        """Fold groups whose template key was replaced (templates merged) into the new key's group.

        ``aliases`` maps old template keys to current ones, ``templates`` current keys to their
        text, ``key_fn(namespace, workload, container, template_key, level)`` gives a group id. Old group
        ids keep answering through an alias. Returns how many groups were folded or re-keyed.
        """
        moved = 0
        touched: set[str] = set()
        with self._lock:
            totals = self._totals
            for step in plan_folds(list(self._groups.values()), aliases, key_fn=key_fn):
                g = self._remove(step.old_id)
                touched.update((step.old_id, step.new_id))
                self._group_aliases[step.old_id] = step.new_id
                target = self._groups.get(step.new_id)
                if target is not None:
                    totals.remove(target)
                kept = fold(g, target, step, templates=templates)
                if target is None:
                    self._insert(kept)
                totals.add(self._groups[step.new_id])
                moved += 1
            if moved:
                self._touch(touched)
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

    def list_groups(self, query: GroupQuery) -> Page[ErrorGroup]:
        page, size, start, end = _page_bounds(query.page, query.page_size)
        with self._lock:
            order = self._order(query.sort)
            hits = self._matching(order, query)
            items = [_clone(g) for g in hits[start:end]]
            return Page(items, len(hits), page, size)

    def filtered_groups(self, query: GroupQuery) -> list[ErrorGroup]:
        """Every group that matches ``query`` (ignoring its page), in its sort order."""
        with self._lock:
            return [_clone(g) for g in self._matching(self._order(query.sort), query)]

    def stats(self, *, now: float, rate_minutes: int = 60) -> StoreStats:
        """Totals and the per-minute rate, from totals kept current by every write (no scan)."""
        with self._lock:
            t = self._totals
            s = StoreStats()
            s.total_groups = t.groups
            s.total_occurrences = t.occurrences
            s.by_priority = {p: t.by_priority.get(p, 0) for p in _PRIORITY_VALUES}
            s.by_status = dict(t.by_status)
            s.by_namespace = dict(t.by_namespace)
            s.by_rule = dict(t.by_rule)
            if t.last_seen_stale:
                t.last_seen = max((g.last_seen for g in self._groups.values()), default=None)
                t.last_seen_stale = False
            s.last_error_at = t.last_seen if self._groups else None
            if t.last_remediation_stale:
                t.last_remediation = max((r.time for r in self._records), default=None)
                t.last_remediation_stale = False
            s.remediations_by_result = dict(t.by_result)
            s.remediations_reached = t.reached
            s.last_remediation_at = t.last_remediation if self._records else None
            end = int(now // 60)
            start = end - rate_minutes + 1
            rows = {m: [minutes.get(m, 0) for minutes in t.minutes] for m in range(start, end + 1)}
            # A group counts toward the rate only when last seen inside the window; only a group with
            # occurrences after its last_seen can have minutes inside the window but not be.
            for gid in t.odd:
                g = self._groups[gid]
                if not g.last_seen >= start * 60:
                    i = _PRIORITY_INDEX[g.priority]
                    for m, n in g.minute_counts.items():
                        row = rows.get(m)
                        if row is not None:
                            row[i] -= n
            s.rate = [{"minute": m * 60, **dict(zip(_PRIORITY_VALUES, row, strict=True))} for m, row in rows.items()]
            return s

    def _compute_stats(self, *, now: float, rate_minutes: int) -> StoreStats:
        """``stats`` from a full scan of every group and record (the reference the totals are tested against)."""
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
                s.remediations_reached += int(r.reached_cluster)
                if s.last_remediation_at is None or r.time > s.last_remediation_at:
                    s.last_remediation_at = r.time
        for p in Priority:
            s.by_priority.setdefault(p.value, 0)
        s.rate = [{"minute": m * 60, **counts} for m, counts in sorted(rate.items())]
        return s

    def _recount_groups(self) -> None:
        t = self._totals
        t.reset_groups()
        for g in self._groups.values():
            t.add(g)

    def _reindex_records(self) -> None:
        self._record_index = {r.id: i for i, r in enumerate(self._records)}
        self._by_group = {}
        for i, r in enumerate(self._records):
            self._by_group.setdefault(r.group_id, []).append(i)

    def _recount_records(self) -> None:
        t = self._totals
        t.reset_records()
        for r in self._records:
            t.record(r, +1)

    # -- remediation audit ----------------------------------------------------------------------

    def add_remediation(self, record: RemediationRecord) -> None:
        with self._lock:
            r = compact_record(copy.deepcopy(record))
            self._record_index[r.id] = len(self._records)
            self._records.append(r)
            self._by_group.setdefault(r.group_id, []).append(len(self._records) - 1)
            self._totals.record(r, +1)
            self._new_records.append(r)
            self._dirty = True

    def update_remediation(self, record: RemediationRecord) -> None:
        with self._lock:
            i = self._record_index.get(record.id)
            if i is None:
                self.add_remediation(record)
                return
            r = compact_record(copy.deepcopy(record))
            old = self._records[i]
            if old.group_id != r.group_id:
                self._by_group[old.group_id].remove(i)
                bisect.insort(self._by_group.setdefault(r.group_id, []), i)
            self._totals.record(old, -1)
            self._records[i] = r
            self._totals.record(r, +1)
            self._new_records.append(r)
            self._dirty = True

    def list_remediations(self, query: RecordQuery) -> Page[RemediationRecord]:
        page, size, start, end = _page_bounds(query.page, query.page_size)
        with self._lock:
            if query.group_id is not None:  # the group's own records, not a scan of the whole audit
                records = self._records
                mine = (records[i] for i in reversed(self._by_group.get(query.group_id, [])))
                hits = [r for r in mine if record_matches(r, query)]
            else:
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
            self._dirty_state.add(name)
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
        removed: set[str] = set()
        with self._lock:
            for gid in [gid for gid, g in self._groups.items() if now - g.last_seen > max_age]:
                self._remove(gid)
                removed.add(gid)
            if len(self._groups) > max_groups:
                stalest = sorted(self._groups.values(), key=lambda g: g.last_seen)
                for g in stalest[: len(self._groups) - max_groups]:
                    self._remove(g.id)
                    removed.add(g.id)
            if len(self._records) > max_records:
                self._records = self._records[-max_records:]
                self._reindex_records()
                self._recount_records()
                self._records_trimmed = True
                self._dirty = True
            if removed:
                self._touch(removed)
        return len(removed)

    def flush(self) -> None:
        with self._lock:
            self._dirty = False
            self._dirty_ids, self._new_records, self._dirty_state = set(), [], set()
            self._records_trimmed = False

    def writable(self) -> tuple[bool, str]:
        return True, "memory store"

    def health(self) -> StoreHealth:
        return StoreHealth(kind="memory")

    def acknowledge_notices(self, *, by: str = "") -> int:
        return 0

    def serving(self) -> None:
        """The process serves now (nothing to load here: see :mod:`sentinel.store.loading`)."""

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
            self._groups = {g.id: _compact(g) for g in groups}
            self._seq = {gid: i for i, gid in enumerate(self._groups)}
            self._next_seq = len(self._seq)
            self._records = list(records)
            self._records.sort(key=lambda r: r.time)
            self._reindex_records()
            self._state = state
            self._cursor = cursor
            self._recount_groups()
            self._recount_records()
            self._touch()
            self._dirty = False
            self._dirty_ids, self._new_records, self._dirty_state = set(), [], set()
            self._records_trimmed = False

    def _take_in(
        self,
        groups: Iterable[ErrorGroup],
        removed: Iterable[str],
        records: Iterable[RemediationRecord],
        state: Mapping[str, dict[str, Any]],
    ) -> None:
        """Take in what another writer stored (a shared store), without marking any of it for writing.

        The caller leaves out what this process changed and has not written yet: that write wins.
        """
        with self._lock:
            ids: set[str] = set()
            for g in groups:
                old = self._groups.get(g.id)
                if old is None:
                    self._insert(g)
                else:
                    self._totals.remove(old)
                    self._groups[g.id] = _compact(g)
                self._totals.add(self._groups[g.id])
                ids.add(g.id)
            for gid in removed:
                if gid in self._groups:
                    self._remove(gid)
                    ids.add(gid)
            if ids:
                self._stale_haystacks(ids)
                self._repatch(ids)
            for r in records:
                i = self._record_index.get(r.id)
                if i is None:
                    self._record_index[r.id] = len(self._records)
                    self._records.append(r)
                    self._by_group.setdefault(r.group_id, []).append(len(self._records) - 1)
                else:
                    old_r = self._records[i]
                    if old_r.group_id != r.group_id:
                        self._by_group[old_r.group_id].remove(i)
                        bisect.insort(self._by_group.setdefault(r.group_id, []), i)
                    self._totals.record(old_r, -1)
                    self._records[i] = r
                self._totals.record(r, +1)
            for name, value in state.items():
                self._state[name] = value

    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "groups": [_group_dict(g) for g in self._groups.values()],
                "remediations": [r.to_dict() for r in self._records],
                "state": copy.deepcopy(self._state),
                "cursor": self._cursor,
                "group_aliases": dict(self._group_aliases),
            }


# Re-exported: stores and tests import these from here.
__all__ = ["SAMPLE_MAX_CHARS", "SORT_KEYS", "MemoryStore", "Status", "_group_dict", "group_matches"]
