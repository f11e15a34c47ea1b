"""One poll cycle: the window, fetch, pipeline, record, cursor, late-line check, counts; then remediation.

:meth:`PollCycle.poll_once` never raises a :class:`~sentinel.errors.SentinelError`: a failed
poll changes no count (its batch is dropped and the window is read again whole) and says why in
``Health`` and on the event bus; the scheduler retries it with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from sentinel.config import Config
from sentinel.core.impact import LifecycleSettings
from sentinel.core.model import LogEntry
from sentinel.engine.autoremediate import AutoRemediation
from sentinel.engine.context import ContextReader
from sentinel.engine.events import EventBus, group_summary
from sentinel.engine.health import Health, SourceCounts
from sentinel.engine.incidents import Incidents
from sentinel.engine.leadership import Leadership
from sentinel.engine.pipeline import Batch, group_key, paused_gc
from sentinel.engine.rulebook import Rulebook
from sentinel.engine.settings import RuntimeSettings
from sentinel.errors import LokiUnavailable, SentinelError, SourceError, cap, redact
from sentinel.notify.notifier import Notifier
from sentinel.sources.loki_json import FetchReport
from sentinel.store.base import GroupChange, Store

log = logging.getLogger(__name__)

NS = 1_000_000_000
MS = 1_000_000


class Source(Protocol):
    def fetch(self, start_ns: int, end_ns: int) -> Iterator[list[LogEntry]]: ...

    def ready(self) -> tuple[bool, str]: ...


@dataclass(frozen=True, slots=True)
class PollResult:
    ok: bool
    lines: int
    groups: int
    new_groups: int
    remediations: int
    duration: float
    window: tuple[float, float]
    error: str = ""
    retry_after: float | None = None  # what Loki asked for (Retry-After), when it did


@dataclass(frozen=True, slots=True)
class _ReadWindow:
    """A window read and what was counted in it: checked once more at the next poll for late lines."""

    start_ns: int
    end_ns: int
    counted: int
    query: str  # a different query counts different lines: no comparison then


class PollCycle:
    """Reads the logs of one window into the store, then hands the group changes to remediation."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        source: Callable[[], Source],
        rulebook: Rulebook,
        remediation: AutoRemediation,
        leadership: Leadership,
        health: Health,
        events: EventBus,
        context: Callable[[], ContextReader],
        incidents: Callable[[], Incidents],
        notifier: Notifier,
        settings: Callable[[], RuntimeSettings],
        lifecycle: LifecycleSettings,
        clock: Callable[[], float],
        stopping: threading.Event,
    ) -> None:
        self._config = config
        self._store = store
        self._source = source  # the runtime's (tests swap it)
        self._rulebook = rulebook
        self._remediation = remediation
        self._leadership = leadership
        self._health = health
        self._events = events
        self._context = context
        self._incidents = incidents
        self._notifier = notifier
        self._settings = settings
        self._lifecycle = lifecycle
        self._clock = clock
        self._stopping = stopping
        self.lock = threading.Lock()  # one poll at a time; stop() waits on it
        self._merges_applied = rulebook.pipeline.fingerprinter.merges
        self.rule_hits: dict[str, int] = {}
        stored_hits = store.get_state("rule_hits")
        if stored_hits:
            self.rule_hits = {str(k): int(v) for k, v in stored_hits.items()}
        health.counts = SourceCounts.from_stored(store.get_state("source_counts"))
        self._last_read: _ReadWindow | None = None

    def window(self, now: float) -> tuple[int, int]:
        """[start, end) in ns: resume from the cursor, first poll looks back, catch-up is capped."""
        # Lines reach Loki a little after their timestamp (agents batch and retry): read only up
        # to ``ingest_delay`` ago, so a line stamped before the cursor is never stored after it.
        end = int((now - self._config.loki.ingest_delay) * NS)
        end -= end % MS  # whole milliseconds: a metric query can count the window again (late lines)
        cursor = self._store.get_cursor()
        settings = self._settings()
        lookback = int(settings.lookback * NS)
        max_lookback = int(max(self._config.loki.max_lookback, settings.lookback) * NS)
        if cursor is None or cursor > end:
            # No cursor, or one in the future (a clock that jumped back, a store from elsewhere): it
            # cannot be trusted, so read from now - lookback rather than nothing (_poll says so).
            start = end - lookback
        else:
            start = max(cursor, end - max_lookback)
        return min(start, end), end

    def poll_once(self) -> PollResult:
        """One cycle: fetch the window, group, store, remediate, publish. Never raises SentinelError."""
        if not self.lock.acquire(blocking=False):
            return PollResult(False, 0, 0, 0, 0, 0.0, (0.0, 0.0), "a poll is already running")
        try:
            return self._poll()
        finally:
            self.lock.release()

    def _poll(self) -> PollResult:
        t0 = time.perf_counter()
        now = self._clock()
        start_ns, end_ns = self.window(now)
        window = (start_ns / NS, end_ns / NS)
        h = self._health
        store = self._store
        h.last_poll_at = now
        h.polls += 1
        batch = Batch()
        pipeline = self._rulebook.pipeline
        source = self._source()
        try:
            with paused_gc():  # reading and grouping allocate much and free it all by refcount
                for page in source.fetch(start_ns, end_ns):
                    if self._stopping.is_set():
                        raise SourceError("stopping: poll abandoned")
                    pipeline.process(page, into=batch)
        except SentinelError as err:
            return self._poll_failed(err, t0, window)
        incidents = self._incidents()
        incidents.feed(pipeline, batch)  # pod states not counted yet, as occurrences of the same groups
        pipeline.settle(batch)
        fingerprinter = pipeline.fingerprinter
        merged = fingerprinter.merges != self._merges_applied
        if merged:
            # Fold stored groups whose template merged since the last successful poll (a failed
            # poll's merges included: its batch was dropped, the fingerprinter kept them).
            folded = store.apply_aliases(fingerprinter.aliases(), templates=fingerprinter.templates(), key_fn=group_key)
            self._merges_applied = fingerprinter.merges
            if folded:
                log.info("templates merged: %d stored groups folded into their new template", folded)
        # Only now, with the whole window read, do counts change: a failed poll is retried whole.
        with paused_gc():  # the groups' new values are freed by refcount too (~20% of record's time)
            changes = store.record(list(batch.deltas.values()), now=now, lifecycle=self._lifecycle)
        incidents.recorded(changes)  # pod states counted for good; new groups correlated with rollouts
        counts = h.counts
        report = getattr(source, "report", None)
        extra = 0  # lines Loki holds in this window that were not read as lines
        if isinstance(report, FetchReport):
            extra = report.unread_lines + report.refused_lines
            counts.add_unread(report.unread)
            counts.unresolved_bursts += report.unresolved
            counts.refused_lines += report.refused_lines
            counts.coerced_labels += report.coerced_labels
            if report.refused_lines or report.coerced_labels:
                log.warning(
                    "loki labels that are not strings: %d values coerced, %d lines of refused streams",
                    report.coerced_labels,
                    report.refused_lines,
                )
        late = self._check_late(start_ns, end_ns, batch.lines + extra, exact=not (report and report.unresolved))
        cursor = store.get_cursor()
        if cursor is not None and cursor > end_ns:
            counts.cursor_resets += 1
            counts.last_cursor_reset = (
                f"store cursor {cursor} ns was {(cursor - end_ns) / NS:.0f}s in the future at "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}: reset, and this poll read from "
                f"now - lookback ({self._settings().lookback:.0f}s)"
            )
            log.warning("%s", counts.last_cursor_reset)
        elif cursor is not None and start_ns > cursor:
            skipped = (start_ns - cursor) / NS
            h.skipped_seconds += skipped
            log.warning(
                "catch-up capped by loki.max_lookback: %.0fs of logs after the last poll were not read", skipped
            )
        store.set_cursor(end_ns)
        for name, n in batch.rule_hits.items():
            self.rule_hits[name] = self.rule_hits.get(name, 0) + n
        if batch.rule_hits:
            store.put_state("rule_hits", dict(self.rule_hits))
        if extra or late or counts.cursor_resets or (report is not None and report.coerced_labels):
            store.put_state("source_counts", counts.to_dict())
        self._publish_changes(changes)
        actions = self._remediation.run(changes)
        if actions and self._leadership.elector is not None:
            self._leadership.tick()  # publish the new cooldowns in the Lease now, not at the next renewal
        duration = time.perf_counter() - t0
        h.lines_read += batch.lines
        h.last_lines = batch.lines
        h.last_success_at = now
        h.last_duration = duration
        h.last_error = ""
        h.consecutive_errors = 0
        h.last_window = window
        h.poll_durations = (h.poll_durations + [duration])[-100:]
        if merged:
            self._rulebook.save_templates()  # stored keys and the templates that make them stay in step
        try:
            with paused_gc():
                store.flush()
        except SentinelError as err:
            log.error("store flush failed: %s", err)
        new = sum(1 for c in changes if c.kind == "new")
        log.info(
            "poll: %d lines -> %d groups (%d new), %d remediation decisions (%s) in %.3fs",
            batch.lines,
            len(changes),
            new,
            actions,
            ", ".join(f"{k} {v}" for k, v in sorted(self._remediation.last_outcomes.items())) or "none",
            duration,
        )
        self._events.publish("health", {"ok": True, "lines": batch.lines, "duration": duration}, now=now)
        return PollResult(True, batch.lines, len(changes), new, actions, duration, window)

    def _check_late(self, start_ns: int, end_ns: int, counted: int, *, exact: bool) -> int:
        """Count the previous window again (one metric query): lines that reached Loki after it was read.

        They are reported (``late_lines``), not re-read: which lines they are cannot be told apart
        from those already counted without keeping every line. Returns how many were found now.
        """
        source = self._source()
        count = getattr(source, "count", None)
        query = str(getattr(source, "query", ""))
        previous = self._last_read
        self._last_read = _ReadWindow(start_ns, end_ns, counted, query) if exact else None
        if previous is None or not callable(count) or previous.query != query:
            return 0
        try:
            now_there = count(previous.start_ns, previous.end_ns)
        except SentinelError as err:
            log.warning("late-line check of the previous window failed: %s", cap(err, 300))
            return 0
        if not isinstance(now_there, int) or now_there <= previous.counted:
            return 0
        late = now_there - previous.counted
        self._health.counts.late_lines += late
        log.warning(
            "%d lines reached Loki after their window [%d, %d) was read (ingest_delay %.0fs is too short): "
            "counted as late lines, not read",
            late,
            previous.start_ns,
            previous.end_ns,
            self._config.loki.ingest_delay,
        )
        return late

    def _poll_failed(self, err: SentinelError, t0: float, window: tuple[float, float]) -> PollResult:
        h = self._health
        h.poll_errors += 1
        h.consecutive_errors += 1
        h.last_error = cap(redact(err), 500)
        h.last_duration = time.perf_counter() - t0
        delay = err.delay if isinstance(err, LokiUnavailable) else None
        log.error("poll failed: %s", h.last_error)
        self._events.publish("health", {"ok": False, "error": h.last_error})
        return PollResult(False, 0, 0, 0, 0, h.last_duration, window, h.last_error, retry_after=delay)

    def _publish_changes(self, changes: list[GroupChange]) -> None:
        context = self._context()
        for c in changes:
            kind = "error.new" if c.kind == "new" else "error.updated"
            self._events.publish(kind, {**group_summary(c.group), "change": c.kind, "added": c.added})
            if c.kind != "updated":
                context.request(c.group.namespace, c.group.workload)  # read on the context thread
            self._notifier.group_changed(c.kind, c.group)  # queued: delivered by the notifier's threads
