"""The memory store's indices: every sort order kept sorted, search haystacks, running totals, matching.

One concern (issue 13's size rule): the read indices over the stored groups.

:class:`Indexed` is the part of :class:`~sentinel.store.memory.MemoryStore` that keeps the sort
orders sorted (patched by bisection for the groups a write changed, re-sorted past a share of
them) and the search haystacks current; :class:`Totals` keeps what ``stats`` reports, one group
at a time. The helpers copy, encode and compact groups the way every store does.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import struct
import sys
from collections.abc import Callable, Sequence
from enum import Enum
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from sentinel.core.groups import cut_samples
from sentinel.core.model import (
    MAX_SAMPLE_CHARS,
    ErrorGroup,
    MinuteCounts,
    Priority,
    RemediationRecord,
    Status,
    minute_counts,
)
from sentinel.store.base import MAX_PAGE_SIZE, GroupQuery, RecordQuery

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
_CONTAINERS = ("pods", "samples", "minute_counts")
_SCALAR_FIELDS = tuple(n for n in _GROUP_FIELDS if n not in _CONTAINERS)
_ENUM_FIELDS = ("priority", "base_priority", "status")
_get_all = attrgetter(*_GROUP_FIELDS)
_get_scalars = attrgetter(*_SCALAR_FIELDS)
# The types a scalar field holds when nothing odd was put in it: such values are shared, not copied.
_PLAIN = frozenset({str, int, float, bool, type(None), Priority, Status})
_STR = frozenset({str})


def _clone(g: ErrorGroup) -> ErrorGroup:
    """A copy of ``g`` that shares nothing mutable with it (``copy.deepcopy``, many times faster).

    Every field is passed to the constructor at once; only the three containers are copied, unless
    a field holds something other than the plain values the model declares (then that is deep-copied).
    """
    c = ErrorGroup(*_get_all(g))
    pods, samples = g.pods, g.samples
    c.pods = list(pods) if set(map(type, pods)) <= _STR else copy.deepcopy(pods)
    c.samples = list(samples) if set(map(type, samples)) <= _STR else copy.deepcopy(samples)
    c.minute_counts = copy.copy(minute_counts(g.minute_counts))  # shares the immutable bytes
    if not set(map(type, _get_scalars(g))) <= _PLAIN:
        for name in _SCALAR_FIELDS:
            value = getattr(c, name)
            if not isinstance(value, _SCALARS + (Enum,)):
                setattr(c, name, copy.deepcopy(value))
    return c


def _group_dict(g: ErrorGroup, *, as_dict: bool = True) -> dict[str, Any]:
    """``g.to_dict()``, without ``dataclasses.asdict``'s recursive copying (the flush of every poll)."""
    d = dict(zip(_GROUP_FIELDS, _get_all(g), strict=True))
    if set(map(type, _get_scalars(g))) <= _PLAIN:
        for name in _ENUM_FIELDS:
            value = d[name]
            if isinstance(value, Enum):
                d[name] = value.value
    else:
        for name in _SCALAR_FIELDS:
            value = d[name]
            if isinstance(value, Enum):
                d[name] = value.value
            elif not isinstance(value, _SCALARS):
                d[name] = copy.deepcopy(value)
    for name in ("pods", "samples"):
        value = d[name]
        d[name] = list(value) if type(value) is list and set(map(type, value)) <= _STR else copy.deepcopy(value)
    mc = minute_counts(d["minute_counts"]).to_dict()
    d["minute_counts"] = dict(zip(map(str, mc), mc.values(), strict=True)) if as_dict else mc
    return d


def _group_doc(g: ErrorGroup) -> dict[str, Any]:
    """What ``json.dumps`` turns into the text of ``_group_dict(g)``, a little cheaper: minute numbers stay ints.

    (The JSON encoder writes int keys as strings itself.) For the files and rows a flush writes.
    """
    return _group_dict(g, as_dict=False)


_intern = sys.intern
# A sample is kept to show what the line looked like: past this many characters it is cut (with a
# marker), so that a few huge lines cannot make every group they reach cost megabytes.
SAMPLE_MAX_CHARS = MAX_SAMPLE_CHARS


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
    if type(g.minute_counts) is not MinuteCounts:  # set to a plain mapping since it was built
        g.minute_counts = MinuteCounts(g.minute_counts)
    cut_samples(g, SAMPLE_MAX_CHARS)
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
# Each key is the tuple packed into one int, field by field (most significant first), with the same
# order: 48 bytes a key where a tuple of two new floats costs ~136, per group and per sort order kept.
OrderKey = Callable[[ErrorGroup, int], int]
_F64 = struct.Struct("<d")
_HALF = 1 << 63
_LOW63 = _HALF - 1
_SEQ_BITS = 48  # insertion numbers: the store's inserts since it started
_SEQ_MASK = (1 << _SEQ_BITS) - 1
_RANK = {p: p.rank for p in Priority}


def _up(x: float) -> int:
    """``x`` as an unsigned 64-bit int in the same order (-0.0 and 0.0 alike, as ``<`` has them)."""
    i = int.from_bytes(_F64.pack(x + 0.0), "little", signed=True)
    return i + _HALF if i >= 0 else _LOW63 - (i & _LOW63)


def _down(x: float) -> int:
    """``-x`` as ``_up`` has it: larger ``x`` first."""
    return _up(-x)


def _count_down(n: int) -> int:
    """``-n`` as an unsigned 64-bit int (counts past +-2**63, which no log reaches, tie)."""
    return _LOW63 - n if -_HALF < n < _HALF else (0 if n >= _HALF else (1 << 64) - 1)


_ORDER_KEYS: dict[str, OrderKey] = {
    # (rank, -impact, -last_seen, n)
    "priority": lambda g, n: (
        (((_RANK[g.priority] << 64 | _down(g.impact)) << 64 | _down(g.last_seen)) << _SEQ_BITS) | n
    ),
    # (-impact, rank, -last_seen, n)
    "impact": lambda g, n: (((_down(g.impact) << 3 | _RANK[g.priority]) << 64 | _down(g.last_seen)) << _SEQ_BITS) | n,
    # (-last_seen, rank, n)
    "last_seen": lambda g, n: ((_down(g.last_seen) << 3 | _RANK[g.priority]) << _SEQ_BITS) | n,
    # (-first_seen, rank, n)
    "first_seen": lambda g, n: ((_down(g.first_seen) << 3 | _RANK[g.priority]) << _SEQ_BITS) | n,
    # (-count, rank, n)
    "count": lambda g, n: ((_count_down(g.count) << 3 | _RANK[g.priority]) << _SEQ_BITS) | n,
}
_PRIORITIES = tuple(Priority)
_PRIORITY_VALUES = tuple(p.value for p in _PRIORITIES)
_PRIORITY_INDEX = {p: i for i, p in enumerate(_PRIORITIES)}


class _Order:
    """Every group in one sort order: ascending unique keys, the groups and (once searched) their haystacks."""

    __slots__ = ("keys", "groups", "placed", "hays")

    def __init__(self, keys: list[int], groups: list[ErrorGroup], placed: dict[str, int]):
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


def _counted(g: ErrorGroup, minutes: MinuteCounts | None = None) -> tuple[Any, ...]:
    """Everything of ``g`` that ``stats`` counts (``minutes``: a copy of its minute counts, to keep)."""
    mc = g.minute_counts if minutes is None else minutes
    return (g.id, g.priority, g.status, g.namespace, g.rule, g.count, g.last_seen, mc)


class Totals:
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
            if type(mc) is MinuteCounts:
                ms, ns = mc.columns()
                newest = ms[-1]  # ascending
                for m, n in zip(ms, ns, strict=True):
                    minutes[m] = get(m, 0) + n
            else:
                newest = max(mc)
                for m, n in mc.items():
                    minutes[m] = get(m, 0) + n
            if not newest * 60 <= g.last_seen:
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


class Indexed:
    """Sort orders and haystacks over ``_groups`` (mixed into MemoryStore, which owns the attributes)."""

    # A cached sort order is patched for the groups a write changed; past half of them, re-sorted.
    _resort_factor = 2
    # Up to this many changed groups are re-filed in place, more in one splicing pass over each list.
    _patch_in_place_max = 16

    _groups: dict[str, ErrorGroup]
    _seq: dict[str, int]
    _orders: dict[str, _Order]
    _pending: dict[str, set[str]]
    _hays: dict[str, str]
    _stale_hays: set[str] | None

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
        return _Order(keys, [by_seq[k & _SEQ_MASK] for k in keys], placed)

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
        new: list[tuple[int, str, ErrorGroup]] = []
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
