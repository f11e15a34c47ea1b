"""Settings: the runtime-editable settings (validated as a whole, applied live, recorded), breakers, safety state."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from sentinel.engine.relay import Queued
from sentinel.engine.settings import RuntimeSettings, validate_update
from sentinel.errors import ConfigError, SafetyRefused
from sentinel.ui.context import (
    admin_token,
    change_refusal,
    commands,
    config,
    live_settings,
    operator,
    queued_note,
    read_only,
    remediator,
    runtime,
    time_now,
)
from sentinel.ui.format import ago, duration, md, when
from sentinel.ui.settings_form import (
    FIELDS,
    HELP,
    LABELS,
    change_of,
    field_errors,
    form_values,
    history_rows,
    overrides,
    risky_changes,
)

rt = runtime()
now = time_now()
needs_token = bool(admin_token(config()))
locked = read_only(config())  # no api.token and no console.allow_changes_without_token: nothing may change
source = rt.config_path or "config.yaml"

st.title(":material/settings: Settings")
st.caption(
    "These settings change the running engine at once — no restart — and are kept in the store, so they "
    "survive one. Every change is recorded below with who made it. Everything else comes from "
    f"`{source}`."
)

overridden = overrides(live_settings().settings, RuntimeSettings.from_config(config()))
if overridden:
    what = "1 setting overrides" if len(overridden) == 1 else f"{len(overridden)} settings override"
    st.info(
        f"**{what} `{source}`**: changed here or through the API, so the engine uses these values, not the file's. "
        "Set a field back to the file's value to follow the file again.",
        icon=":material/edit_note:",
    )
    st.dataframe(pd.DataFrame(overridden), hide_index=True, key="overrides")
else:
    st.caption(f"Every setting below is as `{source}` says: no console or API change overrides it.")

seeded = False
for key, value in form_values(live_settings().settings).items():
    if f"s_{key}" not in st.session_state:
        st.session_state[f"s_{key}"] = value
        seeded = True
if seeded:  # the form was not on screen: errors and notes from an earlier visit no longer apply
    st.session_state.pop("s_errors", None)
    st.session_state.pop("s_saved", None)


def _save() -> None:
    ss = st.session_state
    ss.pop("s_errors", None)
    ss.pop("s_saved", None)
    ss.pop("s_risky", None)
    values = {name: ss.get(f"s_{name}") for name in FIELDS}
    refused = change_refusal(config(), str(ss.get("s_token", "")))
    if refused:
        ss["s_errors"] = {"token": [f"{refused}: nothing was saved"]}
        return
    change = change_of(live_settings().settings, values)
    if not change:
        ss["s_saved"] = "Nothing changed."
        return
    try:
        validate_update(change)  # bad fields are named first; only a valid change is asked about
    except ConfigError as err:
        ss["s_errors"] = field_errors(err.problems)
        return
    risky = risky_changes(live_settings().settings, RuntimeSettings.from_config(config()), change)
    if risky:  # asked by name before anything is saved; see _confirm_risky
        ss["s_risky"] = {"change": change, "risky": risky}
        return
    _apply(change, confirmed=[])


def _apply(change: dict[str, Any], *, confirmed: list[str]) -> None:
    ss = st.session_state
    try:
        changes = live_settings().update_settings(change, by=operator(), confirmed=confirmed)
    except ConfigError as err:
        ss["s_errors"] = field_errors(err.problems)
        return
    except SafetyRefused as err:
        ss["s_errors"] = {"_form": [f"{err.reason}: nothing was saved"]}
        return
    except Queued as q:
        ss["s_token"] = ""
        ss["s_saved"] = queued_note(q.command.id)
        return
    for key, value in form_values(live_settings().settings).items():  # show the values as the engine now holds them
        ss[f"s_{key}"] = value
    ss["s_token"] = ""
    ss["s_saved"] = (
        "Saved and applied: " + ", ".join(LABELS.get(k, k) for k in changes) if changes else "Nothing changed."
    )
    if confirmed:
        ss["s_saved"] += " (confirmed: " + "; ".join(confirmed) + ")"


def _confirm_risky() -> None:
    ss = st.session_state
    pending = ss.pop("s_risky", None)
    if not pending:
        return
    refused = change_refusal(config(), str(ss.get("s_token", "")))
    if refused:
        ss["s_errors"] = {"token": [f"{refused}: nothing was saved"]}
        return
    # the risky parts are named again against the settings as they are now (another change may have landed)
    risky = risky_changes(live_settings().settings, RuntimeSettings.from_config(config()), pending["change"])
    if risky != pending["risky"]:
        ss["s_risky"] = {"change": pending["change"], "risky": risky}
        return
    _apply(pending["change"], confirmed=risky)


def _cancel_risky() -> None:
    st.session_state.pop("s_risky", None)
    st.session_state["s_saved"] = "Not saved: the risky change was cancelled. Nothing was changed."


def _reload() -> None:
    for key in [k for k in st.session_state if str(k).startswith("s_")]:
        del st.session_state[key]


errors: dict[str, list[str]] = st.session_state.get("s_errors", {})


def _errors_for(name: str) -> None:
    for why in errors.get(name, []):
        st.error(f"{LABELS.get(name, name)}: {md(why)}", icon=":material/warning:")


saved_note = st.session_state.pop("s_saved", None)
if saved_note:
    st.success(saved_note, icon=":material/check_circle:")
risky_pending = st.session_state.get("s_risky")
if risky_pending:
    with st.container(border=True, key="risky_confirm"):
        st.warning(
            "**Please confirm these risky changes** (nothing is saved until you do):\n"
            + "\n".join(f"- {item}" for item in risky_pending["risky"]),
            icon=":material/warning:",
        )
        c1, c2, _ = st.columns([2, 1, 3])
        c1.button(
            "Confirm: " + "; ".join(risky_pending["risky"]),
            type="primary",
            on_click=_confirm_risky,
            key="s_confirm_risky",
        )
        c2.button("Cancel", on_click=_cancel_risky, key="s_cancel_risky")
if errors:
    st.error("Not saved: fix the fields marked below. Nothing was changed.", icon=":material/block:")
    _errors_for("_form")

with st.form("settings"):
    st.subheader("Remediation")
    a, b = st.columns(2)
    with a:
        st.toggle(
            LABELS["remediation_enabled"],
            key="s_remediation_enabled",
            help=HELP["remediation_enabled"],
        )
        _errors_for("remediation_enabled")
    with b:
        st.toggle(
            LABELS["dry_run"],
            key="s_dry_run",
            help=HELP["dry_run"],
        )
        _errors_for("dry_run")
    a, b = st.columns(2)
    with a:
        st.number_input(
            LABELS["max_actions_per_hour"],
            key="s_max_actions_per_hour",
            step=1,
            help=HELP["max_actions_per_hour"],
        )
        _errors_for("max_actions_per_hour")
    with b:
        st.number_input(
            LABELS["per_workload_per_hour"],
            key="s_per_workload_per_hour",
            step=1,
            help=HELP["per_workload_per_hour"],
        )
        _errors_for("per_workload_per_hour")
    st.text_input(
        LABELS["excluded_namespaces"],
        key="s_excluded_namespaces",
        help="comma-separated; " + HELP["excluded_namespaces"],
    )
    _errors_for("excluded_namespaces")

    st.subheader("Polling")
    a, b = st.columns(2)
    with a:
        st.text_input(LABELS["poll_interval"], key="s_poll_interval", help=HELP["poll_interval"] + ", e.g. 30s")
        _errors_for("poll_interval")
    with b:
        st.text_input(
            LABELS["lookback"],
            key="s_lookback",
            help=HELP["lookback"],
        )
        _errors_for("lookback")
    st.text_area(
        LABELS["query"],
        key="s_query",
        height=68,
        help=HELP["query"],
    )
    _errors_for("query")

    if needs_token:
        st.text_input(
            LABELS["token"],
            type="password",
            key="s_token",
            help="this Kube Sentinel has an admin token (api.token): changes need it",
        )
    _errors_for("token")
    st.form_submit_button(
        "Save and apply",
        type="primary",
        on_click=_save,
        disabled=locked,
        help="read-only: no api.token is configured" if locked else None,
    )
st.button("Discard edits (show the current values)", on_click=_reload, key="s_reload_btn")

st.subheader("Change history")
rows = history_rows(live_settings().settings_history())
if rows:
    st.dataframe(
        pd.DataFrame(rows).assign(time=lambda d: d["time"].map(when)),
        hide_index=True,
        key="settings_history",
    )
else:
    st.caption("No change since the store began.")

st.subheader("Safety state")
summary: dict[str, Any] = remediator().summary()
m = st.columns(3)
m[0].metric(
    "Actions in the last hour", f"{summary['actions_last_hour']} / {summary['max_actions_per_hour']}", border=True
)
m[1].metric("Cooldowns running", len(summary["cooldowns"]), border=True)
m[2].metric(
    "Cluster",
    "connected" if summary.get("cluster") else "none (dry-run)",
    border=True,
    help=summary.get("cluster_note") or str(summary.get("cluster")),
)
if summary["cooldowns"]:
    st.dataframe(
        pd.DataFrame(
            [
                {"Rule": c["rule"], "Workload": c["workload"], "Remaining": duration(c["remaining"])}
                for c in summary["cooldowns"]
            ]
        ),
        hide_index=True,
        key="cooldowns",
    )

st.subheader("Circuit breakers")
st.caption(
    "A breaker opens for a workload after several actions in a row did not make its errors stop; "
    "automatic actions there stop until a person resets it."
)


def _reset(workload: str) -> None:
    refused = change_refusal(config(), str(st.session_state.get("b_token", "")))
    if refused:
        st.session_state["b_msg"] = ("error", f"{refused}: the breaker was not reset")
        return
    try:
        was_open = commands().reset_breaker(workload, by=operator())
    except KeyError:
        st.session_state["b_msg"] = ("error", f"{workload} has no breaker.")
        return
    except SafetyRefused as err:
        st.session_state["b_msg"] = ("error", f"{err.reason}: the breaker was not reset")
        return
    except Queued as q:
        st.session_state["b_msg"] = ("success", queued_note(q.command.id))
        return
    st.session_state["b_msg"] = (
        "success",
        f"Breaker for {workload} reset." if was_open else f"{workload} was not open.",
    )


msg = st.session_state.pop("b_msg", None)
if msg:
    (st.success if msg[0] == "success" else st.error)(msg[1])
breakers = remediator().state().breakers
if not breakers:
    st.caption("No breaker has opened.")
else:
    if needs_token:
        st.text_input("Admin token (to reset a breaker)", type="password", key="b_token")
    for workload, b in sorted(breakers.items()):
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        if b.open:
            c1.error(
                f"**{md(workload)}** — open since {ago(b.opened_at, now=now)}: {md(b.reason)}", icon=":material/block:"
            )
            c2.button("Reset", key=f"reset_{workload}", on_click=_reset, args=(workload,))
        else:
            c1.success(
                f"**{md(workload)}** — closed by {md(b.reset_by or '?')} {ago(b.reset_at, now=now)}",
                icon=":material/check_circle:",
            )
