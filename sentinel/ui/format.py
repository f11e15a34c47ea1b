"""How the console writes things: priority colours and badges, times, durations, counts. Pure."""

from __future__ import annotations

import time
from datetime import datetime

from sentinel.core.model import PRIORITY_LABELS, Priority, Status

PRIORITY_COLORS: dict[str, str] = {
    "P1": "#d62728",  # red: critical
    "P2": "#ff7f0e",  # orange: high
    "P3": "#e3b505",  # amber: medium
    "P4": "#5b8fc7",  # blue: low
}
PRIORITY_DOTS: dict[str, str] = {"P1": "🔴", "P2": "🟠", "P3": "🟡", "P4": "🔵"}
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
STATUS_ICONS: dict[str, str] = {
    "open": "❗",
    "acknowledged": "👀",
    "snoozed": "💤",
    "resolved": "✅",
    "regressed": "↩️",
}


def priority_badge(priority: str | Priority) -> str:
    """``🔴 P1 critical``: colour, code and word, so the table reads without a legend."""
    p = str(priority.value if isinstance(priority, Priority) else priority)
    return f"{PRIORITY_DOTS.get(p, '⚪')} {p} {PRIORITY_LABELS.get(p, '')}".rstrip()


def priority_markdown(priority: str | Priority) -> str:
    """A coloured Streamlit markdown badge: ``:red-badge[P1 critical]``."""
    p = str(priority.value if isinstance(priority, Priority) else priority)
    colour = {"P1": "red", "P2": "orange", "P3": "yellow", "P4": "blue"}.get(p, "gray")
    return f":{colour}-badge[{p} {PRIORITY_LABELS.get(p, '')}]"


def status_label(status: str | Status) -> str:
    s = str(status.value if isinstance(status, Status) else status)
    return f"{STATUS_ICONS.get(s, '')} {s}".strip()


def when(ts: float | None) -> str:
    """Local wall-clock time, ``2026-11-28 10:46:24``; ``—`` for never."""
    if ts is None or ts <= 0:
        return "—"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def ago(ts: float | None, *, now: float | None = None) -> str:
    """``12s ago``, ``3m ago``, ``2h ago``, ``4d ago``; ``never`` for None."""
    if ts is None or ts <= 0:
        return "never"
    delta = (time.time() if now is None else now) - ts
    if delta < 0:
        return "just now" if delta > -5 else "in " + duration(-delta)
    if delta < 1:
        return "just now"
    return duration(delta) + " ago"


def duration(seconds: float) -> str:
    """``45s``, ``5m``, ``1h30m``, ``2d3h`` (two units at most)."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s" if s and m < 10 else f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d{h}h" if h else f"{d}d"


def count(n: int | float) -> str:
    """``950``, ``12.3k``, ``4.5M``."""
    v = float(n)
    if abs(v) < 1000:
        return f"{int(v)}" if v == int(v) else f"{v:.1f}"
    if abs(v) < 1_000_000:
        return f"{v / 1000:.1f}k"
    return f"{v / 1_000_000:.1f}M"


def shorten(text: str, limit: int = 160) -> str:
    t = " ".join(text.split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


def workload_label(namespace: str, workload: str) -> str:
    return f"{namespace}/{workload}" if namespace else workload or "—"
