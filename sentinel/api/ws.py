"""``/ws``: the engine's events as JSON, one message per event.

The handler never blocks the event loop or the engine: it takes events from its bounded
subscription with ``get_nowait`` and naps briefly when there are none. A client that falls behind
(its queue fills while it does not read) is dropped by the bus, and the handler then closes the
connection with code 1013 ("try again later"); a send that stalls longer than ``SEND_TIMEOUT`` ends
the connection too. Either way the engine's ``publish`` never waits for a client.

Reading events needs no token (like the GET endpoints), but a browser page from another origin is
refused (close code 1008): WebSockets are not protected by the same-origin policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, WebSocket
from starlette.websockets import WebSocketDisconnect

from sentinel.api.deps import Clock
from sentinel.api.deps import Events as EventsDep
from sentinel.engine.events import EVENT_TYPES, Event

log = logging.getLogger(__name__)

router = APIRouter(tags=["events"])

QUEUE_SIZE = 256
MAX_CLIENTS = 200
IDLE_NAP = 0.05
SEND_TIMEOUT = 5.0
BATCH = 100

CLOSE_FELL_BEHIND = 1013
CLOSE_POLICY = 1008


def _encode(event: Event) -> str:
    return json.dumps(event.to_dict(), separators=(",", ":"), default=str)


async def _wait_closed(websocket: WebSocket, closed: asyncio.Event) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        closed.set()


def _same_origin(websocket: WebSocket) -> bool:
    """Browsers send ``Origin``: a page from another site must not read the event stream.

    (WebSockets are not covered by the same-origin policy, so this check stands in for it.)
    Clients that send no ``Origin`` (scripts, curl, the tests) are not browsers and pass.
    """
    origin = websocket.headers.get("origin")
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


@router.websocket("/ws")
async def events(
    websocket: WebSocket,
    bus: EventsDep,
    clock: Clock,
    types: Annotated[
        str | None, Query(max_length=200, description="comma-separated event types (default: all)")
    ] = None,
) -> None:
    wanted = frozenset(t.strip() for t in (types or "").split(",") if t.strip())
    unknown = sorted(wanted - set(EVENT_TYPES))
    refusal = None
    if not _same_origin(websocket):
        refusal = (CLOSE_POLICY, "cross-origin WebSocket refused")
    elif unknown:
        refusal = (CLOSE_POLICY, f"unknown event types: {', '.join(unknown)}"[:120])
    elif bus.subscribers >= MAX_CLIENTS:
        refusal = (CLOSE_FELL_BEHIND, "too many event subscribers, try again later")
    if refusal is not None:
        # Accept first, so that the client sees the close code and the reason (not a bare HTTP 403).
        await websocket.accept()
        await websocket.close(code=refusal[0], reason=refusal[1])
        return
    sub = bus.subscribe(wanted, queue_size=QUEUE_SIZE)
    closed = asyncio.Event()
    watcher: asyncio.Task[None] | None = None
    try:
        await websocket.accept()
        watcher = asyncio.create_task(_wait_closed(websocket, closed))
        hello = {"id": 0, "type": "hello", "time": clock(), "data": {"types": sorted(wanted or EVENT_TYPES)}}
        await asyncio.wait_for(websocket.send_text(json.dumps(hello)), SEND_TIMEOUT)
        while not closed.is_set():
            if sub.dropped:
                log.info("event subscriber fell behind and was dropped")
                await asyncio.wait_for(
                    websocket.close(code=CLOSE_FELL_BEHIND, reason="fell behind: events were dropped, reconnect"),
                    SEND_TIMEOUT,
                )
                return
            sent = 0
            while sent < BATCH:
                try:
                    event = sub.queue.get_nowait()
                except queue.Empty:
                    break
                await asyncio.wait_for(websocket.send_text(_encode(event)), SEND_TIMEOUT)
                sent += 1
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), IDLE_NAP)
    except TimeoutError:
        log.info("event subscriber stopped reading; connection ended")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        bus.unsubscribe(sub)
        if watcher is not None:
            watcher.cancel()
