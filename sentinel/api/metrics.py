"""Prometheus metrics, read from the runtime at scrape time into a registry of this app's own.

No global registry: every app made by ``create_app`` has its own ``CollectorRegistry`` holding one
collector that reads the runtime's health, store and safety state when scraped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sentinel.core.model import Priority
from sentinel.engine.runtime import Runtime
from sentinel.notify.notifier import OUTCOMES
from sentinel.store.base import MAX_PAGE_SIZE, RecordQuery

PREFIX = "kube_sentinel"
ACTIONS_CACHE_SECONDS = 15.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RuntimeCollector(Collector):
    """Everything ``/metrics`` shows, computed from the runtime on each scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._actions: dict[tuple[str, str, str], int] = {}
        self._actions_key: tuple[int, float | None] | None = None
        self._actions_at = 0.0

    def _action_counts(self, total: int, last: float | None) -> dict[tuple[str, str, str], int]:
        """(action, decision, result) -> records in the audit log; recounted when it changed."""
        with self._lock:
            fresh = time.monotonic() - self._actions_at < ACTIONS_CACHE_SECONDS
            if self._actions_key == (total, last) and fresh:
                return self._actions
            counts: dict[tuple[str, str, str], int] = {}
            page = 1
            while True:
                found = self.runtime.store.list_remediations(RecordQuery(page=page, page_size=MAX_PAGE_SIZE))
                for r in found.items:
                    key = (r.action, r.decision, r.result.value)
                    counts[key] = counts.get(key, 0) + 1
                if page >= found.pages or not found.items:
                    break
                page += 1
            self._actions, self._actions_key, self._actions_at = counts, (total, last), time.monotonic()
            return counts

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        h = rt.health
        now = rt.clock()

        yield CounterMetricFamily(f"{PREFIX}_lines_read", "Log lines read from the source", value=h.lines_read)
        yield CounterMetricFamily(f"{PREFIX}_polls", "Poll cycles started", value=h.polls)
        yield CounterMetricFamily(f"{PREFIX}_poll_errors", "Poll cycles that failed", value=h.poll_errors)
        yield GaugeMetricFamily(
            f"{PREFIX}_poll_consecutive_errors", "Poll cycles failed in a row", value=h.consecutive_errors
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_poll_duration_seconds", "Duration of the last successful poll", value=h.last_duration
        )
        recent = list(h.poll_durations)
        if recent:
            q = GaugeMetricFamily(
                f"{PREFIX}_poll_duration_recent_seconds",
                "Poll duration quantiles over the last 100 successful polls",
                labels=["quantile"],
            )
            for quant in (0.5, 0.9, 0.99):
                q.add_metric([str(quant)], _quantile(recent, quant))
            yield q
        c = h.counts
        yield CounterMetricFamily(
            f"{PREFIX}_unread_lines",
            "Lines Loki holds beyond its per-query limit at one nanosecond, counted but not read",
            value=c.unread_lines,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_unresolved_bursts",
            "Saturated nanoseconds that could not be counted exactly",
            value=c.unresolved_bursts,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_late_lines",
            "Lines that reached Loki after their window was read (reported, not read)",
            value=c.late_lines,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_refused_lines",
            "Lines of streams refused for label values that are not strings",
            value=c.refused_lines,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_coerced_label_values", "Label values coerced to strings", value=c.coerced_labels
        )
        yield CounterMetricFamily(
            f"{PREFIX}_cursor_resets", "Polls that found the stored cursor in the future", value=c.cursor_resets
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_last_successful_poll_timestamp_seconds",
            "When the last successful poll ran (0: never)",
            value=h.last_success_at or 0.0,
        )
        state, _ = rt.poll_state()
        yield GaugeMetricFamily(
            f"{PREFIX}_poll_healthy",
            "1 when reading the logs works (not failing, not stale; a follower counts as healthy)",
            value=int(state in ("ok", "follower")),
        )
        poll_state = GaugeMetricFamily(
            f"{PREFIX}_poll_state",
            "1 for the current poll state (ok, waiting, failing, stale, follower)",
            labels=["state"],
        )
        for name in POLL_STATES:
            poll_state.add_metric([name], int(name == state))
        yield poll_state

        sh = rt.store.health()
        yield CounterMetricFamily(
            f"{PREFIX}_store_write_errors",
            "Store writes that failed (full disk, read-only folder ...)",
            value=sh.write_errors,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_store_write_consecutive_errors",
            "Store writes failed in a row",
            value=sh.consecutive_write_errors,
        )
        last_ok = sh.last_write_ok_at if sh.last_write_ok_at is not None else sh.started_at
        if last_ok is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_store_last_write_age_seconds",
                "Seconds since the store last wrote successfully (since it opened, when it has not written yet)",
                value=max(0.0, time.time() - last_ok),
            )
        empty = GaugeMetricFamily(
            f"{PREFIX}_store_started_empty",
            "1 while a store file moved aside at start (the store started empty) is not acknowledged",
            labels=["moved_aside"],
        )
        if sh.notices:
            for path in sh.moved_aside or [""]:
                empty.add_metric([path], 1)
        else:
            empty.add_metric([""], 0)
        yield empty

        stats = rt.store.stats(now=now, rate_minutes=1)
        groups = GaugeMetricFamily(f"{PREFIX}_groups", "Error groups in the store", labels=["priority"])
        for p in Priority:
            groups.add_metric([p.value], stats.by_priority.get(p.value, 0))
        yield groups
        by_status = GaugeMetricFamily(f"{PREFIX}_groups_by_status", "Error groups by status", labels=["status"])
        for status, n in sorted(stats.by_status.items()):
            by_status.add_metric([status], n)
        yield by_status
        yield CounterMetricFamily(
            f"{PREFIX}_occurrences", "Error occurrences counted in stored groups", value=stats.total_occurrences
        )

        total_records = sum(stats.remediations_by_result.values())
        actions = CounterMetricFamily(
            f"{PREFIX}_actions",
            "Remediation attempts in the audit log, by action, decision and result",
            labels=["action", "decision", "result"],
        )
        for (action, decision, result), n in sorted(
            self._action_counts(total_records, stats.last_remediation_at).items()
        ):
            actions.add_metric([action, decision, result], n)
        yield actions

        safety = rt.remediator.state()
        limits = rt.remediator.limits
        breakers = GaugeMetricFamily(
            f"{PREFIX}_breaker_open", "1 when a workload's circuit breaker is open", labels=["workload"]
        )
        for workload, b in sorted(safety.breakers.items()):
            breakers.add_metric([workload], 1.0 if b.open else 0.0)
        yield breakers
        yield GaugeMetricFamily(
            f"{PREFIX}_remediator_halted",
            "1 when a dry run changed the cluster and every action is refused until a person resets it",
            value=int(safety.halted),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_breakers_open",
            "Workloads whose breaker is open",
            value=sum(1 for b in safety.breakers.values() if b.open),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_actions_last_hour", "Actions spent from the hourly budget", value=safety.actions_last_hour(now)
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_max_actions_per_hour", "The hourly action budget", value=limits.max_actions_per_hour
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_remediation_enabled", "1 when remediation is enabled", value=int(limits.enabled)
        )
        yield GaugeMetricFamily(f"{PREFIX}_dry_run", "1 when remediation runs as dry-run", value=int(limits.dry_run))

        ready, _ = rt.ready()
        yield GaugeMetricFamily(f"{PREFIX}_ready", "1 when /ready answers 200", value=int(ready))
        yield GaugeMetricFamily(f"{PREFIX}_leader", "1 when this replica polls and remediates", value=int(h.leader))
        yield GaugeMetricFamily(
            f"{PREFIX}_event_subscribers", "Live event subscribers (WebSocket clients)", value=rt.events.subscribers
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_rules_loaded_timestamp_seconds",
            "When the rules were last loaded",
            value=h.rules_loaded_at or 0.0,
        )
        rejected = GaugeMetricFamily(
            f"{PREFIX}_rules_file_rejected",
            "1 while the last reload of the rules file was refused (reason: why; the previous rules are kept)",
            labels=["file", "reason"],
        )
        rejected.add_metric([rt.rules_path, h.rules_error], 1.0 if h.rules_error else 0.0)
        yield rejected
        yield CounterMetricFamily(
            f"{PREFIX}_rules_reload_rejections",
            "Reloads of the rules file refused since start",
            value=h.rules_rejections,
        )
        yield GaugeMetricFamily(f"{PREFIX}_start_time_seconds", "When the process started", value=h.started_at)
        yield from notification_metrics(rt)
        yield from pod_status_metrics(rt)


def pod_status_metrics(rt: Runtime) -> Iterator[Metric]:
    """The second source: complete scans of pod status, failed scans, and whether the last one failed."""
    pods = rt.incidents.pods
    yield CounterMetricFamily(
        f"{PREFIX}_pod_status_scans", "Complete scans of pod status since start", value=pods.scans
    )
    yield CounterMetricFamily(
        f"{PREFIX}_pod_status_scan_failures",
        "Scans of pod status that failed (forbidden, timeout, ...)",
        value=pods.scan_failures,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_pod_status_failing",
        "1 while the last scan of pod status failed",
        value=1.0 if pods.last_error else 0.0,
    )
    if pods.last_scan_at is not None:
        yield GaugeMetricFamily(
            f"{PREFIX}_pod_status_last_scan_timestamp_seconds",
            "When the last complete scan of pod status ended",
            value=pods.last_scan_at,
        )


def notification_metrics(rt: Runtime) -> Iterator[Metric]:
    """Per destination: messages by outcome, and whether it keeps failing."""
    statuses = rt.notifier.status()
    outcomes = CounterMetricFamily(
        f"{PREFIX}_notifications",
        "Notifications by destination and outcome (sent, failed, retried, dropped, rate_limited, suppressed)",
        labels=["destination", "type", "outcome"],
    )
    failing = GaugeMetricFamily(
        f"{PREFIX}_notification_destination_failing",
        "1 when a notification destination's last deliveries all failed",
        labels=["destination", "type"],
    )
    for st in statuses:
        for outcome in OUTCOMES:
            outcomes.add_metric([st["name"], st["type"], outcome], st[outcome])
        failing.add_metric([st["name"], st["type"]], int(st["failing"]))
    yield outcomes
    yield failing


POLL_STATES = ("ok", "waiting", "failing", "stale", "follower")


def build_registry(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(runtime))
    return registry
