"""In-memory store: the query engine every store uses, and ``store.type: memory`` on its own."""

from __future__ import annotations

import bisect
import copy
import dataclasses
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from operator import itemgetter
from typing import Any, TypeVar

from sentinel.core.impact import LifecycleSettings, absorb, merge, new_group, refresh
from sentinel.core.model import MAX_SAMPLE_CHARS, ErrorGroup, GroupDelta, Priority, RemediationRecord, Status, cut_text
from sentinel.store.base import (
    MAX_PAGE_SIZE,
    ChangeKind,
    GroupChange,
    GroupQuery,
    Page,
    RecordQuery,
    StoreHealth,
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


_first = itemgetter(0)
T = TypeVar("T")


def _without(items: list[T], cut: list[int]) -> list[T]:
    """``items`` less the positions in ``cut`` (ascending)."""
    out: list[T] = []
    prev = 0
    for i in cut:
        out += items[prev:i]
        prev = i + 1
    out += items[prev:]
    return out


def _splice(items: list[T], at: list[int], new: list[T]) -> list[T]:
    """``items`` with ``new[j]`` inserted before ``items[at[j]]`` (``at`` ascending)."""
    out: list[T] = []
    prev = 0
    for i, x in zip(at, new, strict=True):
        out += items[prev:i]
        out.append(x)
        prev = i
    out += items[prev:]
    return out


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


_intern = sys.intern
# A sample is kept to show what the line looked like: past this many characters it is cut (with a
# marker), so that a few huge lines cannot make every group they reach cost megabytes.
SAMPLE_MAX_CHARS = MAX_SAMPLE_CHARS


def _cut_samples(g: ErrorGroup) -> None:
    if any(len(s) > SAMPLE_MAX_CHARS for s in g.samples if type(s) is str):
        g.samples = [cut_text(s, SAMPLE_MAX_CHARS) if type(s) is str else s for s in g.samples]


_MINUTES: dict[int, int] = {}  # one int object per minute number, shared by every group's buckets


def _minute(m: int) -> int:
    got = _MINUTES.setdefault(m, m)
    if len(_MINUTES) > 200_000:  # a day of minutes is 1,440: this only guards against odd input
        _MINUTES.clear()
    return got


def _compact(g: ErrorGroup) -> ErrorGroup:
    """Share the strings that many groups repeat (namespace, workload, rule, pod names ...): one copy each.

    Strings read from a file or from Loki are separate objects per group; at 100k groups the copies
    of the same few hundred names cost tens of MiB.
    """
    g.namespace = _intern(g.namespace)
    g.workload = _intern(g.workload)
    g.container = _intern(g.container)
    g.rule = _intern(g.rule)
    g.level = _intern(g.level)
    g.status_by = _intern(g.status_by)
    g.template_key = _intern(g.template_key)
    g.last_pod = _intern(g.last_pod)
    if g.pods and type(g.pods) is list and all(type(p) is str for p in g.pods):
        g.pods = [_intern(p) for p in g.pods]
    if g.minute_counts:
        g.minute_counts = {_minute(m): n for m, n in g.minute_counts.items()}
    _cut_samples(g)
    return g


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


# The orders of SORT_KEYS with the group's insertion number last: every key is unique, so a changed
# group always goes back in by bisection (no re-sort), and ties keep insertion order, as a stable sort would.
OrderKey = Callable[[ErrorGroup, int], tuple[Any, ...]]
_ORDER_KEYS: dict[str, OrderKey] = {
    "priority": lambda g, n: (g.priority.rank, -g.impact, -g.last_seen, n),
    "impact": lambda g, n: (-g.impact, g.priority.rank, -g.last_seen, n),
    "last_seen": lambda g, n: (-g.last_seen, g.priority.rank, n),
    "first_seen": lambda g, n: (-g.first_seen, g.priority.rank, n),
    "count": lambda g, n: (-g.count, g.priority.rank, n),
}
_PRIORITIES = tuple(Priority)
_PRIORITY_VALUES = tuple(p.value for p in _PRIORITIES)
_PRIORITY_INDEX = {p: i for i, p in enumerate(_PRIORITIES)}


class _Order:
    """Every group in one sort order: ascending unique keys, the groups and (once searched) their haystacks."""

    __slots__ = ("keys", "groups", "placed", "hays")

    def __init__(self, keys: list[tuple[Any, ...]], groups: list[ErrorGroup], placed: dict[str, tuple[Any, ...]]):
        self.keys = keys
        self.groups = groups
        self.placed = placed  # group id -> the key it is filed under
        self.hays: list[str] | None = None


def _bump(counts: dict[str, int], key: str, n: int) -> None:
    v = counts.get(key, 0) + n
    if v:
        counts[key] = v
    else:
        counts.pop(key, None)


def _counted(g: ErrorGroup, minutes: dict[int, int] | None = None) -> tuple[Any, ...]:
    """Everything of ``g`` that ``stats`` counts (``minutes``: a copy of its minute counts, to keep)."""
    mc = g.minute_counts if minutes is None else minutes
    return (g.id, g.priority, g.status, g.namespace, g.rule, g.count, g.last_seen, mc)


class _Totals:
    """What ``stats`` reports, kept up to date one group (or record) at a time.

    ``group(g, -1)`` takes a group's contribution out before it changes, ``group(g, +1)`` puts it
    back after. The latest times are maxima: removing the group that holds one marks it stale, and
    ``stats`` then finds it again with one pass.
    """

    __slots__ = (
        "groups",
        "occurrences",
        "by_priority",
        "by_status",
        "by_namespace",
        "by_rule",
        "minutes",
        "odd",
        "last_seen",
        "last_seen_stale",
        "by_result",
        "reached",
        "last_remediation",
        "last_remediation_stale",
    )

    def __init__(self) -> None:
        self.groups = 0
        self.occurrences = 0
        self.by_priority: dict[str, int] = {}
        self.by_status: dict[str, int] = {}
        self.by_namespace: dict[str, int] = {}
        self.by_rule: dict[str, int] = {}
        self.minutes: list[dict[int, int]] = [{} for _ in _PRIORITIES]  # by priority: minute -> occurrences
        # Groups with occurrences counted after their last_seen: the only ones the rate's
        # "last_seen inside the window" condition can leave out (see MemoryStore.stats).
        self.odd: set[str] = set()
        self.last_seen: float | None = None
        self.last_seen_stale = False
        self.by_result: dict[str, int] = {}
        self.reached = 0
        self.last_remediation: float | None = None
        self.last_remediation_stale = False

    def reset_groups(self) -> None:
        self.groups = self.occurrences = 0
        self.by_priority, self.by_status, self.by_namespace, self.by_rule = {}, {}, {}, {}
        self.minutes, self.odd = [{} for _ in _PRIORITIES], set()
        self.last_seen, self.last_seen_stale = None, False

    def reset_records(self) -> None:
        self.by_result = {}
        self.reached = 0
        self.last_remediation, self.last_remediation_stale = None, False

    def add(self, g: ErrorGroup) -> None:
        self.groups += 1
        self.occurrences += g.count
        by = self.by_priority
        by[g.priority.value] = by.get(g.priority.value, 0) + 1
        by = self.by_status
        by[g.status.value] = by.get(g.status.value, 0) + 1
        by = self.by_namespace
        by[g.namespace] = by.get(g.namespace, 0) + 1
        by = self.by_rule
        by[g.rule] = by.get(g.rule, 0) + 1
        mc = g.minute_counts
        if mc:
            minutes = self.minutes[_PRIORITY_INDEX[g.priority]]
            get = minutes.get
            for m, n in mc.items():
                minutes[m] = get(m, 0) + n
            if not max(mc) * 60 <= g.last_seen:
                self.odd.add(g.id)
        last = g.last_seen
        if self.last_seen is None or last >= self.last_seen:
            self.last_seen, self.last_seen_stale = last, False

    def remove(self, g: ErrorGroup) -> None:
        """Take out what ``add(g)`` put in: ``g`` must be as it was then."""
        self.take_out((g.id, g.priority, g.status, g.namespace, g.rule, g.count, g.last_seen, g.minute_counts))

    def take_out(self, was: tuple[Any, ...]) -> None:
        """``remove`` of a group as ``_counted`` saw it."""
        gid, priority, status, namespace, rule, count, last_seen, mc = was
        self.groups -= 1
        self.occurrences -= count
        _bump(self.by_priority, priority.value, -1)
        _bump(self.by_status, status.value, -1)
        _bump(self.by_namespace, namespace, -1)
        _bump(self.by_rule, rule, -1)
        if mc:
            minutes = self.minutes[_PRIORITY_INDEX[priority]]
            get = minutes.get
            for m, n in mc.items():
                v = get(m, 0) - n
                if v:
                    minutes[m] = v
                else:
                    del minutes[m]
            self.odd.discard(gid)
        if self.last_seen is not None and not last_seen < self.last_seen:
            self.last_seen_stale = True

    def record(self, r: RemediationRecord, sign: int) -> None:
        _bump(self.by_result, r.result.value, sign)
        if r.reached_cluster:
            self.reached += sign
        if sign > 0:
            if self.last_remediation is None or r.time >= self.last_remediation:
                self.last_remediation, self.last_remediation_stale = r.time, False
        elif self.last_remediation is not None and not r.time < self.last_remediation:
            self.last_remediation_stale = True


class MemoryStore:
    """Everything in dicts behind one lock. Readers get copies, so nothing they do leaks back.

    Reads stay cheap right after a write: each sort order is kept sorted and patched by bisection
    for the groups a write changed, search haystacks are recomputed only for those groups, and the
    stats totals are adjusted per changed group rather than recounted.
    """

    # A cached sort order is patched for the groups a write changed; past half of them, re-sorted.
    _resort_factor = 2
    # Up to this many changed groups are re-filed in place, more in one splicing pass over each list.
    _patch_in_place_max = 16

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
        self._totals = _Totals()
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
                    kind: ChangeKind = "new"
                    existed = group is not None
                    if group is None:
                        group = new_group(delta, now=now)
                        self._insert(group)
                    else:
                        totals.remove(group)  # out before it changes, back in after
                    try:
                        if existed:
                            kind = "regressed" if merge(group, delta, now=now) == "regressed" else "updated"
                            if delta.samples:
                                _cut_samples(group)
                        if lifecycle is not None and refresh(group, now=now, settings=lifecycle) and kind == "updated":
                            kind = "escalated"
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

    def _stale_haystacks(self, ids: set[str]) -> None:
        stale = self._stale_hays
        if stale is not None:
            stale.update(ids)
            if len(stale) > len(self._groups):  # nobody searched for a long while: redo all then
                self._stale_hays = None
                self._hays.clear()

    def _repatch(self, ids: set[str]) -> None:
        """Mark ``ids`` for re-filing in every cached order; drop an order when a re-sort is cheaper."""
        for sort, order in list(self._orders.items()):
            pending = self._pending.setdefault(sort, set())
            pending.update(ids)
            if len(pending) * self._resort_factor > len(order.keys):
                del self._orders[sort]
                del self._pending[sort]

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
                    counted = _counted(g, dict(g.minute_counts))
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

    def _refile_changed(self, also: set[str]) -> None:
        """After in-place changes to any group: mark for re-filing those whose sort key moved (or in ``also``)."""
        seq = self._seq
        for sort, order in list(self._orders.items()):
            kf = _ORDER_KEYS[sort]
            placed = order.placed
            pending = self._pending.setdefault(sort, set())
            pending.update(also)
            factor, n = self._resort_factor, len(order.keys)
            for gid, g in self._groups.items():
                if placed.get(gid) != kf(g, seq[gid]):
                    pending.add(gid)
                    if len(pending) * factor > n:
                        break
            if len(pending) * factor > n:
                del self._orders[sort]
                del self._pending[sort]

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
        touched: set[str] = set()
        with self._lock:
            totals = self._totals
            stale = [g for g in self._groups.values() if g.template_key in aliases]
            for g in stale:
                new_tk = aliases[g.template_key]
                new_id = key_fn(g.namespace, g.workload, g.container, new_tk)
                if new_id == g.id:
                    continue
                self._remove(g.id)
                touched.update((g.id, new_id))
                self._group_aliases[g.id] = new_id
                target = self._groups.get(new_id)
                if target is None:
                    g.id = new_id
                    g.template_key = new_tk
                    g.template = templates.get(new_tk, g.template)
                    self._insert(g)
                    totals.add(g)
                else:
                    totals.remove(target)
                    absorb(target, g)
                    target.template = templates.get(new_tk, target.template)
                    totals.add(target)
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

    def _order(self, sort: str) -> _Order:
        """Groups in ``sort`` order, exactly ``sorted(groups, key=SORT_KEYS[sort])`` (stable).

        Cached; after a write only the changed groups are taken out and put back by bisection.
        """
        name = sort if sort in _ORDER_KEYS else "priority"
        order = self._orders.get(name)
        pending = self._pending.pop(name, None)
        if order is not None and pending and not self._patch(order, name, pending):
            order = None
        if order is None:
            order = self._build(name)
            self._orders[name] = order
        return order

    def _build(self, name: str) -> _Order:
        kf = _ORDER_KEYS[name]
        seq, groups = self._seq, self._groups
        keys = [kf(g, seq[gid]) for gid, g in groups.items()]
        placed = dict(zip(groups, keys, strict=True))
        keys.sort()  # unique keys: plain tuple order, no key function
        by_seq = dict(zip(map(seq.__getitem__, groups), groups.values(), strict=True))
        return _Order(keys, [by_seq[k[-1]] for k in keys], placed)

    def _patch(self, order: _Order, name: str, pending: set[str]) -> bool:
        """Re-file the ``pending`` groups of ``order``; False if it cannot (then it is re-sorted)."""
        kf = _ORDER_KEYS[name]
        keys, placed = order.keys, order.placed
        hays = self._fresh_hays() if order.hays is not None else None
        cut: list[int] = []
        for gid in pending:
            old = placed.pop(gid, None)
            if old is not None:
                i = bisect.bisect_left(keys, old)
                if i == len(keys) or keys[i] != old:
                    return False  # not where it was filed (cannot happen): sort afresh rather than guess
                cut.append(i)
        new: list[tuple[tuple[Any, ...], str, ErrorGroup]] = []
        for gid in pending:
            g = self._groups.get(gid)
            if g is not None:
                k = placed[gid] = kf(g, self._seq[gid])
                new.append((k, gid, g))
        if len(cut) + len(new) <= self._patch_in_place_max:
            # a few: delete and insert in place (each moves the list's tail once)
            cut.sort(reverse=True)
            for i in cut:
                del keys[i], order.groups[i]
                if order.hays is not None:
                    del order.hays[i]
            for k, gid, g in new:
                i = bisect.bisect_left(keys, k)
                keys.insert(i, k)
                order.groups.insert(i, g)
                if order.hays is not None and hays is not None:
                    order.hays.insert(i, hays[gid])
            return True
        # many: cut them all out, then splice them all back in, in one pass over each list
        cut.sort()
        new.sort(key=_first)
        keys = _without(keys, cut)
        at = [bisect.bisect_left(keys, k) for k, _, _ in new]
        order.keys = _splice(keys, at, [k for k, _, _ in new])
        order.groups = _splice(_without(order.groups, cut), at, [g for _, _, g in new])
        if order.hays is not None and hays is not None:
            order.hays = _splice(_without(order.hays, cut), at, [hays[gid] for _, gid, _ in new])
        return True

    def _fresh_hays(self) -> dict[str, str]:
        """The search haystack of every group, recomputing only those of groups changed since."""
        stale = self._stale_hays
        if stale is None:
            self._hays = {gid: _hay(g) for gid, g in self._groups.items()}
        elif stale:
            hays, groups = self._hays, self._groups
            for gid in stale:
                g = groups.get(gid)
                if g is None:
                    hays.pop(gid, None)
                else:
                    hays[gid] = _hay(g)
        self._stale_hays = set()
        return self._hays

    def _matching(self, order: _Order, q: GroupQuery) -> Sequence[ErrorGroup]:
        """The groups of ``order`` that ``q`` selects (``group_matches``, one filter at a time)."""
        items: Sequence[ErrorGroup] = order.groups
        if q.namespace:
            items = [g for g in items if g.namespace == q.namespace]
        if q.workload:
            items = [g for g in items if g.workload == q.workload]
        if q.rule:
            items = [g for g in items if g.rule == q.rule]
        if q.priorities:
            items = [g for g in items if g.priority in q.priorities]
        if q.statuses:
            items = [g for g in items if g.status in q.statuses]
        if q.pod:
            items = [g for g in items if q.pod in g.pods]
        if q.since is not None:
            since = q.since
            items = [g for g in items if not g.last_seen < since]
        if q.until is not None:
            until = q.until
            items = [g for g in items if not g.first_seen > until]
        if q.search:
            needle = q.search.lower()
            hays = self._fresh_hays()
            if items is order.groups:
                if order.hays is None:
                    order.hays = [hays[g.id] for g in order.groups]
                items = [g for g, h in zip(order.groups, order.hays, strict=True) if needle in h]
            else:
                items = [g for g in items if needle in hays[g.id]]
        return items

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
            r = copy.deepcopy(record)
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
            r = copy.deepcopy(record)
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


__all__ = ["MemoryStore", "Status"]
