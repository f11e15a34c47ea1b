"""What the API sends and accepts about the engine's own state: live settings, safety, health.

The settings models are derived from the settings table (:mod:`sentinel.core.settings_spec`).
Request bodies use :class:`sentinel.api.schemas.Request` (unknown fields refused, no NaN).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from sentinel.api.schemas import Request
from sentinel.core.settings_spec import LIVE, Setting
from sentinel.engine.settings import RuntimeSettings

# -- settings -------------------------------------------------------------------------------------


_OUT_TYPES: dict[str, Any] = {
    "bool": bool,
    "int": int,
    "float": float,
    "duration": float,
    "query": str,
    "namespaces": list[str],
}


class _SettingsOutBase(BaseModel):
    @classmethod
    def of(cls, s: RuntimeSettings) -> Any:
        return cls.model_validate(s.to_dict())


if TYPE_CHECKING:
    SettingsOut = _SettingsOutBase
else:
    # The live settings as the API shows them: one field per live setting of the settings table.
    SettingsOut = create_model(
        "SettingsOut",
        __base__=_SettingsOutBase,
        **{s.live: (_OUT_TYPES[s.kind], Field(description=s.doc)) for s in LIVE},
    )

# The Go tool's names (its config keys and camelCase forms) accepted beside ours: {ours: (aliases...)}.
SETTINGS_ALIASES: dict[str, tuple[str, ...]] = {s.live: s.aliases for s in LIVE}


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


def _in_field(spec: Setting) -> Any:
    alias = f"; alias: {', '.join(spec.aliases)}" if spec.aliases else ""
    bounds = (
        f" ({spec.show(spec.low)} to {spec.show(spec.high)})" if spec.low is not None and spec.high is not None else ""
    )
    doc = f"{spec.doc}{bounds}{alias}"
    if spec.kind == "int":
        return (int | None, Field(default=None, ge=spec.low, le=spec.high, description=doc))
    if spec.kind == "duration":
        return (float | str | None, Field(default=None, description=f"seconds or 30s, 5m: {doc}"))
    return (_OUT_TYPES[spec.kind] | None, Field(default=None, description=doc))


# The body of ``POST /api/settings``, for the OpenAPI schema (the engine validates the change): every
# field optional, unknown fields refused, the Go tool's names as aliases. Derived from the settings table.
SettingsIn: type[BaseModel] = create_model(
    "SettingsIn",
    __config__=ConfigDict(extra="forbid"),
    __doc__="The body of POST /api/settings: every field optional; the Go tool's names are aliases.",
    **{s.live: _in_field(s) for s in LIVE},
)


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
