"""Pod states counted exactly once, across restarts too, and where each group's occurrences come from.

A background thread scans the pods every ``interval`` (:class:`~sentinel.sources.podstatus.PodStatusSource`);
the states whose key was never counted wait in ``pending``. The poll takes them as log entries
(:meth:`PodStatusWatcher.entries`), runs them through the same pipeline as Loki's lines, and
after the store recorded the poll, :meth:`commit` moves their keys to ``counted`` and saves it
in the store's small state ``pod_status`` in the same flush as the counts. A failed poll commits
nothing: the same states come again at the next one. ``groups`` keeps, per group id, how many
occurrences came from the cluster: a group's ``source`` is ``logs``, ``cluster`` or ``both``.

Counted keys of pods that no longer exist are forgotten after ``FORGET_AFTER`` (a pod uid never
comes back); at most ``MAX_COUNTED`` keys are kept, the oldest dropped first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sentinel.core.model import ErrorGroup, LogEntry
from sentinel.core.podstatus import PodState
from sentinel.errors import SentinelError, cap
from sentinel.sources.podstatus import PodStatusSource
from sentinel.store.base import Store

log = logging.getLogger(__name__)

STATE = "pod_status"
FORGET_AFTER = 24 * 3600.0
MAX_COUNTED = 50_000
MAX_GROUPS = 20_000
MAX_PENDING = 10_000  # states waiting for a poll (Loki down for long): the newest past this wait for a later scan
NS = 1_000_000_000


def source_of(count: int, from_cluster: int) -> str:
    """logs, cluster or both, from a group's count and how many of its occurrences the cluster gave."""
    if from_cluster <= 0:
        return "logs"
    return "cluster" if from_cluster >= count else "both"


class PodStatusWatcher:
    """Scans pod status in the background; hands new states to the poll; remembers what was counted."""

    def __init__(
        self,
        source: PodStatusSource | None,
        *,
        store: Store,
        clock: Callable[[], float] = time.time,
        interval: float = 30.0,
        background: bool = True,
    ) -> None:
        """``background`` False: no thread; :meth:`scan` runs only when called (tests)."""
        self.source = source
        self.background = background
        self.store = store
        self.clock = clock
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[PodState, float]] = {}  # key -> (state, when a scan first saw it)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.scans = 0
        self.scan_failures = 0
        self.last_scan_at: float | None = None
        self.last_error = ""
        doc = store.get_state(STATE) or {}
        counted, groups = doc.get("counted"), doc.get("groups")
        self._counted: dict[str, float] = {}
        self._groups: dict[str, int] = {}
        try:
            self._counted = {str(k): float(v) for k, v in dict(counted or {}).items()}
            self._groups = {str(k): int(v) for k, v in dict(groups or {}).items()}
        except (TypeError, ValueError) as err:
            log.warning("stored %s could not be read (%s): pod states may be counted again", STATE, cap(err))
        self._live: set[str] = set()
        self._seen_uid_at: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.source is not None

    # -- the background side -------------------------------------------------------------------

    def start(self) -> None:
        if not self.background or self.source is None or self._thread is not None or self._stopping.is_set():
            return
        self._thread = threading.Thread(target=self._run, name="k8s-pod-status", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.scan()
            self._stopping.wait(self.interval)

    def scan(self) -> int:
        """One complete scan; returns how many states now wait for the poll (0 after a failed scan)."""
        if self.source is None:
            return 0
        now = self.clock()
        try:
            result = self.source.scan()
        except SentinelError as err:
            with self._lock:
                self.last_error = cap(err, 300)
                self.scan_failures += 1
            log.warning("pod status scan failed: %s", self.last_error)
            return 0
        with self._lock:
            self.scans += 1
            self.last_scan_at = now
            self.last_error = ""
            self._live = result.uids
            for uid in result.uids:
                self._seen_uid_at[uid] = now
            for state in result.states:
                if state.key not in self._counted and len(self._pending) < MAX_PENDING:
                    self._pending.setdefault(state.key, (state, now))
            return len(self._pending)

    # -- the poll's side --------------------------------------------------------------------------

    def entries(self) -> list[tuple[str, LogEntry]]:
        """The states not counted yet, as log entries (newest time known, else when the scan saw them)."""
        now = self.clock()
        with self._lock:
            pending = list(self._pending.values())
        out = []
        for s, seen_at in pending:
            at = min(s.at or seen_at, now)
            out.append((s.key, LogEntry(int(at * NS), s.labels, s.line)))
        return out

    def commit(self, keys: Iterable[str], group_counts: Mapping[str, int]) -> None:
        """The poll recorded these keys' occurrences (``group_counts``: how many per group id): never again."""
        now = self.clock()
        with self._lock:
            for key in keys:
                self._pending.pop(key, None)
                self._counted[key] = now
            for gid, n in group_counts.items():
                self._groups[gid] = self._groups.get(gid, 0) + n
            if self.scans:  # which pods exist is known only after a scan
                self._forget(now)
            doc = {"counted": dict(self._counted), "groups": dict(self._groups)}
        self.store.put_state(STATE, doc)

    def _forget(self, now: float) -> None:
        """Keys of pods gone for ``FORGET_AFTER``; the oldest past ``MAX_COUNTED`` (caller holds the lock)."""
        gone = [
            k
            for k, at in self._counted.items()
            if k.split("/", 1)[0] not in self._live
            and now - self._seen_uid_at.get(k.split("/", 1)[0], at) > FORGET_AFTER
        ]
        for k in gone:
            del self._counted[k]
        if len(self._counted) > MAX_COUNTED:
            self._counted = dict(sorted(self._counted.items(), key=lambda kv: -kv[1])[:MAX_COUNTED])
        if len(self._groups) > MAX_GROUPS:
            self._groups = dict(sorted(self._groups.items(), key=lambda kv: -kv[1])[:MAX_GROUPS])

    def source_of(self, g: ErrorGroup) -> str:
        with self._lock:
            n = self._groups.get(g.id, 0)
        return source_of(g.count, n)

    def from_cluster(self, group_id: str) -> int:
        with self._lock:
            return self._groups.get(group_id, 0)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "scans": self.scans,
                "last_scan_at": self.last_scan_at,
                "last_error": self.last_error,
                "pending": len(self._pending),
                "counted": len(self._counted),
            }

    def health(self, now: float) -> str:
        """For ``/ready`` (informational): ``ok``, or why pod states are not being counted now."""
        with self._lock:
            if self.source is None:
                return "off: no cluster, or kubernetes.pod_status.enabled is false"
            if self.last_error:
                return f"failing: {self.last_error}"
            if self.last_scan_at is None:
                return "waiting for the first scan"
            age = now - self.last_scan_at
            if age > 3 * self.interval + 30:
                return f"stale: the last complete scan was {age:.0f}s ago (every {self.interval:.0f}s)"
            return "ok"

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(2.0)
