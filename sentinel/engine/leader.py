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

:func:`decide_lease`, :func:`safety_summary` and :func:`merge_summary` are pure and live in
:mod:`sentinel.engine.lease`; :class:`LeaderElector` does the I/O through the
:class:`~sentinel.remediation.cluster.Cluster` adapter, whose errors are already
:mod:`sentinel.errors` classes. It reads and merges the safety state only through the
:class:`~sentinel.remediation.ledger.SafetyLedger`, the state's one owner (one lock for all writers).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sentinel.engine.lease import (
    SAFETY_ANNOTATION,
    LeaseAction,
    decide_lease,
    merge_summary,
    parse_summary,
    released,
    safety_summary,
)
from sentinel.errors import Conflict, NotFound, SentinelError, cap
from sentinel.remediation.cluster import Cluster
from sentinel.remediation.ledger import SafetyLedger
from sentinel.store.base import Store

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_NAMESPACE = "kube-sentinel"


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

    ``ledger`` holds this replica's safety state: it is published in the Lease while leading and
    the previous leader's is merged into it before taking over; ``store`` holds the Loki cursor
    (published and adopted the same way). Thread-safe.
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
        ledger: SafetyLedger | None = None,
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
        self.ledger = ledger  # the remediator's: the one owner of the safety state
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
        annotations = {SAFETY_ANNOTATION: self._summary(now)} if self.ledger is not None else {}
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
        assert self.ledger is not None
        cursor = self.store.get_cursor() if self.store is not None else None
        return safety_summary(self.ledger.state(), now, cursor=cursor)

    def _adopt(self, lease: Mapping[str, Any] | None, now: float) -> None:
        if self.ledger is None or lease is None:
            return
        summary = parse_summary(((lease.get("metadata") or {}).get("annotations") or {}).get(SAFETY_ANNOTATION))
        if summary is None:
            return
        # Only followers get here: no automatic action runs, and decide() refuses manual ones.
        cursor = summary.get("cursor")
        moved = False
        if self.store is not None:
            own = self.store.get_cursor()
            moved = isinstance(cursor, int) and not isinstance(cursor, bool) and (own is None or cursor > own)
            if moved:
                # The previous leader read (and acted on) Loki up to here: resume after it, so old
                # lines are not acted on twice. This replica's groups miss what it did not read.
                self.store.set_cursor(int(cursor))  # type: ignore[arg-type]
        changed = self.ledger.apply(lambda state: merge_summary(state, summary, now), flush=True)
        if moved and not changed and self.store is not None:
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
                if self.ledger is not None:
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
