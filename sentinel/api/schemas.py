"""What the API sends and accepts about groups, records, stats and rules; bounded request bodies.

Rows map one to one from the shared read model (:mod:`sentinel.views`); they are flat (scalars,
or a JSON object for action params) so that ``format=csv`` gives the same rows as JSON: one column
per field, in field order (see :mod:`sentinel.views.export`). Settings, safety and health answers
are in :mod:`sentinel.api.schemas_state`.
Request bodies reject unknown fields, bound every string and collection, and refuse NaN/Infinity.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sentinel.core.durations import parse_duration
from sentinel.core.logql import explore_url, for_group
from sentinel.core.model import ErrorGroup, Priority, RemediationRecord, cut_text
from sentinel.views.groups import GroupView
from sentinel.views.records import RecordView

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
    """One error group in a list (and one CSV row): the fields of :class:`sentinel.views.groups.GroupView`."""

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
    def of(cls, v: GroupView) -> GroupRow:
        return cls(**v.to_dict())


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
    """One audit record (and one CSV row; ``params`` and ``changes`` are JSON objects in CSV): the fields of
    :class:`sentinel.views.records.RecordView`."""

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
    def of(cls, v: RecordView) -> RemediationRow:
        return cls(**v.to_dict())


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
        row = GroupView.of(g).to_dict()
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
            remediation_history=[RemediationRow.of(RecordView.of(r)) for r in records],
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
