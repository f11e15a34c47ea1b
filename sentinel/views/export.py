"""The one CSV writer: the API's ``format=csv``, the console's downloads (errors, history).

Cells go through :func:`sentinel.core.export.safe_cell` (text a spreadsheet would run as a
formula gets a ``'`` in front); null is empty, booleans ``true``/``false``, objects JSON, and a
time column's POSIX seconds are written as ISO 8601 in UTC (empty for never).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sentinel.core.export import csv_text

# Columns holding a time (POSIX seconds in JSON): written in CSV as ISO 8601 in UTC, as the console shows.
TIME_COLUMN = re.compile(r"^(time|until)$|_(at|seen|until)$")


def iso_utc(ts: float) -> str:
    """``2026-11-28T10:46:24Z``: ISO 8601, UTC, whole seconds."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def csv_cell(value: Any, *, column: str = "") -> Any:
    """How one JSON value is written in CSV: null -> empty, booleans lower case, objects as JSON, and a
    time column's seconds as ISO 8601 in UTC.

    Numbers stay numbers, so that :func:`sentinel.core.export.safe_cell` leaves a negative one alone."""
    if column and TIME_COLUMN.search(column) and isinstance(value, int | float) and not isinstance(value, bool):
        return iso_utc(float(value)) if value > 0 else ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, int | float):
        return value
    return str(value)


def rows_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header of ``columns``, then one line per row (``\\r\\n`` line ends, as RFC 4180)."""
    return counted_csv(columns, rows)[0]


def counted_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> tuple[str, int]:
    """:func:`rows_csv` and how many rows it wrote."""
    n = 0

    def cells() -> Iterator[list[Any]]:
        nonlocal n
        for row in rows:
            n += 1
            yield [csv_cell(row.get(c), column=c) for c in columns]

    text = csv_text(columns, cells())
    return text, n
