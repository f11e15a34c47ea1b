"""Domain values shared by every layer: log entries, error groups, priorities, decisions, audit records.

Times are POSIX seconds (``float``) everywhere in the domain; Loki's nanosecond timestamps are
converted at the edge. Records serialise to plain JSON-able dicts with ``to_dict`` / ``from_dict``
so that the store can keep them as documents.
"""

from __future__ import annotations

import bisect
import dataclasses
from array import array
from collections.abc import ItemsView, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

MAX_SAMPLE_CHARS = 4096  # a stored sample line, or a template in an API answer, is cut past this


def cut_text(text: str, limit: int = MAX_SAMPLE_CHARS) -> str:
    """``text`` in at most ``limit`` characters, the end replaced by a marker saying how long it was.

    Idempotent: a text already cut is at most ``limit`` long and comes back unchanged.
    """
    if len(text) <= limit:
        return text
    marker = f"… [cut: {len(text)} characters in all]"
    return text[: max(0, limit - len(marker))] + marker


MINUTE_LIMIT = 2**62  # a minute number or a count outside +-this cannot be stored (nor be real)


class _MinuteItems(ItemsView[int, int]):
    _mapping: MinuteCounts

    def __iter__(self) -> Iterator[tuple[int, int]]:
        minutes, counts = self._mapping.columns()
        return zip(minutes, counts, strict=True)


class MinuteCounts(MutableMapping[int, int]):
    """One group's occurrences per minute (minute number -> count), kept compact.

    A mapping like ``dict[int, int]``, stored as one ``bytes`` of 64-bit integers (the minutes
    ascending, then their counts): 16 bytes a minute instead of a dict's ~40 plus an int object per
    key, and one object however many minutes. Changes rebuild the bytes; a group changes once a poll.
    Copies share the bytes (they are immutable).
    """

    __slots__ = ("_b",)

    def __init__(self, counts: Mapping[int, int] | None = None) -> None:
        self._b = b""
        if counts:
            self._set(counts)

    def _set(self, counts: Mapping[int, int]) -> None:
        if not counts:
            self._b = b""
            return
        minutes = sorted(counts)
        try:
            self._b = array("q", minutes + [counts[m] for m in minutes]).tobytes()
        except OverflowError:
            raise ValueError(f"minute counts must lie within +-2**62, got {minutes[0]}..{minutes[-1]}") from None

    def columns(self) -> tuple[array[int], array[int]]:
        """The minutes (ascending) and their counts, as two arrays."""
        a = array("q")
        a.frombytes(self._b)
        n = len(a) // 2
        return a[:n], a[n:]

    def total(self, start: int, stop: int) -> int:
        """The occurrences of the minutes from ``start`` up to (not including) ``stop``."""
        view = memoryview(self._b).cast("q")
        n = len(view) // 2
        i = bisect.bisect_left(view, start, 0, n)
        j = bisect.bisect_left(view, stop, i, n)
        return sum(view[n + i : n + j]) if j > i else 0

    def to_dict(self) -> dict[int, int]:
        minutes, counts = self.columns()
        return dict(zip(minutes, counts, strict=True))

    def add(self, counts: Mapping[int, int], *, keep: int | None = None) -> None:
        """Add ``counts`` minute by minute; with ``keep``, then drop minutes more than ``keep`` before the newest."""
        if not counts and keep is None:
            return
        merged = self.to_dict()
        get = merged.get
        for m, n in counts.items():
            merged[m] = get(m, 0) + n
        if keep is not None and len(merged) > keep:
            cutoff = max(merged) - keep
            merged = {m: n for m, n in merged.items() if m > cutoff}
        self._set(merged)

    def __getitem__(self, minute: int) -> int:
        view = memoryview(self._b).cast("q")
        n = len(view) // 2
        i = bisect.bisect_left(view, minute, 0, n)
        if i < n and view[i] == minute:
            return int(view[n + i])
        raise KeyError(minute)

    def __setitem__(self, minute: int, count: int) -> None:
        d = self.to_dict()
        d[minute] = count
        self._set(d)

    def __delitem__(self, minute: int) -> None:
        d = self.to_dict()
        del d[minute]
        self._set(d)

    def __iter__(self) -> Iterator[int]:
        return iter(self.columns()[0])

    def __len__(self) -> int:
        return len(self._b) // 16

    def __bool__(self) -> bool:
        return bool(self._b)

    def items(self) -> _MinuteItems:
        return _MinuteItems(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MinuteCounts):
            return self._b == other._b
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MinuteCounts({self.to_dict()!r})"

    def __copy__(self) -> MinuteCounts:
        c = MinuteCounts()
        c._b = self._b
        return c

    def __deepcopy__(self, memo: dict[int, object]) -> MinuteCounts:
        return self.__copy__()

    def __reduce__(self) -> tuple[Any, ...]:
        return (MinuteCounts, (self.to_dict(),))


def minute_counts(value: Mapping[int, int] | None) -> MinuteCounts:
    """``value`` as :class:`MinuteCounts` (itself when it is one already)."""
    return value if type(value) is MinuteCounts else MinuteCounts(value)


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    """The dataclass field names of ``cls``, looked up once (``from_dict`` runs per stored row at load)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


PRIORITY_LABELS = {"P1": "critical", "P2": "high", "P3": "medium", "P4": "low"}


class Priority(StrEnum):
    """P1 (critical) .. P4 (low). ``rank`` 1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def label(self) -> str:
        return PRIORITY_LABELS[self.value]

    @property
    def rank(self) -> int:
        return int(self.value[1])

    def raised(self) -> Priority:
        """One level more urgent (P1 stays P1)."""
        return Priority(f"P{max(1, self.rank - 1)}")

    @classmethod
    def parse(cls, value: object) -> Priority:
        """Accept ``P1``..``P4`` (any case) or a name: critical, high, medium, low."""
        if isinstance(value, Priority):
            return value
        if not isinstance(value, str):
            raise ValueError(f"priority must be a string like P1 or critical, got {value!r}")
        text = value.strip()
        upper = text.upper()
        if upper in PRIORITY_LABELS:
            return cls(upper)
        for key, name in PRIORITY_LABELS.items():
            if text.lower() == name:
                return cls(key)
        raise ValueError(f"unknown priority {value!r}: use P1, P2, P3, P4 or critical, high, medium, low")


class Status(StrEnum):
    """Lifecycle of an error group."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    REGRESSED = "regressed"


class LogEntry(NamedTuple):
    """One log line as a source delivers it: nanosecond timestamp, stream labels, raw line.

    A named tuple rather than a frozen dataclass: immutable all the same, and several times
    cheaper to build, which counts when a Loki page brings 5,000 of them.
    """

    ts_ns: int
    labels: Mapping[str, str]
    line: str

    @property
    def ts(self) -> float:
        return self.ts_ns / 1e9


@dataclass(frozen=True, slots=True)
class Parsed:
    """What parsing found in one entry."""

    message: str
    level: str
    namespace: str
    pod: str
    container: str
    workload: str


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The template of a message and the stable key of its template."""

    template: str
    key: str


@dataclass(slots=True)
class GroupDelta:
    """What one poll saw of one group: the pipeline aggregates entries into these, the store merges them."""

    key: str
    namespace: str
    workload: str
    container: str
    template: str
    rule: str
    priority: Priority
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    pods: dict[str, None] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    minute_counts: dict[int, int] = field(default_factory=dict)
    level: str = ""
    template_key: str = ""
    message: str = ""  # one parsed message of the group: re-fingerprinted when templates merge
    last_pod: str = ""  # the pod of the newest occurrence


@dataclass(slots=True)
class ErrorGroup:
    """One fingerprinted error: every occurrence of one template in one workload's container."""

    id: str
    namespace: str
    workload: str
    container: str
    template: str
    rule: str
    priority: Priority
    base_priority: Priority
    count: int
    first_seen: float
    last_seen: float
    pods: list[str] = field(default_factory=list)
    pod_count: int = 0
    samples: list[str] = field(default_factory=list)
    minute_counts: MinuteCounts = field(default_factory=MinuteCounts)
    status: Status = Status.OPEN
    status_changed_at: float = 0.0
    status_by: str = ""
    status_reason: str = ""
    snooze_until: float | None = None
    snooze_until_count: int | None = None
    escalated: bool = False
    escalation_reason: str = ""
    impact: float = 0.0
    remediations: int = 0
    last_remediation_at: float | None = None
    level: str = ""
    template_key: str = ""
    last_pod: str = ""  # the pod of the newest occurrence: what restart-pod acts on

    def __post_init__(self) -> None:
        if type(self.minute_counts) is not MinuteCounts:  # a plain dict given: kept compact
            self.minute_counts = MinuteCounts(self.minute_counts)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["priority"] = self.priority.value
        d["base_priority"] = self.base_priority.value
        d["status"] = self.status.value
        d["minute_counts"] = {str(k): v for k, v in self.minute_counts.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ErrorGroup:
        data = dict(d)
        data["priority"] = Priority(data["priority"])
        data["base_priority"] = Priority(data.get("base_priority", data["priority"]))
        data["status"] = Status(data.get("status", "open"))
        data["minute_counts"] = MinuteCounts({int(k): int(v) for k, v in data.get("minute_counts", {}).items()})
        names = _field_names(cls)
        return cls(**{k: v for k, v in data.items() if k in names})


class Result(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Target:
    """What an action acts on: a pod or a workload."""

    namespace: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


@dataclass(slots=True)
class RemediationRecord:
    """One remediation attempt, allowed or refused: the audit log's row."""

    id: str
    time: float
    group_id: str
    rule: str
    action: str
    namespace: str
    kind: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    decision: str = "allowed"  # allowed | denied
    reason: str = ""
    dry_run: bool = False
    result: Result = Result.SKIPPED
    error: str = ""
    duration_ms: float = 0.0
    requested_by: str = "engine"
    changes: dict[str, Any] = field(default_factory=dict)
    effective: bool | None = None
    workload: str = ""
    # The action itself reached the API server: its write (or the write's server-side dry run) was
    # accepted, or refused by the server (RBAC, a PodDisruptionBudget...). Nothing to do (not
    # applicable), a gone target or a refusal by the safety policy did not. Only these count as remediations.
    reached_cluster: bool = False
    # Repeats of one refusal (rule, workload, decision, reason code) folded into this record:
    # ``count`` refusals from ``time`` to ``last_time``.
    reason_code: str = ""
    count: int = 1
    last_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["result"] = self.result.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RemediationRecord:
        data = dict(d)
        data["result"] = Result(data.get("result", "skipped"))
        names = _field_names(cls)
        return cls(**{k: v for k, v in data.items() if k in names})
