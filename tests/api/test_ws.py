"""``/ws``: events after a poll, type filters, and a slow client that is dropped without slowing the engine."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from sentinel.api.ws import QUEUE_SIZE
from sentinel.engine.events import Subscription
from tests.api.conftest import AUTH, Served


def receive(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def receive_until(ws: ClientConnection, done: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(events):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {[e['type'] for e in events]}"
        events.append(receive(ws, left))
    return events


def test_events_arrive_after_a_poll(unpolled: Served) -> None:
    with connect(unpolled.ws_url) as ws:
        hello = receive(ws)
        assert hello["type"] == "hello" and "error.new" in hello["data"]["types"]
        result = unpolled.runtime.poll_once()
        assert result.ok and result.new_groups > 0
        events = receive_until(ws, lambda ev: any(e["type"] == "health" for e in ev))
    new = [e for e in events if e["type"] == "error.new"]
    assert len(new) == result.new_groups
    assert {e["data"]["id"] for e in new} == {g.id for g in unpolled.runtime.store.all_groups()}
    assert all(set(e) == {"id", "type", "time", "data"} for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    assert [e for e in events if e["type"] == "remediation"], "the demo rules remediate on the first poll"
    health = next(e for e in events if e["type"] == "health")
    assert health["data"]["ok"] is True and health["data"]["lines"] == result.lines


def test_updates_settings_and_manual_actions_are_pushed(fresh: Served) -> None:
    with connect(fresh.ws_url + "?types=error.updated,settings,remediation") as ws:
        assert receive(ws)["data"]["types"] == ["error.updated", "remediation", "settings"]
        gid = fresh.client.get("/api/errors").json()["items"][0]["id"]
        fresh.client.patch(f"/api/errors/{gid}", json={"action": "acknowledge"}, headers=AUTH)
        fresh.client.post("/api/settings", json={"max_actions_per_hour": 11}, headers=AUTH)
        fresh.client.post(f"/api/errors/{gid}/remediate", json={"action": "none"}, headers=AUTH)
        fresh.runtime.poll_once()  # its health event is filtered out
        events = receive_until(ws, lambda ev: len(ev) >= 3)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["error.updated", "settings", "remediation"]
    assert events[0]["data"]["id"] == gid and events[0]["data"]["change"] == "acknowledge"
    assert events[1]["data"]["changes"]["max_actions_per_hour"] == [50, 11]
    assert "health" not in kinds


def test_unknown_event_type_is_refused(api: Served) -> None:
    with connect(api.ws_url + "?types=error.new,gossip") as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert "gossip" in info.value.rcvd.reason


def test_cross_origin_browser_page_is_refused(api: Served) -> None:
    host = api.url.removeprefix("http://")
    with connect(api.ws_url, origin=Origin("https://evil.example")) as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    with connect(api.ws_url, origin=Origin(f"http://{host}")) as ws:
        assert receive(ws)["type"] == "hello"


def test_client_that_leaves_is_unsubscribed(api: Served) -> None:
    base = api.runtime.events.subscribers
    with connect(api.ws_url) as ws:
        receive(ws)
        assert api.runtime.events.subscribers == base + 1
    deadline = time.monotonic() + 5
    while api.runtime.events.subscribers != base:
        assert time.monotonic() < deadline
        time.sleep(0.02)


CLOSE_1013 = b"\x03\xf5fell behind"


def _stuck_client(url: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads another byte."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    s.sendall(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def test_a_slow_client_is_dropped_and_never_slows_the_engine(unpolled: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Structural, not timed (speed is ``make bench``'s job): ``publish`` only ever does a non-blocking
    put into a bounded queue, so a client that stops reading fills its own queue, is marked dropped and
    taken off the bus, while every publish returns and the other clients keep getting their events."""
    rt = unpolled.runtime
    base = rt.events.subscribers
    subscriptions: list[Subscription] = []
    subscribe = rt.events.subscribe

    def recording_subscribe(types: frozenset[str] = frozenset(), *, queue_size: int | None = None) -> Subscription:
        sub = subscribe(types, queue_size=queue_size)
        subscriptions.append(sub)
        return sub

    monkeypatch.setattr(rt.events, "subscribe", recording_subscribe)
    with connect(unpolled.ws_url + "?types=health") as fast:
        receive(fast)
        stuck = _stuck_client(unpolled.url)
        try:
            deadline = time.monotonic() + 5
            while rt.events.subscribers < base + 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            fast_sub, stuck_sub = subscriptions
            assert fast_sub.types == frozenset({"health"}) and stuck_sub.types == frozenset()
            # Flood the stuck client: far more than its queue and every socket buffer can hold.
            payload = {"blob": "x" * 20_000}
            published = [rt.events.publish("error.updated", payload) for _ in range(3000)]
            # Every publish returned (none waited for the stuck client), in order.
            assert [e.id for e in published] == list(range(published[0].id, published[0].id + 3000))
            # The bus dropped the stuck client: flagged, off the bus, its queue bounded (never grew with the flood).
            assert stuck_sub.dropped
            assert stuck_sub.queue.maxsize == QUEUE_SIZE and stuck_sub.queue.qsize() <= QUEUE_SIZE
            assert rt.events.subscribers == base + 1
            assert not fast_sub.dropped
            # The engine is not held up: a full poll with the stuck socket still open succeeds, and the fast
            # client gets exactly that poll's health event.
            result = rt.poll_once()
            assert result.ok and result.lines > 0, result
            events = receive_until(fast, lambda ev: any(e["type"] == "health" for e in ev))
            assert [e["type"] for e in events] == ["health"]
            assert events[0]["data"]["ok"] is True and events[0]["data"]["lines"] == result.lines
            assert not fast_sub.dropped and rt.events.subscribers == base + 1
            # The server ends the stuck connection: once read, it ends with a 1013 close frame (or EOF).
            stuck.settimeout(15)
            tail = b""
            while CLOSE_1013 not in tail:
                chunk = stuck.recv(1 << 16)
                if not chunk:
                    break
                tail = (tail + chunk)[-4096:]
        finally:
            stuck.close()
    deadline = time.monotonic() + 10
    while rt.events.subscribers != base:
        assert time.monotonic() < deadline
        time.sleep(0.02)
