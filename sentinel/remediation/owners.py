"""A pod's top-level owner through ``ownerReferences``: the workload a group belongs to.

Pod -> ReplicaSet -> Deployment, Pod -> Job -> CronJob, Pod -> StatefulSet / DaemonSet (or any
other controller, named as it is), and a static pod's mirror (owned by its Node) -> its component.
Read-only GETs through :class:`sentinel.remediation.cluster.Cluster`'s public methods.

The resolver sits on the poll's path, so it must never fail it nor hold it up for long:

* answers are kept in a bounded cache (``max_entries``, oldest dropped first) that expires
  (``ttl``): owners change rarely, but a Deployment can adopt an orphaned ReplicaSet;
* a pod that is gone gets the name rule (:func:`sentinel.core.parsing.workload_of`), cached too;
* a refusal (403) stops lookups for ``forbidden_backoff``, any other failure (timeouts, 5xx, a
  broken answer) for ``failure_backoff``; meanwhile every pod gets the name rule;
* at most ``budget`` seconds of API time per ``window`` seconds: past it, name rules until the
  window turns, so a burst of new pods costs a bounded delay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sentinel.core.parsing import POD_LABELS, workload_from_pod, workload_of
from sentinel.errors import ClusterError, Forbidden, NotFound

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class OwnerReader(Protocol):
    """The part of ``Cluster`` the resolver uses."""

    def get_pod(self, namespace: str, name: str) -> Obj: ...

    def get_object(self, namespace: str, kind: str, name: str) -> Obj: ...


def _controller(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


class OwnerResolver:
    """``workload_of(labels)``: the top-level owner of the stream's pod, else the name rule."""

    def __init__(
        self,
        cluster: OwnerReader,
        *,
        ttl: float = 600.0,
        max_entries: int = 10_000,
        failure_backoff: float = 60.0,
        forbidden_backoff: float = 600.0,
        budget: float = 2.0,
        window: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cluster = cluster
        self._ttl = ttl
        self._max = max_entries
        self._failure_backoff = failure_backoff
        self._forbidden_backoff = forbidden_backoff
        self._budget = budget
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        # (kind, namespace, name) -> (workload, expires at); kinds: Pod, ReplicaSet, Job
        self._cache: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()
        self._paused_until = 0.0
        self._window_start = 0.0
        self._spent = 0.0
        self.lookups = 0  # API calls made
        self.fallbacks = 0  # pods answered by the name rule because the API could not be asked

    # -- public ------------------------------------------------------------------------------------

    def workload_of(self, labels: Mapping[str, str]) -> str:
        """The stream's workload: the pod's top-level owner when the API answers, else the name rule."""
        fallback = workload_of(labels)
        pod = next((labels[k] for k in POD_LABELS if labels.get(k)), "")
        namespace = labels.get("namespace") or labels.get("k8s_namespace_name") or ""
        if not pod or not namespace:
            return fallback
        with self._lock:
            return self._resolve(namespace, pod, fallback)

    @property
    def cached(self) -> int:
        """Answers kept in the cache now (never more than ``max_entries``)."""
        with self._lock:
            return len(self._cache)

    def workload(self, namespace: str, pod: str) -> str:
        """The top-level owner of ``pod`` in ``namespace`` (the name rule when the API cannot say)."""
        return self.workload_of({"namespace": namespace, "pod": pod})

    # -- internals ---------------------------------------------------------------------------------

    def _cached(self, key: tuple[str, str, str], now: float) -> str | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        if hit[1] <= now:
            del self._cache[key]
            return None
        return hit[0]

    def _remember(self, key: tuple[str, str, str], workload: str, now: float) -> None:
        self._cache[key] = (workload, now + self._ttl)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)

    def _may_call(self, now: float) -> bool:
        if now < self._paused_until:
            return False
        if now - self._window_start >= self._window:
            self._window_start, self._spent = now, 0.0
        return self._spent < self._budget

    def _get(self, what: str, namespace: str, name: str) -> Obj:
        t0 = self._clock()
        try:
            self.lookups += 1
            if what == "Pod":
                return self._cluster.get_pod(namespace, name)
            return self._cluster.get_object(namespace, what, name)
        finally:
            self._spent += max(0.0, self._clock() - t0)

    def _resolve(self, namespace: str, pod: str, fallback: str) -> str:
        now = self._clock()
        key = ("Pod", namespace, pod)
        known = self._cached(key, now)
        if known is not None:
            return known
        if not self._may_call(now):
            self.fallbacks += 1
            return fallback
        try:
            workload = self._owner_of_pod(namespace, pod, fallback, now)
        except NotFound:
            workload = fallback  # the pod is gone: its name is all there is
        except Forbidden as err:
            self._pause(self._forbidden_backoff, namespace, pod, err)
            return fallback
        except (ClusterError, KeyError, TypeError, ValueError, AttributeError) as err:
            self._pause(self._failure_backoff, namespace, pod, err)
            return fallback
        self._remember(key, workload, self._clock())
        return workload

    def _pause(self, seconds: float, namespace: str, pod: str, err: Exception) -> None:
        self._paused_until = self._clock() + seconds
        self.fallbacks += 1
        log.warning(
            "[%s/%s] owner lookup failed (%s); using pod-name rules for %.0fs",
            namespace,
            pod,
            str(err)[:256],
            seconds,
        )

    def _owner_of_pod(self, namespace: str, pod: str, fallback: str, now: float) -> str:
        ref = _controller(self._get("Pod", namespace, pod))
        if ref is None:
            return pod  # a bare pod is its own workload
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        if not name:
            return fallback
        if kind == "Node":  # a static pod's mirror: <component>-<node name>
            return workload_from_pod(pod, node=name)
        if kind in ("ReplicaSet", "Job"):
            return self._top_of(namespace, kind, name, now)
        return name  # StatefulSet, DaemonSet, or another controller (a Rollout, an operator's kind)

    def _top_of(self, namespace: str, kind: str, name: str, now: float) -> str:
        """ReplicaSet -> its Deployment, Job -> its CronJob (or itself when it has none)."""
        key = (kind, namespace, name)
        known = self._cached(key, now)
        if known is not None:
            return known
        try:
            ref = _controller(self._get(kind, namespace, name))
        except NotFound:
            ref = None  # deleted meanwhile: the controller named on the pod is the best answer
        want = "Deployment" if kind == "ReplicaSet" else "CronJob"
        top = str(ref.get("name")) if ref is not None and ref.get("kind") == want and ref.get("name") else name
        self._remember(key, top, now)
        return top
