"""``/api/stats``: totals, breakdowns, the rate over time, remediation results and poll health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query

from sentinel.api.deps import Clock, EngineChecks, Groups, NotifierDep, ReadinessDep, Redact
from sentinel.api.schemas import NotificationDestination, PollHealth, RatePoint, Stats, Totals

router = APIRouter(prefix="/api/stats", tags=["stats"])


def poll_health(engine: EngineChecks, redact: Callable[[str], str]) -> PollHealth:
    h = engine.health
    state, detail = engine.poll_state()
    return PollHealth(
        ok=state in ("ok", "follower"),
        state=state,
        detail=redact(detail),
        polls=h.polls,
        poll_errors=h.poll_errors,
        consecutive_errors=h.consecutive_errors,
        lines_read=h.lines_read,
        last_lines=h.last_lines,
        last_poll_at=h.last_poll_at,
        last_success_at=h.last_success_at,
        last_duration=h.last_duration,
        last_error=redact(h.last_error),
        leader=h.leader,
        cluster=redact(h.cluster),
        unread_lines=h.counts.unread_lines,
        unread_streams=dict(h.counts.unread),
        unresolved_bursts=h.counts.unresolved_bursts,
        late_lines=h.counts.late_lines,
        refused_lines=h.counts.refused_lines,
        coerced_labels=h.counts.coerced_labels,
        cursor_resets=h.counts.cursor_resets,
        last_cursor_reset=h.counts.last_cursor_reset,
    )


@router.get("", response_model=Stats, summary="Statistics")
def stats(
    store: Groups,
    clock: Clock,
    engine: ReadinessDep,
    notifier: NotifierDep,
    redact: Redact,
    minutes: Annotated[int, Query(ge=1, le=1440, description="length of the rate series, in minutes")] = 60,
) -> Stats:
    now = clock()
    s = store.stats(now=now, rate_minutes=minutes)
    return Stats(
        time=now,
        totals=Totals(
            groups=s.total_groups,
            occurrences=s.total_occurrences,
            remediations=s.remediations_reached,
        ),
        by_priority=s.by_priority,
        by_status=s.by_status,
        by_namespace=s.by_namespace,
        by_rule=s.by_rule,
        rate=[RatePoint.model_validate(p) for p in s.rate],
        remediations_by_result=s.remediations_by_result,
        last_error_at=s.last_error_at,
        last_remediation_at=s.last_remediation_at,
        poll=poll_health(engine, redact),
        notifications=[
            NotificationDestination.model_validate({**st, "last_error": redact(st["last_error"])})
            for st in notifier.status()
        ],
    )
