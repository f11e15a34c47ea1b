"""Errors: the priority queue (filters in the URL, CSV export) and one group's detail (``?id=``)."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from sentinel.core.actions import ACTIONS
from sentinel.core.logql import explore_url, for_group
from sentinel.core.model import ErrorGroup
from sentinel.engine.relay import Queued
from sentinel.errors import SafetyRefused
from sentinel.store.base import SORTS, RecordQuery
from sentinel.ui import charts
from sentinel.ui.cluster_context import context_view
from sentinel.ui.context import (
    admin_token,
    change_refusal,
    cluster_context,
    commands,
    config,
    first_page,
    incidents,
    live_settings,
    operator,
    pipeline,
    queued_note,
    read_only,
    rules_view,
    runtime,
    seed_widgets,
    step_page,
    store,
    time_now,
)
from sentinel.ui.format import (
    PRIORITIES,
    PRIORITY_COLORS,
    STATUSES,
    ago,
    count,
    duration,
    md,
    priority_badge,
    priority_label,
    priority_markdown,
    shorten,
    status_label,
    when,
)
from sentinel.ui.incidents import SOURCE_LABELS, rollout_lines, source_label
from sentinel.ui.tables import (
    QUEUE_COLUMNS,
    QUEUE_ORDER,
    RECORD_COLUMNS,
    queue_frame,
    records_frame,
    with_priority_colours,
)
from sentinel.views.explain import why
from sentinel.views.groups import SORT_LABELS, SOURCES, ClusterFilter, ErrorFilters, group_page, groups_csv
from sentinel.views.params import PAGE_SIZES, TIME_RANGE_LABELS, all_params, same_params

ANY = "(any)"
TOKEN_KEY = "confirm_token"
SNOOZES = {"1 hour": 3600, "4 hours": 4 * 3600, "1 day": 86400, "1 week": 7 * 86400}
# "until N more": the group wakes when N more lines arrive (or a burst escalates it), whichever first.
SNOOZE_MORE = {"until 10 more": 10, "until 100 more": 100, "until 1000 more": 1000}
COMMENT_KEY = "status_comment"

runtime()  # stops the page, with an explanation, when no engine runs in this process
now = time_now()
needs_token = bool(admin_token(config()))  # api.token is configured: changes here need it, as they do in the API
locked = read_only(config())  # no api.token and no console.allow_changes_without_token: read-only, as the API


# -- the queue ----------------------------------------------------------------------------------


def _init_filter_widgets(f: ErrorFilters) -> None:
    """Seed the filter widgets from the URL the first time they are drawn (a shared link)."""
    seed: dict[str, Any] = {
        "f_priority": list(f.priorities),
        "f_status": list(f.statuses),
        "f_namespace": f.namespace or ANY,
        "f_workload": f.workload,
        "f_rule": f.rule or ANY,
        "f_search": f.search,
        "f_range": f.range,
        "f_sort": f.sort,
        "f_page": f.page,
        "f_page_size": f.page_size,
    }
    seed_widgets(seed)


def _first_page() -> None:
    first_page("f_page")


def _clear_filters() -> None:
    for key in [k for k in st.session_state if str(k).startswith("f_")]:
        del st.session_state[key]
    st.query_params.clear()


def _open_group(group_id: str) -> None:
    st.query_params["id"] = group_id


def _chosen() -> ErrorFilters:
    ss = st.session_state
    return ErrorFilters(
        namespace="" if ss["f_namespace"] == ANY else str(ss["f_namespace"]),
        workload=str(ss["f_workload"]).strip(),
        priorities=tuple(sorted(ss["f_priority"])),
        statuses=tuple(s for s in STATUSES if s in ss["f_status"]),
        rule="" if ss["f_rule"] == ANY else str(ss["f_rule"]),
        search=str(ss["f_search"]).strip(),
        range=str(ss["f_range"]),
        sort=str(ss["f_sort"]),
        page=max(1, int(ss["f_page"])),
        page_size=int(ss["f_page_size"]),
    )


def queue() -> None:
    st.title(":material/error: Errors")
    st.caption(
        "Every distinct error, grouped by workload and message template, most urgent first. "
        "Filters live in the URL: copy it to share this exact view. Click a row to open it."
    )
    url = ErrorFilters.from_params(all_params(st.query_params))
    _init_filter_widgets(url)

    stats = store().stats(now=now, rate_minutes=1)
    namespaces = sorted(stats.by_namespace)
    if st.session_state["f_namespace"] not in (ANY, *namespaces):
        namespaces.append(st.session_state["f_namespace"])
    rules = [r.name for r in rules_view().rules.all_rules] + ["default"]
    if st.session_state["f_rule"] not in (ANY, *rules):
        rules.append(st.session_state["f_rule"])

    c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
    c1.multiselect(
        "Priority",
        PRIORITIES,
        key="f_priority",
        format_func=priority_badge,
        on_change=_first_page,
        placeholder="all priorities",
    )
    c2.multiselect(
        "Status", STATUSES, key="f_status", format_func=status_label, on_change=_first_page, placeholder="all statuses"
    )
    c3.selectbox("Namespace", [ANY, *namespaces], key="f_namespace", on_change=_first_page)
    c4.text_input(
        "Workload",
        key="f_workload",
        on_change=_first_page,
        placeholder="e.g. checkout",
        help="exact workload name (pod name without its ReplicaSet/Job suffix)",
    )
    c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
    c1.selectbox("Rule", [ANY, *rules], key="f_rule", on_change=_first_page)
    c2.text_input(
        "Text contains",
        key="f_search",
        on_change=_first_page,
        placeholder="e.g. timeout",
        help="searched in the template, workload, namespace and recent samples",
    )
    c3.selectbox(
        "Seen", list(TIME_RANGE_LABELS), key="f_range", format_func=TIME_RANGE_LABELS.__getitem__, on_change=_first_page
    )
    c4.selectbox("Sort", list(SORTS), key="f_sort", format_func=SORT_LABELS.__getitem__, on_change=_first_page)

    # incidents: filters the store does not know (seeded from ?new_since_rollout=true&source=cluster)
    seed_widgets(
        {
            "f_new_rollout": str(st.query_params.get("new_since_rollout", "")).lower() in ("1", "true", "yes"),
            "f_source": st.query_params.get("source") if st.query_params.get("source") in SOURCES else ANY,
        }
    )
    i1, i2, _ = st.columns([2, 2, 4], vertical_alignment="bottom")
    i1.toggle(
        "New since the last rollout",
        key="f_new_rollout",
        on_change=_first_page,
        help="first seen within kubernetes.rollout_window after the rollout of the revision running now",
    )
    i2.selectbox(
        "Source",
        [ANY, *SOURCES],
        key="f_source",
        format_func=lambda v: SOURCE_LABELS.get(v, v),
        on_change=_first_page,
    )

    filters = _chosen()
    new_only, chosen_source = bool(st.session_state["f_new_rollout"]), str(st.session_state["f_source"])
    cluster = ClusterFilter(
        new_since_rollout=True if new_only else None, source=None if chosen_source == ANY else chosen_source
    )
    page = group_page(store(), filters, now=now, facts=incidents(), cluster=cluster)
    if page.page != filters.page:
        filters = filters.with_page(page.page)
    if not same_params(filters.to_params(), all_params(st.query_params)):
        st.query_params.from_dict(filters.to_params())

    first = (page.page - 1) * page.page_size + 1 if page.total else 0
    last = min(page.total, page.page * page.page_size)
    head, b1, b2 = st.columns([6, 1.3, 1.2], vertical_alignment="center")
    head.markdown(
        f"**{page.total:,} error group{'s' if page.total != 1 else ''}** match ({md(filters.describe())}). "
        f"Showing {first:,}–{last:,}."
    )
    b1.download_button(
        "Download CSV",
        data=lambda: groups_csv(store(), filters, now=now, facts=incidents(), cluster=cluster),
        file_name="kube-sentinel-errors.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        help=f"all {page.total:,} matching groups (every page), not just this page",
        key="csv",
    )
    b2.button("Clear filters", on_click=_clear_filters, disabled=not filters.active, key="clear")

    if page.total == 0:
        if stats.total_groups == 0:
            st.info(
                f"**No errors yet** — the engine polls every {duration(live_settings().settings.poll_interval)}. "
                "Groups appear here as soon as matching log lines arrive.",
                icon=":material/hourglass_top:",
            )
        else:
            st.info(
                f"No error group matches these filters ({stats.total_groups:,} groups in all).",
                icon=":material/search_off:",
            )
        return

    event = st.dataframe(
        with_priority_colours(queue_frame(page.items, now=now)),
        hide_index=True,
        column_config=QUEUE_COLUMNS,
        column_order=QUEUE_ORDER,
        on_select="rerun",
        selection_mode="single-row",
        key="queue_table",
        height=min(35 * (len(page.items) + 1) + 3, 740),
    )
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if rows and 0 <= rows[0] < len(page.items):
        _open_group(page.items[rows[0]].id)
        st.rerun()

    p1, p2, p3, p4, _ = st.columns([1, 1.2, 1, 1.4, 4], vertical_alignment="bottom")
    p1.button("◀ Previous", on_click=step_page, args=("f_page", -1), disabled=page.page <= 1, key="prev")
    p2.number_input(f"Page (of {page.pages:,})", min_value=1, step=1, key="f_page")
    p3.button("Next ▶", on_click=step_page, args=("f_page", 1), disabled=page.page >= page.pages, key="next")
    p4.selectbox("Rows per page", PAGE_SIZES, key="f_page_size", on_change=_first_page)
    _bulk(page.items)


BULK_ACTIONS = {
    "acknowledge": ("acknowledge", None),
    "snooze 1 hour": ("snooze", 3600),
    "snooze 1 day": ("snooze", 86400),
    "resolve": ("resolve", None),
}


def _bulk_apply(labels: dict[str, str]) -> None:
    ss = st.session_state
    chosen = [gid for gid in ss.get("bulk_rows", []) if gid in labels]
    refused = change_refusal(config(), str(ss.pop("bulk_token", "") or ""))
    if refused:
        ss["bulk_msg"] = ("error", f"{refused[0].upper()}{refused[1:]}: nothing was done.")
        return
    action, seconds = BULK_ACTIONS[str(ss.get("bulk_action", "acknowledge"))]
    comment = str(ss.get("bulk_comment", "") or "").strip()[:500]
    by = operator()
    done, failed = 0, []
    for gid in chosen:  # one status change, event and history entry per group
        try:
            commands().set_status(gid, action, by=by, reason=comment, until=now + seconds if seconds else None)
            done += 1
        except (KeyError, ValueError) as err:
            failed.append(f"{labels[gid]}: {err}")
    ss["bulk_rows"] = []
    ss["bulk_msg"] = (
        "success" if not failed else "error",
        f"{action}: {done} group(s) by {by}." + (" Not done: " + "; ".join(failed) if failed else ""),
    )


def _bulk(items: list[ErrorGroup]) -> None:
    """Acknowledge, snooze or resolve several groups of this page at once."""
    labels = {g.id: f"{g.priority.value} · {g.namespace}/{g.workload} · {shorten(g.template, 60)}" for g in items}
    msg = st.session_state.pop("bulk_msg", None)
    with st.expander("Bulk actions on this page", expanded=bool(msg or st.session_state.get("bulk_rows"))):
        if msg:
            (st.success if msg[0] == "success" else st.error)(md(msg[1]))
        chosen = st.multiselect(
            "Error groups",
            list(labels),
            format_func=lambda gid: labels.get(gid, gid),
            key="bulk_rows",
            placeholder="choose rows",
        )
        c1, c2 = st.columns([1, 2])
        c1.selectbox("Action", list(BULK_ACTIONS), key="bulk_action")
        c2.text_input("Comment (optional)", key="bulk_comment", max_chars=500)
        if needs_token:
            st.text_input("Admin token", type="password", key="bulk_token")
        n = len([gid for gid in chosen if gid in labels])
        st.button(
            f"Apply to {n} group{'s' if n != 1 else ''}",
            key="bulk_apply",
            type="primary",
            disabled=locked or n == 0,
            on_click=_bulk_apply,
            args=(labels,),
        )


# -- one group ----------------------------------------------------------------------------------


def _back() -> None:
    if "id" in st.query_params:
        del st.query_params["id"]
    st.session_state.pop("pending", None)
    st.session_state.pop(TOKEN_KEY, None)


def _ask(kind: str, **details: Any) -> None:
    st.session_state["pending"] = {"kind": kind, **details}


def _cancel() -> None:
    st.session_state.pop("pending", None)
    st.session_state.pop(TOKEN_KEY, None)
    st.session_state.pop(COMMENT_KEY, None)


def _flash(level: str, text: str) -> None:
    st.session_state.setdefault("flash", []).append((level, text))


def _confirm(group_id: str) -> None:
    pending = st.session_state.pop("pending", None)
    if not pending:
        return
    given = str(st.session_state.pop(TOKEN_KEY, "") or "")
    refused = change_refusal(config(), given)  # the API's authority: a configured token, or explicit permission
    if refused:
        if not locked:
            st.session_state["pending"] = pending  # keep the confirmation open, to try again
        _flash("error", f"{refused[0].upper()}{refused[1:]}: nothing was done.")
        return
    by = operator()
    kind = pending["kind"]
    try:
        if kind == "status":
            action = pending["action"]
            seconds, more = pending.get("seconds"), pending.get("more")
            until = now + seconds if action == "snooze" and seconds else None
            comment = str(st.session_state.pop(COMMENT_KEY, "") or "").strip()[:500]
            g = commands().set_status(group_id, action, by=by, reason=comment, until=until, more=more)
            _flash("success", f"Status is now **{g.status.value}** (by {md(by)}).")
        elif kind == "action":
            record = commands().request_action(group_id, action=pending["action"], params=pending["params"], by=by)
            if record.decision == "denied":
                _flash("error", f"**Refused** by the safety policy: {md(record.reason)}")
            elif record.result.value == "failed":
                _flash("error", f"**{md(record.action)} failed**: {md(record.error or record.reason)}")
            else:
                dry = " (dry-run: nothing changed)" if record.dry_run else ""
                _flash(
                    "success", f"**{md(record.action)}**: {record.result.value}{dry} — {md(record.reason or 'done')}"
                )
    except (KeyError, ValueError) as err:
        _flash("error", f"Not done: {md(err)}")
    except SafetyRefused as err:
        _flash("error", f"**Not done**: {md(err.reason)}")
    except Queued as q:
        _flash("success", queued_note(q.command.id))


def _show_flash() -> None:
    for level, text in st.session_state.pop("flash", []):
        (st.success if level == "success" else st.error)(text)


def _rule_section(g: ErrorGroup) -> None:
    st.subheader("Why it is here")
    w = why(g, rules_view().rules, pipeline())
    if g.rule == "default" or w.rule is None:
        if w.rule is None:
            st.warning(f"Rule **{md(g.rule)}** is no longer in the rules file.")
        else:
            st.markdown("No rule matched these lines, so they are ranked **P4 low** by default.")
    else:
        r = w.rule
        st.markdown(
            f"Matched rule **{md(r.name)}** → {priority_markdown(r.priority)}"
            + (f" — {md(r.description)}" if r.description else "")
        )
        if r.pattern:
            st.caption("Pattern (RE2)")
            st.code(r.pattern, language=None, wrap_lines=True)
        if r.keywords:
            st.caption("Keywords: " + md(", ".join(r.keywords)))
        if w.matched:
            st.caption("In the newest sample it matched")
            st.code(w.matched, language=None)
        st.caption(
            f"Action: **{md(r.action)}**"
            + (f" ({md(', '.join(f'{k}={v}' for k, v in r.params.items()))})" if r.params else "")
            + f" · cooldown {duration(r.cooldown)}"
        )
    if w.variables:
        st.caption("Treated as variables (shown as <*> in the template), in the newest sample")
        st.code("\n".join(w.variables), language=None, wrap_lines=True)
    if w.now_rule != g.rule:
        st.info(f"With the current rules, new lines like these would match **{md(w.now_rule)}**.")
    if g.escalated:
        st.warning(f"Escalated from {g.base_priority.value}: {md(g.escalation_reason)}")


def _actions_section(g: ErrorGroup) -> None:
    st.subheader("Act on it")
    pending = st.session_state.get("pending")
    if pending:
        with st.container(border=True):
            st.markdown(f"**Please confirm:** {pending['summary']}")
            if pending.get("kind") == "status" and pending.get("action") != "reopen":
                st.text_input(
                    "Comment (optional)",
                    key=COMMENT_KEY,
                    max_chars=500,
                    placeholder="e.g. INC-4211, fixed by the rollback",
                    help="shown in the detail and in the CSV export",
                )
            if needs_token:
                st.text_input(
                    "Admin token",
                    type="password",
                    key=TOKEN_KEY,
                    help="this Kube Sentinel has an admin token (api.token): status changes and actions need it",
                )
            a, b, _ = st.columns([1, 1, 4])
            a.button("Confirm", type="primary", on_click=_confirm, args=(g.id,), key="confirm")
            b.button("Cancel", on_click=_cancel, key="cancel")
        return
    if locked:
        st.info(
            "**Read-only console**: no `api.token` is configured, so nothing can be changed here "
            "(as in the API). Set `api.token`, or `console.allow_changes_without_token: true`.",
            icon=":material/lock:",
        )
    st.caption(
        f"Status **{status_label(g.status)}**"
        + (f" — {md(g.status_reason)}" if g.status_reason else "")
        + (f" (by {md(g.status_by)}, {ago(g.status_changed_at, now=now)})" if g.status_by else "")
    )
    c1, c2, c3, c4 = st.columns(4)
    c1.button(
        "Acknowledge",
        key="ack",
        disabled=locked or g.status.value == "acknowledged",
        on_click=_ask,
        kwargs={
            "kind": "status",
            "action": "acknowledge",
            "summary": "acknowledge this error group (someone is on it)",
        },
        help="someone is on it: automatic actions stop for this group",
    )
    snooze = c2.selectbox("Snooze for", [*SNOOZES, *SNOOZE_MORE], key="snooze_for", label_visibility="collapsed")
    c2.button(
        f"Snooze {snooze}" if snooze in SNOOZES else f"Snooze {snooze}",
        key="snooze",
        disabled=locked,
        on_click=_ask,
        kwargs={
            "kind": "status",
            "action": "snooze",
            "seconds": SNOOZES.get(snooze),
            "more": SNOOZE_MORE.get(snooze),
            "summary": f"snooze this error group {'for ' if snooze in SNOOZES else ''}{snooze}"
            + (" lines" if snooze in SNOOZE_MORE else ""),
        },
        help="hide it from attention until then; it wakes earlier if it comes back",
    )
    c3.button(
        "Resolve",
        key="resolve",
        disabled=locked or g.status.value == "resolved",
        on_click=_ask,
        kwargs={
            "kind": "status",
            "action": "resolve",
            "summary": "mark this error group resolved (it regresses if it comes back)",
        },
    )
    c4.button(
        "Reopen",
        key="reopen",
        disabled=locked or g.status.value == "open",
        on_click=_ask,
        kwargs={"kind": "status", "action": "reopen", "summary": "reopen this error group"},
    )

    with st.expander("Request a remediation action", expanded=False):
        rule = rules_view().rules.by_name(g.rule)
        names = sorted(ACTIONS)
        default = rule.action if rule is not None and rule.action in ACTIONS else "none"
        action = st.selectbox(
            "Action",
            names,
            index=names.index(default),
            key="req_action",
            format_func=lambda n: f"{n} — {ACTIONS[n].description}",
        )
        params_default = dict(rule.params) if rule is not None and action == rule.action else {}
        text = st.text_area(
            "Parameters (JSON)",
            value=json.dumps(params_default),
            key=f"req_params_{action}",
            height=68,
            help='e.g. {"replicas": "+1"} for scale-up; {} for the defaults',
        )
        mode = (
            "dry-run (validated by the API server, nothing changes)" if live_settings().settings.dry_run else "for real"
        )
        st.caption(
            f"Goes through the same safety policy as automatic actions (exclusions, hourly budget, per-workload cap); "
            f"a person is not held back by cooldowns or an open breaker. Runs **{mode}**."
        )
        try:
            params = json.loads(text or "{}")
            bad = "" if isinstance(params, dict) else "parameters must be a JSON object"
        except ValueError as err:
            params, bad = {}, f"not valid JSON: {err}"
        if bad:
            st.error(bad)
        st.button(
            f"Request {action}",
            key="request",
            disabled=locked or bool(bad),
            on_click=_ask,
            kwargs={
                "kind": "action",
                "action": action,
                "params": params,
                "summary": f"run **{md(action)}** on {md(g.namespace)}/{md(g.workload)} ({mode})",
            },
        )


def _cluster_section(g: ErrorGroup) -> None:
    st.subheader("In the cluster")
    view = context_view(cluster_context(), g.namespace, g.workload)
    if not view.ok:
        st.caption(view.headline)
        _rollout_section(g)
        return
    st.markdown(view.headline)
    if view.pods:
        st.dataframe(view.pods, hide_index=True, key="cluster_pods")
    st.caption("Warning events" if view.events else "No Warning events for the workload or its pods.")
    if view.events:
        st.dataframe(view.events, hide_index=True, key="cluster_events")
    for note in view.notes:
        st.caption(note)
    _rollout_section(g)


def _rollout_section(g: ErrorGroup) -> None:
    """incidents: the revision the group was born in, and whether it is new since the rollout."""
    st.markdown("**Rollout**")
    known, lines = rollout_lines(incidents(), g)
    if not known:
        st.caption(lines[0])
        return
    st.markdown(lines[0])
    for line in lines[1:]:
        st.caption(line)


def detail(group_id: str) -> None:
    st.button("← Back to the queue", on_click=_back, key="back")
    g = store().get_group(group_id)
    if g is None:
        st.title("Error group not found")
        st.warning(
            f"There is no error group with id {md(group_id)}. It may have been removed by retention, "
            "or the link is from another Kube Sentinel."
        )
        return
    _show_flash()
    st.title(f"{priority_label(g.priority)} · {md(g.namespace)}/{md(g.workload)}")
    st.caption(
        f"{priority_markdown(g.priority)} rule **{md(g.rule)}** · container {md(g.container or '—')} · "
        f"status {status_label(g.status)} · source {source_label(incidents(), g)} · group {md(g.id)}"
    )
    st.code(g.template, language=None, wrap_lines=True)
    m = [*st.columns(3), *st.columns(3)]  # three a row: values like "1h02m ago" are not truncated
    m[0].metric("Occurrences", count(g.count), border=True)
    m[1].metric("Pods", g.pod_count, border=True)
    m[2].metric("First seen", ago(g.first_seen, now=now), help=when(g.first_seen), border=True)
    m[3].metric("Last seen", ago(g.last_seen, now=now), help=when(g.last_seen), border=True)
    m[4].metric("Impact", f"{g.impact:.1f}", help="recent rate × spread over pods × recency", border=True)
    m[5].metric("Remediated", g.remediations, help=f"last: {when(g.last_remediation_at)}", border=True)

    with st.expander("Raw logs in Loki (LogQL)", expanded=False, icon=":material/manage_search:"):
        query = for_group(g)
        st.caption("This query selects exactly this group's lines (copy it with the button at its right).")
        st.code(query, language=None, wrap_lines=True)
        grafana = config().grafana
        if grafana.url and grafana.loki_datasource_uid:
            st.link_button(
                "Open in Grafana Explore",
                explore_url(grafana.url, grafana.loki_datasource_uid, query),
                icon=":material/open_in_new:",
            )
        else:
            st.caption("Set grafana.url and grafana.loki_datasource_uid in config.yaml for an Explore link.")

    st.subheader("Per minute")
    st.plotly_chart(
        charts.minute_counts(g.minute_counts, now=now, color=PRIORITY_COLORS[g.priority.value]),
        key="minute_chart",
        config={"displayModeBar": False},
    )

    left, right = st.columns([3, 2])
    with left:
        st.subheader("Samples")
        st.caption(f"The newest {len(g.samples)} raw lines of this group, newest first.")
        for s in reversed(g.samples):
            st.code(shorten(s, 2000), language=None, wrap_lines=True)
        if not g.samples:
            st.caption("No samples kept.")
    with right:
        _rule_section(g)
        st.subheader(f"Pods ({g.pod_count})")
        if g.pods:
            st.dataframe({"pod": g.pods}, hide_index=True, key="pods", height=min(35 * (len(g.pods) + 1) + 3, 300))
            if g.pod_count > len(g.pods):
                st.caption(f"The first {len(g.pods)} of {g.pod_count} distinct pods.")
        else:
            st.caption("No pod label on these lines.")

    _cluster_section(g)
    _actions_section(g)

    st.subheader("Remediation records")
    recs = store().list_remediations(RecordQuery(group_id=g.id, page_size=50))
    if recs.items:
        st.dataframe(
            records_frame(recs.items).drop(columns=["Group"]),
            hide_index=True,
            column_config=RECORD_COLUMNS,
            key="group_records",
        )
        if recs.total > len(recs.items):
            st.caption(f"The newest {len(recs.items)} of {recs.total}; see History for all.")
    else:
        st.caption("No action was decided for this group yet.")


group_id = st.query_params.get("id")
if group_id:
    detail(str(group_id))
else:
    queue()
