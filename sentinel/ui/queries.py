"""What the pages ask the store: filters that live in the URL, paged queries, rows and CSV exports.

Filters round-trip through ``st.query_params`` (plain strings) so that a view can be shared as a
link: :meth:`ErrorFilters.from_params` is tolerant (an unknown value is dropped, never an error)
and :meth:`ErrorFilters.to_params` writes only what differs from the defaults.

Nothing here caches: every call reads the live in-process store, one page at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sentinel.core.export import csv_text
from sentinel.core.model import ErrorGroup, Priority, RemediationRecord, Status
from sentinel.store.base import MAX_PAGE_SIZE, SORTS, GroupQuery, GroupSort, Page, RecordQuery, Store
from sentinel.ui.format import iso_utc

TIME_RANGES: dict[str, float | None] = {
    "15m": 15 * 60,
    "1h": 3600,
    "6h": 6 * 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "all": None,
}
TIME_RANGE_LABELS: dict[str, str] = {
    "15m": "last 15 minutes",
    "1h": "last hour",
    "6h": "last 6 hours",
    "24h": "last 24 hours",
    "7d": "last 7 days",
    "all": "any time",
}
SORT_LABELS: dict[str, str] = {
    "priority": "most urgent first",
    "impact": "highest impact",
    "last_seen": "most recently seen",
    "first_seen": "newest groups",
    "count": "most occurrences",
}
PAGE_SIZES = (50, 100, 200, 500)
DEFAULT_PAGE_SIZE = 100

GROUP_COLUMNS = (
    "id",
    "priority",
    "impact",
    "count",
    "first_seen",
    "last_seen",
    "namespace",
    "workload",
    "container",
    "rule",
    "status",
    "remediations",
    "pods",
    "template",
    "status_by",
    "status_reason",
)
RECORD_COLUMNS = (
    "time",
    "action",
    "namespace",
    "kind",
    "name",
    "workload",
    "decision",
    "result",
    "dry_run",
    "reason",
    "error",
    "requested_by",
    "rule",
    "group_id",
    "duration_ms",
    "effective",
    "id",
)


def all_params(query_params: Any) -> dict[str, list[str]]:
    """Every value of every parameter (``?priority=P1&priority=P2`` keeps both), from ``st.query_params``."""
    return {k: list(query_params.get_all(k)) for k in query_params}


def same_params(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal as query strings (a single value and a one-item list are the same)."""

    def norm(m: Mapping[str, Any]) -> dict[str, list[str]]:
        return {k: [str(x) for x in v] if isinstance(v, list | tuple) else [str(v)] for k, v in m.items()}

    return norm(a) == norm(b)


def _first(value: Any) -> str:
    """A query parameter as one string (Streamlit gives the last value; lists are tolerated)."""
    if isinstance(value, list | tuple):
        value = value[-1] if value else ""
    return "" if value is None else str(value).strip()


def _split(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        parts = [p for v in value for p in str(v).split(",")]
    else:
        parts = _first(value).split(",")
    return [p.strip() for p in parts if p.strip()]


def _int(value: Any, default: int, *, low: int = 1, high: int = 1_000_000) -> int:
    try:
        return max(low, min(high, int(_first(value))))
    except ValueError:
        return default


def since_of(range_key: str, now: float) -> float | None:
    seconds = TIME_RANGES.get(range_key)
    return None if seconds is None else now - seconds


# -- the error queue ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorFilters:
    """The queue's filters, sort and page, as they appear in the URL."""

    namespace: str = ""
    workload: str = ""
    priorities: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    rule: str = ""
    search: str = ""
    range: str = "all"
    sort: str = "priority"
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    # The same names as ``GET /api/errors`` takes, so a console URL's query string works on the API too.
    PARAMS = ("namespace", "workload", "priority", "status", "rule", "search", "since", "sort", "page", "page_size")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ErrorFilters:
        priorities = []
        for p in _split(params.get("priority")):
            try:
                priorities.append(Priority.parse(p).value)
            except ValueError:
                continue
        statuses = [s for s in (x.lower() for x in _split(params.get("status"))) if s in Status._value2member_map_]
        rng = _first(params.get("since")) or "all"
        sort = _first(params.get("sort")) or "priority"
        size = _int(params.get("page_size"), DEFAULT_PAGE_SIZE, high=MAX_PAGE_SIZE)
        return cls(
            namespace=_first(params.get("namespace")),
            workload=_first(params.get("workload")),
            priorities=tuple(sorted(set(priorities))),
            statuses=tuple(s for s in Status._value2member_map_ if s in statuses),
            rule=_first(params.get("rule")),
            search=_first(params.get("search")),
            range=rng if rng in TIME_RANGES else "all",
            sort=sort if sort in SORTS else "priority",
            page=_int(params.get("page"), 1),
            page_size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE,
        )

    def to_params(self) -> dict[str, str | list[str]]:
        """Only what differs from the defaults, so that a plain queue has a plain URL.

        Priorities and statuses repeat (``?priority=P1&priority=P2``), as the API takes them.
        """
        default = ErrorFilters()
        out: dict[str, str | list[str]] = {}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.workload:
            out["workload"] = self.workload
        if self.priorities:
            out["priority"] = list(self.priorities)
        if self.statuses:
            out["status"] = list(self.statuses)
        if self.rule:
            out["rule"] = self.rule
        if self.search:
            out["search"] = self.search
        if self.range != default.range:
            out["since"] = self.range
        if self.sort != default.sort:
            out["sort"] = self.sort
        if self.page != 1:
            out["page"] = str(self.page)
        if self.page_size != default.page_size:
            out["page_size"] = str(self.page_size)
        return out

    def query(self, *, now: float) -> GroupQuery:
        sort: GroupSort = self.sort if self.sort in SORTS else "priority"  # type: ignore[assignment]
        return GroupQuery(
            namespace=self.namespace or None,
            workload=self.workload or None,
            priorities=tuple(Priority(p) for p in self.priorities),
            statuses=tuple(Status(s) for s in self.statuses),
            rule=self.rule or None,
            search=self.search or None,
            since=since_of(self.range, now),
            sort=sort,
            page=self.page,
            page_size=self.page_size,
        )

    @property
    def active(self) -> bool:
        """True when anything narrows the queue (sort and page do not)."""
        return (
            bool(self.namespace or self.workload or self.priorities or self.statuses or self.rule or self.search)
            or self.range != "all"
        )

    def describe(self) -> str:
        parts = []
        if self.priorities:
            parts.append("priority " + "/".join(self.priorities))
        if self.statuses:
            parts.append("status " + "/".join(self.statuses))
        if self.namespace:
            parts.append(f"namespace {self.namespace}")
        if self.workload:
            parts.append(f"workload {self.workload}")
        if self.rule:
            parts.append(f"rule {self.rule}")
        if self.search:
            parts.append(f'text "{self.search}"')
        if self.range != "all":
            parts.append(f"seen in the {TIME_RANGE_LABELS[self.range]}")
        return ", ".join(parts) if parts else "no filters"

    def with_page(self, page: int) -> ErrorFilters:
        return replace(self, page=max(1, page))


def group_page(store: Store, filters: ErrorFilters, *, now: float) -> Page[ErrorGroup]:
    """One page of the queue; a page past the end falls back to the last page."""
    page = store.list_groups(filters.query(now=now))
    if not page.items and page.total and filters.page > page.pages:
        page = store.list_groups(filters.with_page(page.pages).query(now=now))
    return page


def group_row(g: ErrorGroup) -> dict[str, Any]:
    """The queue's columns for one group (the table and the CSV share them)."""
    return {
        "id": g.id,
        "priority": g.priority.value,
        "impact": round(g.impact, 1),
        "count": g.count,
        "first_seen": g.first_seen,
        "last_seen": g.last_seen,
        "namespace": g.namespace,
        "workload": g.workload,
        "container": g.container,
        "rule": g.rule,
        "status": g.status.value,
        "remediations": g.remediations,
        "pods": g.pod_count,
        "template": g.template,
        "status_by": g.status_by,
        "status_reason": g.status_reason,
    }


def _csv(rows: Iterable[Mapping[str, Any]], columns: tuple[str, ...]) -> str:
    """CSV of ``columns``; times (POSIX seconds) as ISO 8601 in UTC, like the API's CSV; formula-like
    text cells neutralised (:func:`sentinel.core.export.safe_cell`)."""
    times = {c for c in columns if c in ("time", "first_seen", "last_seen") or c.endswith("_at")}
    return csv_text(
        columns,
        ([iso_utc(row.get(c)) if c in times else row.get(c, "") for c in columns] for row in rows),
        lineterminator="\n",
    )


def groups_csv(store: Store, filters: ErrorFilters, *, now: float) -> str:
    """Every group the filters select (all pages, not just the one on screen), as CSV."""
    query = replace(filters.query(now=now), page=1, page_size=MAX_PAGE_SIZE)
    return _csv((group_row(g) for g in store.filtered_groups(query)), GROUP_COLUMNS)


# -- the audit log ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordFilters:
    """The history page's filters, as they appear in the URL."""

    action: str = ""
    result: str = ""
    decision: str = ""
    namespace: str = ""
    dry_run: str = ""  # "" any, "yes", "no"
    range: str = "all"
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RecordFilters:
        result = _first(params.get("result")).lower()
        decision = _first(params.get("decision")).lower()
        dry = _first(params.get("dry_run")).lower()
        rng = _first(params.get("since")) or "all"
        size = _int(params.get("page_size"), DEFAULT_PAGE_SIZE, high=MAX_PAGE_SIZE)
        return cls(
            action=_first(params.get("action")),
            result=result if result in ("success", "failed", "skipped") else "",
            decision=decision if decision in ("allowed", "denied") else "",
            namespace=_first(params.get("namespace")),
            dry_run={"true": "yes", "1": "yes", "yes": "yes", "false": "no", "0": "no", "no": "no"}.get(dry, ""),
            range=rng if rng in TIME_RANGES else "all",
            page=_int(params.get("page"), 1),
            page_size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE,
        )

    def to_params(self) -> dict[str, str]:
        out = {k: str(v) for k, v in asdict(self).items() if v and k not in ("range", "page", "page_size")}
        if self.range != "all":
            out["since"] = self.range
        if self.page != 1:
            out["page"] = str(self.page)
        if self.page_size != DEFAULT_PAGE_SIZE:
            out["page_size"] = str(self.page_size)
        return out

    def query(self, *, now: float) -> RecordQuery:
        return RecordQuery(
            action=self.action or None,
            result=self.result or None,
            decision=self.decision or None,
            namespace=self.namespace or None,
            dry_run=None if not self.dry_run else self.dry_run == "yes",
            since=since_of(self.range, now),
            page=self.page,
            page_size=self.page_size,
        )

    def with_page(self, page: int) -> RecordFilters:
        return replace(self, page=max(1, page))


def record_row(r: RemediationRecord) -> dict[str, Any]:
    return {
        "time": r.time,
        "action": r.action,
        "namespace": r.namespace,
        "kind": r.kind,
        "name": r.name,
        "workload": r.workload,
        "decision": r.decision,
        "result": r.result.value,
        "dry_run": r.dry_run,
        "reason": r.reason,
        "error": r.error,
        "requested_by": r.requested_by,
        "rule": r.rule,
        "group_id": r.group_id,
        "duration_ms": round(r.duration_ms, 1),
        "effective": r.effective,
        "id": r.id,
    }


def iter_records(store: Store, query: RecordQuery, *, limit: int | None = None) -> Iterator[RemediationRecord]:
    """Every record the query selects, page by page (newest first)."""
    page_no = 1
    seen = 0
    while True:
        page = store.list_remediations(replace(query, page=page_no, page_size=MAX_PAGE_SIZE))
        for r in page.items:
            yield r
            seen += 1
            if limit is not None and seen >= limit:
                return
        if page_no >= page.pages or not page.items:
            return
        page_no += 1


def records_csv(store: Store, filters: RecordFilters, *, now: float) -> str:
    return _csv((record_row(r) for r in iter_records(store, filters.query(now=now))), RECORD_COLUMNS)


def refusal_reasons(store: Store, filters: RecordFilters, *, now: float, limit: int = 5000) -> list[tuple[str, int]]:
    """Why actions were refused, most frequent first (the reason text up to its first detail)."""
    query = replace(filters.query(now=now), decision="denied")
    reasons: Counter[str] = Counter()
    for r in iter_records(store, query, limit=limit):
        reasons[_reason_kind(r.reason)] += 1
    return reasons.most_common()


def _reason_kind(reason: str) -> str:
    """``cooldown for rule 'x' on ns/w: 3m remaining`` -> ``cooldown for rule 'x' on ns/w``."""
    return reason.split(":", 1)[0].strip() or "(no reason given)"


# -- aggregates for the overview ----------------------------------------------------------------


@dataclass(slots=True)
class TopWorkloads:
    rows: list[dict[str, Any]] = field(default_factory=list)
    scanned: int = 0
    total: int = 0

    @property
    def partial(self) -> bool:
        return self.scanned < self.total


def top_workloads(store: Store, *, limit: int = 10, scan: int = MAX_PAGE_SIZE) -> TopWorkloads:
    """Workloads by occurrences, from the ``scan`` largest groups (exact when there are fewer)."""
    page = store.list_groups(GroupQuery(sort="count", page_size=scan))
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    for g in page.items:
        row = acc.setdefault(
            (g.namespace, g.workload),
            {
                "namespace": g.namespace,
                "workload": g.workload,
                "occurrences": 0,
                "groups": 0,
                "worst": g.priority.value,
            },
        )
        row["occurrences"] += g.count
        row["groups"] += 1
        if g.priority.rank < Priority(row["worst"]).rank:
            row["worst"] = g.priority.value
    rows = sorted(acc.values(), key=lambda r: (-r["occurrences"], r["namespace"], r["workload"]))[:limit]
    return TopWorkloads(rows=rows, scanned=len(page.items), total=page.total)


NEW_OR_WORSE = frozenset({"new", "escalated", "regressed"})


def live_feed(events: Iterable[Any], *, limit: int = 20) -> list[dict[str, Any]]:
    """New, escalated and regressed groups from the event bus's recent events (newest first)."""
    rows: list[dict[str, Any]] = []
    for e in events:
        data = e.data
        change = "new" if e.type == "error.new" else str(data.get("change", ""))
        if change == "lifecycle" and data.get("escalated"):
            change = "escalated"
        if change not in NEW_OR_WORSE:
            continue
        rows.append(
            {
                "time": e.time,
                "change": change,
                "priority": data.get("priority", ""),
                "namespace": data.get("namespace", ""),
                "workload": data.get("workload", ""),
                "template": data.get("template", ""),
                "count": data.get("count", 0),
                "id": data.get("id", ""),
            }
        )
        if len(rows) >= limit:
            break
    return rows
