"""DataFrames and column configs for the tables pages show. Built from one page of rows at a time."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from sentinel.core.model import ErrorGroup, RemediationRecord
from sentinel.ui.format import ago, priority_badge, priority_cell_style, shorten, status_label
from sentinel.views.groups import GroupView, queue_row
from sentinel.views.records import RecordView, history_row


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts) if ts else None


TREND_BUCKETS = 12  # five minutes each: the last hour


def last_hour(minute_counts: Mapping[int, int], *, now: float | None = None) -> list[int]:
    """Lines per five minutes over the last hour, oldest first (the queue's sparkline)."""
    current = int((time.time() if now is None else now) // 60)
    buckets = [0] * TREND_BUCKETS
    for minute, n in minute_counts.items():
        age = current - int(minute)
        if 0 <= age < TREND_BUCKETS * 5:
            buckets[TREND_BUCKETS - 1 - age // 5] += int(n)
    return buckets


def queue_frame(groups: Sequence[ErrorGroup], *, now: float | None = None) -> pd.DataFrame:
    """The priority queue's visible page (times as "3m ago", which fits a narrow column)."""
    rows = []
    for g in groups:
        r = queue_row(GroupView.of(g))
        rows.append(
            {
                "Priority": priority_badge(r["priority"]),
                "Impact": r["impact"],
                "Count": r["count"],
                "Error": shorten(r["template"], 140),
                "Namespace": r["namespace"],
                "Workload": r["workload"],
                "Rule": r["rule"],
                "Status": status_label(r["status"]),
                "Fixed": r["remediations"],
                "Trend": last_hour(g.minute_counts, now=now),
                "First seen": ago(r["first_seen"], now=now),
                "Last seen": ago(r["last_seen"], now=now),
                "Open": f"/errors?id={r['id']}",
            }
        )
    columns = [
        "Priority",
        "Impact",
        "Count",
        "Error",
        "Namespace",
        "Workload",
        "Rule",
        "Status",
        "Fixed",
        "Trend",
        "First seen",
        "Last seen",
        "Open",
    ]
    return pd.DataFrame(rows, columns=columns)


# Widths in pixels: the key columns fit 1440x900 with the sidebar open, no horizontal scrolling
# (checked by tests/e2e). Impact orders the queue (Sort) and the row opens the detail: not shown.
QUEUE_COLUMNS: dict[str, Any] = {
    "Priority": st.column_config.TextColumn("Priority", help="P1 critical … P4 low", width=90),
    "Impact": st.column_config.NumberColumn(
        "Impact", help="orders errors within a priority: recent rate × spread over pods × recency", format="%.1f"
    ),
    "Count": st.column_config.NumberColumn("Count", help="occurrences since first seen", format="%d", width=56),
    "Error": st.column_config.TextColumn(
        "Error (template)", help="the message with its variable parts masked", width=128
    ),
    "Namespace": st.column_config.TextColumn("Namespace", width=82),
    "Workload": st.column_config.TextColumn("Workload", width=100),
    "Rule": st.column_config.TextColumn("Rule", width=100),
    "Status": st.column_config.TextColumn("Status", width=80),
    "Fixed": st.column_config.NumberColumn("Remediated", help="successful remediation actions", format="%d", width=80),
    "Trend": st.column_config.LineChartColumn(
        "Last hour", help="lines per 5 minutes over the last hour: a rising error stands out", width=70, y_min=0
    ),
    "First seen": st.column_config.TextColumn("First seen", width=72),
    "Last seen": st.column_config.TextColumn("Last seen", width=78),
    "Open": st.column_config.LinkColumn("Detail", display_text="open ↗", width="small"),
}
QUEUE_ORDER = (
    "Priority",
    "Count",
    "Error",
    "Namespace",
    "Workload",
    "Rule",
    "Status",
    "Fixed",
    "Trend",
    "Last seen",
    "First seen",
)


def records_frame(records: Iterable[RemediationRecord]) -> pd.DataFrame:
    rows = []
    for rec in records:
        r = history_row(RecordView.of(rec))
        target = (
            f"{r['namespace']}/{r['kind'].lower() + '/' if r['kind'] else ''}{r['name']}"
            if r["name"]
            else r["workload"]
        )
        outcome = "refused" if r["decision"] == "denied" else r["result"]
        why = r["error"] or r["reason"]
        if rec.count > 1 and rec.last_time:  # repeats of one refusal, folded into this record
            why = f"{why} (×{rec.count}, the last at {datetime.fromtimestamp(rec.last_time):%H:%M:%S})"
        rows.append(
            {
                "Time": _dt(r["time"]),
                "Action": r["action"],
                "Target": target,
                "Outcome": _outcome_label(outcome, dry_run=bool(r["dry_run"])),
                "Why": why,
                "By": r["requested_by"],
                "Rule": r["rule"],
                "Effective": {True: "yes", False: "no", None: ""}[r["effective"]],
                "Group": f"/errors?id={r['group_id']}" if r["group_id"] else None,
            }
        )
    columns = ["Time", "Action", "Target", "Outcome", "Why", "By", "Rule", "Effective", "Group"]
    return pd.DataFrame(rows, columns=columns)


def _outcome_label(outcome: str, *, dry_run: bool) -> str:
    return f"{outcome}{' (dry-run)' if dry_run else ''}"


RECORD_COLUMNS: dict[str, Any] = {
    "Time": st.column_config.DatetimeColumn("Time", format="MMM D, HH:mm:ss", width=112),
    "Action": st.column_config.TextColumn("Action", width=100),
    "Target": st.column_config.TextColumn("Target", width=150),
    "Outcome": st.column_config.TextColumn("Outcome", width=115),
    "Why": st.column_config.TextColumn("Why / detail", width=165),
    "By": st.column_config.TextColumn("By", width=80),
    "Rule": st.column_config.TextColumn("Rule", width=100),
    "Effective": st.column_config.TextColumn("Effective", width=65),
    "Group": st.column_config.LinkColumn("Group", display_text="open ↗", width=60),
}


def mapping_frame(items: Mapping[str, Any], *, key: str, value: str) -> pd.DataFrame:
    return pd.DataFrame([{key: k, value: v} for k, v in items.items()], columns=[key, value])


def with_priority_colours(df: pd.DataFrame, column: str = "Priority") -> Any:
    """The frame with its priority cells coloured (P1 red … P4 blue); one page of rows, so cheap."""
    if column not in df.columns or df.empty:
        return df
    return df.style.map(priority_cell_style, subset=[column])
