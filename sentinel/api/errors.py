"""``/api/errors``: the grouped errors, filtered, sorted and paged; one group; status changes; manual actions."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from sentinel.api.common import CSV_RESPONSES, ApiError, csv_response, not_found, parse_time, redact
from sentinel.api.deps import Format, Name, Page, PageSize, RuntimeDep, Since, Writer
from sentinel.api.schemas import (
    GroupDetail,
    GroupList,
    GroupRow,
    Problem,
    RemediateRequest,
    RemediationRow,
    StatusChange,
)
from sentinel.core.model import ErrorGroup, Priority, Status
from sentinel.engine.runtime import Runtime
from sentinel.store.base import MAX_PAGE_SIZE, GroupQuery, RecordQuery
from sentinel.store.base import Page as StorePage

CONTEXT_WAIT = 2.0  # seconds a detail request waits for a first context read

router = APIRouter(prefix="/api/errors", tags=["errors"])

DETAIL_RECORDS = 50


GroupId = Annotated[str, Path(min_length=1, max_length=128, description="the group id (16 hex characters)")]


def _priorities(values: list[str]) -> tuple[Priority, ...]:
    out: list[Priority] = []
    problems: list[str] = []
    for v in values:
        try:
            out.append(Priority.parse(v))
        except ValueError as err:
            problems.append(f"priority: {err}")
    if problems:
        raise ApiError(422, "invalid priority filter", problems)
    return tuple(dict.fromkeys(out))


def _detail(runtime: Runtime, group_id: str) -> GroupDetail:
    group = runtime.store.get_group(group_id)
    if group is None:
        raise not_found("error group", group_id)
    page = runtime.store.list_remediations(RecordQuery(group_id=group_id, page_size=DETAIL_RECORDS))
    grafana = runtime.config.grafana
    detail = GroupDetail.build(
        group, page.items, page.total, grafana_url=grafana.url, datasource_uid=grafana.loki_datasource_uid
    )
    # Read by the context thread; a request waits a little for a first read, never for a slow API server.
    ctx = runtime.context.get(group.namespace, group.workload, wait=CONTEXT_WAIT)
    detail.context = json.loads(redact(runtime, json.dumps(ctx)))
    # incidents: deploy correlation and where the occurrences came from
    detail.rollout = runtime.incidents.rollout_of(group, wait=CONTEXT_WAIT)
    detail.source = runtime.incidents.source_of(group)
    detail.new_since_rollout = bool(detail.rollout.get("new_since_rollout"))
    return detail


def _incidents_rows(runtime: Runtime, groups: list[ErrorGroup]) -> list[GroupRow]:
    """incidents: rows with ``source`` and ``new_since_rollout`` filled in."""
    rows = []
    for g in groups:
        row = GroupRow.of(g)
        row.source = runtime.incidents.source_of(g)
        row.new_since_rollout = runtime.incidents.is_new_since_rollout(g)
        rows.append(row)
    return rows


@router.get("", response_model=GroupList, responses=CSV_RESPONSES, summary="List error groups")
def list_errors(
    runtime: RuntimeDep,
    namespace: Name = None,
    workload: Name = None,
    pod: Name = None,
    priority: Annotated[
        list[str] | None, Query(max_length=8, description="repeatable: P1..P4 or critical, high, medium, low")
    ] = None,
    status: Annotated[list[Status] | None, Query(max_length=5, description="repeatable")] = None,
    rule: Name = None,
    search: Annotated[
        str | None, Query(max_length=200, description="text in the template, workload or samples")
    ] = None,
    since: Since = None,
    sort: Annotated[Literal["priority", "impact", "last_seen", "count", "first_seen"], Query()] = "priority",
    page: Page = 1,
    page_size: PageSize = 100,
    page_size_go: Annotated[
        int | None,
        Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE, description="the Go tool's name for page_size"),
    ] = None,
    format: Format = "json",
    new_since_rollout: Annotated[
        bool | None, Query(description="only groups first seen within the rollout window after the current revision")
    ] = None,
    source: Annotated[
        Literal["logs", "cluster", "both"] | None, Query(description="where the occurrences came from")
    ] = None,
) -> GroupList | Response:
    if page_size_go is not None:
        if page_size != 100 and page_size != page_size_go:
            raise ApiError(422, "invalid request", ["pageSize: and page_size name the same thing: give one"])
        page_size = page_size_go
    query = GroupQuery(
        namespace=namespace or None,
        workload=workload or None,
        pod=pod or None,
        priorities=_priorities(priority or []),
        statuses=tuple(dict.fromkeys(status or [])),
        rule=rule or None,
        search=search or None,
        since=parse_time(since, now=runtime.clock(), name="since"),
        sort=sort,
        page=page,
        page_size=page_size,
    )
    if new_since_rollout is None and source is None:
        result = runtime.store.list_groups(query)
    else:  # incidents: filters the store does not know; applied here, then paged
        inc = runtime.incidents
        hits = [
            g
            for g in runtime.store.filtered_groups(query)
            if (new_since_rollout is None or inc.is_new_since_rollout(g) == new_since_rollout)
            and (source is None or inc.source_of(g) == source)
        ]
        start = (page - 1) * page_size
        result = StorePage(hits[start : start + page_size], len(hits), page, page_size)
    rows = _incidents_rows(runtime, result.items)
    if format == "csv":
        return csv_response(GroupRow, rows, filename="errors.csv", total=result.total)
    return GroupList(items=rows, total=result.total, page=result.page, page_size=result.page_size, pages=result.pages)


@router.get("/{group_id}", response_model=GroupDetail, responses={404: {"model": Problem}}, summary="One error group")
def get_error(runtime: RuntimeDep, group_id: GroupId) -> GroupDetail:
    return _detail(runtime, group_id)


@router.patch(
    "/{group_id}",
    response_model=GroupDetail,
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}},
    summary="Acknowledge, snooze, resolve or reopen a group",
)
def change_status(runtime: RuntimeDep, who: Writer, group_id: GroupId, change: StatusChange) -> GroupDetail:
    until = change.until
    if change.duration is not None:
        until = runtime.clock() + change.duration
    try:
        runtime.set_status(group_id, change.action, by=who, reason=change.reason, until=until, more=change.more)
    except KeyError:
        raise not_found("error group", group_id) from None
    except ValueError as err:
        raise ApiError(422, f"cannot {change.action} this group", [str(err)]) from None
    return _detail(runtime, group_id)


@router.post(
    "/{group_id}/remediate",
    response_model=RemediationRow,
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}},
    summary="Ask for a remediation action on a group",
    description=(
        "The request goes through the same safety decision as the engine's own actions and is written "
        "to the audit log with who asked; `decision` and `reason` in the answer say whether it ran."
    ),
)
def remediate(runtime: RuntimeDep, who: Writer, group_id: GroupId, body: RemediateRequest) -> RemediationRow:
    try:
        record = runtime.request_action(group_id, action=body.action, params=body.params, by=who)
    except KeyError:
        raise not_found("error group", group_id) from None
    except ValueError as err:
        raise ApiError(422, "invalid action", [str(err)]) from None
    return RemediationRow.of(record)
