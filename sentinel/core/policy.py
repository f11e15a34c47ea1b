"""The safety policy of remediation: limits, the persisted safety state, and one pure ``decide``.

Purely computational: ``decide(request, state, limits, now)`` looks at plain values and says
``Allow`` or ``Deny(code, reason)``; the remediator around it does the I/O, records every decision
in the audit log and persists :class:`SafetyState` in the store before it acts, so that a
crash-restart loop cannot reset a cooldown, the hourly budget or a breaker.

Order of the checks (the first that refuses wins)::

    follower (``leader=False``: another replica acts) -> disabled -> action "none" (record only, cooldown still applies)
    -> remediator halted (every action, manual too) -> excluded namespace
    -> breaker open (automatic only) -> already in flight -> cooldown (automatic only)
    -> hourly budget -> per-workload cap -> Allow (dry-run if the limits say so)

Action ``none`` is an alert, not an action: it touches nothing, so an excluded namespace does
not refuse it, and it spends neither the hourly budget nor the per-workload cap (only its
cooldown applies, so that one group is recorded once per cooldown, not once per poll).

The remediator-wide breaker (:data:`REMEDIATOR`, kept with the per-workload ones) opens when a
dry run is seen to have changed the cluster (read back after the call): then no action runs, not
even one a person asks for, until a person resets it. Alerts (action ``none``) are still recorded.

A person asking for an action (``manual``) is not held back by a cooldown or an open breaker
(they are there to stop *automatic* loops), but still by everything else.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

HOUR = 3600.0
# An in-flight mark older than this is left over by a crashed process: it no longer blocks.
IN_FLIGHT_TTL = 600.0
# The error rate after an action must fall below this share of the rate before it to count as effective.
EFFECTIVE_RATIO = 0.5


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """The hard limits, from ``remediation:`` in config.yaml (and live settings changes)."""

    enabled: bool = True
    dry_run: bool = False
    max_actions_per_hour: int = 50
    per_workload_per_hour: int = 3
    excluded_namespaces: frozenset[str] = frozenset({"kube-system", "kube-public"})
    breaker_threshold: int = 3
    effectiveness_window: float = 300.0

    def __post_init__(self) -> None:
        # Accept any iterable of names (a list from YAML) but keep the value hashable and frozen.
        object.__setattr__(self, "excluded_namespaces", frozenset(self.excluded_namespaces))
        for name in ("max_actions_per_hour", "per_workload_per_hour", "breaker_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"remediation.{name} must not be negative, got {getattr(self, name)!r}")
        if self.effectiveness_window <= 0:
            raise ValueError(f"remediation.effectiveness_window must be positive, got {self.effectiveness_window!r}")


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One would-be remediation: what, where, why and who asks."""

    group_id: str
    rule: str
    action: str
    namespace: str
    workload: str  # the workload key: "namespace/name"
    kind: str = ""
    name: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    cooldown: float = 0.0
    requested_by: str = "engine"
    manual: bool = False
    # Why a condition of the rule itself (``remediation.when: new_since_rollout``) says no; "" if none.
    refused_by_rule: str = ""

    @property
    def record_only(self) -> bool:
        return self.action == "none"


# The key of the breaker that stops the whole remediator (workload keys always hold a "/").
REMEDIATOR = "remediator"


def workload_key(namespace: str, workload: str) -> str:
    """The key cooldowns, caps, in-flight marks and breakers are kept under."""
    return f"{namespace}/{workload}"


def cooldown_key(rule: str, workload: str) -> str:
    return f"{rule}|{workload}"


class DenyCode(StrEnum):
    DISABLED = "disabled"
    HALTED = "remediator-halted"
    EXCLUDED = "excluded-namespace"
    BREAKER = "breaker-open"
    IN_FLIGHT = "in-flight"
    COOLDOWN = "cooldown"
    BUDGET = "hourly-budget"
    WORKLOAD_CAP = "workload-cap"
    FOLLOWER = "follower"
    NOT_NEW_SINCE_ROLLOUT = "not-new-since-rollout"  # remediation.when: new_since_rollout (core.rollouts)


@dataclass(frozen=True, slots=True)
class Allow:
    """Go ahead; ``dry_run`` asks the API server to validate only; ``record_only`` is action "none"."""

    dry_run: bool = False
    record_only: bool = False

    @property
    def reason(self) -> str:
        if self.record_only:
            return "record only (action none)"
        return "allowed (dry-run)" if self.dry_run else "allowed"


@dataclass(frozen=True, slots=True)
class Deny:
    """Refused by the safety policy; ``until`` is when the refusing limit lapses, if it does on its own."""

    code: DenyCode
    reason: str
    until: float | None = None


Decision = Allow | Deny


@dataclass(slots=True)
class Breaker:
    """A per-workload circuit breaker: open after K ineffective actions, closed by a person."""

    open: bool = False
    reason: str = ""
    opened_at: float | None = None
    reset_by: str = ""
    reset_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "reason": self.reason,
            "opened_at": self.opened_at,
            "reset_by": self.reset_by,
            "reset_at": self.reset_at,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Breaker:
        return cls(
            open=bool(d.get("open", False)),
            reason=str(d.get("reason", "")),
            opened_at=_opt_float(d.get("opened_at")),
            reset_by=str(d.get("reset_by", "")),
            reset_at=_opt_float(d.get("reset_at")),
        )


@dataclass(frozen=True, slots=True)
class PendingCheck:
    """An executed action waiting for its effectiveness verdict."""

    record_id: str
    group_id: str
    workload: str
    action: str
    time: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "group_id": self.group_id,
            "workload": self.workload,
            "action": self.action,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PendingCheck:
        return cls(
            record_id=str(d["record_id"]),
            group_id=str(d["group_id"]),
            workload=str(d["workload"]),
            action=str(d.get("action", "")),
            time=float(d["time"]),
        )


@dataclass(slots=True)
class SafetyState:
    """Everything the policy remembers between decisions; persisted as one document ("safety")."""

    cooldowns: dict[str, float] = field(default_factory=dict)  # cooldown_key -> until
    actions: list[float] = field(default_factory=list)  # start times, all workloads (hourly budget)
    workload_actions: dict[str, list[float]] = field(default_factory=dict)  # workload -> start times
    in_flight: dict[str, float] = field(default_factory=dict)  # workload -> started at
    breakers: dict[str, Breaker] = field(default_factory=dict)
    ineffective: dict[str, int] = field(default_factory=dict)  # workload -> consecutive ineffective
    pending: dict[str, PendingCheck] = field(default_factory=dict)  # record id -> check

    # -- reading -----------------------------------------------------------------------------

    def cooldown_remaining(self, rule: str, workload: str, now: float) -> float:
        until = self.cooldowns.get(cooldown_key(rule, workload))
        return max(0.0, until - now) if until is not None else 0.0

    def actions_last_hour(self, now: float, workload: str | None = None) -> int:
        times = self.actions if workload is None else self.workload_actions.get(workload, [])
        return sum(1 for t in times if now - HOUR < t <= now)

    def is_in_flight(self, workload: str, now: float) -> bool:
        started = self.in_flight.get(workload)
        return started is not None and now - started < IN_FLIGHT_TTL

    def breaker_open(self, workload: str) -> bool:
        b = self.breakers.get(workload)
        return b is not None and b.open

    # -- changing ----------------------------------------------------------------------------

    def note_started(self, request: ActionRequest, now: float) -> None:
        """An allowed request starts: mark it in flight, start its cooldown, spend the budget.

        Record-only (action ``none``) only starts its cooldown: an alert that changes nothing
        spends neither the hourly budget nor the per-workload cap of the real actions.
        """
        if request.cooldown > 0:
            key = cooldown_key(request.rule, request.workload)
            self.cooldowns[key] = max(self.cooldowns.get(key, 0.0), now + request.cooldown)
        if request.record_only:
            return
        self.in_flight[request.workload] = now
        self.actions.append(now)
        self.workload_actions.setdefault(request.workload, []).append(now)

    def note_finished(self, request: ActionRequest, now: float) -> None:
        """The request is done (whatever the result): its target is free again.

        A record-only request never marked the workload in flight, so it must not clear the mark
        of a real action running there at the same time.
        """
        if request.record_only:
            return
        self.in_flight.pop(request.workload, None)

    def note_executed(self, check: PendingCheck) -> None:
        """An action really changed the cluster: judge it once its window has passed."""
        self.pending[check.record_id] = check

    def note_verdict(self, check: PendingCheck, *, effective: bool, now: float, threshold: int) -> bool:
        """Record a verdict; True if it opened the workload's breaker."""
        self.pending.pop(check.record_id, None)
        if effective:
            self.ineffective.pop(check.workload, None)
            return False
        count = self.ineffective.get(check.workload, 0) + 1
        self.ineffective[check.workload] = count
        if threshold <= 0 or count < threshold or self.breaker_open(check.workload):
            return False
        self.breakers[check.workload] = Breaker(
            open=True,
            reason=f"{count} ineffective actions in a row (last: {check.action}, record {check.record_id})",
            opened_at=now,
        )
        return True

    def halt(self, reason: str, *, now: float) -> None:
        """Open the remediator-wide breaker: no action at all until a person resets it."""
        self.breakers[REMEDIATOR] = Breaker(open=True, reason=reason, opened_at=now)

    @property
    def halted(self) -> bool:
        return self.breaker_open(REMEDIATOR)

    def reset_breaker(self, workload: str, *, by: str, now: float) -> bool:
        """Close the workload's breaker (a person did); True if it was open."""
        self.ineffective.pop(workload, None)
        b = self.breakers.get(workload)
        if b is None or not b.open:
            return False
        self.breakers[workload] = Breaker(open=False, reason=b.reason, opened_at=b.opened_at, reset_by=by, reset_at=now)
        return True

    def prune(self, now: float) -> None:
        """Drop what can no longer refuse anything: lapsed cooldowns, actions older than an hour."""
        self.cooldowns = {k: v for k, v in self.cooldowns.items() if v > now}
        self.actions = [t for t in self.actions if t > now - HOUR]
        self.workload_actions = {
            w: kept for w, times in self.workload_actions.items() if (kept := [t for t in times if t > now - HOUR])
        }
        self.in_flight = {w: t for w, t in self.in_flight.items() if now - t < IN_FLIGHT_TTL}

    def copy(self) -> SafetyState:
        return copy.deepcopy(self)

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "cooldowns": dict(self.cooldowns),
            "actions": list(self.actions),
            "workload_actions": {w: list(t) for w, t in self.workload_actions.items()},
            "in_flight": dict(self.in_flight),
            "breakers": {w: b.to_dict() for w, b in self.breakers.items()},
            "ineffective": dict(self.ineffective),
            "pending": {k: p.to_dict() for k, p in self.pending.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SafetyState:
        if not d:
            return cls()
        return cls(
            cooldowns={str(k): float(v) for k, v in d.get("cooldowns", {}).items()},
            actions=[float(t) for t in d.get("actions", [])],
            workload_actions={str(w): [float(t) for t in ts] for w, ts in d.get("workload_actions", {}).items()},
            in_flight={str(w): float(t) for w, t in d.get("in_flight", {}).items()},
            breakers={str(w): Breaker.from_dict(b) for w, b in d.get("breakers", {}).items()},
            ineffective={str(w): int(n) for w, n in d.get("ineffective", {}).items()},
            pending={str(k): PendingCheck.from_dict(p) for k, p in d.get("pending", {}).items()},
        )

    def summary(self, now: float, limits: SafetyLimits) -> dict[str, Any]:
        """What the console and the API show: limits, budget used, live cooldowns, breakers."""
        return {
            "enabled": limits.enabled,
            "dry_run": limits.dry_run,
            "actions_last_hour": self.actions_last_hour(now),
            "max_actions_per_hour": limits.max_actions_per_hour,
            "per_workload_per_hour": limits.per_workload_per_hour,
            "excluded_namespaces": sorted(limits.excluded_namespaces),
            "cooldowns": [
                {"rule": k.split("|", 1)[0], "workload": k.split("|", 1)[-1], "until": v, "remaining": v - now}
                for k, v in sorted(self.cooldowns.items())
                if v > now
            ],
            "in_flight": sorted(w for w in self.in_flight if self.is_in_flight(w, now)),
            "breakers": {w: b.to_dict() for w, b in sorted(self.breakers.items())},
            "ineffective": dict(sorted(self.ineffective.items())),
            "pending_checks": len(self.pending),
        }


def _opt_float(v: object) -> float | None:
    return float(v) if isinstance(v, int | float | str) else None


def _fmt_seconds(s: float) -> str:
    s = max(0, round(s))
    m, sec = divmod(s, 60)
    h, m = divmod(m, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{sec}s" if sec or not (h or m) else "")


def decide(
    request: ActionRequest,
    state: SafetyState,
    limits: SafetyLimits,
    now: float,
    *,
    leader: bool = True,
    holder: str = "",
) -> Decision:
    """Allow or refuse ``request`` under ``limits`` given what ``state`` remembers. Pure.

    ``leader=False``: this replica is a follower (``holder`` leads, "" if nobody does right now);
    it acts on nothing, whatever is asked, so that is the first refusal.
    """
    w = request.workload
    if not leader:
        return Deny(
            DenyCode.FOLLOWER,
            f"follower: read-only; only the leader ({holder or 'none right now'}) acts. Ask the leader's console",
        )
    if not limits.enabled:
        return Deny(DenyCode.DISABLED, "remediation is disabled (remediation.enabled: false)")
    if request.refused_by_rule:
        return Deny(DenyCode.NOT_NEW_SINCE_ROLLOUT, request.refused_by_rule)
    remaining = state.cooldown_remaining(request.rule, w, now)
    if request.record_only:  # touches nothing: no namespace exclusion, budget, cap, breaker or in-flight
        if remaining > 0 and not request.manual:
            return _cooldown(request, remaining, now)
        return Allow(dry_run=limits.dry_run, record_only=True)
    if state.halted:
        b = state.breakers[REMEDIATOR]
        return Deny(DenyCode.HALTED, f"remediator halted: {b.reason}; a person must reset it")
    if request.namespace in limits.excluded_namespaces:
        return Deny(DenyCode.EXCLUDED, f"namespace {request.namespace!r} is excluded from remediation")
    if not request.manual and state.breaker_open(w):
        b = state.breakers[w]
        return Deny(DenyCode.BREAKER, f"breaker open for {w}: {b.reason}; a person must reset it")
    if state.is_in_flight(w, now):
        return Deny(DenyCode.IN_FLIGHT, f"an action on {w} is already in flight")
    if remaining > 0 and not request.manual:
        return _cooldown(request, remaining, now)
    used = state.actions_last_hour(now)
    if used >= limits.max_actions_per_hour:
        oldest = min((t for t in state.actions if t > now - HOUR), default=now)
        return Deny(
            DenyCode.BUDGET,
            f"hourly budget spent: {used} of {limits.max_actions_per_hour} actions in the last hour",
            until=oldest + HOUR,
        )
    used_w = state.actions_last_hour(now, w)
    if used_w >= limits.per_workload_per_hour:
        oldest = min((t for t in state.workload_actions.get(w, []) if t > now - HOUR), default=now)
        return Deny(
            DenyCode.WORKLOAD_CAP,
            f"per-workload cap reached for {w}: {used_w} of {limits.per_workload_per_hour} actions in the last hour",
            until=oldest + HOUR,
        )
    return Allow(dry_run=limits.dry_run)


def _cooldown(request: ActionRequest, remaining: float, now: float) -> Deny:
    return Deny(
        DenyCode.COOLDOWN,
        f"cooldown for rule {request.rule!r} on {request.workload}: {_fmt_seconds(remaining)} remaining",
        until=now + remaining,
    )


# -- effectiveness ---------------------------------------------------------------------------


def window_counts(minute_counts: Mapping[int, int], at: float, window: float) -> tuple[int, int]:
    """Occurrences in the ``window`` seconds before and after ``at``, from per-minute counts.

    The minute the action happened in belongs to neither side (it mixes both).
    """
    m = int(at // 60)
    n = max(1, round(window / 60))
    before = sum(c for k, c in minute_counts.items() if m - n <= k < m)
    after = sum(c for k, c in minute_counts.items() if m < k <= m + n)
    return before, after


def verdict_due(at: float, window: float, now: float) -> bool:
    """The after-window (whole minutes past the action's minute) is complete."""
    return now >= (int(at // 60) + 1 + max(1, round(window / 60))) * 60


def is_effective(before: int, after: int, *, ratio: float = EFFECTIVE_RATIO) -> bool:
    """An action worked if the error stopped, or its rate fell below ``ratio`` of what it was.

    Coming back at the same rate (or higher) is ineffective.
    """
    if after == 0:
        return True
    return after < before * ratio
