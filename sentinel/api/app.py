"""The FastAPI sidecar: ``create_app(runtime)`` and ``api_routes(runtime)``.

``create_app`` builds one app per runtime: the routers, a per-app Prometheus registry, the error
answers (``{"detail": ..., "problems": [...]}``) and a request body limit.

``api_routes`` gives the same endpoints as a list of Starlette routes for another app to mount on
its own port (the console's ``st.App(routes=...)``). Each route matches its path like the original
and hands the request to the API app itself, so the body limit, the error answers and the
dependencies (which find the runtime on ``request.app``) work exactly as when the API is served
alone. The host app needs no lifespan, state or middleware of ours.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentinel.api import commands, errors, health, remediations, rules, safety, settings, stats, store, ws
from sentinel.api.common import ApiError
from sentinel.api.health import ReadyCache
from sentinel.api.metrics import build_registry
from sentinel.api.schemas import Problem
from sentinel.engine.relay import Queued
from sentinel.engine.runtime import Runtime
from sentinel.errors import SentinelError, StoreError

ROUTERS = (errors, stats, rules, remediations, settings, safety, commands, store, health, ws)
MAX_BODY = 64 * 1024
OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"

DESCRIPTION = """\
Kube Sentinel's JSON API: error groups, statistics, rules, the remediation audit log, settings,
the safety state (budget, cooldowns, breakers), live events (`/ws`), health, readiness and
Prometheus metrics.

Reading needs no credentials. Every POST and PATCH needs `Authorization: Bearer <api token>`;
without a configured token the API is read-only (403). `X-Sentinel-User` names who makes a change
(default `api`). Errors answer `{"detail": "...", "problems": ["field: why", ...]}`.
"""


class BodyLimit:
    """Pure ASGI middleware: a request body over ``max_bytes`` is answered 413 and never reaches a route."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body too large: at most {self.max_bytes} bytes"
        response = JSONResponse(Problem(detail=detail).model_dump(), status_code=413)
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _problem(
    status: int, detail: str, problems: list[str] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        Problem(detail=detail, problems=problems or []).model_dump(), status_code=status, headers=headers
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _problem(exc.status, exc.detail, exc.problems, exc.headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for e in exc.errors():
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field"
        problems.append(f"{_field(e.get('loc', ()))}: {msg}")
    return _problem(422, "invalid request", problems)


async def _on_store_error(request: Request, exc: Exception) -> JSONResponse:
    return _problem(503, f"the store is unavailable: {exc}")


async def _on_sentinel_error(request: Request, exc: Exception) -> JSONResponse:
    return _problem(500, f"{type(exc).__name__}: {exc}")


def create_app(runtime: Runtime) -> FastAPI:
    """The API over ``runtime``; serve it with uvicorn or mount :func:`api_routes` elsewhere."""
    from sentinel import __version__

    app = FastAPI(
        title="Kube Sentinel API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=DOCS_URL,
        redoc_url=None,
        responses={422: {"model": Problem, "description": "invalid request: each bad field named"}},
    )
    app.state.runtime = runtime
    app.state.metrics_registry = build_registry(runtime)
    app.state.ready_cache = ReadyCache()
    for module in ROUTERS:
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(Queued, commands.on_queued)  # a follower's change, not answered yet: 202
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StoreError, _on_store_error)
    app.add_exception_handler(SentinelError, _on_sentinel_error)
    return app


class _Delegate(BaseRoute):
    """A route of the API app, mountable in another app: matches like it, is served by the API app."""

    def __init__(self, route: BaseRoute, app: ASGIApp) -> None:
        self.route = route
        self.app = app
        self.path: str = getattr(route, "path", "")
        self.name: str | None = getattr(route, "name", None)
        self.methods: set[str] | None = getattr(route, "methods", None)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return self.route.matches(scope)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        return self.route.url_path_for(name, **path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(dict(scope), receive, send)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.route!r})"


def api_routes(runtime: Runtime) -> list[BaseRoute]:
    """Every API route (``/api/*``, ``/ws``, ``/health``, ``/ready``, ``/metrics``, the OpenAPI schema
    and docs), self-sufficient: mount them in any Starlette app, e.g. ``st.App(routes=api_routes(rt))``.

    One route per path and method set, each with its ``path``, served by one API app of its own."""
    app = create_app(runtime)
    own = [r for r in app.routes if isinstance(getattr(r, "path", None), str)]
    routed = [r for module in ROUTERS for r in module.router.routes]
    return [_Delegate(route, app) for route in (*routed, *own)]
