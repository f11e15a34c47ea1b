"""Select, rate-limit and deliver notifications, off the poll's critical path.

The poll thread only calls :meth:`Notifier.group_changed` / :meth:`Notifier.remediation`: each
checks every destination's selector (events, priority at or above, namespaces, rules), the
group's acknowledge/snooze state and the destination's rate limit, snapshots the message and puts
it on that destination's bounded queue. It never waits: a full queue drops the message (counted).
One worker thread per destination sends, retrying temporary failures with exponential backoff; a
slow or dead receiver delays nothing but its own queue. A destination whose last
``failing_after`` messages all failed is *failing*: shown in /ready (informational), /metrics and
/api/stats.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sentinel.config import Config, NotifyEvent
from sentinel.core.model import ErrorGroup, RemediationRecord, Result, Status
from sentinel.notify.destinations import DeliveryError, Destination
from sentinel.notify.message import Notification, of_group

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
RATE_WINDOW = 60.0
QUIET = (Status.ACKNOWLEDGED, Status.SNOOZED)
OUTCOMES = ("sent", "failed", "retried", "dropped", "rate_limited", "suppressed")


@dataclass
class DestinationStats:
    sent: int = 0
    failed: int = 0  # messages given up on (every attempt failed, or a permanent refusal)
    retried: int = 0  # attempts retried after a temporary failure
    dropped: int = 0  # the queue was full
    rate_limited: int = 0
    suppressed: int = 0  # the group was acknowledged or snoozed
    consecutive_failures: int = 0
    last_error: str = ""
    last_error_at: float | None = None
    last_success_at: float | None = None


def remediation_event(record: RemediationRecord) -> NotifyEvent | None:
    """``remediation_acted`` for an action that ran (not a dry run, not alert-only), ``_failed`` for one that failed."""
    if record.decision != "allowed" or record.action == "none":
        return None
    if record.result is Result.FAILED:
        return "remediation_failed"
    if record.result is Result.SUCCESS and not record.dry_run and record.reached_cluster:
        return "remediation_acted"
    return None


class Worker:
    """One destination: its queue, rate window, counters and delivery thread."""

    def __init__(
        self,
        destination: Destination,
        *,
        queue_size: int,
        failing_after: int,
        clock: Callable[[], float],
        stopping: threading.Event,
        context: Callable[[str, str], str] | None = None,
    ) -> None:
        self.destination = destination
        self.context = context  # (namespace, workload) -> the Kubernetes context summary, on this thread
        self.config = destination.config
        self.failing_after = failing_after
        self.clock = clock
        self.stopping = stopping
        self.queue: queue.Queue[Notification | None] = queue.Queue(maxsize=queue_size)  # None: wake up, stopping
        self.stats = DestinationStats()
        self._sent_at: deque[float] = deque()
        self._lock = threading.Lock()
        self._busy = 0
        self._thread: threading.Thread | None = None

    # -- on the poll thread ----------------------------------------------------------------

    def wants(self, event: NotifyEvent, group: ErrorGroup) -> bool:
        c = self.config
        if event not in c.events or group.priority.rank > c.min_priority.rank:
            return False
        if c.namespaces and group.namespace not in c.namespaces:
            return False
        return not (c.rules and group.rule not in c.rules)

    def admit(self, now: float) -> bool:
        """The per-destination rate limit: at most ``rate_limit`` messages in any 60s."""
        with self._lock:
            while self._sent_at and self._sent_at[0] <= now - RATE_WINDOW:
                self._sent_at.popleft()
            if len(self._sent_at) >= self.config.rate_limit:
                self.stats.rate_limited += 1
                return False
            self._sent_at.append(now)
            return True

    def suppress(self) -> None:
        with self._lock:
            self.stats.suppressed += 1

    def offer(self, n: Notification) -> None:
        with self._lock:
            try:
                self.queue.put_nowait(n)
            except queue.Full:
                self.stats.dropped += 1
                return
            self._busy += 1  # queued or in flight, until delivered or given up on
        self.start()

    # -- on the worker thread --------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self.stopping.is_set():
                self._thread = threading.Thread(target=self._run, name=f"notify-{self.config.name}", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                n = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if n is None:
                break
            try:
                self._deliver(n)
            finally:
                with self._lock:
                    self._busy -= 1
                self.queue.task_done()

    def _deliver(self, n: Notification) -> None:
        c = self.config
        if self.context is not None and not n.context:
            n = replace(n, context=self.context(n.namespace, n.workload))
        delay = c.backoff
        for attempt in range(1, c.max_attempts + 1):
            try:
                self.destination.send(n)
            except DeliveryError as err:
                last = attempt == c.max_attempts or not err.temporary
                if last:
                    self._failed(n, str(err))
                    return
                with self._lock:
                    self.stats.retried += 1
                wait = min(MAX_BACKOFF, err.delay if err.delay is not None else delay)
                log.info("[notify %s] attempt %d failed (%s); retry in %.1fs", c.name, attempt, err, wait)
                if self.stopping.wait(wait):
                    self._failed(n, f"{err}; not retried: stopping")
                    return
                delay = min(MAX_BACKOFF, delay * 2)
            else:
                with self._lock:
                    self.stats.sent += 1
                    self.stats.consecutive_failures = 0
                    self.stats.last_success_at = self.clock()
                log.info("[notify %s] %s sent for group %s", c.name, n.event, n.group_id)
                return

    def _failed(self, n: Notification, why: str) -> None:
        with self._lock:
            self.stats.failed += 1
            self.stats.consecutive_failures += 1
            self.stats.last_error = why
            self.stats.last_error_at = self.clock()
        log.warning("[notify %s] %s for group %s not delivered: %s", self.config.name, n.event, n.group_id, why)

    # -- reading ---------------------------------------------------------------------------

    @property
    def failing(self) -> bool:
        return self.stats.consecutive_failures >= self.failing_after

    def idle(self) -> bool:
        with self._lock:
            return self._busy == 0

    def status(self) -> dict[str, Any]:
        with self._lock:
            s = self.stats
            return {
                "name": self.config.name,
                "type": self.config.type,
                "failing": s.consecutive_failures >= self.failing_after,
                "queued": self.queue.qsize(),
                "sent": s.sent,
                "failed": s.failed,
                "retried": s.retried,
                "dropped": s.dropped,
                "rate_limited": s.rate_limited,
                "suppressed": s.suppressed,
                "consecutive_failures": s.consecutive_failures,
                "last_error": s.last_error,
                "last_error_at": s.last_error_at,
                "last_success_at": s.last_success_at,
            }

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            try:
                self.queue.put_nowait(None)
            except queue.Full:
                pass  # the worker sees ``stopping`` within its next get timeout
            self._thread.join(timeout)


class Notifier:
    """Every configured destination; with none it does nothing (and starts no thread)."""

    def __init__(
        self,
        destinations: list[Destination],
        *,
        external_url: str = "",
        queue_size: int = 1000,
        failing_after: int = 3,
        clock: Callable[[], float] = time.time,
        context: Callable[[str, str], str] | None = None,
    ) -> None:
        self.external_url = external_url
        self.clock = clock
        self.stopping = threading.Event()
        self.workers = [
            Worker(
                d,
                queue_size=queue_size,
                failing_after=failing_after,
                clock=clock,
                stopping=self.stopping,
                context=context,
            )
            for d in destinations
        ]

    @classmethod
    def from_config(
        cls, config: Config, *, clock: Callable[[], float] = time.time, context: Callable[[str, str], str] | None = None
    ) -> Notifier:
        nc = config.notifications
        return cls(
            [Destination(d) for d in nc.destinations],
            external_url=config.web.external_url,
            queue_size=nc.queue_size,
            failing_after=nc.failing_after,
            clock=clock,
            context=context,
        )

    def _fire(self, event: NotifyEvent, group: ErrorGroup, record: RemediationRecord | None = None) -> None:
        if not self.workers:
            return
        now = self.clock()
        message: Notification | None = None
        for w in self.workers:
            if not w.wants(event, group):
                continue
            if group.status in QUIET:
                w.suppress()
                continue
            if not w.admit(now):
                continue
            if message is None:
                message = of_group(event, group, now=now, external_url=self.external_url, record=record)
            w.offer(message)

    def group_changed(self, kind: str, group: ErrorGroup) -> None:
        """A poll's group change: ``new``, ``regressed`` and ``escalated`` notify; ``updated`` does not."""
        if kind == "new":
            self._fire("new", group)
        elif kind == "regressed":
            self._fire("regressed", group)
        elif kind == "escalated":
            self._fire("escalated", group)

    def remediation(self, record: RemediationRecord, group: ErrorGroup | None) -> None:
        event = remediation_event(record)
        if event is not None and group is not None:
            self._fire(event, group, record)

    def status(self) -> list[dict[str, Any]]:
        return [w.status() for w in self.workers]

    def failing(self) -> dict[str, str]:
        """``{destination: last error}`` for the destinations that keep failing."""
        return {w.config.name: w.stats.last_error for w in self.workers if w.failing}

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queue is empty and nothing is in flight (tests, shutdown); whether it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.idle() for w in self.workers):
                return True
            time.sleep(0.02)
        return all(w.idle() for w in self.workers)

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued for up to ``timeout`` seconds, then stop the workers."""
        if self.workers:
            self.drain(timeout)
        self.stopping.set()
        for w in self.workers:
            w.join(timeout)
            w.destination.close()
