"""Leader election over a ``coordination.k8s.io/v1`` Lease, so that several replicas never both act.

With ``leader_election.enabled`` every replica runs the same process; only the holder of the Lease
polls Loki and remediates, the others serve the console and the API read-only. The semantics are
client-go's ``leaderelection`` with a Lease lock:

- a replica **acquires** the Lease when nobody holds it (no Lease yet, an empty
  ``holderIdentity``) or when the holder's lease has expired (``renewTime + leaseDurationSeconds``
  is in the past); a takeover from another holder increments ``leaseTransitions``;
- the holder **renews** every ``renew_every``; it counts itself leader only until
  ``lease_duration - renew_every`` after its last successful renewal (client-go's renew deadline),
  so it stops acting before anyone else may take over, even if the API server is unreachable;
- every write is conditional on the ``resourceVersion`` that was read (or is a create): of two
  replicas racing, the API server lets exactly one win and the other gets 409 and stays follower;
- on a clean stop the holder **releases** the Lease (empty ``holderIdentity``, 1s duration), so a
  follower takes over at its next renewal instead of waiting for expiry.

Each replica has its own store, so the holder also publishes a compact summary of its
:class:`~sentinel.core.policy.SafetyState` (live cooldowns, action times of the last hour, open
breakers) in the Lease annotation :data:`SAFETY_ANNOTATION` on every renewal. A replica about to
take over merges that summary into its own persisted safety state *before* it writes the Lease,
hence before its first remediation: a cooldown started by the old leader still holds on the new one.

:func:`decide_lease`, :func:`safety_summary` and :func:`merge_summary` are pure and take plain
values; :class:`LeaderElector` does the I/O through the :class:`~sentinel.remediation.cluster.Cluster`
adapter, whose errors are already :mod:`sentinel.errors` classes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypedDict

from sentinel.core.policy import HOUR, Breaker, SafetyState
from sentinel.errors import Conflict, NotFound, SentinelError, cap
from sentinel.remediation.cluster import Cluster
from sentinel.store.base import Store

log = logging.getLogger(__name__)

SAFETY_ANNOTATION = "kube-sentinel.io/safety"
SUMMARY_VERSION = 1
# Annotations of one object may hold 256 KiB in all; the summary keeps well below that.
SUMMARY_MAX_BYTES = 32 * 1024
SAFETY_STATE = "safety"  # the store state the remediator persists (sentinel.remediation.remediator)
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_NAMESPACE = "kube-sentinel"


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


# -- who am I, where is the lease -----------------------------------------------------------------


def default_identity(env: Mapping[str, str]) -> str:
    """``$POD_NAME`` (downward API), else ``hostname-pid``: unique per running process."""
    return env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_namespace(env: Mapping[str, str], *, service_account_file: str = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """``$POD_NAMESPACE``, else the service account's namespace, else ``kube-sentinel``."""
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        text = Path(service_account_file).read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or DEFAULT_NAMESPACE


# -- the doer ----------------------------------------------------------------------------------------


class LeaderElector:
    """Holds (or waits for) one Lease. Call :meth:`tick` every ``renew_every``; :meth:`is_leader` any time.

    ``store`` is this replica's store: the safety state the remediator persists there is published
    in the Lease while leading and merged from the Lease before taking over. Thread-safe.
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        namespace: str,
        name: str = "kube-sentinel",
        identity: str,
        lease_duration: float = 15.0,
        renew_every: float = 5.0,
        store: Store | None = None,
        clock: Callable[[], float],
    ) -> None:
        if lease_duration <= 2 * renew_every:
            raise ValueError("lease_duration must be more than twice renew_every")
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_every = renew_every
        self.renew_deadline = lease_duration - renew_every
        self.store = store
        self.clock = clock
        self.holder = ""  # last known holder ("" = none or unknown)
        self.transitions = 0
        self.last_error = ""
        self.wrote = False  # whether the last round wrote the Lease (renewal with the safety summary)
        self._holding = False  # our last write made us the holder (release() clears it in the Lease)
        self._valid_until = 0.0  # leader until then: last successful renewal + renew deadline
        self._lock = threading.Lock()

    # -- state ----------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        """True while we hold the Lease and our last renewal is younger than the renew deadline.

        No lock and no I/O (one attribute read): the engine asks before every action, and must not
        wait behind a renewal that is talking to a slow API server.
        """
        return self._valid(self.clock())

    def _valid(self, now: float) -> bool:
        return now < self._valid_until

    def status(self) -> dict[str, Any]:
        """What the console and the API show about the election (no lock: never waits for a renewal)."""
        leading = self.is_leader()
        return {
            "enabled": True,
            "identity": self.identity,
            "lease": f"{self.namespace}/{self.name}",
            "holder": self.holder,
            "leader": leading,
            "role": "leader" if leading else "follower: read-only",
            "transitions": self.transitions,
            "last_error": self.last_error,
        }

    # -- one round ---------------------------------------------------------------------------------

    def tick(self) -> bool:
        """Read the Lease, then create, renew, take over or follow; returns whether we lead now.

        Never raises a :class:`~sentinel.errors.SentinelError`: a failed round is logged and leaves
        us leader only until the renew deadline of our last successful renewal. A store failure
        while merging the previous leader's summary happens before our write: we stay follower.
        """
        with self._lock:
            now = self.clock()
            was = self._valid(now)
            self.wrote = False
            try:
                self._round(now)
                self.last_error = ""
            except Conflict as err:
                # Someone else wrote the Lease between our read and our write: they won.
                self._holding, self._valid_until = False, 0.0
                self.last_error = ""
                log.info("[%s/%s] lost the race for the lease: %s", self.namespace, self.name, err)
            except SentinelError as err:  # the API server, or the store while merging (then we did not write)
                self.last_error = cap(err)
                log.warning("[%s/%s] lease round failed: %s", self.namespace, self.name, self.last_error)
            leading = self._valid(self.clock())
            if leading and not was:
                log.info(
                    "[%s/%s] %s is now the leader (transitions: %d)",
                    self.namespace,
                    self.name,
                    self.identity,
                    self.transitions,
                )
            elif was and not leading:
                log.warning(
                    "[%s/%s] %s is no longer the leader; read-only now", self.namespace, self.name, self.identity
                )
            return leading

    def publish(self) -> bool:
        """A round that must write: True only if we lead and the Lease now holds our safety summary.

        Before each real action: the action goes ahead only when the next leader would know of it.
        """
        leading = self.tick()
        return leading and self.wrote

    def _round(self, now: float) -> None:
        try:
            lease: dict[str, Any] | None = self.cluster.get_lease(self.namespace, self.name)
        except NotFound:
            lease = None
        spec: Mapping[str, Any] | None = None
        if lease is not None:
            read = lease.get("spec")
            spec = read if isinstance(read, Mapping) else {}
        decision = decide_lease(spec, self.identity, now, self.lease_duration)
        if decision.action is LeaseAction.FOLLOW:
            self.holder = decision.holder
            self.transitions = int((spec or {}).get("leaseTransitions") or 0)
            self._holding, self._valid_until = False, 0.0
            return
        assert decision.spec is not None
        if not self._valid(now):
            # About to lead (again): adopt what the previous leader knew before the first action.
            self._adopt(lease, now)
        annotations = {SAFETY_ANNOTATION: self._summary(now)} if self.store is not None else {}
        if lease is None:
            body: dict[str, Any] = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace, "annotations": annotations},
                "spec": dict(decision.spec),
            }
            written = self.cluster.create_lease(self.namespace, body)
        else:
            body = dict(lease)
            meta = dict(body.get("metadata") or {})
            meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
            body["metadata"] = meta
            body["spec"] = dict(decision.spec)
            written = self.cluster.replace_lease(self.namespace, body)
        if decision.action is LeaseAction.ACQUIRE:
            log.info(
                "[%s/%s] took over the lease from %r",
                self.namespace,
                self.name,
                str((spec or {}).get("holderIdentity") or ""),
            )
        self.holder = self.identity
        self.transitions = int(((written.get("spec") or {}).get("leaseTransitions")) or 0)
        self.wrote = True  # this round's write (with the current safety summary) reached the API server
        self._holding = True
        self._valid_until = now + self.renew_deadline

    def _summary(self, now: float) -> str:
        assert self.store is not None
        state = SafetyState.from_dict(self.store.get_state(SAFETY_STATE))
        return safety_summary(state, now, cursor=self.store.get_cursor())

    def _adopt(self, lease: Mapping[str, Any] | None, now: float) -> None:
        if self.store is None or lease is None:
            return
        summary = parse_summary(((lease.get("metadata") or {}).get("annotations") or {}).get(SAFETY_ANNOTATION))
        if summary is None:
            return
        # Only followers get here: no automatic action runs, and the runtime refuses manual ones.
        state = SafetyState.from_dict(self.store.get_state(SAFETY_STATE))
        changed = merge_summary(state, summary, now)
        cursor = summary.get("cursor")
        own = self.store.get_cursor()
        moved = isinstance(cursor, int) and not isinstance(cursor, bool) and (own is None or cursor > own)
        if moved:
            # The previous leader read (and acted on) Loki up to here: resume after it, so old
            # lines are not acted on twice. This replica's groups miss what it did not read.
            self.store.set_cursor(int(cursor))  # type: ignore[arg-type]
        if changed or moved:
            self.store.put_state(SAFETY_STATE, state.to_dict())
            self.store.flush()
        log.info(
            "[%s/%s] merged the previous leader's safety summary: %d entries new here (%d cooldowns, %d open breakers)",
            self.namespace,
            self.name,
            changed,
            len(summary.get("cooldowns") or {}),
            len(summary.get("breakers") or {}),
        )

    # -- stepping down --------------------------------------------------------------------------------

    def release(self) -> bool:
        """Step down: clear ``holderIdentity`` (keeping the latest safety summary); True if released.

        Only if we still hold the Lease; a failure is logged (the Lease then simply expires).
        """
        with self._lock:
            if not self._holding:
                return False
            self._holding, self._valid_until = False, 0.0
            now = self.clock()
            try:
                lease = self.cluster.get_lease(self.namespace, self.name)
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return False
                body = dict(lease)
                meta = dict(body.get("metadata") or {})
                if self.store is not None:
                    meta["annotations"] = {**(meta.get("annotations") or {}), SAFETY_ANNOTATION: self._summary(now)}
                body["metadata"] = meta
                body["spec"] = dict(released(spec, now))
                self.cluster.replace_lease(self.namespace, body)
            except SentinelError as err:
                self.last_error = cap(err)
                log.warning(
                    "[%s/%s] could not release the lease (it will expire): %s",
                    self.namespace,
                    self.name,
                    self.last_error,
                )
                return False
            self.holder = ""
            log.info("[%s/%s] %s released the lease", self.namespace, self.name, self.identity)
            return True
