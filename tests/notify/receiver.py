"""A tiny HTTP receiver on 127.0.0.1 for notification tests: records each POST, answers as told."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    gate: threading.Event | None = None  # when set: each request waits for it (a slow receiver)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Event = field(default_factory=threading.Event)

    def bodies(self) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received]


@contextmanager
def receiver(*, statuses: list[int] | None = None, gate: threading.Event | None = None) -> Iterator[Receiver]:
    state = Receiver(statuses=list(statuses or []), gate=gate)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers.items()), json.loads(raw or b"null")))
                status = state.statuses.pop(0) if state.statuses else 200
            state.arrived.set()
            if state.gate is not None:
                state.gate.wait(10)
            payload = b'{"ok":true}' if status < 300 else b'{"error":"receiver says no"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.gate is not None:
            state.gate.set()
        server.shutdown()
        server.server_close()
