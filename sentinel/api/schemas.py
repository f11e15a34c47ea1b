"""What the API sends and accepts: response models apart from the store records, bounded request bodies.

Response rows are flat (scalars, or a JSON object for action params) so that ``format=csv`` gives
exactly the same rows as JSON: one column per field, in field order (see :mod:`sentinel.api.csvout`).
Request bodies reject unknown fields, bound every string and collection, and refuse NaN/Infinity.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sentinel.core.durations import parse_duration
from sentinel.core.logql import explore_url, for_group
from sentinel.core.model import ErrorGroup, Priority, RemediationRecord, cut_text
from sentinel.engine.settings import RuntimeSettings

Duration = Annotated[float, BeforeValidator(parse_duration)]

MAX_SAMPLE = 16 * 1024
MAX_PATTERN = 4096
MAX_REASON = 1000


class Request(BaseModel):
    """Base of every request body: unknown fields are errors, no NaN or Infinity."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Problem(BaseModel):
    """An error answer: ``detail`` says what happened, ``problems`` names each bad field."""

    detail: str
    problems: list[str] = Field(default_factory=list)


# -- error groups ---------------------------------------------------------------------------------


class GroupRow(BaseModel):
    """One error group in a list (and one CSV row)."""

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
    status_by: str = Field(default="", description="who last changed the status")
    status_reason: str = Field(default="", description="their comment (acknowledge, snooze, resolve)")
    source: str = Field(
        default="logs", description="where the occurrences came from: logs, cluster (pod status) or both"
    )
    new_since_rollout: bool = Field(
        default=False,
        description="first seen within kubernetes.rollout_window after the rollout of the revision running now",
    )

    @classmethod
    def of(cls, g: ErrorGroup) -> GroupRow:
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
        )


class GroupList(BaseModel):
    items: list[GroupRow]
    total: int = Field(description="groups matching the filters, over all pages")
    page: int
    page_size: int
    pages: int
    errors: list[GroupRow] = Field(default_factory=list, description="the same rows as items (the Go tool's name)")
    pageSize: int = Field(default=0, description="the same as page_size (the Go tool's name)")  # noqa: N815

    @model_validator(mode="after")
    def _go_names(self) -> GroupList:
        self.errors = self.items
        self.pageSize = self.page_size
        return self


class MinuteCount(BaseModel):
    minute: int = Field(description="start of the minute, POSIX seconds")
    count: int


class RemediationRow(BaseModel):
    """One audit record (and one CSV row; ``params`` and ``changes`` are JSON objects in CSV)."""

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
    reached_cluster: bool = Field(
        default=False, description="a write or its server-side dry run reached the API server"
    )
    count: int = Field(default=1, description="repeats of this same refusal folded into this record")
    last_time: float | None = Field(default=None, description="the last of the folded repeats")

    @classmethod
    def of(cls, r: RemediationRecord) -> RemediationRow:
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


class RemediationList(BaseModel):
    items: list[RemediationRow]
    total: int
    page: int
    page_size: int
    pages: int


class GroupDetail(GroupRow):
    """One group with its samples, per-minute counts and remediation records."""

    base_priority: str
    pods: list[str]
    samples: list[str]
    minute_counts: list[MinuteCount]
    status_changed_at: float
    snooze_until: float | None
    snooze_until_count: int | None
    escalation_reason: str
    remediation_history: list[RemediationRow]
    remediation_total: int
    logql: str = Field(description="a LogQL query selecting this group's lines in Loki")
    explore_url: str | None = Field(
        default=None,
        description="Grafana Explore with that query (when grafana.url and its Loki datasource uid are set)",
    )
    context: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Kubernetes context of the workload: state ok (kind, replicas, rollout, pods, events, errors per part) "
            "or unavailable/pending with reason (no cluster, forbidden, timeout, unavailable) and detail"
        ),
    )
    rollout: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Deploy correlation: state ok with kind, revision, hash, images, rollout_at, after_rollout (s), "
            "within_window, seen (pod templates), new_since_rollout, current_revision, summary; "
            "else state none/pending/unavailable with reason and detail"
        ),
    )

    @classmethod
    def build(
        cls,
        g: ErrorGroup,
        records: list[RemediationRecord],
        total: int,
        *,
        grafana_url: str = "",
        datasource_uid: str = "",
    ) -> GroupDetail:
        row = GroupRow.of(g).model_dump()
        query = for_group(g)
        return cls(
            **row,
            logql=query,
            explore_url=explore_url(grafana_url, datasource_uid, query) if grafana_url and datasource_uid else None,
            base_priority=g.base_priority.value,
            pods=list(g.pods),
            samples=[cut_text(x) for x in g.samples],
            minute_counts=[MinuteCount(minute=m * 60, count=n) for m, n in sorted(g.minute_counts.items())],
            status_changed_at=g.status_changed_at,
            snooze_until=g.snooze_until,
            snooze_until_count=g.snooze_until_count,
            escalation_reason=g.escalation_reason,
            remediation_history=[RemediationRow.of(r) for r in records],
            remediation_total=total,
        )


class StatusChange(Request):
    """acknowledge | snooze | resolve | reopen. A snooze needs ``until``, ``duration`` or ``more``."""

    action: Literal["acknowledge", "snooze", "resolve", "reopen"]
    reason: str = Field(default="", max_length=MAX_REASON)
    until: float | None = Field(default=None, ge=0, le=1e11, description="snooze until this POSIX time")
    duration: Duration | None = Field(default=None, description='snooze for this long: "30m", "2h" or seconds')
    more: int | None = Field(default=None, ge=1, le=1_000_000_000, description="snooze for N more occurrences")

    @model_validator(mode="after")
    def _snooze_fields(self) -> StatusChange:
        if self.action != "snooze" and (self.until is not None or self.duration is not None or self.more is not None):
            raise ValueError("until, duration and more apply only to action 'snooze'")
        if self.until is not None and self.duration is not None:
            raise ValueError("give either until or duration, not both")
        if self.duration is not None and not 0 < self.duration <= 365 * 86400:
            raise ValueError("duration must be more than 0 and at most 365 days")
        return self


class RemediateRequest(Request):
    """A manual action on a group; without ``action`` the group's rule action (and params) is used."""

    action: str | None = Field(default=None, min_length=1, max_length=64)
    params: dict[str, Any] | None = Field(default=None, max_length=32)


# -- stats ----------------------------------------------------------------------------------------


class RatePoint(BaseModel):
    minute: int
    P1: int = 0
    P2: int = 0
    P3: int = 0
    P4: int = 0


class PollHealth(BaseModel):
    ok: bool
    state: str = Field(
        description="ok, waiting (no poll yet), failing (Loki errors), stale (no good poll lately), follower"
    )
    detail: str = ""
    polls: int
    poll_errors: int
    consecutive_errors: int
    lines_read: int
    last_lines: int
    last_poll_at: float | None
    last_success_at: float | None
    last_duration: float
    last_error: str
    leader: bool
    cluster: str
    unread_lines: int = Field(0, description="lines Loki holds beyond its per-query limit at one nanosecond")
    unread_streams: dict[str, int] = Field(default_factory=dict, description="unread lines by stream")
    unresolved_bursts: int = Field(0, description="saturated nanoseconds that could not be counted exactly")
    late_lines: int = Field(0, description="lines that reached Loki after their window was read (not re-read)")
    refused_lines: int = Field(0, description="lines of streams refused for label values that are not strings")
    coerced_labels: int = Field(0, description="label values coerced to strings")
    cursor_resets: int = Field(0, description="polls that found the stored cursor in the future")
    last_cursor_reset: str = ""


class Totals(BaseModel):
    groups: int
    occurrences: int
    remediations: int = Field(description="actions that reached the API server (or its dry run); refusals not counted")


class NotificationDestination(BaseModel):
    name: str
    type: str
    failing: bool
    queued: int
    sent: int
    failed: int
    retried: int
    dropped: int
    rate_limited: int
    suppressed: int
    consecutive_failures: int
    last_error: str
    last_error_at: float | None
    last_success_at: float | None


class Stats(BaseModel):
    time: float
    totals: Totals
    by_priority: dict[str, int]
    by_status: dict[str, int]
    by_namespace: dict[str, int]
    by_rule: dict[str, int]
    rate: list[RatePoint]
    remediations_by_result: dict[str, int]
    last_error_at: float | None
    last_remediation_at: float | None
    poll: PollHealth
    notifications: list[NotificationDestination] = Field(
        default_factory=list, description="each notification destination's delivery state (never its URL)"
    )


# -- rules ----------------------------------------------------------------------------------------


class RuleOut(BaseModel):
    name: str
    description: str
    priority: str
    enabled: bool
    pattern: str
    keywords: list[str]
    labels: dict[str, str]
    namespaces: list[str]
    action: str
    params: dict[str, Any]
    cooldown: float
    matches: int = Field(description="lines this rule classified since the store was created")


class RuleList(BaseModel):
    rules: list[RuleOut]
    default_matches: int = Field(description="lines no rule matched (P4, rule 'default')")
    source: str
    loaded_at: float | None
    error: str


class RuleTest(Request):
    """Test ``pattern`` (an RE2 regex) or the loaded rule ``rule`` against ``sample`` (one log line)."""

    pattern: str | None = Field(default=None, max_length=MAX_PATTERN)
    rule: str | None = Field(default=None, min_length=1, max_length=253)
    sample: str = Field(max_length=MAX_SAMPLE)
    priority: Priority | None = Field(default=None, description="the priority a matching pattern would give")
    labels: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="stream labels of the sample: namespace, pod, container..."
    )

    @model_validator(mode="after")
    def _one_of(self) -> RuleTest:
        if self.pattern is not None and self.rule is not None:
            raise ValueError("give either pattern or rule, not both")
        for k, v in self.labels.items():
            if len(k) > 253 or len(v) > 1024:
                raise ValueError("label names are at most 253 characters and values at most 1024")
        return self


class Classified(BaseModel):
    rule: str
    priority: str


class RuleTestResult(BaseModel):
    matched: bool = Field(description="the pattern or rule matches the sample's message")
    rule: str | None
    priority: str | None = Field(description="the priority the sample gets from the tested pattern or rule")
    message: str = Field(description="the message parsed out of the sample (what rules match against)")
    template: str
    group_key: str = Field(description="the id of the error group the sample would count in")
    namespace: str
    workload: str
    container: str
    classified: Classified = Field(description="what the loaded rule set (first match wins) says")


# -- settings -------------------------------------------------------------------------------------


class SettingsOut(BaseModel):
    remediation_enabled: bool
    dry_run: bool
    max_actions_per_hour: int
    per_workload_per_hour: int
    excluded_namespaces: list[str]
    poll_interval: float
    lookback: float
    query: str

    @classmethod
    def of(cls, s: RuntimeSettings) -> SettingsOut:
        return cls.model_validate(s.to_dict())


# The Go tool's names (its config keys and camelCase forms) accepted beside ours: {ours: (aliases...)}.
SETTINGS_ALIASES: dict[str, tuple[str, ...]] = {
    "remediation_enabled": ("enabled", "remediationEnabled"),
    "dry_run": ("dryRun",),
    "max_actions_per_hour": ("maxActionsPerHour",),
    "per_workload_per_hour": ("perWorkloadPerHour",),
    "excluded_namespaces": ("excludedNamespaces",),
    "poll_interval": ("pollInterval",),
    "lookback": (),
    "query": (),
}


def canonical_settings(data: dict[str, Any]) -> dict[str, Any]:
    """A settings change with the Go tool's names (``enabled``, ``dryRun``, ...) renamed to ours; the engine
    then checks it as a whole (each bad or unknown field named). One setting under two names: ValueError."""
    out = dict(data)
    problems = []
    for ours, aliases in SETTINGS_ALIASES.items():
        given = [n for n in (ours, *aliases) if n in data]
        if len(given) > 1:
            problems.append(f"{given[0]}: {' and '.join(given)} name the same setting: give one")
        elif given and given[0] != ours:
            out[ours] = out.pop(given[0])
    if problems:
        raise ValueError(problems)
    return out


class SettingsIn(BaseModel):
    """The body of ``POST /api/settings``, for the OpenAPI schema (the engine validates the change).

    Every field optional, unknown fields refused. The Go tool's names are aliases: ``enabled``
    (remediation_enabled), ``dryRun``, ``maxActionsPerHour``, ``perWorkloadPerHour``,
    ``excludedNamespaces``, ``pollInterval``."""

    model_config = ConfigDict(extra="forbid")

    remediation_enabled: bool | None = Field(default=None, description="alias: enabled, remediationEnabled")
    dry_run: bool | None = Field(default=None, description="alias: dryRun")
    max_actions_per_hour: int | None = Field(default=None, ge=0, le=10_000, description="alias: maxActionsPerHour")
    per_workload_per_hour: int | None = Field(default=None, ge=0, le=1_000, description="alias: perWorkloadPerHour")
    excluded_namespaces: list[str] | None = Field(default=None, description="alias: excludedNamespaces")
    poll_interval: float | str | None = Field(default=None, description="seconds or 30s, 5m; alias: pollInterval")
    lookback: float | str | None = Field(default=None, description="seconds or a duration like 1h")
    query: str | None = Field(default=None, description="a LogQL log query")


class SettingsHistoryEntry(BaseModel):
    time: float
    by: str
    changes: dict[str, list[Any]]
    confirmed: list[str] = Field(default_factory=list, description="risky changes the person confirmed, by name")


class SettingsView(BaseModel):
    settings: SettingsOut
    read_only: bool = Field(description="no api.token is configured: POST and PATCH calls are refused")
    history: list[SettingsHistoryEntry]


class SettingsResult(BaseModel):
    changed: dict[str, list[Any]] = Field(description="{field: [old, new]} for each field that changed")
    by: str
    settings: SettingsOut


# -- safety ---------------------------------------------------------------------------------------

WORKLOAD_KEY = r"^[^/\x00-\x1f\x7f]+/[^/\x00-\x1f\x7f]+$"


class SafetyLimitsOut(BaseModel):
    """The hard limits every decision is made under (config.yaml plus live settings changes)."""

    enabled: bool
    dry_run: bool
    max_actions_per_hour: int
    per_workload_per_hour: int
    excluded_namespaces: list[str]
    breaker_threshold: int = Field(description="ineffective actions in a row that open a workload's breaker")
    effectiveness_window: float = Field(description="seconds an action is watched before it is judged")


class Budget(BaseModel):
    used: int = Field(description="actions started in the last hour, over every workload")
    limit: int
    remaining: int


class WorkloadActions(BaseModel):
    workload: str = Field(description="namespace/name")
    actions_last_hour: int
    limit: int = Field(description="the per-workload hourly cap")
    in_flight: bool = Field(description="an action on this workload is running now")


class CooldownOut(BaseModel):
    rule: str
    workload: str
    until: float
    remaining: float = Field(description="seconds left")


class BreakerOut(BaseModel):
    workload: str
    state: Literal["open", "closed"]
    reason: str
    opened_at: float | None
    reset_by: str = Field(description="who closed it (empty while it has never been reset)")
    reset_at: float | None
    ineffective: int = Field(description="ineffective actions in a row on this workload now")


class ClusterInfo(BaseModel):
    configured: bool = Field(description="a kubeconfig or in-cluster account was found")
    host: str | None = Field(description="the API server's address, when configured")
    note: str = Field(description="why actions run as dry-run when no cluster is configured")


class SafetyView(BaseModel):
    """The remediation safety state: limits, budget, per-workload counts, cooldowns, breakers."""

    time: float
    limits: SafetyLimitsOut
    budget: Budget
    workloads: list[WorkloadActions]
    cooldowns: list[CooldownOut]
    breakers: list[BreakerOut]
    pending_checks: int = Field(description="actions waiting for their effectiveness verdict")
    cluster: ClusterInfo


class BreakerReset(Request):
    """Close a workload's circuit breaker: automatic actions there may run again."""

    workload: str = Field(min_length=3, max_length=507, pattern=WORKLOAD_KEY, description="namespace/name")


class BreakerResetResult(BaseModel):
    workload: str
    was_open: bool = Field(description="false: the breaker was already closed (nothing changed but the count)")
    by: str
    breaker: BreakerOut


# -- health ---------------------------------------------------------------------------------------


class Alive(BaseModel):
    status: Literal["alive"]
    uptime: float


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str] = Field(description='{check: "ok" | problem} for config, rules, store, poll')
    failing: dict[str, str]
    notices: list[str] = Field(
        default_factory=list,
        description="what happened at start that someone must see (a store file moved aside and the store "
        "started empty), until acknowledged with POST /api/store/acknowledge; does not fail readiness",
    )


class StoreAcknowledged(BaseModel):
    acknowledged: int = Field(description="how many startup notices were cleared")
