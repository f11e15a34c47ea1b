"""The Store protocol: the seam between the engine and where groups, audit and state are kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from sentinel.core.groups import ChangeKind
from sentinel.core.impact import LifecycleSettings
from sentinel.core.model import ErrorGroup, GroupDelta, Priority, RemediationRecord, Status

T = TypeVar("T")

GroupSort = Literal["priority", "impact", "last_seen", "first_seen", "count"]
SORTS: tuple[str, ...] = ("priority", "impact", "last_seen", "first_seen", "count")
MAX_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class GroupQuery:
    """Filters, sort and page for listing groups. Empty tuples / None mean "any"."""

    namespace: str | None = None
    workload: str | None = None
    pod: str | None = None
    priorities: tuple[Priority, ...] = ()
    statuses: tuple[Status, ...] = ()
    rule: str | None = None
    search: str | None = None
    since: float | None = None
    until: float | None = None
    sort: GroupSort = "priority"
    page: int = 1
    page_size: int = 100


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """Filters and page for the remediation audit log (newest first)."""

    group_id: str | None = None
    action: str | None = None
    result: str | None = None
    decision: str | None = None
    namespace: str | None = None
    rule: str | None = None
    dry_run: bool | None = None
    since: float | None = None
    until: float | None = None
    page: int = 1
    page_size: int = 100


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(slots=True)
class GroupChange:
    """What a ``record`` did to one group; the engine turns these into events."""

    kind: ChangeKind
    group: ErrorGroup
    added: int = 0


@dataclass(slots=True)
class StoreStats:
    total_groups: int = 0
    total_occurrences: int = 0
    by_priority: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    by_namespace: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, int] = field(default_factory=dict)
    rate: list[dict[str, Any]] = field(default_factory=list)
    remediations_by_result: dict[str, int] = field(default_factory=dict)
    remediations_reached: int = 0  # audit records whose write (or its dry run) reached the API server
    last_error_at: float | None = None
    last_remediation_at: float | None = None


# Writes failing this many times in a row make /ready fail (one failure may be a passing hiccup).
FAILING_AFTER = 3


@dataclass(slots=True)
class StoreHealth:
    """How the store's writes go, and what happened at start that someone must see.

    ``notices`` are startup problems (a file moved aside, the store started empty) that stay on
    /ready, /metrics and the console until acknowledged.
    """

    kind: str
    write_errors: int = 0
    consecutive_write_errors: int = 0
    last_write_error: str = ""
    last_write_ok_at: float | None = None  # POSIX seconds of the last successful write
    started_at: float | None = None
    notices: list[str] = field(default_factory=list)
    moved_aside: list[str] = field(default_factory=list)  # paths of the files moved aside at start
    loading: str = ""  # while groups and audit still load in the background: what is being read

    @property
    def failing(self) -> bool:
        return self.consecutive_write_errors >= FAILING_AFTER


class Store(Protocol):
    """Error groups, the remediation audit, settings overrides, safety state and the poll cursor.

    Implementations are thread-safe: the engine writes from the scheduler thread while the API
    and the console read from theirs.
    """

    def record(
        self, deltas: Sequence[GroupDelta], *, now: float, lifecycle: LifecycleSettings | None = None
    ) -> list[GroupChange]: ...

    def update_group(self, group_id: str, fn: Callable[[ErrorGroup], object]) -> ErrorGroup | None:
        """Apply ``fn`` to one group under the store's lock (atomic with ``record``); None if unknown."""
        ...

    def update_groups(self, fn: Callable[[ErrorGroup], bool]) -> list[ErrorGroup]: ...

    def filtered_groups(self, query: GroupQuery) -> list[ErrorGroup]: ...

    def get_group(self, group_id: str) -> ErrorGroup | None: ...

    def list_groups(self, query: GroupQuery) -> Page[ErrorGroup]: ...

    def all_groups(self) -> list[ErrorGroup]: ...

    def apply_aliases(
        self,
        aliases: Mapping[str, str],
        *,
        templates: Mapping[str, str],
        key_fn: Callable[[str, str, str, str, str], str],
    ) -> int: ...

    def resolve_id(self, group_id: str) -> str: ...

    def put_group(self, group: ErrorGroup) -> None: ...

    def stats(self, *, now: float, rate_minutes: int = 60) -> StoreStats: ...

    def add_remediation(self, record: RemediationRecord) -> None: ...

    def update_remediation(self, record: RemediationRecord) -> None: ...

    def list_remediations(self, query: RecordQuery) -> Page[RemediationRecord]: ...

    def get_state(self, name: str) -> dict[str, Any] | None: ...

    def put_state(self, name: str, value: dict[str, Any]) -> None: ...

    def get_cursor(self) -> int | None: ...

    def set_cursor(self, ts_ns: int) -> None: ...

    def apply_retention(self, *, now: float, max_age: float, max_groups: int, max_records: int) -> int: ...

    def flush(self) -> None: ...

    def writable(self) -> tuple[bool, str]: ...

    def health(self) -> StoreHealth: ...

    def acknowledge_notices(self, *, by: str = "") -> int: ...

    def serving(self) -> None:
        """The process serves now: a store loading in the background may begin reading."""
        ...

    def close(self) -> None: ...
