"""What the overview's live feed shows: new, escalated and regressed groups from the event bus.

Everything else the pages read (group and record rows, the URL filters, CSV exports, top
workloads, refusal reasons) is the shared read model in :mod:`sentinel.views`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

NEW_OR_WORSE = frozenset({"new", "escalated", "regressed"})


def live_feed(events: Iterable[Any], *, limit: int = 20) -> list[dict[str, Any]]:
    """New, escalated and regressed groups from the event bus's recent events (newest first)."""
    rows: list[dict[str, Any]] = []
    for e in events:
        data = e.data
        change = "new" if e.type == "error.new" else str(data.get("change", ""))
        if change == "lifecycle" and data.get("escalated"):
            change = "escalated"
        if change not in NEW_OR_WORSE:
            continue
        rows.append(
            {
                "time": e.time,
                "change": change,
                "priority": data.get("priority", ""),
                "namespace": data.get("namespace", ""),
                "workload": data.get("workload", ""),
                "template": data.get("template", ""),
                "count": data.get("count", 0),
                "id": data.get("id", ""),
            }
        )
        if len(rows) >= limit:
            break
    return rows
