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


def api_routes_for(runtime: Runtime) -> Sequence[Any]:
    """The API's Starlette routes (``sentinel.api.app.api_routes``)."""
    from sentinel.api.app import api_routes

    routes: Sequence[Any] = api_routes(runtime)
    return routes


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

    return st.App(
        str(script or app_script()),
        lifespan=lifespan,
        routes=list(routes) if routes is not None else list(api_routes_for(runtime)),
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
        return Runtime.build(config, env.get(RULES_ENV) or None)
    from sentinel.sources.files import FileSource

    demo = Path(str(resources.files("sentinel") / "demo"))
    return Runtime.build(
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
