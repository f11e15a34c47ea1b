"""``/api/errors``: the grouped errors, filtered, sorted and paged; one group; status changes; manual actions."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from sentinel.api.commands import CommandQueued
from sentinel.api.common import CSV_RESPONSES, ApiError, csv_response, not_found, parse_time
from sentinel.api.deps import (
    Clock,
    ClusterContext,
    CommandsDep,
    ConfigDep,
    Format,
    Groups,
    IncidentsDep,
    Name,
    Page,
    PageSize,
    Redact,
    Since,
    Writer,
)
from sentinel.api.schemas import (
    GroupDetail,
    GroupList,
    GroupRow,
    Problem,
    RemediateRequest,
    RemediationRow,
    StatusChange,
)
from sentinel.core.model import Priority, Status
from sentinel.errors import SafetyRefused
from sentinel.store.base import MAX_PAGE_SIZE, GroupQuery, RecordQuery
from sentinel.views import groups as group_views
from sentinel.views.records import RecordView

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


def _detail(
    store: Groups,
    config: ConfigDep,
    context: ClusterContext,
    incidents: IncidentsDep,
    redact: Redact,
    group_id: GroupId,
) -> GroupDetail:
    group = store.get_group(group_id)
    if group is None:
        raise not_found("error group", group_id)
    page = store.list_remediations(RecordQuery(group_id=group_id, page_size=DETAIL_RECORDS))
    grafana = config.grafana
    detail = GroupDetail.build(
        group, page.items, page.total, grafana_url=grafana.url, datasource_uid=grafana.loki_datasource_uid
    )
    # Read by the context thread; a request waits a little for a first read, never for a slow API server.
    ctx = context.get(group.namespace, group.workload, wait=CONTEXT_WAIT)
    detail.context = json.loads(redact(json.dumps(ctx)))
    # deploy correlation, and where the occurrences came from
    detail.rollout = incidents.rollout_of(group, wait=CONTEXT_WAIT)
    detail.source = incidents.source_of(group)
    detail.new_since_rollout = bool(detail.rollout.get("new_since_rollout"))
    return detail


Detail = Annotated[GroupDetail, Depends(_detail)]


@router.get("", response_model=GroupList, responses=CSV_RESPONSES, summary="List error groups")
def list_errors(
    store: Groups,
    clock: Clock,
    incidents: IncidentsDep,
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
        since=parse_time(since, now=clock(), name="since"),
        sort=sort,
        page=page,
        page_size=page_size,
    )
    cluster = group_views.ClusterFilter(new_since_rollout=new_since_rollout, source=source)
    if format == "csv":  # every group the filters select, not one page
        text, total = group_views.export_csv(
            store, query, columns=list(GroupRow.model_fields), facts=incidents, cluster=cluster
        )
        return csv_response(text, filename="errors.csv", total=total)
    result = group_views.list_page(store, query, facts=incidents, cluster=cluster)
    rows = [GroupRow.of(v) for v in result.items]
    return GroupList(items=rows, total=result.total, page=result.page, page_size=result.page_size, pages=result.pages)


@router.get("/{group_id}", response_model=GroupDetail, responses={404: {"model": Problem}}, summary="One error group")
def get_error(detail: Detail) -> GroupDetail:
    return detail


@router.patch(
    "/{group_id}",
    response_model=GroupDetail,
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}},
    summary="Acknowledge, snooze, resolve or reopen a group",
)
def change_status(
    commands: CommandsDep,
    clock: Clock,
    who: Writer,
    group_id: GroupId,
    change: StatusChange,
    store: Groups,
    config: ConfigDep,
    context: ClusterContext,
    incidents: IncidentsDep,
    redact: Redact,
) -> GroupDetail:
    until = change.until
    if change.duration is not None:
        until = clock() + change.duration
    try:
        commands.set_status(group_id, change.action, by=who, reason=change.reason, until=until, more=change.more)
    except KeyError:
        raise not_found("error group", group_id) from None
    except ValueError as err:
        raise ApiError(422, f"cannot {change.action} this group", [str(err)]) from None
    return _detail(store, config, context, incidents, redact, group_id)


@router.post(
    "/{group_id}/remediate",
    response_model=RemediationRow,
    responses={
        202: {"model": CommandQueued, "description": "a follower's request, queued: the leader has not answered yet"},
        401: {"model": Problem},
        403: {"model": Problem},
        404: {"model": Problem},
        409: {"model": Problem},
    },
    summary="Ask for a remediation action on a group",
    description=(
        "The request goes through the same safety decision as the engine's own actions and is written "
        "to the audit log with who asked; `decision` and `reason` in the answer say whether it ran. "
        "On a follower replica with a shared store (`store.type: postgresql`) the leader runs it, under the "
        "same limits, audited as `<user> via <follower>`, and this is its answer; 202 with the queued "
        "command to follow at `GET /api/commands/{id}` when it has not answered within a few seconds; 409 "
        "when the leader saw it too late (more than 60 s after it was asked) and did not run it. With a "
        "store that is not shared, a follower refuses it (`reason_code: follower`)."
    ),
)
def remediate(commands: CommandsDep, who: Writer, group_id: GroupId, body: RemediateRequest) -> RemediationRow:
    try:
        record = commands.request_action(group_id, action=body.action, params=body.params, by=who)
    except KeyError:
        raise not_found("error group", group_id) from None
    except ValueError as err:
        raise ApiError(422, "invalid action", [str(err)]) from None
    except SafetyRefused as err:
        raise ApiError(409, err.reason) from None
    return RemediationRow.of(RecordView.of(record))
