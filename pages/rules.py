"""Rules: what each rule matches and does, how often it matched; a line tester and a pattern backtest."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sentinel.ui.context import health, pipeline, rules_view, runtime, store, time_now
from sentinel.ui.explain import backtest, rule_rows
from sentinel.ui.format import ago, count, duration, md, priority_badge, priority_markdown
from sentinel.ui.tables import with_priority_colours
from sentinel.views.explain import try_line

runtime()  # stops the page, with an explanation, when no engine runs in this process
now = time_now()

st.title(":material/rule: Rules")
st.caption(
    "Rules decide an error's priority and what to do about it. The first enabled rule whose pattern "
    "matches a line wins; lines no rule matches are ranked P4 under `default`. "
    f"Rules come from `{rules_view().rules_path or 'rules.yaml'}` and reload on their own when the file changes."
)
if health().rules_error:
    st.error(health().rules_error)
st.caption(
    f"Loaded {ago(health().rules_loaded_at, now=now)} · {len(rules_view().rules)} enabled of {len(rules_view().rules.all_rules)}"
)

stats = store().stats(now=now, rate_minutes=1)
rows = rule_rows(rules_view().rules, rules_view().rule_hits, stats.by_rule)
table = pd.DataFrame(
    [
        {
            "Rule": r["rule"],
            "On": "on" if r["enabled"] else "off",
            "Priority": priority_badge(r["priority"]),
            "Matches (pattern)": r["match"],
            "Scope": r["scope"],
            "Action": r["action"] + (f" ({r['params']})" if r["params"] else ""),
            "Cooldown": duration(r["cooldown"]) if r["action"] != "none" else "",
            "Lines matched": r["lines matched"],
            "Groups": r["groups"],
        }
        for r in rows
    ]
)
st.dataframe(
    with_priority_colours(table),
    hide_index=True,
    key="rules_table",
    height=35 * (len(table) + 1) + 3,
    column_config={
        "Matches (pattern)": st.column_config.TextColumn(width="medium", help="an RE2 pattern, as in the Go tool"),
        "Lines matched": st.column_config.NumberColumn(help="log lines this rule classified since the store began"),
        "Groups": st.column_config.NumberColumn(help="error groups currently held under this rule"),
    },
)

left, right = st.columns(2)
with left:
    st.subheader("Try a line")
    st.caption("Paste a log line to see which rule, priority and group it would get.")
    with st.form("tester"):
        line = st.text_area(
            "Log line", key="t_line", placeholder="Back-off restarting failed container web in pod shop/web-7d9c-abcde"
        )
        a, b, c = st.columns(3)
        ns = a.text_input("namespace", key="t_ns", placeholder="optional")
        pod = b.text_input("pod", key="t_pod", placeholder="optional")
        container = c.text_input("container", key="t_container", placeholder="optional")
        tried = st.form_submit_button("Classify")
    if tried and not line.strip():
        st.warning("Paste a log line first.")
    elif tried:
        e = try_line(pipeline(), line, namespace=ns.strip(), pod=pod.strip(), container=container.strip())
        st.markdown(f"Rule **{md(e.rule)}** → {priority_markdown(e.priority)}")
        st.caption("Message (after parsing JSON / logfmt / klog)")
        st.code(e.message, language=None, wrap_lines=True)
        st.caption("Template (variable parts masked): lines with the same template form one group")
        st.code(e.template, language=None, wrap_lines=True)
        workload = f"{e.namespace}/{e.workload}" if e.namespace else (e.workload or "(no workload labels)")
        existing = store().get_group(e.group)
        st.markdown(
            f"Group {md(e.group)} in **{md(workload)}**"
            + (
                f" — already seen {count(existing.count)} times: [open it](/errors?id={e.group})"
                if existing
                else " — not seen yet"
            )
        )

with right:
    st.subheader("Backtest a pattern")
    st.caption(
        "Run an RE2 pattern over the stored sample lines of the most recently seen groups, "
        "before you put it in rules.yaml."
    )
    with st.form("backtest"):
        pattern = st.text_input("Pattern (RE2)", key="b_pattern", placeholder="(?i)connection (refused|reset)")
        limit = st.select_slider("Groups to scan", options=[1_000, 5_000, 20_000, 50_000], value=20_000, key="b_limit")
        run_it = st.form_submit_button("Backtest")
    if run_it and not pattern.strip():
        st.warning("Enter a pattern first.")
    elif run_it:
        bt = backtest(store(), pattern.strip(), max_groups=limit)
        if bt.error:
            st.error(f"Not a valid RE2 pattern: {md(bt.error)}")
        else:
            scope = (
                f"the {bt.groups_scanned:,} most recently seen of {bt.groups_total:,} groups"
                if bt.partial
                else f"all {bt.groups_scanned:,} groups"
            )
            st.markdown(
                f"Matched **{bt.groups_matched:,}** groups ({count(bt.occurrences)} occurrences) and "
                f"{bt.samples_matched:,} of {bt.samples_scanned:,} sample lines, in {scope} ({bt.seconds:.2f}s)."
            )
            if bt.by_rule:
                st.caption(
                    "Rules holding those groups today: "
                    + md(", ".join(f"{r} ({n})" for r, n in bt.by_rule.most_common()))
                )
            if bt.rows:
                st.dataframe(
                    pd.DataFrame(bt.rows).assign(open=lambda d: "/errors?id=" + d["id"]).drop(columns=["id"]),
                    hide_index=True,
                    key="backtest_rows",
                    column_config={"open": st.column_config.LinkColumn("Detail", display_text="open ↗")},
                )
