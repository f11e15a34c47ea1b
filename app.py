"""Kube Sentinel's console: the Streamlit entry. ``run()`` builds the navigation and the shared sidebar.

Served by ``kube-sentinel run`` / ``demo`` (one process, one port, the engine already started), or
on its own with ``streamlit run app.py`` (the engine is then started once per process, from
``$KUBE_SENTINEL_CONFIG`` or the bundled demo). Pages only render; see ``sentinel/ui``.
"""

from __future__ import annotations

import streamlit as st

from sentinel.ui.health import sidebar
from sentinel.views.status import engine_status
from sentinel.web import ensure_runtime

PAGES = (
    ("pages/overview.py", "Overview", ":material/monitor_heart:", ""),
    ("pages/errors.py", "Errors", ":material/error:", "errors"),
    ("pages/rules.py", "Rules", ":material/rule:", "rules"),
    ("pages/history.py", "History", ":material/history:", "history"),
    ("pages/settings.py", "Settings", ":material/settings:", "settings"),
)


def run() -> None:
    st.set_page_config(page_title="Kube Sentinel", page_icon=":material/shield:", layout="wide")
    runtime = ensure_runtime()
    pages = [
        st.Page(path, title=title, icon=icon, url_path=url or None, default=not url) for path, title, icon, url in PAGES
    ]
    page = st.navigation(pages)
    with st.sidebar:
        st.markdown("### :material/shield: Kube Sentinel")
        st.caption("Groups the errors in your cluster's logs, ranks them P1–P4, and fixes the known ones safely.")
    sidebar(engine_status(runtime))
    page.run()


run()
