"""Tokens, read-only mode, body limits, unknown fields, and no secret in any answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from sentinel.api.app import MAX_BODY
from tests.api.conftest import AUTH, TOKEN, Served

MUTATIONS = [
    pytest.param("POST", "/api/settings", {"dry_run": False}, id="settings"),
    pytest.param("PATCH", "/api/errors/{gid}", {"action": "acknowledge"}, id="status"),
    pytest.param("POST", "/api/errors/{gid}/remediate", {}, id="remediate"),
    pytest.param("POST", "/api/safety/breakers/reset", {"workload": "shop/checkout"}, id="breaker-reset"),
]


def _gid(s: Served) -> str:
    return str(s.client.get("/api/errors").json()["items"][0]["id"])


@pytest.mark.parametrize(("method", "path", "body"), MUTATIONS)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="token-plus-one"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="not-bearer"),
        pytest.param({"Authorization": TOKEN}, id="no-scheme"),
    ],
)
def test_mutations_need_the_token(
    fresh: Served, method: str, path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    before = (fresh.runtime.settings, fresh.runtime.store.all_groups())
    r = fresh.client.request(method, path.format(gid=_gid(fresh)), json=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["detail"]
    assert TOKEN not in r.text
    assert (fresh.runtime.settings, fresh.runtime.store.all_groups()) == before


@pytest.mark.parametrize(("method", "path", "body"), MUTATIONS)
def test_without_a_configured_token_the_api_is_read_only(
    readonly: Served, method: str, path: str, body: dict[str, Any]
) -> None:
    for headers in ({}, AUTH):
        r = readonly.client.request(method, path.format(gid=_gid(readonly)), json=body, headers=headers)
        assert r.status_code == 403, r.text
        assert "read-only" in r.json()["detail"]
    assert readonly.client.get("/api/errors").status_code == 200


def test_the_right_token_works_and_who_is_recorded(fresh: Served) -> None:
    r = fresh.client.post("/api/settings", json={"dry_run": True, "max_actions_per_hour": 9}, headers=AUTH)
    assert r.status_code == 200 and r.json()["by"] == "api"


@pytest.mark.parametrize("user", ["x" * 101, "bad\u0007bell"])
def test_bad_user_header_is_422(fresh: Served, user: str) -> None:
    r = fresh.client.post("/api/settings", json={}, headers={**AUTH, "X-Sentinel-User": user})
    assert r.status_code == 422


@pytest.mark.parametrize("path", ["/api/settings", "/api/rules/test"])
def test_body_over_the_limit_is_413(fresh: Served, path: str) -> None:
    big = {"sample": "x" * (MAX_BODY + 10)}
    r = fresh.client.post(path, json=big, headers=AUTH)
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    assert fresh.client.post(path, json={"sample": "x" * 1000}, headers=AUTH).status_code in (200, 422)


def test_chunked_body_over_the_limit_is_413(fresh: Served) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"sample": "'
        for _ in range(20):
            yield b"y" * 8192
        yield b'"}'

    r = fresh.client.post("/api/rules/test", content=chunks(), headers={"Content-Type": "application/json", **AUTH})
    assert r.status_code == 413


def test_lying_content_length_is_refused(fresh: Served) -> None:
    host, port = fresh.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(
            b"POST /api/rules/test HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 999999999\r\n\r\n{}"
        )
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413")


def test_no_secret_in_any_answer(fresh: Served) -> None:
    secrets = [TOKEN, "loki-password-never-shown"]
    gid = _gid(fresh)
    fresh.client.post("/api/settings", json={"dry_run": True, "lookback": 900}, headers=AUTH)
    paths = [
        "/api/errors", "/api/errors?format=csv", f"/api/errors/{gid}", "/api/stats", "/api/rules",
        "/api/remediations", "/api/remediations?format=csv", "/api/settings", "/api/safety", "/health", "/ready",
        "/metrics", "/api/openapi.json",
    ]  # fmt: skip
    for path in paths:
        r = fresh.client.get(path)
        assert r.status_code == 200, path
        for secret in secrets:
            assert secret not in r.text, path
    r = fresh.client.patch(f"/api/errors/{gid}", json={"action": "acknowledge"}, headers=AUTH)
    assert all(secret not in r.text for secret in secrets)
