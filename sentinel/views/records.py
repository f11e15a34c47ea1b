"""The remediation audit log as both faces read it: one row (:class:`RecordView`), the history
page's URL filters, every record a query selects, refusal reasons and the CSV export.

The API's ``RemediationRow`` has exactly :class:`RecordView`'s fields; the console's history row
(:func:`history_row`) is a selection of them. CSV exports cover every matching record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sentinel.core.model import RemediationRecord
from sentinel.store.base import MAX_PAGE_SIZE, RecordQuery, Store
from sentinel.views.export import counted_csv, rows_csv
from sentinel.views.params import DEFAULT_PAGE_SIZE, PAGE_SIZES, TIME_RANGES, first, integer, since_of


@dataclass(frozen=True, slots=True)
class RecordView:
    """One audit record (one API row, one CSV row; ``params`` and ``changes`` are JSON objects in CSV)."""

    id: str
    time: float
    group_id: str
    rule: str
    action: str
    namespace: str
    workload: str
    kind: str
    name: str
    decision: str
    reason: str
    dry_run: bool
    result: str
    error: str
    duration_ms: float
    requested_by: str
    effective: bool | None
    params: dict[str, Any]
    changes: dict[str, Any]
    reached_cluster: bool = False
    count: int = 1
    last_time: float | None = None

    @classmethod
    def of(cls, r: RemediationRecord) -> RecordView:
        return cls(
            id=r.id,
            time=r.time,
            group_id=r.group_id,
            rule=r.rule,
            action=r.action,
            namespace=r.namespace,
            workload=r.workload,
            kind=r.kind,
            name=r.name,
            decision=r.decision,
            reason=r.reason,
            dry_run=r.dry_run,
            result=r.result.value,
            error=r.error,
            duration_ms=r.duration_ms,
            requested_by=r.requested_by,
            effective=r.effective,
            params=dict(r.params),
            changes=dict(r.changes),
            reached_cluster=r.reached_cluster,
            count=r.count,
            last_time=r.last_time,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


VIEW_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RecordView))

# The console's history columns (its table and its CSV download).
HISTORY_FIELDS = (
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


def history_row(v: RecordView) -> dict[str, Any]:
    row = v.to_dict()
    row["duration_ms"] = round(v.duration_ms, 1)
    return {c: row[c] for c in HISTORY_FIELDS}


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
        result = first(params.get("result")).lower()
        decision = first(params.get("decision")).lower()
        dry = first(params.get("dry_run")).lower()
        rng = first(params.get("since")) or "all"
        size = integer(params.get("page_size"), DEFAULT_PAGE_SIZE, high=MAX_PAGE_SIZE)
        return cls(
            action=first(params.get("action")),
            result=result if result in ("success", "failed", "skipped") else "",
            decision=decision if decision in ("allowed", "denied") else "",
            namespace=first(params.get("namespace")),
            dry_run={"true": "yes", "1": "yes", "yes": "yes", "false": "no", "0": "no", "no": "no"}.get(dry, ""),
            range=rng if rng in TIME_RANGES else "all",
            page=integer(params.get("page"), 1),
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


def iter_records(store: Store, query: RecordQuery, *, limit: int | None = None) -> Iterator[RemediationRecord]:
    """Every record the query selects, page by page (newest first; the query's page ignored)."""
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


def export_csv(store: Store, query: RecordQuery, *, columns: Sequence[str] = VIEW_COLUMNS) -> tuple[str, int]:
    """CSV of every record the query's filters select: the API's ``format=csv``."""
    return counted_csv(columns, (RecordView.of(r).to_dict() for r in iter_records(store, query)))


def records_csv(store: Store, filters: RecordFilters, *, now: float) -> str:
    """The console's download: every record the filters select, its columns."""
    rows = (history_row(RecordView.of(r)) for r in iter_records(store, filters.query(now=now)))
    return rows_csv(HISTORY_FIELDS, rows)


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
