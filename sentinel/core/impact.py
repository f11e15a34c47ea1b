"""Impact score, burst escalation and the group lifecycle: how a poll's delta changes a group. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sentinel.core.model import ErrorGroup, GroupDelta, MinuteCounts, Status, cut_text

MAX_SAMPLES = 10
MAX_PODS = 50
MINUTES_KEPT = 24 * 60


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    """How groups age: auto-resolve after a quiet period; burst detection thresholds."""

    resolve_after: float = 3600.0
    burst_factor: float = 5.0
    burst_min_count: int = 20
    baseline_minutes: int = 60


def new_group(delta: GroupDelta, *, now: float) -> ErrorGroup:
    pods = list(delta.pods)[:MAX_PODS]
    return ErrorGroup(
        id=delta.key,
        namespace=delta.namespace,
        workload=delta.workload,
        container=delta.container,
        template=delta.template,
        rule=delta.rule,
        priority=delta.priority,
        base_priority=delta.priority,
        count=delta.count,
        first_seen=delta.first_seen,
        last_seen=delta.last_seen,
        pods=pods,
        pod_count=len(delta.pods),
        samples=[cut_text(x) for x in delta.samples[-MAX_SAMPLES:]],
        minute_counts=MinuteCounts(delta.minute_counts),
        status_changed_at=now,
        level=delta.level,
        template_key=delta.template_key,
        last_pod=delta.last_pod or (pods[-1] if pods else ""),
    )


def absorb(target: ErrorGroup, source: ErrorGroup) -> None:
    """Fold ``source`` into ``target`` (their templates merged into one): counts add up."""
    target.count += source.count
    if source.last_seen > target.last_seen and source.last_pod:
        target.last_pod = source.last_pod
    target.first_seen = min(target.first_seen, source.first_seen)
    target.last_seen = max(target.last_seen, source.last_seen)
    known = set(target.pods)
    for pod in source.pods:
        if pod not in known and len(target.pods) < MAX_PODS:
            target.pods.append(pod)
            known.add(pod)
    target.pod_count = max(target.pod_count, len(target.pods), source.pod_count)
    target.samples = (target.samples + source.samples)[-MAX_SAMPLES:]
    target.minute_counts.add(source.minute_counts)
    target.remediations += source.remediations
    if source.last_remediation_at and (target.last_remediation_at or 0) < source.last_remediation_at:
        target.last_remediation_at = source.last_remediation_at
    if source.priority.rank < target.priority.rank:
        target.priority = source.priority


def merge(group: ErrorGroup, delta: GroupDelta, *, now: float) -> str:
    """Add ``delta`` to ``group`` in place; returns "regressed" when a resolved group came back."""
    kind = "updated"
    group.count += delta.count
    group.first_seen = min(group.first_seen, delta.first_seen)
    group.last_seen = max(group.last_seen, delta.last_seen)
    if delta.rule == group.rule:
        if delta.priority != group.base_priority:  # the rule's priority changed (rules reload)
            group.base_priority = delta.priority
            if not group.escalated:
                group.priority = delta.priority
    elif delta.priority.rank < group.base_priority.rank:
        # A group takes the most urgent rule any of its lines matched: order does not matter.
        group.rule = delta.rule
        group.base_priority = delta.priority
        if not group.escalated or delta.priority.rank < group.priority.rank:
            group.priority = delta.priority
    known = set(group.pods)
    for pod in delta.pods:
        if pod not in known:
            group.pod_count += 1
            known.add(pod)
            if len(group.pods) < MAX_PODS:
                group.pods.append(pod)
    if delta.samples:
        group.samples = (group.samples + [cut_text(x) for x in delta.samples])[-MAX_SAMPLES:]
    group.minute_counts.add(delta.minute_counts, keep=MINUTES_KEPT)
    if delta.level:
        group.level = delta.level
    if delta.last_pod and delta.last_seen >= group.last_seen:
        group.last_pod = delta.last_pod
    if group.status is Status.RESOLVED:
        group.status = Status.REGRESSED
        group.status_changed_at = now
        group.status_by = "engine"
        group.status_reason = "came back after being resolved"
        kind = "regressed"
    elif group.status is Status.SNOOZED:
        if group.snooze_until_count is not None and group.count >= group.snooze_until_count:
            _wake(group, now, f"snooze ended: reached {group.snooze_until_count} occurrences")
        elif group.snooze_until is not None and now >= group.snooze_until:
            _wake(group, now, "snooze ended: time is up")
    return kind


def _wake(group: ErrorGroup, now: float, reason: str) -> None:
    group.status = Status.OPEN
    group.status_changed_at = now
    group.status_by = "engine"
    group.status_reason = reason
    group.snooze_until = None
    group.snooze_until_count = None


def rate_per_minute(group: ErrorGroup, *, now: float, minutes: int) -> float:
    """Mean occurrences per minute over the last ``minutes`` minutes ending at ``now``."""
    end = int(now // 60)
    start = end - minutes + 1
    return group.minute_counts.total(start, end + 1) / max(1, minutes)


def impact_score(group: ErrorGroup, *, now: float) -> float:
    """Orders groups within a priority: recent rate, spread over pods, recency. Higher is worse."""
    recent = rate_per_minute(group, now=now, minutes=5)
    age = max(0.0, now - group.last_seen)
    recency = math.exp(-age / 1800.0)  # halves roughly every 20 minutes of silence
    spread = 1.0 + math.log2(1 + group.pod_count)
    volume = math.log10(1 + group.count)
    return round((10.0 * math.log1p(recent) + volume) * spread * (0.25 + recency), 3)


def detect_burst(group: ErrorGroup, *, now: float, settings: LifecycleSettings) -> str:
    """A reason when the last minutes run far above the group's own baseline, else ""."""
    end = int(now // 60)
    counts = group.minute_counts
    recent = counts.total(end - 4, end + 1) / 5.0
    if recent * 5 < settings.burst_min_count:
        return ""
    if group.first_seen > now - 10 * 60:
        return ""  # too young to have a baseline
    baseline = counts.total(end - 4 - settings.baseline_minutes, end - 4) / max(1, settings.baseline_minutes)
    if recent >= settings.burst_factor * max(baseline, 0.2):
        return f"burst: {recent:.1f}/min over the last 5m vs a baseline of {baseline:.2f}/min"
    return ""


def refresh(group: ErrorGroup, *, now: float, settings: LifecycleSettings) -> bool:
    """Recompute impact, escalation and time-based lifecycle. Returns True when it escalated now."""
    group.impact = impact_score(group, now=now)
    reason = detect_burst(group, now=now, settings=settings)
    escalated_now = False
    if reason and not group.escalated:
        group.escalated = True
        group.escalation_reason = reason
        group.priority = group.base_priority.raised()
        escalated_now = group.priority != group.base_priority
    elif not reason and group.escalated:
        group.escalated = False
        group.escalation_reason = ""
        group.priority = group.base_priority
    if group.status is Status.SNOOZED and group.snooze_until is not None and now >= group.snooze_until:
        _wake(group, now, "snooze ended: time is up")
    if (
        group.status in (Status.OPEN, Status.REGRESSED, Status.ACKNOWLEDGED)
        and now - group.last_seen >= settings.resolve_after
    ):
        group.status = Status.RESOLVED
        group.status_changed_at = now
        group.status_by = "engine"
        group.status_reason = f"quiet for {int(settings.resolve_after // 60)}m"
    return escalated_now


TRANSITIONS = ("acknowledge", "snooze", "resolve", "reopen")


def transition(
    group: ErrorGroup,
    action: str,
    *,
    by: str,
    reason: str,
    now: float,
    until: float | None = None,
    more: int | None = None,
) -> None:
    """A person's status change. ``snooze`` needs ``until`` (a time) or ``more`` (N more occurrences)."""
    if action == "acknowledge":
        group.status = Status.ACKNOWLEDGED
    elif action == "resolve":
        group.status = Status.RESOLVED
    elif action == "reopen":
        group.status = Status.OPEN
    elif action == "snooze":
        if until is None and more is None:
            raise ValueError("snooze needs 'until' (a time) or 'more' (a number of occurrences)")
        if until is not None and until <= now:
            raise ValueError("snooze 'until' must be in the future")
        if more is not None and more < 1:
            raise ValueError("snooze 'more' must be at least 1")
        group.status = Status.SNOOZED
        group.snooze_until = until
        group.snooze_until_count = group.count + more if more is not None else None
    else:
        raise ValueError(f"unknown status action {action!r} (known: {', '.join(TRANSITIONS)})")
    if action != "snooze":
        group.snooze_until = None
        group.snooze_until_count = None
    group.status_changed_at = now
    group.status_by = by
    group.status_reason = reason
