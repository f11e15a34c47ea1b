"""Overview: is the engine healthy, what is on fire, what changed, what was done about it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sentinel.store.base import RecordQuery
from sentinel.ui import charts
from sentinel.ui.context import events, health, live_settings, runtime, status, store, time_now
from sentinel.ui.format import (
    PRIORITIES,
    PRIORITY_COLORS,
    ago,
    count,
    duration,
    md,
    priority_badge,
    priority_label,
    shorten,
    svg_text,
)
from sentinel.ui.health import ICONS, banners, checks
from sentinel.ui.queries import live_feed
from sentinel.ui.tables import RECORD_COLUMNS, records_frame, with_priority_colours
from sentinel.views.groups import top_workloads

REFRESH_SECONDS = 5

runtime()  # stops the page with an explanation when the engine is not running
st.title(":material/monitor_heart: Overview")
st.caption(
    "What Kube Sentinel sees in your cluster's logs right now. Errors are grouped by workload and "
    f"message, ranked P1 (critical) to P4 (low). This page refreshes itself every {REFRESH_SECONDS}s."
)


@st.fragment(run_every=REFRESH_SECONDS)
def live() -> None:
    now = time_now()
    es = status()
    banners(es)

    cols = st.columns(4)
    for col, c in zip(cols, checks(es), strict=False):
        with col:
            st.metric(f"{ICONS[c.level]} {c.name}", md(c.value), help=md(c.detail), border=True)
            st.caption(md(shorten(c.detail, 90)))

    stats = store().stats(now=now)
    if stats.total_groups == 0:
        st.info(
            f"**No errors yet** — the engine polls every {duration(live_settings().settings.poll_interval)}. "
            "Error groups appear here as soon as the first matching log lines arrive.",
            icon=":material/hourglass_top:",
        )

    st.subheader("Error groups by priority")
    cols = st.columns(5)
    open_by_status = stats.by_status.get("open", 0) + stats.by_status.get("regressed", 0)
    for col, p in zip(cols, PRIORITIES, strict=False):
        with col:
            st.metric(
                priority_label(p),
                count(stats.by_priority.get(p, 0)),
                help=f"error groups currently ranked {p}",
                border=True,
            )
    with cols[4]:
        st.metric(
            "All groups",
            count(stats.total_groups),
            help=f"{count(stats.total_occurrences)} log lines in all; {count(open_by_status)} open or regressed",
            border=True,
        )

    st.subheader("Errors over the last hour")
    if any(any(r.get(p) for p in PRIORITIES) for r in stats.rate):
        st.plotly_chart(charts.errors_over_time(stats.rate), key="rate_chart", config={"displayModeBar": False})
    else:
        st.caption("No error lines in the last hour.")

    left, right = st.columns(2)
    with left:
        st.subheader("Top namespaces")
        top_ns = sorted(stats.by_namespace.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        if top_ns:
            st.plotly_chart(
                charts.horizontal_bars(
                    [svg_text(k or "(none)") for k, _ in top_ns], [v for _, v in top_ns], title="error groups"
                ),
                key="ns_chart",
                config={"displayModeBar": False},
            )
        else:
            st.caption("Nothing yet.")
    with right:
        st.subheader("Top workloads")
        tw = top_workloads(store())
        if tw.rows:
            st.plotly_chart(
                charts.horizontal_bars(
                    [svg_text(f"{r['namespace']}/{r['workload']}") for r in tw.rows],
                    [r["occurrences"] for r in tw.rows],
                    colors=[PRIORITY_COLORS[r["worst"]] for r in tw.rows],
                    title="log lines (colour: worst priority)",
                ),
                key="wl_chart",
                config={"displayModeBar": False},
            )
            if tw.partial:
                st.caption(f"From the {tw.scanned} largest of {count(tw.total)} groups.")
        else:
            st.caption("Nothing yet.")

    st.subheader("Live feed")
    st.caption("New, escalated and regressed error groups, newest first. Open one for its samples and actions.")
    feed = live_feed(events().recent(frozenset({"error.new", "error.updated"}), limit=500), limit=15)
    if feed:
        st.dataframe(
            with_priority_colours(
                pd.DataFrame(
                    [
                        {
                            "When": ago(r["time"], now=now),
                            "What": r["change"],
                            "Priority": priority_badge(r["priority"]),
                            "Workload": f"{r['namespace']}/{r['workload']}",
                            "Error": shorten(str(r["template"]), 140),
                            "Open": f"/errors?id={r['id']}",
                        }
                        for r in feed
                    ]
                )
            ),
            hide_index=True,
            column_config={
                "Error": st.column_config.TextColumn(width="large"),
                "Open": st.column_config.LinkColumn("Detail", display_text="open ↗"),
            },
            key="feed",
        )
    else:
        st.caption("Nothing new since the console started.")

    st.subheader("Recent remediations")
    st.caption("The last actions decided, allowed or refused, and why. The full audit log is under History.")
    recent = store().list_remediations(RecordQuery(page_size=10))
    if recent.items:
        st.dataframe(
            records_frame(recent.items)[["Time", "Action", "Target", "Outcome", "Why", "By", "Group"]],
            hide_index=True,
            column_config=RECORD_COLUMNS,
            key="recent_remediations",
        )
    else:
        st.caption("No remediation yet: actions appear here when a rule with an action matches.")
    st.caption(f"Updated {ago(now, now=now)} · engine up {duration(now - health().started_at)}")


live()
