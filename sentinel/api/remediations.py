"""``/api/remediations``: the audit log, newest first, filtered and paged, as JSON; as CSV every matching record."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from sentinel.api.common import CSV_RESPONSES, csv_response, parse_time
from sentinel.api.deps import Clock, Format, Groups, Name, Page, PageSize, Since
from sentinel.api.schemas import RemediationList, RemediationRow
from sentinel.store.base import RecordQuery
from sentinel.views import records as record_views
from sentinel.views.records import RecordView

router = APIRouter(prefix="/api/remediations", tags=["remediations"])


@router.get("", response_model=RemediationList, responses=CSV_RESPONSES, summary="The remediation audit log")
def list_remediations(
    store: Groups,
    clock: Clock,
    group_id: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    result: Annotated[Literal["success", "failed", "skipped"] | None, Query()] = None,
    decision: Annotated[Literal["allowed", "denied"] | None, Query()] = None,
    namespace: Name = None,
    rule: Name = None,
    dry_run: bool | None = None,
    since: Since = None,
    until: Since = None,
    page: Page = 1,
    page_size: PageSize = 100,
    format: Format = "json",
) -> RemediationList | Response:
    now = clock()
    query = RecordQuery(
        group_id=group_id or None,
        action=action or None,
        result=result,
        decision=decision,
        namespace=namespace or None,
        rule=rule or None,
        dry_run=dry_run,
        since=parse_time(since, now=now, name="since"),
        until=parse_time(until, now=now, name="until"),
        page=page,
        page_size=page_size,
    )
    if format == "csv":  # every record the filters select, not one page
        text, total = record_views.export_csv(store, query, columns=list(RemediationRow.model_fields))
        return csv_response(text, filename="remediations.csv", total=total)
    found = store.list_remediations(query)
    rows = [RemediationRow.of(RecordView.of(r)) for r in found.items]
    return RemediationList(items=rows, total=found.total, page=found.page, page_size=found.page_size, pages=found.pages)
