"""The Store protocol: the seam between the engine and where groups, audit and state are kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

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

    def failing_reason(self, now: float) -> str | None:
        """Why writes count as failing (``/ready``'s words), or None while they do not."""
        if not self.failing:
            return None
        age = "never" if self.last_write_ok_at is None else f"{int(now - self.last_write_ok_at)}s ago"
        return f"{self.consecutive_write_errors} writes failed in a row (last success {age}): {self.last_write_error}"

    def snapshot(self) -> StoreHealth:
        """A copy for readers (the lists copied too): the store keeps changing its own."""
        return replace(self, notices=list(self.notices), moved_aside=list(self.moved_aside))


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


# -- the shared command queue (PostgreSQL only: a follower's changes, run by the leader) ----------

CommandKind = Literal["settings", "breaker_reset", "action"]
CommandState = Literal["pending", "running", "done", "refused", "failed"]
COMMAND_KINDS: tuple[str, ...] = ("settings", "breaker_reset", "action")
FINAL_STATES: frozenset[str] = frozenset({"done", "refused", "failed"})


@dataclass(frozen=True, slots=True)
class Command:
    """One change a person asked for on a follower, for the leader to run (see :class:`CommandQueue`).

    ``state``: ``pending`` (asked), ``running`` (taken by the leader ``done_by``, committed before it
    acts), then one of ``done``, ``refused`` (expired, invalid, or refused as a local request would
    be) or ``failed``. ``result`` is what the leader answered, as JSON.
    """

    id: str
    kind: CommandKind
    payload: dict[str, Any]
    requested_by: str
    via: str
    requested_at: float
    state: CommandState = "pending"
    taken_at: float | None = None
    result: dict[str, Any] | None = None
    done_at: float | None = None
    done_by: str = ""

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "payload": self.payload,
            "requested_by": self.requested_by,
            "via": self.via,
            "requested_at": self.requested_at,
            "state": self.state,
            "taken_at": self.taken_at,
            "result": self.result,
            "done_at": self.done_at,
            "done_by": self.done_by,
        }


@runtime_checkable
class CommandQueue(Protocol):
    """A store that replicas share offers this: followers submit, the leader takes and finishes.

    Exactly once: :meth:`take_commands` marks what it returns ``running`` and commits that before
    the leader acts; a ``running`` command is never taken again. One left ``running`` for longer
    than ``stale_after`` (its leader died mid-command) is finished as ``failed``, not run again.
    The memory and TinyDB stores are not shared, so they do not offer it.
    """

    def submit_command(
        self, kind: CommandKind, payload: dict[str, Any], *, requested_by: str, via: str, now: float
    ) -> Command: ...

    def take_commands(self, *, by: str, now: float, limit: int = 20, stale_after: float = 120.0) -> list[Command]: ...

    def finish_command(
        self, command_id: str, *, state: CommandState, result: dict[str, Any], by: str, now: float
    ) -> Command | None: ...

    def command(self, command_id: str) -> Command | None: ...


def command_queue(store: object) -> CommandQueue | None:
    """The store as a shared command queue, or None when it is not shared (memory, TinyDB)."""
    return store if isinstance(store, CommandQueue) else None
