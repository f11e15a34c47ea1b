"""URL parameters as the console's links carry them: tolerant (a bad value is dropped, never an error)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TIME_RANGES: dict[str, float | None] = {
    "15m": 15 * 60,
    "1h": 3600,
    "6h": 6 * 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "all": None,
}
TIME_RANGE_LABELS: dict[str, str] = {
    "15m": "last 15 minutes",
    "1h": "last hour",
    "6h": "last 6 hours",
    "24h": "last 24 hours",
    "7d": "last 7 days",
    "all": "any time",
}
PAGE_SIZES = (50, 100, 200, 500)
DEFAULT_PAGE_SIZE = 100


def all_params(query_params: Any) -> dict[str, list[str]]:
    """Every value of every parameter (``?priority=P1&priority=P2`` keeps both), from ``st.query_params``."""
    return {k: list(query_params.get_all(k)) for k in query_params}


def same_params(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal as query strings (a single value and a one-item list are the same)."""

    def norm(m: Mapping[str, Any]) -> dict[str, list[str]]:
        return {k: [str(x) for x in v] if isinstance(v, list | tuple) else [str(v)] for k, v in m.items()}

    return norm(a) == norm(b)


def first(value: Any) -> str:
    """A query parameter as one string (Streamlit gives the last value; lists are tolerated)."""
    if isinstance(value, list | tuple):
        value = value[-1] if value else ""
    return "" if value is None else str(value).strip()


def split(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        parts = [p for v in value for p in str(v).split(",")]
    else:
        parts = first(value).split(",")
    return [p.strip() for p in parts if p.strip()]


def integer(value: Any, default: int, *, low: int = 1, high: int = 1_000_000) -> int:
    try:
        return max(low, min(high, int(first(value))))
    except ValueError:
        return default


def since_of(range_key: str, now: float) -> float | None:
    seconds = TIME_RANGES.get(range_key)
    return None if seconds is None else now - seconds
