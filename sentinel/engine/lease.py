"""The pure half of leader election: what to write to the Lease, and the safety summary it carries.

Purely computational, on plain values: :func:`decide_lease` says create, renew, take over or
follow (client-go's ``leaderelection`` semantics with a Lease lock, described in
:mod:`sentinel.engine.leader`, which does the I/O); :func:`safety_summary` renders what a leader
publishes of its :class:`~sentinel.core.policy.SafetyState` in the Lease annotation
:data:`SAFETY_ANNOTATION`; :func:`merge_summary` folds such a summary into a state.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypedDict

from sentinel.core.policy import HOUR, Breaker, SafetyState
from sentinel.errors import cap

log = logging.getLogger(__name__)

SAFETY_ANNOTATION = "kube-sentinel.io/safety"
SUMMARY_VERSION = 1
# Annotations of one object may hold 256 KiB in all; the summary keeps well below that.
SUMMARY_MAX_BYTES = 32 * 1024


class LeaseSpec(TypedDict, total=False):
    """``spec`` of a ``coordination.k8s.io/v1`` Lease, as the API server sends it."""

    holderIdentity: str
    leaseDurationSeconds: int
    acquireTime: str
    renewTime: str
    leaseTransitions: int


class LeaseAction(StrEnum):
    CREATE = "create"  # there is no Lease yet: create it, holding it
    RENEW = "renew"  # we hold it: write a fresh renewTime
    ACQUIRE = "acquire"  # it is free or its holder's lease expired: take it over
    FOLLOW = "follow"  # another replica holds a live lease: wait


@dataclass(frozen=True, slots=True)
class LeaseDecision:
    """What to do with the Lease; ``spec`` is what to write (None when following)."""

    action: LeaseAction
    spec: LeaseSpec | None
    holder: str  # who holds the lease now (FOLLOW) or after our write wins
    expires_at: float | None = None  # when the current holder's lease lapses (FOLLOW)


# -- pure: the decision ----------------------------------------------------------------------------


def micro_time(ts: float) -> str:
    """A Kubernetes ``MicroTime``: RFC 3339 in UTC with microseconds."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    """``renewTime`` / ``acquireTime`` as epoch seconds; None if absent or unreadable."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def lease_expires_at(spec: Mapping[str, Any], default_duration: float) -> float | None:
    """When the holder's lease lapses (its ``renewTime`` + its ``leaseDurationSeconds``); None if never renewed."""
    renewed = parse_time(spec.get("renewTime"))
    if renewed is None:
        return None
    duration = spec.get("leaseDurationSeconds")
    return renewed + (float(duration) if isinstance(duration, int | float) and duration > 0 else default_duration)


def decide_lease(spec: Mapping[str, Any] | None, identity: str, now: float, duration: float) -> LeaseDecision:
    """Create, renew, acquire or follow, and the spec to write. Pure.

    ``spec`` is the Lease's spec as read (None: there is no Lease), ``duration`` our lease length
    in seconds. Expiry is judged on the holder's own ``leaseDurationSeconds``.
    """
    seconds = max(1, math.ceil(duration))
    stamp = micro_time(now)
    if spec is None:
        new: LeaseSpec = {
            "holderIdentity": identity,
            "leaseDurationSeconds": seconds,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": 0,
        }
        return LeaseDecision(LeaseAction.CREATE, new, identity)
    holder = str(spec.get("holderIdentity") or "")
    transitions = spec.get("leaseTransitions")
    transitions = transitions if isinstance(transitions, int) and transitions >= 0 else 0
    if holder == identity:
        renewed: LeaseSpec = {
            "holderIdentity": identity,
            "leaseDurationSeconds": seconds,
            "acquireTime": str(spec.get("acquireTime") or stamp),
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }
        return LeaseDecision(LeaseAction.RENEW, renewed, identity)
    expires = lease_expires_at(spec, duration)
    if holder and expires is not None and not expires < now:
        return LeaseDecision(LeaseAction.FOLLOW, None, holder, expires)
    taken: LeaseSpec = {
        "holderIdentity": identity,
        "leaseDurationSeconds": seconds,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions + 1,
    }
    return LeaseDecision(LeaseAction.ACQUIRE, taken, identity)


def released(spec: Mapping[str, Any], now: float) -> LeaseSpec:
    """The spec a holder writes when it steps down: nobody holds it, so the next candidate takes it at once."""
    transitions = spec.get("leaseTransitions")
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": micro_time(now),
        "renewTime": micro_time(now),
        "leaseTransitions": transitions if isinstance(transitions, int) and transitions >= 0 else 0,
    }


# -- pure: the safety summary carried in the Lease ------------------------------------------------


def safety_summary(
    state: SafetyState, now: float, *, max_bytes: int = SUMMARY_MAX_BYTES, cursor: int | None = None
) -> str:
    """The annotation text: live cooldowns, action times of the last hour, open breakers; at most ``max_bytes``.

    When it would be longer, the oldest action times go first, then the cooldowns that lapse
    soonest; open breakers are always kept (there are few, and they are what stops a loop).
    """
    cooldowns = sorted(((k, v) for k, v in state.cooldowns.items() if v > now), key=lambda kv: kv[1])
    actions = sorted(t for t in state.actions if now - HOUR < t <= now)
    per_workload = {
        w: sorted(t for t in times if now - HOUR < t <= now) for w, times in sorted(state.workload_actions.items())
    }
    per_workload = {w: ts for w, ts in per_workload.items() if ts}
    breakers = {
        w: {"reason": cap(b.reason, 200), "opened_at": b.opened_at} for w, b in sorted(state.breakers.items()) if b.open
    }

    def render() -> str:
        doc = {
            "v": SUMMARY_VERSION,
            "at": now,
            "cooldowns": dict(cooldowns),
            "actions": actions,
            "workload_actions": per_workload,
            "breakers": breakers,
        }
        if cursor is not None:
            # Where the leader's reading of Loki stands: a new leader does not read (and act on)
            # lines before it again.
            doc["cursor"] = cursor
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    text = render()
    dropped = 0
    while len(text.encode()) > max_bytes and (actions or per_workload or cooldowns):
        if actions or per_workload:
            oldest = min([*actions, *(ts[0] for ts in per_workload.values())])
            if actions and actions[0] == oldest:
                actions.pop(0)
            for w in [w for w, ts in per_workload.items() if ts[0] == oldest]:
                per_workload[w].pop(0)
                if not per_workload[w]:
                    del per_workload[w]
        else:
            cooldowns.pop(0)
        dropped += 1
        text = render()
    if dropped:
        log.warning(
            "safety summary over %d bytes: %d oldest entries left out of the Lease annotation", max_bytes, dropped
        )
    return text


def parse_summary(text: str | None) -> dict[str, Any] | None:
    """The summary from the annotation, or None if it is absent, unreadable or of another version."""
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        log.warning("the Lease's safety summary is not JSON; ignored: %s", cap(text, 80))
        return None
    if not isinstance(doc, dict) or doc.get("v") != SUMMARY_VERSION:
        log.warning("the Lease's safety summary has an unknown version; ignored")
        return None
    return doc


def merge_summary(state: SafetyState, summary: Mapping[str, Any], now: float) -> int:
    """Fold a leader's summary into ``state`` (in place): max of cooldowns, union of action times, breakers open.

    Returns how many entries changed ``state``. Merging is idempotent: a summary that already
    came from this state changes nothing. Malformed entries are skipped.
    """
    changed = 0
    for key, until in _items(summary.get("cooldowns")):
        if isinstance(until, int | float) and until > now and until > state.cooldowns.get(str(key), 0.0):
            state.cooldowns[str(key)] = float(until)
            changed += 1
    own = set(state.actions)
    for t in _floats(summary.get("actions")):
        if t > now - HOUR and t not in own:
            state.actions.append(t)
            own.add(t)
            changed += 1
    state.actions.sort()
    for workload, times in _items(summary.get("workload_actions")):
        mine = state.workload_actions.setdefault(str(workload), [])
        seen = set(mine)
        for t in _floats(times):
            if t > now - HOUR and t not in seen:
                mine.append(t)
                seen.add(t)
                changed += 1
        mine.sort()
        if not mine:
            del state.workload_actions[str(workload)]
    for workload, info in _items(summary.get("breakers")):
        if state.breaker_open(str(workload)):
            continue
        info = info if isinstance(info, Mapping) else {}
        opened = info.get("opened_at")
        state.breakers[str(workload)] = Breaker(
            open=True,
            reason=str(info.get("reason") or "opened on the previous leader"),
            opened_at=float(opened) if isinstance(opened, int | float) else now,
        )
        changed += 1
    return changed


def _items(value: object) -> list[tuple[object, object]]:
    return list(value.items()) if isinstance(value, Mapping) else []


def _floats(value: object) -> list[float]:
    if not isinstance(value, list):
        return []
    return [float(t) for t in value if isinstance(t, int | float) and not isinstance(t, bool)]
