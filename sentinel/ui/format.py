"""How the console writes things: priority colours and badges, times, durations, counts. Pure."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from sentinel.core.model import PRIORITY_LABELS, Priority, Status

PRIORITY_COLORS: dict[str, str] = {
    "P1": "#d62728",  # red: critical
    "P2": "#ff7f0e",  # orange: high
    "P3": "#e3b505",  # amber: medium
    "P4": "#5b8fc7",  # blue: low
}
# Streamlit markdown colours for the same scale (labels, badges, banners).
PRIORITY_MD_COLORS: dict[str, str] = {"P1": "red", "P2": "orange", "P3": "yellow", "P4": "blue"}
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
STATUS_HINTS: dict[str, str] = {
    "open": "needs attention",
    "acknowledged": "someone is on it",
    "snoozed": "hidden for a while",
    "resolved": "fixed or gone quiet",
    "regressed": "came back after being resolved",
}


def priority_badge(priority: str | Priority) -> str:
    """``P1 critical``: code and word, so a table reads without a legend (cells get the colour)."""
    p = str(priority.value if isinstance(priority, Priority) else priority)
    return f"{p} {PRIORITY_LABELS.get(p, '')}".rstrip()


def priority_label(priority: str | Priority) -> str:
    """``:red[●] P1 critical``: a markdown label with the priority's colour (metrics, headings)."""
    p = str(priority.value if isinstance(priority, Priority) else priority)
    return f":{PRIORITY_MD_COLORS.get(p, 'gray')}[●] {priority_badge(p)}"


def priority_cell_style(value: object) -> str:
    """CSS for a table cell holding ``P1 critical`` etc.: the priority's colour as background."""
    p = str(value)[:2]
    colour = PRIORITY_COLORS.get(p)
    if colour is None:
        return ""
    text = "#1b1b1b" if p == "P3" else "white"
    return f"background-color: {colour}; color: {text}; font-weight: 600"


def priority_markdown(priority: str | Priority) -> str:
    """A coloured Streamlit markdown badge: ``:red-badge[P1 critical]``."""
    p = str(priority.value if isinstance(priority, Priority) else priority)
    colour = PRIORITY_MD_COLORS.get(p, "gray")
    return f":{colour}-badge[{p} {PRIORITY_LABELS.get(p, '')}]"


def status_label(status: str | Status) -> str:
    s = str(status.value if isinstance(status, Status) else status)
    return s


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


# Every character CommonMark, GFM and Streamlit give a meaning to: emphasis, links and images, code,
# headings, lists, tables, raw HTML and entities, strikethrough, LaTeX (``$``), colour and icon
# directives (``:red[...]``, ``:material/x:``). A backslash before any ASCII punctuation is literal.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&=\"'^@/%?;,])")


WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"\\:\\/\\/|(?i:www)|\\@")


def md(text: object) -> str:
    """``text`` (from logs, labels, people) as literal Markdown text: nothing in it is interpreted.

    One line (whitespace collapsed), every special character escaped, so ``![x](http://…)``,
    ``[x](javascript:…)``, ``<img …>``, ``:red[x]`` or ``$x$`` read as written.
    """
    escaped = _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
    # GFM links bare URLs and e-mail addresses in the text itself, escapes or not: an invisible word
    # joiner after "://", "www" and "@" keeps them text (it is shown as nothing).
    return _AUTOLINK.sub(lambda m: m.group(0) + WORD_JOINER, escaped)


def svg_text(text: object) -> str:
    """``text`` for a Plotly label: Plotly reads ``<a href>``, ``<b>`` … tags in labels; escape them."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def iso_utc(ts: float | None) -> str:
    """ISO 8601 in UTC, ``2026-11-28T10:46:24Z`` (seconds); "" for never. CSV exports use it."""
    if ts is None or ts <= 0:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
