"""Plotly figures the pages share. Each takes plain values and returns a figure; no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from sentinel.core.model import PRIORITY_LABELS
from sentinel.ui.format import PRIORITIES, PRIORITY_COLORS

_LAYOUT: dict[str, Any] = {
    "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
    "height": 300,
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
    "hovermode": "x unified",
}


def errors_over_time(rate: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Occurrences per minute, stacked by priority (P1 on top of the stack's legend)."""
    xs = [datetime.fromtimestamp(float(r["minute"])) for r in rate]
    fig = go.Figure()
    for p in reversed(PRIORITIES):
        fig.add_trace(
            go.Bar(
                x=xs,
                y=[int(r.get(p, 0)) for r in rate],
                name=f"{p} {PRIORITY_LABELS[p]}",
                marker_color=PRIORITY_COLORS[p],
                hovertemplate="%{y} lines<extra>" + p + "</extra>",
            )
        )
    fig.update_layout(barmode="stack", yaxis_title="lines / minute", **_LAYOUT)
    fig.update_xaxes(tickformat="%H:%M")
    return fig


def minute_counts(counts: Mapping[int, int], *, now: float, minutes: int = 120, color: str = "#d62728") -> go.Figure:
    """One group's occurrences per minute over the last ``minutes`` (gaps filled with 0)."""
    end = int(now // 60)
    start = end - minutes + 1
    if counts:
        first = min(counts)
        start = max(start, first) if end - first < minutes else start
    keys = range(start, end + 1)
    fig = go.Figure(
        go.Bar(
            x=[datetime.fromtimestamp(k * 60) for k in keys],
            y=[counts.get(k, 0) for k in keys],
            marker_color=color,
            hovertemplate="%{x|%H:%M}: %{y} lines<extra></extra>",
        )
    )
    fig.update_layout(yaxis_title="lines / minute", showlegend=False, **{**_LAYOUT, "height": 240})
    fig.update_xaxes(tickformat="%H:%M")
    return fig


def horizontal_bars(
    labels: Sequence[str], values: Sequence[float], *, colors: Sequence[str] | None = None, title: str = ""
) -> go.Figure:
    """Top-N bars, biggest on top."""
    fig = go.Figure(
        go.Bar(
            x=list(values)[::-1],
            y=list(labels)[::-1],
            orientation="h",
            marker_color=list(colors)[::-1] if colors else "#5b8fc7",
            hovertemplate="%{y}: %{x}<extra></extra>",
        )
    )
    height = max(160, 28 * len(labels) + 60)
    fig.update_layout(xaxis_title=title, showlegend=False, **{**_LAYOUT, "height": height, "hovermode": "closest"})
    return fig
