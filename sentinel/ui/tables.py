"""DataFrames and column configs for the tables pages show. Built from one page of rows at a time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from sentinel.core.model import ErrorGroup, RemediationRecord
from sentinel.ui.format import priority_badge, priority_cell_style, shorten, status_label
from sentinel.ui.queries import group_row, record_row


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts) if ts else None


def queue_frame(groups: Sequence[ErrorGroup]) -> pd.DataFrame:
    """The priority queue's visible page."""
    rows = []
    for g in groups:
        r = group_row(g)
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
                "First seen": _dt(r["first_seen"]),
                "Last seen": _dt(r["last_seen"]),
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
        "First seen",
        "Last seen",
        "Open",
    ]
    return pd.DataFrame(rows, columns=columns)


QUEUE_COLUMNS: dict[str, Any] = {
    "Priority": st.column_config.TextColumn("Priority", help="P1 critical … P4 low", width="small"),
    "Impact": st.column_config.NumberColumn(
        "Impact", help="orders errors within a priority: recent rate × spread over pods × recency", format="%.1f"
    ),
    "Count": st.column_config.NumberColumn("Count", help="occurrences since first seen", format="%d"),
    "Error": st.column_config.TextColumn(
        "Error (template)", help="the message with its variable parts masked", width="large"
    ),
    "Fixed": st.column_config.NumberColumn("Remediated", help="successful remediation actions", format="%d"),
    "First seen": st.column_config.DatetimeColumn("First seen", format="MMM D, HH:mm:ss"),
    "Last seen": st.column_config.DatetimeColumn("Last seen", format="MMM D, HH:mm:ss"),
    "Open": st.column_config.LinkColumn("Detail", display_text="open ↗", width="small"),
}


def records_frame(records: Iterable[RemediationRecord]) -> pd.DataFrame:
    rows = []
    for rec in records:
        r = record_row(rec)
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
    "Time": st.column_config.DatetimeColumn("Time", format="MMM D, HH:mm:ss"),
    "Why": st.column_config.TextColumn("Why / detail", width="large"),
    "Group": st.column_config.LinkColumn("Group", display_text="open ↗", width="small"),
}


def mapping_frame(items: Mapping[str, Any], *, key: str, value: str) -> pd.DataFrame:
    return pd.DataFrame([{key: k, value: v} for k, v in items.items()], columns=[key, value])


def with_priority_colours(df: pd.DataFrame, column: str = "Priority") -> Any:
    """The frame with its priority cells coloured (P1 red … P4 blue); one page of rows, so cheap."""
    if column not in df.columns or df.empty:
        return df
    return df.style.map(priority_cell_style, subset=[column])
