"""CSV as every export writes it: the API, the console and ``analyze --format csv``.

Text that came from logs or labels can start like a spreadsheet formula (``=HYPERLINK(...)``,
``+cmd|...``, ``@SUM(...)``); a spreadsheet that opens the file would run it. Every text cell
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is written with a ``'``
in front, which spreadsheets show as text and do not evaluate. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value``, with a ``'`` in front when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[object]], *, lineterminator: str = "\r\n") -> str:
    """A header of ``columns``, then one line per row, every cell through :func:`safe_cell`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=lineterminator)
    writer.writerow([safe_cell(c) for c in columns])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return buf.getvalue()
