"""Go-style durations: ``30s``, ``5m``, ``1h30m``, ``250ms``, ``1.5h``; a bare number means seconds."""

from __future__ import annotations

import math
import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_SECONDS = 3650 * 86400.0  # ten years: longer is a typo, and overflows nanosecond arithmetic
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ``ValueError`` naming what is wrong (negative, unparseable,
    not finite, longer than ten years)."""
    seconds = _parse(value)
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be a finite number, got {value!r}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration must be at most 3650d (ten years), got {value!r}")
    return seconds


def _parse(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m or 1h30m, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 30s, 5m or 1h30m, got {type(value).__name__} {value!r}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"duration must not be negative, got {value!r}")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"cannot parse duration {value!r}: expected a duration like 30s, 5m or 1h30m")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling: 90 -> ``1m30s``, 3600 -> ``1h``."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{sec}s" if sec else "")
    return out or "0s"
