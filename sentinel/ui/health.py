"""The engine's health as the console shows it: the sidebar banner and the overview's health row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import streamlit as st

from sentinel.core.policy import REMEDIATOR
from sentinel.engine.health import SourceCounts
from sentinel.ui.format import ago, duration, md
from sentinel.views.status import EngineStatus

Level = Literal["ok", "warn", "error"]
# Coloured dots in markdown (they render with any font, unlike emoji).
ICONS: dict[str, str] = {"ok": ":green[●]", "warn": ":orange[●]", "error": ":red[●]"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: Level
    value: str
    detail: str


def checks(es: EngineStatus) -> list[Check]:
    """Loki (or the file source), the cluster, the store, and the last poll. Reads no network."""
    now = es.now
    h = es.health
    out: list[Check] = []
    interval = es.settings.poll_interval
    if h.consecutive_errors:
        out.append(Check(es.source_name, "error", f"failing ({h.consecutive_errors}×)", h.last_error))
    elif h.last_success_at is None:
        out.append(
            Check(es.source_name, "warn", "waiting", f"no poll yet; the engine polls every {duration(interval)}")
        )
    else:
        stale = now - h.last_success_at > 3 * max(interval, 10.0)
        out.append(
            Check(
                es.source_name,
                "warn" if stale else "ok",
                "stale" if stale else "ok",
                f"last good read {ago(h.last_success_at, now=now)}",
            )
        )
    cluster = h.cluster or "not configured"
    if cluster == "connected":
        out.append(Check("Cluster", "ok", "connected", "remediation talks to the Kubernetes API"))
    else:
        out.append(Check("Cluster", "warn", "no cluster", f"{cluster} — decisions are recorded only"))
    ok, why = es.store_writable
    out.append(Check("Store", "ok" if ok else "error", "writable" if ok else "failing", why))
    if h.last_poll_at is None:
        out.append(Check("Last poll", "warn", "never", f"every {duration(interval)}"))
    else:
        out.append(
            Check(
                "Last poll",
                "error" if h.consecutive_errors else "ok",
                ago(h.last_poll_at, now=now),
                f"{h.last_lines} lines in {h.last_duration:.2f}s; every {duration(interval)}",
            )
        )
    return out


def count_notes(c: SourceCounts) -> list[str]:
    """One short line per kind of line Loki holds that was not counted as an occurrence (empty: none)."""
    notes: list[str] = []
    if c.unread_lines:
        notes.append(
            f"{c.unread_lines} unread occurrences in {len(c.unread)} stream(s): more lines at one nanosecond "
            "than Loki returns"
        )
    if c.unresolved_bursts:
        notes.append(f"{c.unresolved_bursts} burst(s) too large to count exactly")
    if c.late_lines:
        notes.append(f"{c.late_lines} late lines reached Loki after their window was read (not counted)")
    if c.refused_lines:
        notes.append(f"{c.refused_lines} lines refused: stream labels that are not strings")
    if c.cursor_resets:
        notes.append(f"store cursor was in the future {c.cursor_resets}×: {c.last_cursor_reset}")
    return notes


def _plain(text: str) -> str:
    """``text`` shown as it is: Markdown's special characters escaped."""
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+-.!|~$:" else c for c in text)


def store_notices(notices: tuple[str, ...], *, compact: bool = False) -> None:
    """A store file moved aside at start: say so, and where it is, until someone acknowledges it."""
    from sentinel.ui.context import store

    if not notices:
        return
    st.error(
        "**The store started empty** (a stored file could not be read and was moved aside): "
        + "; ".join(_plain(n) for n in notices),
        icon=":material/report:",
    )
    if st.button(
        "Acknowledge", key=f"store-ack-{'compact' if compact else 'page'}", help="the files stay where they are"
    ):
        who = str(st.session_state.get("operator") or "console")
        store().acknowledge_notices(by=who)
        st.rerun()


def banners(es: EngineStatus, *, compact: bool = False) -> None:
    """What a person must know before acting, as coloured banners that tell the truth.

    Store notices, no cluster (decisions are recorded only), LIVE (dry-run off on a real cluster), dry-run,
    remediation off, a read-only replica, a halted remediator, lines not counted, a rejected rules file,
    who may change things from the console, poll health, open breakers.
    """
    from sentinel.ui.context import admin_token, changes_without_token

    store_notices(es.store_notices, compact=compact)
    s = es.settings
    connected = es.health.cluster == "connected"
    if not s.remediation_enabled:
        st.warning(
            "**Remediation is off** — errors are grouped and ranked, nothing is fixed.", icon=":material/pause_circle:"
        )
    elif not connected:
        st.warning(
            "**No cluster: decisions are recorded only** — nothing is sent to a Kubernetes API.",
            icon=":material/cloud_off:",
        )
    elif s.dry_run:
        st.info(
            "**Dry-run** — actions are checked by the API server (`dryRun=All`) but change nothing.",
            icon=":material/science:",
        )
    else:
        st.error("**LIVE: actions change the cluster** — dry-run is off.", icon=":material/bolt:")
    if es.follower and es.relays_changes:
        st.info(
            "**Follower replica** — another replica is the leader: it polls and acts. The store is shared, so "
            "what you see here is current, and a settings change, breaker reset or action asked here is sent to "
            "the leader and runs there, under the same limits.",
            icon=":material/sync_alt:",
        )
    elif es.follower:
        st.info(
            "**Read-only replica** — another replica is the leader; this one does not poll or act.",
            icon=":material/visibility:",
        )
    why = es.halted
    if why:
        st.error(
            f"**Remediation halted** — {why}. No action runs until a person resets breaker `{REMEDIATOR}` in Settings.",
            icon=":material/gpp_bad:",
        )
    notes = count_notes(es.counts)
    if notes:
        st.warning(
            "**Not every line was counted** — " + ("; ".join(notes) if not compact else notes[0]),
            icon=":material/functions:",
        )
    if es.health.rules_error:
        # the reason comes from a file: shown as plain text, never as markdown
        st.error("**Rules file rejected**: the previous rules are still in force.", icon=":material/rule:")
        st.text(es.health.rules_error)
    if not admin_token(es.config):
        if changes_without_token(es.config):
            st.warning(
                "**Changes without a token** — allowed by console.allow\\_changes\\_without\\_token: anyone "
                "who opens this console can change settings and act (the API stays read-only).",
                icon=":material/lock_open:",
            )
        else:
            st.info(
                "**Read-only console** — no `api.token` is configured, so nothing can be changed here "
                "(nor through the API).",
                icon=":material/lock:",
            )
    state, detail = es.poll_state
    if state == "failing":
        st.error(f"**{es.source_name} failing** — {md(detail)}", icon=":material/sync_problem:")
    elif state == "stale":
        st.warning(f"**Polls are stale** — {md(detail)}", icon=":material/schedule:")
    breakers = es.open_breakers
    if breakers:
        names = md(", ".join(breakers)) if not compact else f"{len(breakers)} workload(s)"
        st.error(
            f"**Breaker open** for {names}: automatic actions stopped there. Reset it in Settings.",
            icon=":material/block:",
        )


def sidebar(es: EngineStatus) -> None:
    """The shared sidebar: one health line, the banners, and who is acting."""
    ready, problems = es.ready
    with st.sidebar:
        if ready:
            st.success("Engine healthy", icon=":material/check_circle:")
        else:
            st.error("Engine needs attention", icon=":material/error:")
            for name, why in problems.items():
                st.caption(f"**{name}**: {md(why)}")
        banners(es, compact=True)
        st.text_input(
            "Your name",
            key="operator",
            placeholder="shown in the audit log",
            help="Actions and settings changes you make are recorded under this name.",
        )
        if es.description:
            st.caption(es.description)
