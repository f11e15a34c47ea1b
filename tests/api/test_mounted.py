"""``api_routes(runtime)``: the API's routes mounted in another Starlette app (as the console does)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from websockets.sync.client import connect

from sentinel.api.app import api_routes
from sentinel.engine.runtime import Runtime
from tests.api.conftest import AUTH, Served, serve
from tests.api.test_ws import receive


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the console")


@pytest.fixture
def mounted(polled_runtime: Runtime) -> Iterator[Served]:
    """A host app with a route of its own plus every API route; no state, middleware or lifespan of ours."""
    host = Starlette(routes=[Route("/", home), *api_routes(polled_runtime)])
    yield from serve(host, polled_runtime)


def test_routes_have_paths_for_the_host_to_check(polled_runtime: Runtime) -> None:
    paths = {getattr(r, "path", "") for r in api_routes(polled_runtime)}
    assert {"/api/errors", "/api/errors/{group_id}", "/api/stats", "/api/rules", "/api/rules/test"} <= paths
    assert {"/api/remediations", "/api/settings", "/ws", "/health", "/ready", "/metrics", "/api/openapi.json"} <= paths
    assert not any(p.startswith(("/_stcore/", "/media/", "/component/", "/static/")) for p in paths)


def test_mounted_routes_answer_like_the_app(mounted: Served, api: Served) -> None:
    c = mounted.client
    assert c.get("/").text == "the console"
    for path in ("/api/errors?page_size=3&sort=count", "/api/stats", "/api/rules", "/api/settings", "/health"):
        a, b = c.get(path), api.client.get(path)
        assert a.status_code == b.status_code == 200, path
        if path != "/health":
            assert a.json().keys() == b.json().keys()
    assert c.get("/api/errors?format=csv&page_size=3").headers["content-type"].startswith("text/csv")
    assert c.get("/ready").status_code == 200
    assert "kube_sentinel_lines_read_total" in c.get("/metrics").text
    assert c.get("/api/openapi.json").json()["info"]["title"] == "Kube Sentinel API"


def test_mounted_errors_keep_their_json_shape(mounted: Served) -> None:
    c = mounted.client
    r = c.get("/api/errors/unknown")
    assert r.status_code == 404 and r.json()["detail"].startswith("no error group")
    r = c.get("/api/errors", params={"page_size": 501})
    assert r.status_code == 422 and r.json()["problems"]
    assert c.post("/api/settings", json={"dry_run": True}).status_code == 401
    assert c.post("/api/settings", json={"x": 1}, headers=AUTH).status_code == 422
    assert c.post("/api/rules/test", content=b"x" * 70_000).status_code == 413
    assert c.delete("/api/settings").status_code == 405
    assert c.get("/api/nothing-here").status_code == 404


def test_mounted_websocket(mounted: Served) -> None:
    with connect(mounted.ws_url + "?types=health") as ws:
        assert receive(ws)["type"] == "hello"
        assert mounted.runtime.poll_once().ok
        assert receive(ws)["type"] == "health"
