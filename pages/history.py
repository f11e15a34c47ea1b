"""History: every remediation decided, allowed or refused, with why; filters in the URL; CSV export."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from sentinel.core.actions import ACTIONS
from sentinel.ui.context import first_page, runtime, seed_widgets, step_page, store, time_now
from sentinel.ui.tables import RECORD_COLUMNS, records_frame
from sentinel.views.params import PAGE_SIZES, TIME_RANGE_LABELS, all_params, same_params
from sentinel.views.records import RecordFilters, records_csv, refusal_reasons

ANY = "(any)"

runtime()  # stops the page, with an explanation, when no engine runs in this process
now = time_now()

st.title(":material/history: History")
st.caption(
    "The audit log: every remediation the engine or a person asked for, what the safety policy "
    "decided (allowed or refused, and why), and what happened. Refused actions are kept too."
)

url = RecordFilters.from_params(all_params(st.query_params))
seed: dict[str, Any] = {
    "h_action": url.action or ANY,
    "h_decision": url.decision or ANY,
    "h_result": url.result or ANY,
    "h_namespace": url.namespace,
    "h_dry": url.dry_run or ANY,
    "h_range": url.range,
    "h_page": url.page,
    "h_page_size": url.page_size,
}
seed_widgets(seed)


def _first_page() -> None:
    first_page("h_page")


actions = sorted(ACTIONS)
if st.session_state["h_action"] not in (ANY, *actions):
    actions.append(st.session_state["h_action"])
c = st.columns(6)
c[0].selectbox("Action", [ANY, *actions], key="h_action", on_change=_first_page)
c[1].selectbox(
    "Decision",
    [ANY, "allowed", "denied"],
    key="h_decision",
    on_change=_first_page,
    format_func=lambda v: {"denied": "refused"}.get(v, v),
)
c[2].selectbox("Result", [ANY, "success", "failed", "skipped"], key="h_result", on_change=_first_page)
c[3].text_input("Namespace", key="h_namespace", on_change=_first_page, placeholder="any")
c[4].selectbox("Dry-run", [ANY, "yes", "no"], key="h_dry", on_change=_first_page)
c[5].selectbox(
    "When", list(TIME_RANGE_LABELS), key="h_range", format_func=TIME_RANGE_LABELS.__getitem__, on_change=_first_page
)

ss = st.session_state
filters = RecordFilters(
    action="" if ss["h_action"] == ANY else ss["h_action"],
    decision="" if ss["h_decision"] == ANY else ss["h_decision"],
    result="" if ss["h_result"] == ANY else ss["h_result"],
    namespace=str(ss["h_namespace"]).strip(),
    dry_run="" if ss["h_dry"] == ANY else ss["h_dry"],
    range=ss["h_range"],
    page=max(1, int(ss["h_page"])),
    page_size=int(ss["h_page_size"]),
)
page = store().list_remediations(filters.query(now=now))
if not page.items and page.total and filters.page > page.pages:
    filters = filters.with_page(page.pages)
    page = store().list_remediations(filters.query(now=now))
if not same_params(filters.to_params(), all_params(st.query_params)):
    st.query_params.from_dict(filters.to_params())

head, btn = st.columns([6, 1.3], vertical_alignment="center")
head.markdown(f"**{page.total:,} record{'s' if page.total != 1 else ''}** match.")
btn.download_button(
    "Download CSV",
    data=lambda: records_csv(store(), filters, now=now),
    file_name="kube-sentinel-history.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
    help="every matching record (all pages)",
    key="history_csv",
)

if not page.total:
    if filters.to_params():
        st.info("No record matches these filters.", icon=":material/search_off:")
    else:
        st.info(
            "No remediation yet. Actions appear here when a rule with an action (e.g. `restart-pod`) matches, "
            "or when someone requests one from an error's page.",
            icon=":material/inbox:",
        )
else:
    st.dataframe(
        records_frame(page.items),
        hide_index=True,
        column_config=RECORD_COLUMNS,
        key="history_table",
        height=min(35 * (len(page.items) + 1) + 3, 740),
    )
    p = st.columns([1, 1.2, 1, 1.4, 4], vertical_alignment="bottom")
    p[0].button("◀ Previous", on_click=step_page, args=("h_page", -1), disabled=page.page <= 1, key="h_prev")
    p[1].number_input(f"Page (of {page.pages:,})", min_value=1, step=1, key="h_page")
    p[2].button("Next ▶", on_click=step_page, args=("h_page", 1), disabled=page.page >= page.pages, key="h_next")
    p[3].selectbox("Rows per page", PAGE_SIZES, key="h_page_size", on_change=_first_page)

st.subheader("Why actions were refused")
reasons = refusal_reasons(store(), filters, now=now)
if reasons:
    st.caption("Refusals by the safety policy for the records above (cooldowns, budgets, exclusions, breakers).")
    st.dataframe(pd.DataFrame(reasons, columns=["Reason", "Times"]), hide_index=True, key="refusals")
else:
    st.caption("No refusal among these records.")
