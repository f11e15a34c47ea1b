"""Deploy correlation for the engine: rollout histories read off the poll's path, kept per group.

For each new group of a Deployment or StatefulSet, the revision current when it was first seen,
its image(s), how long after that revision's rollout it appeared, and the pod templates it has
been seen in (what a ``new_since_rollout`` rollback checks). Kept in the store's small state
``rollouts`` (``groups``: by group id, ``workloads``: the revision each workload ran when last
read), bounded, so it survives a restart and the ReplicaSets' history limit.

Reads (GET the workload, LIST its ReplicaSets or ControllerRevisions by its selector) run on one
background thread with a bounded, expiring cache (:class:`~sentinel.engine.context.ContextReader`);
the poll only asks (:meth:`RolloutTracker.observe`), never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from sentinel.core.model import ErrorGroup
from sentinel.core.rollouts import (
    Correlation,
    History,
    correlate,
    deployment_history,
    describe,
    hashes_of,
    new_since_rollout,
    rollback_refusal,
    statefulset_history,
)
from sentinel.engine.context import ContextReader, selector_of
from sentinel.errors import ClusterError, Forbidden, NotFound
from sentinel.store.base import GroupChange, Store

log = logging.getLogger(__name__)

Obj = dict[str, Any]
STATE = "rollouts"
MAX_GROUPS = 5000
MAX_WORKLOADS = 1000
MAX_PENDING = 2000


class RolloutReads(Protocol):
    def get_object(self, namespace: str, kind: str, name: str) -> Obj: ...

    def list_replicasets(self, namespace: str, *, label_selector: str = "") -> list[Obj]: ...

    def list_controllerrevisions(self, namespace: str, *, label_selector: str = "") -> list[Obj]: ...


def read_history(cluster: RolloutReads, namespace: str, workload: str, *, now: float) -> Obj:
    """GET the Deployment (else StatefulSet) and LIST its revisions; ``history`` None when it is neither."""
    forbidden: ClusterError | None = None
    for kind in ("Deployment", "StatefulSet"):
        try:
            obj = cluster.get_object(namespace, kind, workload)
        except NotFound:
            continue
        except Forbidden as err:
            forbidden = err
            continue
        selector = selector_of(obj)
        if kind == "Deployment":
            history = deployment_history(obj, cluster.list_replicasets(namespace, label_selector=selector), now=now)
        else:
            revisions = cluster.list_controllerrevisions(namespace, label_selector=selector)
            history = statefulset_history(obj, revisions, now=now)
        return {"state": "ok", "read_at": now, "history": history}
    if forbidden is not None:
        raise forbidden
    return {"state": "ok", "read_at": now, "history": None, "detail": f"no Deployment or StatefulSet {workload}"}


def _current_of(history: History) -> Obj:
    rev = history.current_revision
    return {
        "kind": history.kind,
        "revision": history.current,
        "hash": rev.hash if rev else "",
        "images": list(rev.images) if rev else [],
        "rollout_at": rev.rollout_at if rev else None,
        "read_at": history.read_at,
    }


class RolloutTracker:
    """Correlates new groups with their workload's rollouts; answers the API, the queue filter and the gate."""

    def __init__(
        self,
        cluster: RolloutReads | None,
        *,
        store: Store,
        clock: Callable[[], float] = time.time,
        window: float = 3600.0,
        ttl: float = 30.0,
        no_cluster: str = "no cluster configured",
    ) -> None:
        self.store = store
        self.clock = clock
        self.window = window
        any_reads: Any = cluster  # the reader only hands it to read_history
        self.reader = ContextReader(
            any_reads, clock=clock, ttl=ttl, no_cluster=no_cluster, read=read_history, thread_name="k8s-rollouts"
        )
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[str, str, float, tuple[str, ...]]] = {}
        doc = store.get_state(STATE) or {}
        groups, workloads = doc.get("groups"), doc.get("workloads")
        self._groups: dict[str, Obj] = dict(groups) if isinstance(groups, dict) else {}
        self._workloads: dict[str, Obj] = dict(workloads) if isinstance(workloads, dict) else {}
        if doc and not (isinstance(groups, dict) and isinstance(workloads, dict)):
            log.warning("stored state %r is not {groups, workloads}: deploy correlation starts afresh", STATE)

    @property
    def enabled(self) -> bool:
        return self.reader.cluster is not None

    # -- the poll's side: no cluster call ---------------------------------------------------------

    def observe(self, changes: Iterable[GroupChange]) -> None:
        """New groups wait for their workload's history (read in the background); known ones add the
        pod templates they are now seen in. Then what arrived is recorded."""
        if not self.enabled:
            return
        dirty = False
        with self._lock:
            for c in changes:
                g = c.group
                if not g.workload:
                    continue
                stored = self._groups.get(g.id)
                if stored is None:
                    if g.id not in self._pending and len(self._pending) < MAX_PENDING:
                        self._pending[g.id] = (g.namespace, g.workload, g.first_seen, tuple(g.pods))
                    self.reader.request(g.namespace, g.workload)
                    continue
                pods = [*g.pods, g.last_pod] if g.last_pod else list(g.pods)
                corr = Correlation.from_dict(stored)
                grown = corr.with_seen(hashes_of(pods, g.workload))
                if grown is not corr:
                    self._groups[g.id] = {**stored, "seen": list(grown.seen)}
                    dirty = True
            dirty = self._settle() or dirty
            if dirty:
                self._save()

    def _settle(self) -> bool:
        """Record the groups whose workload history has been read (caller holds the lock)."""
        changed = False
        for gid, (ns, workload, first_seen, pods) in list(self._pending.items()):
            read = self.reader.cached(ns, workload)
            if read is None:
                continue
            del self._pending[gid]
            history = read.get("history") if read.get("state") == "ok" else None
            if not isinstance(history, History):
                continue  # a DaemonSet, a Job, or not readable: nothing to correlate
            self._workloads[f"{ns}/{workload}"] = _current_of(history)
            corr = correlate(history, first_seen=first_seen, pods=pods, window=self.window)
            if corr is not None:
                self._groups[gid] = {**corr.to_dict(), "workload": f"{ns}/{workload}", "first_seen": first_seen}
                current = history.current_revision
                log.info(
                    "[%s/%s] group %s: %s",
                    ns,
                    workload,
                    gid,
                    describe(corr, current_hash=current.hash if current else ""),
                )
            changed = True
        return changed

    def _save(self) -> None:
        if len(self._groups) > MAX_GROUPS:  # the oldest births go first
            keep = sorted(self._groups.items(), key=lambda kv: -float(kv[1].get("first_seen") or 0.0))[:MAX_GROUPS]
            self._groups = dict(keep)
        if len(self._workloads) > MAX_WORKLOADS:
            keep_w = sorted(self._workloads.items(), key=lambda kv: -float(kv[1].get("read_at") or 0.0))
            self._workloads = dict(keep_w[:MAX_WORKLOADS])
        self.store.put_state(STATE, {"groups": dict(self._groups), "workloads": dict(self._workloads)})

    # -- reads for the API, the console and the gate ------------------------------------------------

    def history(self, namespace: str, workload: str) -> History | None:
        read = self.reader.cached(namespace, workload)
        history = read.get("history") if read else None
        return history if isinstance(history, History) else None

    def _current_hash(self, g: ErrorGroup) -> str:
        history = self.history(g.namespace, g.workload)
        if history is not None and history.current_revision is not None:
            return history.current_revision.hash
        return str(self._workloads.get(f"{g.namespace}/{g.workload}", {}).get("hash", ""))

    def correlation(self, g: ErrorGroup, *, wait: float = 0.0) -> Obj:
        """What ``/api/errors/{id}`` shows under ``rollout``: state ok with the correlation, else why not."""
        if not self.enabled:
            return {"state": "unavailable", "reason": "no cluster", "detail": self.reader.no_cluster}
        with self._lock:
            stored = self._groups.get(g.id)
        if stored is None:
            read = self.reader.get(g.namespace, g.workload, wait=wait)
            with self._lock:
                self._pending.setdefault(g.id, (g.namespace, g.workload, g.first_seen, tuple(g.pods)))
                if self._settle():
                    self._save()
                stored = self._groups.get(g.id)
            if stored is None:
                if read.get("state") == "ok":
                    return {
                        "state": "none",
                        "reason": "not a Deployment or StatefulSet",
                        "detail": read.get("detail", ""),
                    }
                return {k: read[k] for k in ("state", "reason", "detail") if k in read}
        corr = Correlation.from_dict(stored)
        current = self._current_hash(g)
        current_doc = self._workloads.get(f"{g.namespace}/{g.workload}", {})
        return {
            "state": "ok",
            **corr.to_dict(),
            "new_since_rollout": new_since_rollout(corr, current),
            "current_revision": current_doc.get("revision"),
            "summary": describe(corr, current_hash=current),
        }

    def is_new_since_rollout(self, g: ErrorGroup) -> bool:
        with self._lock:
            stored = self._groups.get(g.id)
        if stored is None:
            return False
        return new_since_rollout(Correlation.from_dict(stored), self._current_hash(g))

    def new_ids(self, groups: Iterable[ErrorGroup]) -> set[str]:
        return {g.id for g in groups if self.is_new_since_rollout(g)}

    def gate(self, g: ErrorGroup, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """For a ``new_since_rollout`` rollback: (why not, "" if it may; the params, pinned to the checked revision)."""
        out = dict(params)
        self.reader.request(g.namespace, g.workload)  # a stale history is re-read for the next poll
        history = self.history(g.namespace, g.workload)
        with self._lock:
            stored = self._groups.get(g.id)
        if stored is None and history is not None:
            corr = correlate(history, first_seen=g.first_seen, pods=g.pods, window=self.window)
        else:
            corr = Correlation.from_dict(stored) if stored is not None else None
        pods = [*g.pods, g.last_pod] if g.last_pod else list(g.pods)
        to_revision = int(out.get("to_revision") or 0)
        refusal = rollback_refusal(
            history, corr, first_seen=g.first_seen, seen=hashes_of(pods, g.workload), to_revision=to_revision
        )
        if not refusal and history is not None and not to_revision:
            target = history.previous()
            if target is not None:
                out["to_revision"] = target.number  # the action goes exactly where the check looked
        return refusal, out

    def stop(self) -> None:
        self.reader.stop()
