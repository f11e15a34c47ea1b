"""What the engine knows about itself: :class:`Health`, the source's counts, and the two verdicts on it.

:func:`ready` is /ready's (can this process serve: store, rules); :func:`poll_state` is how
reading the logs goes (console banner, /api/stats, /metrics). ``Health.leader`` is read-only
here: :class:`~sentinel.engine.leadership.Leadership` is its only writer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sentinel.errors import cap
from sentinel.store.base import Store

log = logging.getLogger(__name__)

READY_STALE_FACTOR = 3  # polls are stale when the last good one is older than 3 poll intervals
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


def _always_leading() -> bool:
    return True


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
    poll_durations: list[float] = field(default_factory=list)
    skipped_seconds: float = 0.0  # logs never read because a catch-up hit loki.max_lookback
    counts: SourceCounts = field(default_factory=lambda: SourceCounts())
    # Whether this replica leads, as Leadership (its only writer) last recorded it.
    leading: Callable[[], bool] = field(default=_always_leading, repr=False, compare=False)

    @property
    def leader(self) -> bool:
        return self.leading()

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


def ready(store: Store, health: Health) -> tuple[bool, dict[str, str]]:
    """(ready, {check: problem}) for /ready: the process can serve (config, rules, store).

    Loki is not part of it: a Loki outage must not take the console out of its Service exactly
    when an SRE needs it. Poll health is :func:`poll_state` (console banner, /api/stats, /metrics).
    """
    problems: dict[str, str] = {}
    ok, why = store.writable()
    if not ok:
        problems["store"] = why
    if health.rules_error:
        problems["rules"] = health.rules_error
    return not problems, problems


def poll_state(health: Health, *, poll_interval: float, now: float) -> tuple[str, str]:
    """("ok" | "waiting" | "failing" | "stale" | "follower", why): how reading the logs goes."""
    h = health
    if not h.leader:
        return "follower", "another replica polls"
    if h.consecutive_errors:
        return "failing", f"{h.consecutive_errors} poll(s) failed in a row: {h.last_error or 'unknown error'}"
    if h.last_success_at is None:
        return "waiting", h.last_error or "no successful poll yet"
    age = now - h.last_success_at
    if age > READY_STALE_FACTOR * max(poll_interval, 10.0):
        return "stale", f"last successful poll {int(age)}s ago; last error: {h.last_error or 'none'}"
    return "ok", f"last successful poll {int(age)}s ago"
