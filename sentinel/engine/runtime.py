"""The process-wide Runtime: config, rules, store, source, remediation, events and the schedule.

``Runtime.build(...)`` wires everything from the files; ``start()`` starts the scheduler;
with ``leader_election.enabled`` it also holds (or waits for) the Lease of
:mod:`sentinel.engine.leader`, and polls and remediates only while it leads;
``poll_once()`` is one engine cycle (also what ``run --once`` does). The console and the API read
through the runtime; they never open the store file themselves.

Pages are separate script runs in Streamlit: they find the already-started runtime with
:func:`current`. :func:`install` is called once by whoever built it (the CLI, the ASGI lifespan,
or ``app.py`` for a bare ``streamlit run``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sentinel.config import Config, Loaded, LoadedRules, load_config, load_rules, resolve_rules_path
from sentinel.core.fingerprint import Fingerprinter
from sentinel.core.impact import LifecycleSettings, refresh
from sentinel.core.model import ErrorGroup, LogEntry, RemediationRecord, Result, Status
from sentinel.core.policy import SafetyLimits
from sentinel.core.rules import RuleSet
from sentinel.engine.context import ContextReader
from sentinel.engine.events import EventBus
from sentinel.engine.leader import LeaderElector, default_identity, default_namespace
from sentinel.engine.pipeline import Batch, Pipeline, group_key, paused_gc
from sentinel.engine.settings import RuntimeSettings, apply_update, from_stored, stored_overrides, validate_update
from sentinel.errors import (
    ConfigError,
    LokiQueryError,
    LokiUnavailable,
    SafetyRefused,
    SentinelError,
    SourceError,
    cap,
    redact,
    register_secret,
)
from sentinel.notify.notifier import Notifier
from sentinel.remediation.cluster import Cluster
from sentinel.remediation.owners import OwnerResolver
from sentinel.remediation.remediator import Remediator
from sentinel.sources.loki import FetchReport
from sentinel.store import open_store
from sentinel.store.base import GroupChange, Store

log = logging.getLogger(__name__)

NS = 1_000_000_000
MS = 1_000_000
MAX_RULES_ERROR = 400  # characters of a rejected rules file's reason kept, logged and served
READY_STALE_FACTOR = 3  # polls are stale when the last good one is older than 3 poll intervals
# Alert-only (action none) records per poll; the groups past it share one summary record, so a
# first start on a busy cluster does not flood the audit log or the notifications.
ALERTS_PER_POLL = 200
NOTIFY_CONTEXT_WAIT = 3.0  # seconds a notification waits for its group's Kubernetes context


def outcome_of(record: RemediationRecord) -> str:
    """How one decision ended, for the poll's summary line: ``denied:<code>``, ``alert``, ``dry-run`` ..."""
    if record.decision == "denied":
        return f"denied:{record.reason_code or 'other'}"
    if record.action == "none":
        return "alert"
    if record.dry_run and record.result is Result.SUCCESS:
        return "dry-run"
    return record.result.value


class Source(Protocol):
    def fetch(self, start_ns: int, end_ns: int) -> Iterator[list[LogEntry]]: ...

    def ready(self) -> tuple[bool, str]: ...


MAX_UNREAD_STREAMS = 100
OTHER_STREAMS = "{other streams}"


@dataclass
class SourceCounts:
    """Lines Loki holds that were not read as lines, and what the source had to correct (persisted)."""

    unread: dict[str, int] = field(default_factory=dict)  # stream -> lines past Loki's per-query limit
    unresolved_bursts: int = 0  # saturated nanoseconds that could not be measured exactly
    late_lines: int = 0  # lines that reached Loki after their window was read (reported, not re-read)
    refused_lines: int = 0  # lines of streams whose labels could not be made strings
    coerced_labels: int = 0  # label values coerced to strings
    cursor_resets: int = 0  # polls that found the stored cursor in the future
    last_cursor_reset: str = ""

    @property
    def unread_lines(self) -> int:
        return sum(self.unread.values())

    def add_unread(self, unread: Mapping[str, int]) -> None:
        for stream, n in unread.items():
            self.unread[stream] = self.unread.get(stream, 0) + n
        if len(self.unread) > MAX_UNREAD_STREAMS:  # keep the largest; the rest are summed, never dropped
            ranked = sorted(self.unread.items(), key=lambda kv: (kv[0] == OTHER_STREAMS, -kv[1]))
            keep = dict(ranked[: MAX_UNREAD_STREAMS - 1])
            keep[OTHER_STREAMS] = sum(n for k, n in ranked[MAX_UNREAD_STREAMS - 1 :])
            self.unread = keep

    def to_dict(self) -> dict[str, Any]:
        return {
            "unread_lines": self.unread_lines,
            "unread_streams": dict(self.unread),
            "unresolved_bursts": self.unresolved_bursts,
            "late_lines": self.late_lines,
            "refused_lines": self.refused_lines,
            "coerced_labels": self.coerced_labels,
            "cursor_resets": self.cursor_resets,
            "last_cursor_reset": self.last_cursor_reset,
        }

    @classmethod
    def from_stored(cls, doc: Mapping[str, Any] | None) -> SourceCounts:
        if not doc:
            return cls()
        try:
            return cls(
                unread={str(k): int(v) for k, v in dict(doc.get("unread_streams", {})).items()},
                unresolved_bursts=int(doc.get("unresolved_bursts", 0)),
                late_lines=int(doc.get("late_lines", 0)),
                refused_lines=int(doc.get("refused_lines", 0)),
                coerced_labels=int(doc.get("coerced_labels", 0)),
                cursor_resets=int(doc.get("cursor_resets", 0)),
                last_cursor_reset=str(doc.get("last_cursor_reset", "")),
            )
        except (TypeError, ValueError) as err:
            log.warning("stored source counts could not be read (%s); starting from zero", cap(err))
            return cls()


@dataclass(frozen=True, slots=True)
class _ReadWindow:
    """A window read and what was counted in it: checked once more at the next poll for late lines."""

    start_ns: int
    end_ns: int
    counted: int
    query: str  # a different query counts different lines: no comparison then


@dataclass
class Health:
    """What the engine knows about itself; /ready, /metrics and the console read it."""

    started_at: float = field(default_factory=time.time)
    polls: int = 0
    poll_errors: int = 0
    consecutive_errors: int = 0
    lines_read: int = 0
    last_poll_at: float | None = None
    last_success_at: float | None = None
    last_duration: float = 0.0
    last_error: str = ""
    last_lines: int = 0
    last_window: tuple[float, float] | None = None
    rules_loaded_at: float | None = None
    rules_error: str = ""  # "rules file X rejected: reason" until a good file loads
    rules_rejections: int = 0  # reloads refused since start
    cluster: str = "not configured"
    leader: bool = True
    poll_durations: list[float] = field(default_factory=list)
    skipped_seconds: float = 0.0  # logs never read because a catch-up hit loki.max_lookback
    counts: SourceCounts = field(default_factory=lambda: SourceCounts())

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "polls": self.polls,
            "poll_errors": self.poll_errors,
            "consecutive_errors": self.consecutive_errors,
            "lines_read": self.lines_read,
            "last_poll_at": self.last_poll_at,
            "last_success_at": self.last_success_at,
            "last_duration": self.last_duration,
            "last_error": self.last_error,
            "last_lines": self.last_lines,
            "rules_loaded_at": self.rules_loaded_at,
            "rules_error": self.rules_error,
            "cluster": self.cluster,
            "leader": self.leader,
            "skipped_seconds": self.skipped_seconds,
            "role": self.role,
            **self.counts.to_dict(),
        }

    @property
    def role(self) -> str:
        return "leader" if self.leader else "follower: read-only"


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


def lifecycle_of(config: Config) -> LifecycleSettings:
    return LifecycleSettings(resolve_after=config.lifecycle.resolve_after, burst_factor=config.lifecycle.burst_factor)


def limits_of(config: Config, settings: RuntimeSettings) -> SafetyLimits:
    r = config.remediation
    return SafetyLimits(
        enabled=settings.remediation_enabled,
        dry_run=settings.dry_run,
        max_actions_per_hour=settings.max_actions_per_hour,
        per_workload_per_hour=settings.per_workload_per_hour,
        excluded_namespaces=frozenset(settings.excluded_namespaces),
        breaker_threshold=r.breaker_threshold,
        effectiveness_window=r.effectiveness_window,
    )


def build_store(config: Config, *, base_dir: Path | None = None) -> Store:
    return open_store(config, base_dir=base_dir)


class Runtime:
    """Owns every long-lived object of one Kube Sentinel process."""

    def __init__(
        self,
        *,
        config: Config,
        rules: RuleSet,
        store: Store,
        source: Source,
        remediator: Remediator,
        config_path: str = "",
        rules_path: str = "",
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
        warnings: list[str] | None = None,
        description: str = "",
        stopping: threading.Event | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.context = ContextReader(None, clock=clock)  # Runtime.build gives it the cluster
        self.notifier = notifier or Notifier.from_config(config, clock=clock, context=self._context_summary)
        self.config_path = config_path
        self.rules_path = rules_path
        self.store = store
        self.source = source
        self.remediator = remediator
        self.clock = clock
        self.events = events or EventBus()
        self.warnings = list(warnings or [])
        self.description = description
        self.health = Health(started_at=clock())
        self.lifecycle = lifecycle_of(config)
        self.pipeline = Pipeline(rules=rules, fingerprinter=restore_fingerprinter(store))
        self._merges_applied = self.pipeline.fingerprinter.merges
        self.rule_hits: dict[str, int] = {}
        self.last_outcomes: dict[str, int] = {}  # the last poll's decisions by outcome
        self._poll_lock = threading.Lock()
        self._rules_mtime = _mtime(rules_path)
        self.health.rules_loaded_at = clock()
        self.settings, notes = from_stored(RuntimeSettings.from_config(config), store.get_state("settings"))
        for note in notes:
            log.warning("%s", note)
        self.remediator.set_limits(limits_of(config, self.settings))
        self.scheduler: Any = None  # sentinel.engine.scheduler.Scheduler once started
        self.stopping = stopping or threading.Event()
        self._apply_query(self.settings.query)
        self.leader_check: Callable[[], bool] = lambda: True
        self.elector: LeaderElector | None = None  # with leader_election.enabled and a cluster
        stored_hits = store.get_state("rule_hits")
        if stored_hits:
            self.rule_hits = {str(k): int(v) for k, v in stored_hits.items()}
        self.health.counts = SourceCounts.from_stored(store.get_state("source_counts"))
        self._last_read: _ReadWindow | None = None

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        config_path: str | Path,
        rules_path: str | Path | None = None,
        *,
        source: Source | None = None,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        env: dict[str, str] | None = None,
    ) -> Runtime:
        """Everything from the files; ``ConfigError`` if either file is invalid (nothing started)."""
        loaded: Loaded = load_config(config_path, env=env)
        config = loaded.config
        for secret in (config.loki.password, config.loki.bearer_token, config.api.token):
            register_secret(secret.get_secret_value(), username=config.loki.username)
        rpath = resolve_rules_path(config_path, config, str(rules_path) if rules_path else None)
        rules: LoadedRules = load_rules(rpath)
        base_dir = Path(config_path).parent
        store = store or build_store(
            config, base_dir=Path.cwd() if not Path(config.store.path).is_absolute() else base_dir
        )
        warnings = loaded.warnings + rules.warnings + list(getattr(store, "startup_warnings", []))
        for w in warnings:
            log.warning("%s", w)
        stopping = threading.Event()
        if source is None:
            source = build_loki_source(config, sleep=interruptible_sleep(stopping))
        cluster, cluster_state = build_cluster(config)
        remediator = Remediator(
            store=store,
            cluster=cluster,
            limits=limits_of(config, RuntimeSettings.from_config(config)),
            clock=clock,
        )
        rt = cls(
            config=config,
            rules=rules.ruleset,
            store=store,
            source=source,
            remediator=remediator,
            config_path=str(config_path),
            rules_path=str(rpath),
            clock=clock,
            warnings=warnings,
            stopping=stopping,
        )
        rt.health.cluster = cluster_state
        if cluster is not None:  # workloads from ownerReferences; pod-name rules when the API cannot say
            rt.pipeline = Pipeline(
                rules=rules.ruleset,
                fingerprinter=rt.pipeline.fingerprinter,
                workloads=OwnerResolver(cluster).workload_of,
            )
        rt.context = ContextReader(cluster, no_cluster=cluster_state, clock=clock)
        if config.leader_election.enabled:
            if cluster is None:
                log.warning("leader_election is enabled but no cluster can hold the Lease: this replica leads alone")
            else:
                rt.use_elector(build_elector(config, cluster, store=store, clock=clock, env=env))
        return rt

    def _context_summary(self, namespace: str, workload: str) -> str:
        """For a notification, on the notifier's thread: waits briefly for the context read."""
        from sentinel.engine.context import summary_line

        return summary_line(self.context.get(namespace, workload, wait=NOTIFY_CONTEXT_WAIT))

    def use_elector(self, elector: LeaderElector) -> None:
        """Poll and remediate only while ``elector`` holds the Lease; read-only until it first does."""
        self.elector = elector
        self.leader_check = elector.is_leader
        self.health.leader = False
        # Before each real action: the new cooldown goes into the Lease, and we still lead.
        self.remediator.before_act = self._publish_before_action

    def _publish_before_action(self) -> bool:
        if self.elector is None:
            return True
        ok = self.elector.publish()
        if not ok:
            self.health.leader = self.elector.is_leader()
            log.warning(
                "lease not written before an action (%s): the action is not taken",
                self.elector.last_error or "not leading",
            )
        return ok

    # -- queries ------------------------------------------------------------------------------

    @property
    def rules(self) -> RuleSet:
        return self.pipeline.rules

    @property
    def read_only(self) -> bool:
        """True when this replica is not the leader: it serves, but does not poll or remediate."""
        return not self.health.leader

    def ready(self) -> tuple[bool, dict[str, str]]:
        """(ready, {check: problem}) for /ready: the process can serve (config, rules, store).

        Loki is not part of it: a Loki outage must not take the console out of its Service exactly
        when an SRE needs it. Poll health is :meth:`poll_state` (console banner, /api/stats, /metrics).
        """
        problems: dict[str, str] = {}
        ok, why = self.store.writable()
        if not ok:
            problems["store"] = why
        if self.health.rules_error:
            problems["rules"] = self.health.rules_error
        return not problems, problems

    def poll_state(self) -> tuple[str, str]:
        """("ok" | "waiting" | "failing" | "stale" | "follower", why): how reading the logs goes."""
        h = self.health
        if not h.leader:
            return "follower", "another replica polls"
        if h.consecutive_errors:
            return "failing", f"{h.consecutive_errors} poll(s) failed in a row: {h.last_error or 'unknown error'}"
        if h.last_success_at is None:
            return "waiting", h.last_error or "no successful poll yet"
        age = self.clock() - h.last_success_at
        if age > READY_STALE_FACTOR * max(self.settings.poll_interval, 10.0):
            return "stale", f"last successful poll {int(age)}s ago; last error: {h.last_error or 'none'}"
        return "ok", f"last successful poll {int(age)}s ago"

    # -- the engine cycle -----------------------------------------------------------------------

    def window(self, now: float) -> tuple[int, int]:
        """[start, end) in ns: resume from the cursor, first poll looks back, catch-up is capped."""
        # Lines reach Loki a little after their timestamp (agents batch and retry): read only up
        # to ``ingest_delay`` ago, so a line stamped before the cursor is never stored after it.
        end = int((now - self.config.loki.ingest_delay) * NS)
        end -= end % MS  # whole milliseconds: a metric query can count the window again (late lines)
        cursor = self.store.get_cursor()
        lookback = int(self.settings.lookback * NS)
        max_lookback = int(max(self.config.loki.max_lookback, self.settings.lookback) * NS)
        if cursor is None or cursor > end:
            # No cursor, or one in the future (a clock that jumped back, a store from elsewhere): it
            # cannot be trusted, so read from now - lookback rather than nothing (_poll says so).
            start = end - lookback
        else:
            start = max(cursor, end - max_lookback)
        return min(start, end), end

    def poll_once(self) -> PollResult:
        """One cycle: fetch the window, group, store, remediate, publish. Never raises SentinelError."""
        if not self._poll_lock.acquire(blocking=False):
            return PollResult(False, 0, 0, 0, 0, 0.0, (0.0, 0.0), "a poll is already running")
        try:
            return self._poll()
        finally:
            self._poll_lock.release()

    def _poll(self) -> PollResult:
        t0 = time.perf_counter()
        now = self.clock()
        start_ns, end_ns = self.window(now)
        window = (start_ns / NS, end_ns / NS)
        self.health.last_poll_at = now
        self.health.polls += 1
        batch = Batch()
        try:
            with paused_gc():  # reading and grouping allocate much and free it all by refcount
                for page in self.source.fetch(start_ns, end_ns):
                    if self.stopping.is_set():
                        raise SourceError("stopping: poll abandoned")
                    self.pipeline.process(page, into=batch)
        except SentinelError as err:
            return self._poll_failed(err, t0, window)
        self.pipeline.settle(batch)
        fingerprinter = self.pipeline.fingerprinter
        merged = fingerprinter.merges != self._merges_applied
        if merged:
            # Fold stored groups whose template merged since the last successful poll (a failed
            # poll's merges included: its batch was dropped, the fingerprinter kept them).
            folded = self.store.apply_aliases(
                fingerprinter.aliases(), templates=fingerprinter.templates(), key_fn=group_key
            )
            self._merges_applied = fingerprinter.merges
            if folded:
                log.info("templates merged: %d stored groups folded into their new template", folded)
        # Only now, with the whole window read, do counts change: a failed poll is retried whole.
        changes = self.store.record(list(batch.deltas.values()), now=now, lifecycle=self.lifecycle)
        counts = self.health.counts
        report = getattr(self.source, "report", None)
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
        cursor = self.store.get_cursor()
        if cursor is not None and cursor > end_ns:
            counts.cursor_resets += 1
            counts.last_cursor_reset = (
                f"store cursor {cursor} ns was {(cursor - end_ns) / NS:.0f}s in the future at "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}: reset, and this poll read from "
                f"now - lookback ({self.settings.lookback:.0f}s)"
            )
            log.warning("%s", counts.last_cursor_reset)
        elif cursor is not None and start_ns > cursor:
            skipped = (start_ns - cursor) / NS
            self.health.skipped_seconds += skipped
            log.warning(
                "catch-up capped by loki.max_lookback: %.0fs of logs after the last poll were not read", skipped
            )
        self.store.set_cursor(end_ns)
        for name, n in batch.rule_hits.items():
            self.rule_hits[name] = self.rule_hits.get(name, 0) + n
        if batch.rule_hits:
            self.store.put_state("rule_hits", dict(self.rule_hits))
        if extra or late or counts.cursor_resets or (report is not None and report.coerced_labels):
            self.store.put_state("source_counts", counts.to_dict())
        self._publish_changes(changes)
        actions = self._remediate(changes)
        if actions and self.elector is not None:
            self.lease_tick()  # publish the new cooldowns in the Lease now, not at the next renewal
        duration = time.perf_counter() - t0
        h = self.health
        h.lines_read += batch.lines
        h.last_lines = batch.lines
        h.last_success_at = now
        h.last_duration = duration
        h.last_error = ""
        h.consecutive_errors = 0
        h.last_window = window
        h.poll_durations = (h.poll_durations + [duration])[-100:]
        if merged:
            self.save_fingerprinter()  # stored keys and the templates that make them stay in step
        try:
            self.store.flush()
        except SentinelError as err:
            log.error("store flush failed: %s", err)
        new = sum(1 for c in changes if c.kind == "new")
        log.info(
            "poll: %d lines -> %d groups (%d new), %d remediation decisions (%s) in %.3fs",
            batch.lines,
            len(changes),
            new,
            actions,
            ", ".join(f"{k} {v}" for k, v in sorted(self.last_outcomes.items())) or "none",
            duration,
        )
        self.events.publish("health", {"ok": True, "lines": batch.lines, "duration": duration}, now=now)
        return PollResult(True, batch.lines, len(changes), new, actions, duration, window)

    def _check_late(self, start_ns: int, end_ns: int, counted: int, *, exact: bool) -> int:
        """Count the previous window again (one metric query): lines that reached Loki after it was read.

        They are reported (``late_lines``), not re-read: which lines they are cannot be told apart
        from those already counted without keeping every line. Returns how many were found now.
        """
        count = getattr(self.source, "count", None)
        query = str(getattr(self.source, "query", ""))
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
        self.health.counts.late_lines += late
        log.warning(
            "%d lines reached Loki after their window [%d, %d) was read (ingest_delay %.0fs is too short): "
            "counted as late lines, not read",
            late,
            previous.start_ns,
            previous.end_ns,
            self.config.loki.ingest_delay,
        )
        return late

    def _poll_failed(self, err: SentinelError, t0: float, window: tuple[float, float]) -> PollResult:
        h = self.health
        h.poll_errors += 1
        h.consecutive_errors += 1
        h.last_error = cap(redact(err), 500)
        h.last_duration = time.perf_counter() - t0
        delay = err.delay if isinstance(err, LokiUnavailable) else None
        log.error("poll failed: %s", h.last_error)
        self.events.publish("health", {"ok": False, "error": h.last_error})
        return PollResult(False, 0, 0, 0, 0, h.last_duration, window, h.last_error, retry_after=delay)

    def _publish_changes(self, changes: list[GroupChange]) -> None:
        for c in changes:
            kind = "error.new" if c.kind == "new" else "error.updated"
            self.events.publish(kind, {**group_summary(c.group), "change": c.kind, "added": c.added})
            if c.kind != "updated":
                self.context.request(c.group.namespace, c.group.workload)  # read on the context thread
            self.notifier.group_changed(c.kind, c.group)  # queued: delivered by the notifier's threads

    def _remediate(self, changes: list[GroupChange]) -> int:
        """Automatic decisions for groups that matched a rule; ``none`` rules are recorded as alert only.

        One safety-state load and save for the whole poll (``Remediator.poll``). Alert-only records
        are capped at ``ALERTS_PER_POLL`` per poll; the groups past the cap get one summary record.
        ``self.last_outcomes`` counts the decisions by outcome (logged in the poll's INFO line).
        """
        self.last_outcomes = {}
        if not self.health.leader:
            return 0
        decided = 0
        alerts = 0
        over_cap: list[ErrorGroup] = []
        outcomes: dict[str, int] = {}
        with self.remediator.poll():
            for c in changes:
                if not self.leader_check():  # the lease may lapse during a long poll: stop acting at once
                    self.health.leader = False
                    log.warning(
                        "leadership lost during the poll: %d group changes left to the next leader",
                        len(changes) - decided,
                    )
                    break
                g = c.group
                if g.status in (Status.ACKNOWLEDGED, Status.SNOOZED):
                    continue
                rule = self.rules.by_name(g.rule)
                if rule is None or rule.name == "default":
                    continue
                if rule.action == "none":
                    if c.kind == "updated":
                        continue  # alert only: recorded when a group appears, regresses or escalates
                    if alerts >= ALERTS_PER_POLL:
                        over_cap.append(g)
                        continue
                    alerts += 1
                record = self.remediator.handle(
                    g, rule=rule.name, action=rule.action, params=dict(rule.params), cooldown=rule.cooldown
                )
                self._after_record(record)
                decided += 1
                outcome = outcome_of(record)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if over_cap:
                summary = self.remediator.alert_summary(over_cap, cap=ALERTS_PER_POLL)
                self.events.publish("remediation", summary.to_dict())
                outcomes["alerts-over-cap"] = len(over_cap)
        self.last_outcomes = outcomes
        return decided

    def _after_record(self, record: RemediationRecord) -> None:
        g = None
        if record.decision == "allowed" and record.result.value == "success" and not record.dry_run:
            when = record.time

            def count_it(g: ErrorGroup) -> None:
                g.remediations += 1
                g.last_remediation_at = when

            self.store.update_group(record.group_id, count_it)  # atomic with a concurrent record()
        self.events.publish("remediation", record.to_dict())
        if record.decision == "allowed" and record.action != "none":
            self.notifier.remediation(record, g or self.store.get_group(record.group_id))

    # -- maintenance ----------------------------------------------------------------------------

    def maintain(self) -> None:
        """Every minute: impact/lifecycle for all groups, effectiveness verdicts, retention, flush."""
        now = self.clock()
        lifecycle = self.lifecycle

        def touch(g: ErrorGroup) -> bool:
            before = (g.status, g.priority, g.escalated)
            refresh(g, now=now, settings=lifecycle)
            return (g.status, g.priority, g.escalated) != before

        for g in self.store.update_groups(touch):
            self.events.publish("error.updated", {**group_summary(g), "change": "lifecycle"})
        if self.health.leader:
            for record in self.remediator.evaluate_effectiveness(self.store.get_group, now):
                self.events.publish("remediation", record.to_dict())
        r = self.config.retention
        removed = self.store.apply_retention(
            now=now, max_age=r.max_age, max_groups=r.max_groups, max_records=r.max_records
        )
        if removed:
            log.info("retention removed %d groups", removed)
        self.save_fingerprinter()
        self.store.flush()

    def save_fingerprinter(self) -> None:
        """Persist the mined templates, so group keys survive a restart."""
        self.store.put_state("fingerprinter", self.pipeline.fingerprinter.snapshot())

    def reload_rules(self, *, force: bool = False) -> tuple[bool, str]:
        """Reload rules.yaml if it changed; a bad file keeps the previous rules and says why."""
        mtime = _mtime(self.rules_path)
        if not force and mtime == self._rules_mtime:
            return True, "unchanged"
        self._rules_mtime = mtime
        try:
            loaded = load_rules(self.rules_path)
        except Exception as err:  # noqa: BLE001 - whatever a file does, the previous rules stay
            # ConfigError names the problem; anything else (a bug, MemoryError) is named by its class.
            reason = str(err) if isinstance(err, ConfigError) else f"{type(err).__name__}: {err}"
            reason = cap(" ".join(reason.split()), MAX_RULES_ERROR)
            self.health.rules_error = f"rules file {self.rules_path} rejected: {reason}; previous rules kept"
            self.health.rules_rejections += 1
            log.error("%s", self.health.rules_error)
            self.events.publish("health", {"ok": False, "error": self.health.rules_error})
            return False, reason
        self.pipeline = self.pipeline.with_rules(loaded.ruleset)
        self.health.rules_error = ""
        self.health.rules_loaded_at = self.clock()
        for w in loaded.warnings:
            log.warning("%s", w)
        log.info("rules reloaded from %s: %d enabled", self.rules_path, len(loaded.ruleset))
        return True, f"{len(loaded.ruleset)} rules loaded"

    # -- people's actions -------------------------------------------------------------------------

    def update_settings(self, data: dict[str, Any], *, by: str, confirmed: Sequence[str] = ()) -> dict[str, list[Any]]:
        """Validate all, apply all, persist, record who (and the risky changes they confirmed, by name).
        ``ConfigError`` names every bad field; ``SafetyRefused`` on a follower replica (its settings
        would not reach the leader)."""
        update = validate_update(data)
        if self.read_only:
            holder = self.leadership().get("holder") or "unknown"
            raise SafetyRefused(f"follower: read-only; change settings on the leader ({holder})")
        new, changes = apply_update(self.settings, update)
        if not changes:
            return {}
        if "query" in changes:
            self._check_query(new.query)
        stored = stored_overrides(
            self.store.get_state("settings"), changes, file_values=RuntimeSettings.from_config(self.config)
        )
        self.store.put_state("settings", stored)
        history = (self.store.get_state("settings_history") or {}).get("entries", [])
        entry: dict[str, Any] = {"time": self.clock(), "by": by, "changes": changes}
        if confirmed:
            entry["confirmed"] = list(confirmed)
        history.append(entry)
        self.store.put_state("settings_history", {"entries": history[-200:]})
        self.settings = new
        self.remediator.set_limits(limits_of(self.config, new))
        if "poll_interval" in changes and self.scheduler is not None:
            self.scheduler.set_poll_interval(new.poll_interval)
        if "query" in changes:
            self._apply_query(new.query)
        self.store.flush()
        log.info("settings changed by %s: %s", by, ", ".join(sorted(changes)))
        self.events.publish("settings", {"by": by, "changes": changes, "settings": new.to_dict()})
        return changes

    def _check_query(self, query: str) -> None:
        """A new LogQL query runs once against Loki (a one-second range) before it is saved."""
        check = getattr(self.source, "check_query", None)
        if not callable(check):
            return  # a file or demo source runs no query
        try:
            check(query)
        except LokiQueryError as err:
            problem = f"query: {cap(redact(err), 500)}"
            raise ConfigError("settings: invalid change, nothing was saved", problems=[problem]) from None
        except SentinelError as err:
            problem = f"query: cannot be checked against Loki, so it was not saved: {cap(redact(err), 300)}"
            raise ConfigError("settings: invalid change, nothing was saved", problems=[problem]) from None

    def _apply_query(self, query: str) -> None:
        """The LogQL query the source runs (a file or demo source has none)."""
        set_query = getattr(self.source, "set_query", None)
        if callable(set_query):
            set_query(query)

    def settings_history(self) -> list[dict[str, Any]]:
        return list((self.store.get_state("settings_history") or {}).get("entries", []))

    def set_status(
        self,
        group_id: str,
        action: str,
        *,
        by: str,
        reason: str = "",
        until: float | None = None,
        more: int | None = None,
    ) -> ErrorGroup:
        """acknowledge | snooze | resolve | reopen. ``KeyError`` if unknown, ``ValueError`` if invalid."""
        from sentinel.core.impact import transition

        now = self.clock()

        def change(g: ErrorGroup) -> None:
            transition(g, action, by=by, reason=reason, now=now, until=until, more=more)

        # Read, transition and write back under the store's lock: a poll's record() cannot slip in between.
        group = self.store.update_group(group_id, change)
        if group is None:
            raise KeyError(group_id)
        self.store.flush()
        self.events.publish("error.updated", {**group_summary(group), "change": action, "by": by})
        return group

    def request_action(
        self, group_id: str, *, action: str | None = None, params: dict[str, Any] | None = None, by: str
    ) -> RemediationRecord:
        """A person asks for an action on a group: same decision, same audit."""
        from sentinel.core.actions import validate_params

        group = self.store.get_group(group_id)
        if group is None:
            raise KeyError(group_id)
        rule = self.rules.by_name(group.rule)
        name = action or (rule.action if rule else "none")
        checked = validate_params(
            name, params if params is not None else (dict(rule.params) if rule and name == rule.action else {})
        )
        if self.elector is not None and not self.leader_check():
            return self._refuse_on_follower(group, rule=group.rule, action=name, params=checked.model_dump(), by=by)
        record = self.remediator.handle(
            group,
            rule=group.rule,
            action=name,
            params=checked.model_dump(),
            cooldown=rule.cooldown if rule else 0.0,
            requested_by=by,
            manual=True,
        )
        self._after_record(record)
        self.store.flush()
        return record

    def _refuse_on_follower(
        self, group: ErrorGroup, *, rule: str, action: str, params: dict[str, Any], by: str
    ) -> RemediationRecord:
        """A follower acts on nothing: the request is audited here as denied and names the leader."""
        holder = self.elector.holder if self.elector is not None else ""
        record = RemediationRecord(
            id=uuid.uuid4().hex,
            time=self.clock(),
            group_id=group.id,
            rule=rule,
            action=action,
            namespace=group.namespace,
            kind="",
            name=group.workload,
            params=params,
            decision="denied",
            reason=f"follower: read-only; only the leader ({holder or 'none right now'}) acts. Ask the leader's console",
            result=Result.SKIPPED,
            requested_by=by,
            workload=f"{group.namespace}/{group.workload}",
        )
        self.store.add_remediation(record)
        self.events.publish("remediation", record.to_dict())
        log.info("[%s] %s asked by %s refused: this replica is a follower", record.workload, action, by)
        return record

    # -- leadership -----------------------------------------------------------------------------

    def lease_tick(self) -> bool:
        """One leader-election round (the scheduler runs it every ``renew_every``); whether we lead now."""
        if self.elector is None:
            return self.health.leader
        leading = self.elector.tick()
        if leading != self.health.leader:
            self.health.leader = leading
            self.events.publish("health", {"ok": True, "leader": leading, "role": self.health.role})
        return leading

    def leadership(self) -> dict[str, Any]:
        """Who leads: the elector's view, or "leader" when leader election is off."""
        if self.elector is None:
            return {"enabled": False, "leader": True, "role": "leader"}
        return self.elector.status()

    # -- lifetime -----------------------------------------------------------------------------

    def start(self) -> None:
        from sentinel.engine.scheduler import Scheduler

        if self.scheduler is None:
            if self.elector is not None:
                self.lease_tick()  # know who leads before the first poll is due
            self.scheduler = Scheduler(self)
            self.scheduler.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.scheduler is not None:
            self.scheduler.shutdown()
            self.scheduler = None
        with self._poll_lock:  # wait for a running poll to finish or abandon
            pass
        if self.elector is not None and self.elector.release():  # the follower takes over at once
            self.health.leader = False
        self.notifier.stop()
        self.context.stop()
        try:
            self.save_fingerprinter()
            self.store.close()
        except SentinelError as err:
            log.error("store close failed: %s", err)


def group_summary(g: ErrorGroup) -> dict[str, Any]:
    return {
        "id": g.id,
        "priority": g.priority.value,
        "namespace": g.namespace,
        "workload": g.workload,
        "template": g.template,
        "rule": g.rule,
        "count": g.count,
        "status": g.status.value,
        "escalated": g.escalated,
        "last_seen": g.last_seen,
    }


def restore_fingerprinter(store: Store) -> Fingerprinter:
    snap = store.get_state("fingerprinter")
    if snap:
        try:
            return Fingerprinter.restore(snap)
        except (ValueError, KeyError, TypeError) as err:
            log.warning("stored templates could not be restored (%s); starting fresh", cap(err))
    return Fingerprinter()


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime if path else 0.0
    except OSError:
        return 0.0


def interruptible_sleep(stopping: threading.Event) -> Callable[[float], None]:
    """A backoff sleep that ends the poll at once when the process is stopping (SIGTERM)."""

    def sleep(seconds: float) -> None:
        if stopping.wait(seconds):
            raise SourceError("stopping: poll abandoned during a retry wait")

    return sleep


def build_loki_source(config: Config, *, sleep: Callable[[float], None] = time.sleep) -> Source:
    from sentinel.sources.loki import LokiClient, build_http_client

    lc = config.loki
    register_secret(lc.password.get_secret_value(), username=lc.username)
    register_secret(lc.bearer_token.get_secret_value())
    http = build_http_client(
        url=lc.url,
        tenant_id=lc.tenant_id,
        username=lc.username,
        password=lc.password.get_secret_value(),
        bearer_token=lc.bearer_token.get_secret_value(),
        tls_verify=lc.tls_verify,
        ca_file=lc.ca_file,
        timeout=lc.timeout,
    )
    return LokiClient(http, query=lc.query, page_limit=lc.page_limit, sleep=sleep)


def build_elector(
    config: Config, cluster: Cluster, *, store: Store, clock: Callable[[], float], env: Mapping[str, str] | None = None
) -> LeaderElector:
    """The Lease elector from ``leader_election:``; identity and namespace default to the downward API's."""
    le = config.leader_election
    env = os.environ if env is None else env
    return LeaderElector(
        cluster,
        namespace=le.namespace or default_namespace(env),
        name=le.lease_name,
        identity=le.identity or default_identity(env),
        lease_duration=le.lease_duration,
        renew_every=le.renew_every,
        store=store,
        clock=clock,
    )


def build_cluster(config: Config) -> tuple[Any, str]:
    """The Kubernetes adapter, or None (remediation then runs as dry-run) and why."""
    from sentinel.remediation.cluster import Cluster

    kc = config.kubernetes
    if kc.in_cluster and not kc.kubeconfig and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        why = (
            "kubernetes.in_cluster is true but this process does not run in a pod; "
            "set kubernetes.kubeconfig to act on a cluster from outside"
        )
        log.warning("no Kubernetes cluster: %s; remediation runs as dry-run", why)
        return None, f"not configured: {why}"
    try:
        cluster = Cluster.from_config(
            in_cluster=kc.in_cluster, kubeconfig=kc.kubeconfig or None, context=kc.context or None
        )
    except SentinelError as err:
        log.warning("no Kubernetes cluster: %s; remediation runs as dry-run", err)
        return None, f"not configured: {cap(err)}"
    return cluster, "connected"


# -- the process-wide runtime (for Streamlit pages, which run as separate scripts) -------------

_current: Runtime | None = None
_current_lock = threading.Lock()


def install(runtime: Runtime) -> None:
    global _current
    with _current_lock:
        _current = runtime


def current() -> Runtime | None:
    return _current


def uninstall() -> None:
    global _current
    with _current_lock:
        _current = None
