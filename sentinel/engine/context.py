"""Kubernetes context for a group: what its workload is doing now, read off the poll's path.

For one ``(namespace, workload)``, through :class:`~sentinel.remediation.cluster.Cluster`:

- the workload object: Deployment, StatefulSet or DaemonSet of that name (``get``), its desired
  and current replicas and its rollout status (computed as ``kubectl rollout status`` does);
- its pods (``list pods`` by the workload's selector; without a workload object, the pods whose
  name is the workload's plus a generated suffix): phase, ready, restarts, the last termination
  reason and exit code, the node;
- the last Warning Events of the workload, its ReplicaSets and its pods (``list events`` in the
  namespace, filtered here): reason, message, count, age.

Reads run on one worker thread fed by a bounded queue; the poll only asks (:meth:`ContextReader.request`,
never waits). Results are kept in a bounded LRU cache with a time to live. When a read fails the
context says why: ``forbidden`` (RBAC), ``timeout``, ``unavailable``, or ``no cluster``.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sentinel.errors import ClusterError, ClusterTimeout, Forbidden, NotFound, cap

log = logging.getLogger(__name__)

Obj = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
MAX_PODS = 20
MAX_EVENTS = 10
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"


class ClusterReads(Protocol):
    def get_object(self, namespace: str, kind: str, name: str) -> Obj: ...

    def list_pods(self, namespace: str, *, label_selector: str = "") -> list[Obj]: ...

    def list_events(self, namespace: str) -> list[Obj]: ...


def reason_of(err: ClusterError) -> str:
    if isinstance(err, Forbidden):
        return "forbidden"
    if isinstance(err, ClusterTimeout):
        return "timeout"
    return "unavailable"


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def selector_of(obj: Obj) -> str:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def pod_summary(pod: Obj) -> Obj:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    restarts = sum(int(c.get("restartCount") or 0) for c in containers)
    last: Obj = {}
    waiting = ""
    for c in containers:
        state = c.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            waiting = waiting or str(state["waiting"]["reason"])
        term = state.get("terminated") or (c.get("lastState") or {}).get("terminated")
        if term:
            at = _ts(term.get("finishedAt")) or 0.0
            if not last or at >= last["at"]:
                last = {
                    "container": c.get("name", ""),
                    "reason": term.get("reason", ""),
                    "exit_code": term.get("exitCode"),
                    "at": at,
                }
    ready = any(cond.get("type") == "Ready" and cond.get("status") == "True" for cond in status.get("conditions") or [])
    meta = pod.get("metadata") or {}
    return {
        "name": meta.get("name", ""),
        "phase": status.get("phase", "Unknown"),
        "ready": ready,
        "restarts": restarts,
        "waiting": waiting,  # CrashLoopBackOff, ImagePullBackOff ...
        "last_termination": {k: v for k, v in last.items() if k != "at"}
        | ({"finished_at": last["at"] or None} if last else {}),
        "node": (pod.get("spec") or {}).get("nodeName") or "",
        "terminating": "deletionTimestamp" in meta,
    }


def rollout_status(kind: str, obj: Obj) -> str:
    """What ``kubectl rollout status`` would say, for a Deployment or StatefulSet (else "")."""
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    desired = int(spec.get("replicas", 1) if kind != "DaemonSet" else st.get("desiredNumberScheduled") or 0)
    if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return "waiting for the rollout to be observed"
    if kind == "DaemonSet":
        updated, available = int(st.get("updatedNumberScheduled") or 0), int(st.get("numberAvailable") or 0)
        if updated < desired:
            return f"progressing: {updated} of {desired} updated"
        return "complete" if available >= desired else f"progressing: {available} of {desired} available"
    for cond in st.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return f"failed: progress deadline exceeded ({cond.get('message', '')})"
    updated = int(st.get("updatedReplicas") or 0)
    replicas = int(st.get("replicas") or 0)
    available = int(st.get("availableReplicas") or st.get("readyReplicas") or 0)
    if updated < desired:
        return f"progressing: {updated} of {desired} new replicas updated"
    if replicas > updated:
        return f"progressing: {replicas - updated} old replicas pending termination"
    if available < updated:
        return f"progressing: {available} of {updated} updated replicas available"
    return "complete"


def replicas_of(kind: str, obj: Obj) -> Obj:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "DaemonSet":
        return {
            "desired": int(st.get("desiredNumberScheduled") or 0),
            "current": int(st.get("currentNumberScheduled") or 0),
            "ready": int(st.get("numberReady") or 0),
            "updated": int(st.get("updatedNumberScheduled") or 0),
        }
    return {
        "desired": int(spec.get("replicas", 1)),
        "current": int(st.get("replicas") or 0),
        "ready": int(st.get("readyReplicas") or 0),
        "updated": int(st.get("updatedReplicas") or st.get("currentReplicas") or 0),
    }


def event_summary(event: Obj, now: float) -> Obj:
    last = (
        _ts(event.get("lastTimestamp"))
        or _ts(event.get("eventTime"))
        or _ts((event.get("metadata") or {}).get("creationTimestamp"))
    )
    obj = event.get("involvedObject") or {}
    return {
        "reason": event.get("reason", ""),
        "message": cap(event.get("message", ""), 300),
        "count": int(event.get("count") or (event.get("series") or {}).get("count") or 1),
        "object": f"{obj.get('kind', '')}/{obj.get('name', '')}",
        "last_seen": last,
        "age": None if last is None else max(0.0, now - last),
    }


def read_context(cluster: ClusterReads, namespace: str, workload: str, *, now: float) -> Obj:
    """One read of the context; raises ``ClusterError`` only when nothing at all could be read."""
    errors: dict[str, str] = {}
    found: tuple[str, Obj] | None = None
    for kind in WORKLOAD_KINDS:
        try:
            found = (kind, cluster.get_object(namespace, kind, workload))
            break
        except NotFound:
            continue
        except ClusterError as err:
            if isinstance(err, Forbidden):
                errors.setdefault("workload", f"forbidden: {cap(err)}")
                continue
            raise
    out: Obj = {"state": "ok", "read_at": now, "kind": "", "replicas": None, "rollout": "", "revision": ""}
    if found is not None:
        kind, obj = found
        out["kind"] = kind
        out["replicas"] = replicas_of(kind, obj)
        out["rollout"] = rollout_status(kind, obj)
        out["revision"] = ((obj.get("metadata") or {}).get("annotations") or {}).get(
            "deployment.kubernetes.io/revision", ""
        )
    try:
        if found is not None and selector_of(found[1]):
            pods = cluster.list_pods(namespace, label_selector=selector_of(found[1]))
        else:
            own = re.compile(rf"^{re.escape(workload)}(-{_SAFE}{{6,10}})?-({_SAFE}{{5}}|\d+)$")
            pods = [p for p in cluster.list_pods(namespace) if own.match((p.get("metadata") or {}).get("name", ""))]
    except ClusterError as err:
        if found is None:
            raise  # neither the workload nor its pods: nothing was read
        pods = []
        errors["pods"] = f"{reason_of(err)}: {cap(err)}"
    pods.sort(key=lambda p: (p.get("metadata") or {}).get("name", ""))
    out["pods"] = [pod_summary(p) for p in pods[:MAX_PODS]]
    out["pods_total"] = len(pods)
    names = {workload} | {(p.get("metadata") or {}).get("name", "") for p in pods}
    names |= {
        ref.get("name", "")
        for p in pods
        for ref in (p.get("metadata") or {}).get("ownerReferences") or []
        if ref.get("kind") == "ReplicaSet"
    }
    try:
        events = [
            e
            for e in cluster.list_events(namespace)
            if e.get("type") == "Warning" and (e.get("involvedObject") or {}).get("name") in names
        ]
        summaries = sorted((event_summary(e, now) for e in events), key=lambda e: -(e["last_seen"] or 0.0))
        out["events"] = summaries[:MAX_EVENTS]
    except ClusterError as err:
        out["events"] = []
        errors["events"] = f"{reason_of(err)}: {cap(err)}"
    out["errors"] = errors
    return out


def summary_line(ctx: Obj) -> str:
    """One line for a notification: replicas, rollout, pods not ready, restarts, last termination, top Warning."""
    if ctx.get("state") != "ok":
        return ""
    parts: list[str] = []
    if ctx.get("replicas"):
        r = ctx["replicas"]
        parts.append(f"{ctx['kind']} {r['ready']}/{r['desired']} ready, rollout {ctx['rollout']}")
    pods = ctx.get("pods") or []
    if pods:
        restarts = sum(p["restarts"] for p in pods)
        not_ready = sum(1 for p in pods if not p["ready"])
        parts.append(f"{len(pods)} pods, {not_ready} not ready, {restarts} restarts")
        terms = [p["last_termination"] for p in pods if p["last_termination"]]
        if terms:
            t = terms[0]
            parts.append(f"last termination {t.get('reason', '')} (exit {t.get('exit_code')})")
    events = ctx.get("events") or []
    if events:
        e = events[0]
        parts.append(f"Warning {e['reason']} x{e['count']}: {e['message'][:120]}")
    return "; ".join(parts)


class ContextReader:
    """Reads contexts on its own thread; a bounded LRU cache with a TTL answers everyone else."""

    def __init__(
        self,
        cluster: ClusterReads | None,
        *,
        no_cluster: str = "no cluster configured",
        clock: Callable[[], float] = time.time,
        ttl: float = 30.0,
        max_entries: int = 512,
        queue_size: int = 256,
        read: Callable[..., Obj] | None = None,
        thread_name: str = "k8s-context",
    ) -> None:
        """``read(cluster, namespace, workload, now=...)`` is what one read does (default :func:`read_context`)."""
        self.cluster = cluster
        self._read_fn = read or read_context
        self.thread_name = thread_name
        self.no_cluster = no_cluster
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[str, str], Obj] = OrderedDict()
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=queue_size)
        self._pending: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.reads = 0
        self.dropped = 0

    def _fresh(self, key: tuple[str, str]) -> Obj | None:
        ctx = self._cache.get(key)
        if ctx is not None and self.clock() - ctx["read_at"] < self.ttl:
            self._cache.move_to_end(key)
            return ctx
        return None

    def request(self, namespace: str, workload: str) -> None:
        """Ask for a (re)read; returns at once. Nothing happens without a cluster."""
        if self.cluster is None or not workload:
            return
        key = (namespace, workload)
        with self._lock:
            if key in self._pending or self._fresh(key) is not None:
                return
            try:
                self._queue.put_nowait(key)
            except queue.Full:
                self.dropped += 1
                return
            self._pending.add(key)
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                self._thread.start()

    def get(self, namespace: str, workload: str, *, wait: float = 0.0) -> Obj:
        """The cached context (asking for a read when it is missing or stale), waiting up to ``wait`` seconds."""
        if self.cluster is None:
            return {"state": "unavailable", "reason": "no cluster", "detail": self.no_cluster}
        key = (namespace, workload)
        self.request(namespace, workload)
        deadline = time.monotonic() + wait
        with self._lock:
            while key in self._pending and time.monotonic() < deadline:
                self._done.wait(max(0.0, deadline - time.monotonic()))
            ctx = self._cache.get(key)
            if ctx is not None:
                self._cache.move_to_end(key)
                return {**ctx, "stale": self.clock() - ctx["read_at"] >= self.ttl}
        return {"state": "pending", "reason": "being read", "detail": "not read yet: ask again in a moment"}

    def cached(self, namespace: str, workload: str) -> Obj | None:
        """The last read (fresh or stale), without asking for another."""
        with self._lock:
            return self._cache.get((namespace, workload))

    def cached_summary(self, namespace: str, workload: str) -> str:
        with self._lock:
            ctx = self._cache.get((namespace, workload))
        return summary_line(ctx) if ctx else ""

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                key = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if key is None:
                break
            ctx = self._read(*key)
            with self._lock:
                self._cache[key] = ctx
                self._cache.move_to_end(key)
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
                self._pending.discard(key)
                self._done.notify_all()

    def _read(self, namespace: str, workload: str) -> Obj:
        assert self.cluster is not None
        now = self.clock()
        self.reads += 1
        try:
            return self._read_fn(self.cluster, namespace, workload, now=now)
        except ClusterError as err:
            log.info("[%s/%s] Kubernetes context not read: %s", namespace, workload, cap(err))
            return {"state": "unavailable", "reason": reason_of(err), "detail": cap(err), "read_at": now}

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(2.0)
