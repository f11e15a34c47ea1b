"""Error groups as both faces read them: one row (:class:`GroupView`), the queue's URL filters, a
page, the whole filtered set and its CSV.

The API's ``GroupRow`` has exactly :class:`GroupView`'s fields; the console's queue row
(:func:`queue_row`) is a selection of them. CSV exports always cover every group the filters
select (every page), through :func:`sentinel.views.export.rows_csv`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Protocol

from sentinel.core.model import ErrorGroup, Priority, Status, cut_text
from sentinel.store.base import MAX_PAGE_SIZE, SORTS, GroupQuery, GroupSort, Page, Store
from sentinel.views.export import counted_csv, rows_csv
from sentinel.views.params import (
    DEFAULT_PAGE_SIZE,
    PAGE_SIZES,
    TIME_RANGE_LABELS,
    TIME_RANGES,
    first,
    integer,
    since_of,
    split,
)

SOURCES = ("logs", "cluster", "both")


class ClusterFacts(Protocol):
    """What the cluster side knows of a group (``sentinel.engine.incidents.Incidents``)."""

    def source_of(self, g: ErrorGroup) -> str: ...

    def is_new_since_rollout(self, g: ErrorGroup) -> bool: ...


@dataclass(frozen=True, slots=True)
class ClusterFilter:
    """The filters the store does not know: new since the last rollout, where occurrences came from."""

    new_since_rollout: bool | None = None
    source: str | None = None  # logs, cluster, both

    @property
    def active(self) -> bool:
        return self.new_since_rollout is not None or self.source is not None

    def keeps(self, g: ErrorGroup, facts: ClusterFacts | None) -> bool:
        source = facts.source_of(g) if facts is not None else "logs"
        new = facts.is_new_since_rollout(g) if facts is not None else False
        return (self.new_since_rollout is None or new == self.new_since_rollout) and (
            self.source is None or source == self.source
        )


NO_CLUSTER_FILTER = ClusterFilter()

SORT_LABELS: dict[str, str] = {
    "priority": "most urgent first",
    "impact": "highest impact",
    "last_seen": "most recently seen",
    "first_seen": "newest groups",
    "count": "most occurrences",
}


@dataclass(frozen=True, slots=True)
class GroupView:
    """One error group in a list: what the API's rows, the console's queue and both CSVs show."""

    id: str
    priority: str
    priority_label: str
    status: str
    namespace: str
    workload: str
    container: str
    rule: str
    template: str
    level: str
    count: int
    pod_count: int
    first_seen: float
    last_seen: float
    impact: float
    escalated: bool
    remediations: int
    last_remediation_at: float | None
    status_by: str = ""
    status_reason: str = ""
    source: str = "logs"  # where the occurrences came from: logs, cluster (pod status) or both
    new_since_rollout: bool = False  # first seen within the rollout window after the revision running now

    @classmethod
    def of(cls, g: ErrorGroup, facts: ClusterFacts | None = None) -> GroupView:
        return cls(
            id=g.id,
            priority=g.priority.value,
            priority_label=g.priority.label,
            status=g.status.value,
            namespace=g.namespace,
            workload=g.workload,
            container=g.container,
            rule=g.rule,
            template=cut_text(g.template),
            level=g.level,
            count=g.count,
            pod_count=g.pod_count or len(g.pods),
            first_seen=g.first_seen,
            last_seen=g.last_seen,
            impact=g.impact,
            escalated=g.escalated,
            remediations=g.remediations,
            last_remediation_at=g.last_remediation_at,
            status_by=g.status_by,
            status_reason=g.status_reason,
            source=facts.source_of(g) if facts is not None else "logs",
            new_since_rollout=facts.is_new_since_rollout(g) if facts is not None else False,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


VIEW_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(GroupView))

# The console's queue columns (its table and its CSV download).
QUEUE_FIELDS = (
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


def queue_row(v: GroupView) -> dict[str, Any]:
    """The console queue's columns for one group (the table and the CSV share them)."""
    row = v.to_dict()
    row["impact"] = round(v.impact, 1)
    row["pods"] = v.pod_count
    return {c: row[c] for c in QUEUE_FIELDS}


# -- filters ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorFilters:
    """The queue's filters, sort and page, as they appear in the console's URL.

    :meth:`from_params` is tolerant (an unknown value is dropped, never an error) and
    :meth:`to_params` writes only what differs from the defaults."""

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
        for p in split(params.get("priority")):
            try:
                priorities.append(Priority.parse(p).value)
            except ValueError:
                continue
        statuses = [s for s in (x.lower() for x in split(params.get("status"))) if s in Status._value2member_map_]
        rng = first(params.get("since")) or "all"
        sort = first(params.get("sort")) or "priority"
        size = integer(params.get("page_size"), DEFAULT_PAGE_SIZE, high=MAX_PAGE_SIZE)
        return cls(
            namespace=first(params.get("namespace")),
            workload=first(params.get("workload")),
            priorities=tuple(sorted(set(priorities))),
            statuses=tuple(s for s in Status._value2member_map_ if s in statuses),
            rule=first(params.get("rule")),
            search=first(params.get("search")),
            range=rng if rng in TIME_RANGES else "all",
            sort=sort if sort in SORTS else "priority",
            page=integer(params.get("page"), 1),
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


# -- reading ------------------------------------------------------------------------------------


def _selected(store: Store, query: GroupQuery, facts: ClusterFacts | None, cluster: ClusterFilter) -> list[ErrorGroup]:
    return [g for g in store.filtered_groups(query) if cluster.keeps(g, facts)]


def _page_of(store: Store, query: GroupQuery, facts: ClusterFacts | None, cluster: ClusterFilter) -> Page[ErrorGroup]:
    """The store's page; with a cluster filter, the store's whole selection filtered, then paged here."""
    if not cluster.active:
        return store.list_groups(query)
    hits = _selected(store, query, facts, cluster)
    start = (query.page - 1) * query.page_size
    return Page(hits[start : start + query.page_size], len(hits), query.page, query.page_size)


def list_page(
    store: Store, query: GroupQuery, *, facts: ClusterFacts | None = None, cluster: ClusterFilter = NO_CLUSTER_FILTER
) -> Page[GroupView]:
    """One page of rows, as the query asks (the API's list)."""
    page = _page_of(store, query, facts, cluster)
    return Page([GroupView.of(g, facts) for g in page.items], page.total, page.page, page.page_size)


def group_page(
    store: Store,
    filters: ErrorFilters,
    *,
    now: float,
    facts: ClusterFacts | None = None,
    cluster: ClusterFilter = NO_CLUSTER_FILTER,
) -> Page[ErrorGroup]:
    """One page of the console's queue; a page past the end falls back to the last page."""
    page = _page_of(store, filters.query(now=now), facts, cluster)
    if not page.items and page.total and filters.page > page.pages:
        page = _page_of(store, filters.with_page(page.pages).query(now=now), facts, cluster)
    return page


def every_row(
    store: Store, query: GroupQuery, *, facts: ClusterFacts | None = None, cluster: ClusterFilter = NO_CLUSTER_FILTER
) -> Iterator[GroupView]:
    """Every group the query's filters select (all pages, its page ignored), in its sort order."""
    for g in store.filtered_groups(replace(query, page=1, page_size=MAX_PAGE_SIZE)):
        if cluster.keeps(g, facts):
            yield GroupView.of(g, facts)


def export_csv(
    store: Store,
    query: GroupQuery,
    *,
    columns: Sequence[str] = VIEW_COLUMNS,
    facts: ClusterFacts | None = None,
    cluster: ClusterFilter = NO_CLUSTER_FILTER,
) -> tuple[str, int]:
    """CSV of every group the filters select: the API's ``format=csv`` (``columns`` = the row's fields)."""
    return counted_csv(columns, (v.to_dict() for v in every_row(store, query, facts=facts, cluster=cluster)))


def groups_csv(
    store: Store,
    filters: ErrorFilters,
    *,
    now: float,
    facts: ClusterFacts | None = None,
    cluster: ClusterFilter = NO_CLUSTER_FILTER,
) -> str:
    """The console's download: every group the filters select (not just the page on screen), its columns."""
    rows = every_row(store, filters.query(now=now), facts=facts, cluster=cluster)
    return rows_csv(QUEUE_FIELDS, (queue_row(v) for v in rows))


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
