"""One process, one port: the Streamlit console and the API routes on one uvicorn server.

``serve(runtime, host=, port=)`` (what ``kube-sentinel run`` and ``demo`` call) builds an
``st.App`` over ``app.py`` with the API's Starlette routes (``/api/...``, ``/ws``, ``/health``,
``/ready``, ``/metrics``) mounted beside Streamlit's own, and a lifespan that starts the engine
when the server starts (not when a browser first connects) and stops it on shutdown (SIGTERM and
Ctrl-C both go through uvicorn's graceful shutdown, then the lifespan's exit).

A bare ``streamlit run app.py`` has no lifespan: ``app.py`` calls :func:`ensure_runtime`, which
builds and starts one runtime per process, under a lock, and keeps it in Streamlit's resource
cache so that neither a rerun nor the file watcher (which evicts edited modules from
``sys.modules``) can build a second engine.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import streamlit as st

from sentinel.bootstrap import build_runtime
from sentinel.engine.runtime import Runtime, current, install, uninstall

log = logging.getLogger(__name__)

APP_ENV = "KUBE_SENTINEL_APP"
CONFIG_ENV = "KUBE_SENTINEL_CONFIG"
RULES_ENV = "KUBE_SENTINEL_RULES"
SHUTDOWN_GRACE = 5  # seconds uvicorn waits for open connections (browser sessions) on shutdown

# Streamlit options for a served console: no file watching (no reruns on edits, no module
# eviction), no browser launch, no usage statistics.
STREAMLIT_OPTIONS: dict[str, Any] = {
    "server.headless": True,
    "server.fileWatcherType": "none",
    "server.runOnSave": False,
    "browser.gatherUsageStats": False,
    "global.developmentMode": False,
    "client.toolbarMode": "minimal",
}


def app_script(env: Mapping[str, str] | None = None) -> Path:
    """Where ``app.py`` is: ``$KUBE_SENTINEL_APP``, beside the package (a checkout), or the cwd (the image)."""
    env = os.environ if env is None else env
    candidates = [Path(env[APP_ENV])] if env.get(APP_ENV) else []
    candidates += [Path(__file__).resolve().parent.parent / "app.py", Path.cwd() / "app.py"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"the console's app.py was not found (tried {tried}); set {APP_ENV}")


# The console's pages (``app.py`` builds its navigation from the same names): "" is the overview.
CONSOLE_PAGES = ("", "errors", "rules", "history", "settings")
# What Streamlit itself serves besides the pages (its reserved prefixes, auth, files at the root).
STREAMLIT_PREFIXES = ("_stcore", "static", "media", "component", "app", "auth", "oauth2callback")
NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found · Kube Sentinel</title>
<style>body{{font-family:sans-serif;max-width:40rem;margin:4rem auto;color:#262730}}</style></head>
<body><h1>Not found</h1><p>Kube Sentinel has no page at <code>{path}</code>.</p>
<p>Pages: <a href="/">Overview</a> · <a href="/errors">Errors</a> · <a href="/rules">Rules</a> ·
<a href="/history">History</a> · <a href="/settings">Settings</a>.
Probes: <code>/health</code> (alive), <code>/ready</code> (ready). API: <a href="/api/docs">/api/docs</a>.</p>
</body></html>
"""


def api_routes_for(runtime: Runtime) -> Sequence[Any]:
    """The API's Starlette routes (``sentinel.api.app.api_routes``), then the console's own routes."""
    from sentinel.api.app import api_routes

    routes: list[Any] = list(api_routes(runtime))
    return [*routes, *console_routes(routes)]


def console_routes(api: Sequence[Any]) -> list[Any]:
    """``/errors/{id}`` (the Go tool's link) -> ``/errors?id=``; any other ``/api/*`` -> a JSON 404 (405
    when the path exists for other methods). Mounted after the API's routes, before Streamlit's."""
    from urllib.parse import quote

    from starlette.requests import Request
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    async def group_link(request: Request) -> RedirectResponse:
        return RedirectResponse(f"/errors?id={quote(request.path_params['group_id'], safe='')}", status_code=307)

    return [
        Route("/errors/{group_id}", group_link, methods=["GET", "HEAD"]),
        Route("/api", ApiNotFound(api)),
        Route("/api/{rest:path}", ApiNotFound(api)),
    ]


class ApiNotFound:
    """ASGI endpoint for an ``/api/*`` path no API route serves: 405 naming the allowed methods when the
    path exists for others, else a JSON 404 (the API's error shape), never the console's HTML."""

    def __init__(self, api: Sequence[Any]) -> None:
        self.api = list(api)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.responses import JSONResponse
        from starlette.routing import Match

        allowed = sorted(
            {m for r in self.api if r.matches(scope)[0] is Match.PARTIAL for m in (getattr(r, "methods", None) or ())}
        )
        if allowed:
            detail = f"{scope['method']} is not allowed on {scope['path']}: use {', '.join(allowed)}"
            response = JSONResponse({"detail": detail, "problems": []}, 405, headers={"Allow": ", ".join(allowed)})
        else:
            detail = f"no API endpoint at {scope['path']} (see /api/docs)"
            response = JSONResponse({"detail": detail, "problems": []}, status_code=404)
        await response(scope, receive, send)


class KnownPaths:
    """Pure ASGI middleware: a path that is neither a console page, an API route nor Streamlit's own
    is answered 404 (an HTML page), instead of Streamlit's single-page catch-all (200 ``index.html``),
    so a probe at ``/healthz`` or a typo fails visibly."""

    def __init__(self, app: Any, *, pages: Sequence[str] = CONSOLE_PAGES, files: Sequence[str] = ()) -> None:
        self.app = app
        self.pages = frozenset(pages)
        self.known = frozenset(STREAMLIT_PREFIXES) | {"api", "ws", "health", "ready", "metrics"}
        self.files = frozenset(files)

    def is_known(self, path: str) -> bool:
        parts = path.lstrip("/").rstrip("/").split("/")
        first = parts[0]
        if first in self.pages:
            # a console page is one segment; only the Go tool's ``/errors/{id}`` link has a second
            return len(parts) == 1 or (first == "errors" and len(parts) == 2)
        return first in self.known or first in self.files

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.is_known(scope.get("path", "/")):
            await self.app(scope, receive, send)
            return
        from html import escape

        from starlette.responses import HTMLResponse

        page = NOT_FOUND_PAGE.format(path=escape(scope.get("path", "")))
        await HTMLResponse(page, status_code=404)(scope, receive, send)


def streamlit_files() -> list[str]:
    """The files at the root of Streamlit's static folder (favicon.png, manifest.json, ...)."""
    from streamlit import file_util

    folder = Path(file_util.get_static_dir())
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def page_navigation_only() -> None:
    """Turn off Streamlit's old ``pages/`` folder mode for the whole process.

    With a ``pages/`` folder beside ``app.py``, Streamlit runs a deep link's page file *alone* (its
    automatic page list, no ``app.py``: no sidebar, banners or "Your name") until some session runs
    ``app.py``'s ``st.navigation``, which turns that mode off. A bookmarked link as the first visit
    after a restart then broke navigation for every new session. ``app.py`` always navigates, so the
    mode is never wanted. (Streamlit keeps the flag on ``PagesManager``; checked by tests/e2e.)
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


def build_app(runtime: Runtime, *, script: Path | None = None, routes: Sequence[Any] | None = None) -> Any:
    """The ``st.App``: Streamlit + the API routes, with a lifespan that owns the engine."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        install(runtime)
        runtime.start()
        log.info("engine started; console and API are up")
        try:
            yield {"runtime": runtime}
        finally:
            log.info("shutting down: stopping the engine")
            await asyncio.to_thread(runtime.stop)
            if current() is runtime:
                uninstall()
            log.info("engine stopped")

    from starlette.middleware import Middleware

    page_navigation_only()
    return st.App(
        str(script or app_script()),
        lifespan=lifespan,
        routes=list(routes) if routes is not None else list(api_routes_for(runtime)),
        middleware=[Middleware(KnownPaths, files=streamlit_files())],
    )


def configure_streamlit(host: str, port: int) -> None:
    """Streamlit's options for a served console (config.toml and env vars still apply beneath)."""
    from streamlit.web import bootstrap

    bootstrap.load_config_options({**STREAMLIT_OPTIONS, "server.address": host, "server.port": port})


def serve(runtime: Runtime, *, host: str, port: int) -> None:
    """Serve the console and the API on ``host:port`` until SIGTERM / Ctrl-C. Blocks."""
    import uvicorn

    configure_streamlit(host, port)
    app = build_app(runtime)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",  # a failing engine start fails the process
        log_config=None,  # keep the logging the CLI configured
        access_log=False,
        ws="auto",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
    log.info("console and API on http://%s:%d/", host or "0.0.0.0", port)
    uvicorn.Server(config).run()


# -- bare `streamlit run app.py` -----------------------------------------------------------------

_boot_lock = threading.Lock()


def runtime_from_env(env: Mapping[str, str] | None = None) -> Runtime:
    """``$KUBE_SENTINEL_CONFIG`` (+ ``$KUBE_SENTINEL_RULES``), else the bundled demo."""
    env = os.environ if env is None else env
    config = env.get(CONFIG_ENV, "")
    if config:
        return build_runtime(config, env.get(RULES_ENV) or None)
    from sentinel.sources.files import FileSource

    demo = Path(str(resources.files("sentinel") / "demo"))
    return build_runtime(
        demo / "config.yaml",
        demo / "rules.yaml",
        source=FileSource(demo / "logs.jsonl", live=True),
    )


@st.cache_resource(show_spinner="Starting the Kube Sentinel engine…")
def _process_runtime() -> Runtime:
    """Built and started once per process (Streamlit's resource cache is process-wide)."""
    if not logging.getLogger().handlers:  # bare `streamlit run`: nobody configured logging
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        for noisy in ("httpx", "apscheduler", "urllib3", "kubernetes"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    rt = runtime_from_env()
    rt.start()
    atexit.register(rt.stop)
    log.info("engine started by app.py (no kube-sentinel process around it)")
    return rt


def ensure_runtime() -> Runtime:
    """The process-wide runtime: the one ``kube-sentinel run`` installed, else one built here once."""
    rt = current()
    if rt is not None:
        return rt
    with _boot_lock:
        rt = current()
        if rt is None:
            rt = _process_runtime()
            install(rt)
    return rt
