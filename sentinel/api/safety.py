"""``/api/safety``: the remediation safety state (limits, budget, cooldowns, breakers) and breaker resets.

A breaker opens for a workload after several ineffective actions in a row; automatic actions there
stop until a person resets it, here or in the console's Settings page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter

from sentinel.api.commands import CommandQueued
from sentinel.api.common import ApiError
from sentinel.api.deps import Clock, CommandsDep, Redact, RemediatorDep, Writer
from sentinel.api.schemas import Problem
from sentinel.api.schemas_state import (
    BreakerOut,
    BreakerReset,
    BreakerResetResult,
    Budget,
    ClusterInfo,
    CooldownOut,
    SafetyLimitsOut,
    SafetyView,
    WorkloadActions,
)
from sentinel.core.policy import Breaker, SafetyState
from sentinel.errors import SafetyRefused
from sentinel.remediation.remediator import Remediator

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/safety", tags=["safety"])


def _breaker(workload: str, b: Breaker, state: SafetyState) -> BreakerOut:
    return BreakerOut(
        workload=workload,
        state="open" if b.open else "closed",
        reason=b.reason,
        opened_at=b.opened_at,
        reset_by=b.reset_by,
        reset_at=b.reset_at,
        ineffective=state.ineffective.get(workload, 0),
    )


def safety_view(remediator: Remediator, *, now: float, redact: Callable[[str], str]) -> SafetyView:
    summary = remediator.summary()
    state = remediator.state()
    limits = remediator.limits
    used = int(summary["actions_last_hour"])
    in_flight = set(summary["in_flight"])
    workloads = sorted(set(state.workload_actions) | in_flight)
    return SafetyView(
        time=now,
        limits=SafetyLimitsOut(
            enabled=limits.enabled,
            dry_run=limits.dry_run,
            max_actions_per_hour=limits.max_actions_per_hour,
            per_workload_per_hour=limits.per_workload_per_hour,
            excluded_namespaces=sorted(limits.excluded_namespaces),
            breaker_threshold=limits.breaker_threshold,
            effectiveness_window=limits.effectiveness_window,
        ),
        budget=Budget(
            used=used, limit=limits.max_actions_per_hour, remaining=max(0, limits.max_actions_per_hour - used)
        ),
        workloads=[
            WorkloadActions(
                workload=w,
                actions_last_hour=state.actions_last_hour(now, w),
                limit=limits.per_workload_per_hour,
                in_flight=w in in_flight,
            )
            for w in workloads
        ],
        cooldowns=[
            CooldownOut(rule=c["rule"], workload=c["workload"], until=c["until"], remaining=max(0.0, c["remaining"]))
            for c in summary["cooldowns"]
        ],
        breakers=[_breaker(w, b, state) for w, b in sorted(state.breakers.items())],
        pending_checks=int(summary["pending_checks"]),
        cluster=ClusterInfo(
            configured=summary.get("cluster") is not None,
            host=redact(str(summary["cluster"])) if summary.get("cluster") is not None else None,
            note=redact(str(summary.get("cluster_note") or "")),
        ),
    )


@router.get("", response_model=SafetyView, summary="The remediation safety state: limits, budget, cooldowns, breakers")
def get_safety(remediator: RemediatorDep, clock: Clock, redact: Redact) -> SafetyView:
    return safety_view(remediator, now=clock(), redact=redact)


@router.post(
    "/breakers/reset",
    response_model=BreakerResetResult,
    responses={
        202: {"model": CommandQueued, "description": "a follower's reset, queued: the leader has not answered yet"},
        401: {"model": Problem},
        403: {"model": Problem},
        404: {"model": Problem},
        409: {"model": Problem},
    },
    summary="Reset (close) a workload's circuit breaker",
    description=(
        "Closes the breaker of `workload` (`namespace/name`), so automatic actions may run there again, and "
        "records who did it (`X-Sentinel-User`); a `remediation` event with `event: breaker.reset` is "
        "published on `/ws`. 404 when that workload has no breaker. On a follower replica with a shared store "
        "(`store.type: postgresql`) the leader resets it (recorded as `<user> via <follower>`): the answer is "
        "the leader's, or 202 with the queued command to follow at `GET /api/commands/{id}` when it has not "
        "answered within a few seconds; with a store that is not shared, 409 (reset it on the leader)."
    ),
)
def reset_breaker(
    remediator: RemediatorDep, commands: CommandsDep, who: Writer, body: BreakerReset
) -> BreakerResetResult:
    workload = body.workload
    try:
        was_open = commands.reset_breaker(workload, by=who)
    except KeyError:
        raise ApiError(404, f"no breaker for workload {workload!r}") from None
    except SafetyRefused as err:
        raise ApiError(409, err.reason) from None
    state = remediator.state()
    breaker = _breaker(workload, state.breakers[workload], state)
    log.info("[%s] breaker reset through the API by %s (was %s)", workload, who, "open" if was_open else "closed")
    return BreakerResetResult(workload=workload, was_open=was_open, by=who, breaker=breaker)
