"""What every page needs from the process: narrow accessors, who is acting, the admin token check.

Pages ask for the part they use (``store()``, ``live_settings()``, ``commands()``, ``rules_view()``,
...); only this module and the health banners reach into the runtime.

Pages never build or start anything: the runtime was built and started by ``kube-sentinel run``
(the ASGI lifespan), or once per process by ``app.py`` under a bare ``streamlit run``.
"""

from __future__ import annotations

import hmac
from typing import Any

import streamlit as st

from sentinel.config import Config
from sentinel.engine.context import ContextReader
from sentinel.engine.events import EventBus
from sentinel.engine.health import Health
from sentinel.engine.incidents import Incidents
from sentinel.engine.pipeline import Pipeline
from sentinel.engine.runtime import Runtime, current
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import Store
from sentinel.views.ports import Commands, RulesView, SettingsPort
from sentinel.views.status import EngineStatus, engine_status

OPERATOR_KEY = "operator"
_NAVIGATED_KEY = "_sentinel_navigated"


def _through_navigation() -> None:
    """A page run alone by Streamlit's old ``pages/`` folder mode (a deep link as the first visit to a
    bare ``streamlit run app.py``): turn that mode off and run again, through ``app.py``'s navigation."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        # Once per session: a served process keeps the flag off from now on (AppTest sets it again
        # before each run; a rerun there would drop the widget events of the run).
        if not st.session_state.get(_NAVIGATED_KEY):
            st.session_state[_NAVIGATED_KEY] = True
            st.rerun()


def runtime() -> Runtime:
    """The process-wide runtime; stops the page with an explanation if there is none."""
    _through_navigation()
    rt = current()
    if rt is None:
        st.error(
            "The Kube Sentinel engine is not running in this process. Start the console with "
            "`kube-sentinel run --config config.yaml` or `kube-sentinel demo`."
        )
        st.stop()
    return rt


# -- narrow accessors: what a page reads or asks for, not the whole runtime ---------------------


def store() -> Store:
    """Groups, records and their stats, read through :mod:`sentinel.views`."""
    return runtime().store


def time_now() -> float:
    return runtime().clock()


def config() -> Config:
    return runtime().config


def live_settings() -> SettingsPort:
    """The live settings, their history and changing them."""
    return runtime()


def commands() -> Commands:
    """Status changes and manual actions on a group."""
    return runtime()


def rules_view() -> RulesView:
    """The loaded rules, their source and match counts."""
    return runtime()


def pipeline() -> Pipeline:
    """The engine's pipeline (for the rule tester: it learns nothing)."""
    return runtime().pipeline


def health() -> Health:
    return runtime().health


def events() -> EventBus:
    return runtime().events


def remediator() -> Remediator:
    return runtime().remediator


def cluster_context() -> ContextReader:
    return runtime().context


def status() -> EngineStatus:
    """The engine's state for the health row and banners, read once (no network)."""
    return engine_status(runtime())


def incidents() -> Incidents:
    """Deploy correlation and pod status of groups."""
    return runtime().incidents


def operator() -> str:
    """Who the audit log names for actions taken in this browser session."""
    name = str(st.session_state.get(OPERATOR_KEY, "") or "").strip()
    return f"console:{name}" if name else "console"


def admin_token(cfg: Config) -> str:
    """The configured admin token (``api.token``), or "" when none is configured."""
    token: Any = getattr(getattr(cfg, "api", None), "token", "")
    value = token.get_secret_value() if hasattr(token, "get_secret_value") else str(token or "")
    return str(value)


def changes_without_token(cfg: Config) -> bool:
    """``console.allow_changes_without_token``: set explicitly (the demo does), shown in a banner."""
    console: Any = getattr(cfg, "console", None)
    return bool(getattr(console, "allow_changes_without_token", False))


def change_refusal(cfg: Config, given: str) -> str:
    """Why a change from the console is refused ("" when allowed): the API's authority, and one rule.

    A configured ``api.token`` must be given (as the API asks for it in ``Authorization``); with no
    token the console is read-only, as the API is, unless ``console.allow_changes_without_token``.
    """
    expected = admin_token(cfg)
    if not expected:
        if changes_without_token(cfg):
            return ""
        return (
            "the console is read-only: no api.token is configured (set KUBE_SENTINEL_API_TOKEN or "
            "api.token_file, or console.allow_changes_without_token: true)"
        )
    if not given or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        return "wrong or missing admin token (api.token)"
    return ""


def queued_note(command_id: str) -> str:
    """What the console says when a follower's change went to the leader, which has not answered yet."""
    return (
        f"Queued for the leader (command `{command_id}`): it runs it within a few seconds, under the same "
        f"limits; the outcome shows here and in History once it has (see also `/api/commands/{command_id}`)."
    )


def read_only(cfg: Config) -> bool:
    """True when no change from the console can be allowed (no token and no explicit permission)."""
    return not admin_token(cfg) and not changes_without_token(cfg)


def token_ok(cfg: Config, given: str) -> bool:
    """True when a change with ``given`` (the admin token typed, or "") is allowed."""
    return not change_refusal(cfg, given)


def link_to_group(group_id: str) -> str:
    return f"/errors?id={group_id}"


def seed_widgets(values: dict[str, Any]) -> None:
    """Give widgets their first values (from the URL of a shared view), never overwriting a choice."""
    for key, value in values.items():
        if key not in st.session_state:
            st.session_state[key] = value


def first_page(key: str) -> None:
    """A filter changed: back to the first page of results kept under ``key``."""
    st.session_state[key] = 1


def step_page(key: str, delta: int) -> None:
    """Previous / next page of results kept under ``key`` (never before the first)."""
    st.session_state[key] = max(1, int(st.session_state.get(key, 1)) + delta)
