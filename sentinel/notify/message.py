"""What a notification says: a snapshot of the group (or the remediation) taken when it fires.

Pure: built from an :class:`ErrorGroup` (and a :class:`RemediationRecord`) plus ``now``; no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sentinel.config import NotifyEvent
from sentinel.core.impact import rate_per_minute
from sentinel.core.model import ErrorGroup, RemediationRecord

RATE_MINUTES = 5
SAMPLES = 2
SAMPLE_CHARS = 500

HEADLINES: dict[str, str] = {
    "new": "new error",
    "regressed": "error regressed",
    "escalated": "error escalated",
    "remediation_acted": "remediation acted",
    "remediation_failed": "remediation failed",
}


@dataclass(frozen=True, slots=True)
class Notification:
    event: NotifyEvent
    time: float
    group_id: str
    priority: str
    namespace: str
    workload: str
    container: str
    template: str
    rule: str
    count: int
    rate_per_minute: float  # mean over the last RATE_MINUTES minutes
    first_seen: float
    last_seen: float
    status: str
    samples: tuple[str, ...]
    link: str
    escalation_reason: str = ""
    remediation: dict[str, Any] = field(default_factory=dict)
    context: str = ""  # the Kubernetes context summary, when one was read

    @property
    def headline(self) -> str:
        return f"[{self.priority}] {HEADLINES[self.event]}: {self.namespace}/{self.workload}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["samples"] = list(self.samples)
        d["headline"] = self.headline
        return d


def group_link(external_url: str, group_id: str) -> str:
    return f"{external_url.rstrip('/')}/errors/{group_id}"


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def of_group(
    event: NotifyEvent,
    group: ErrorGroup,
    *,
    now: float,
    external_url: str,
    record: RemediationRecord | None = None,
    context: str = "",
) -> Notification:
    remediation: dict[str, Any] = {}
    if record is not None:
        remediation = {
            "action": record.action,
            "result": record.result.value,
            "dry_run": record.dry_run,
            "target": f"{record.namespace}/{record.kind + '/' if record.kind else ''}{record.name}",
            "reason": _cap(record.reason, SAMPLE_CHARS),
            "error": _cap(record.error, SAMPLE_CHARS),
            "requested_by": record.requested_by,
        }
    return Notification(
        event=event,
        time=now,
        group_id=group.id,
        priority=group.priority.value,
        namespace=group.namespace,
        workload=group.workload,
        container=group.container,
        template=group.template,
        rule=group.rule,
        count=group.count,
        rate_per_minute=round(rate_per_minute(group, now=now, minutes=RATE_MINUTES), 3),
        first_seen=group.first_seen,
        last_seen=group.last_seen,
        status=group.status.value,
        samples=tuple(_cap(s, SAMPLE_CHARS) for s in group.samples[-SAMPLES:]),
        link=group_link(external_url, group.id),
        escalation_reason=group.escalation_reason,
        remediation=remediation,
        context=context,
    )
