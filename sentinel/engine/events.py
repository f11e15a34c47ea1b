"""In-process publish/subscribe: the engine publishes, the WebSocket feed and the console read.

``publish`` never blocks: each subscriber has a bounded queue, and a subscriber whose queue is
full is dropped (its ``dropped`` flag is set) rather than slowing the engine down.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sentinel.core.model import ErrorGroup

EVENT_TYPES = ("error.new", "error.updated", "remediation", "settings", "health")


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    time: float
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "time": self.time, "data": self.data}


@dataclass(eq=False)
class Subscription:
    queue: queue.Queue[Event]
    dropped: bool = False
    types: frozenset[str] = field(default_factory=frozenset)

    def get(self, timeout: float | None = None) -> Event | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class EventBus:
    def __init__(self, *, history: int = 500, queue_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._recent: deque[Event] = deque(maxlen=history)
        self._ids = itertools.count(1)
        self._queue_size = queue_size

    def subscribe(self, types: frozenset[str] = frozenset(), *, queue_size: int | None = None) -> Subscription:
        sub = Subscription(queue.Queue(maxsize=queue_size or self._queue_size), types=types)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, type_: str, data: dict[str, Any], *, now: float | None = None) -> Event:
        event = Event(next(self._ids), type_, time.time() if now is None else now, data)
        with self._lock:
            self._recent.append(event)
            subs = list(self._subs)
        for sub in subs:
            if sub.types and type_ not in sub.types:
                continue
            try:
                sub.queue.put_nowait(event)
            except queue.Full:
                sub.dropped = True
                self.unsubscribe(sub)
        return event

    def recent(self, types: frozenset[str] = frozenset(), limit: int = 50) -> list[Event]:
        with self._lock:
            events = [e for e in self._recent if not types or e.type in types]
        return events[-limit:][::-1]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)


def group_summary(g: ErrorGroup) -> dict[str, Any]:
    """What an ``error.new`` / ``error.updated`` event says of a group."""
    return {
        "id": g.id,
        "priority": g.priority.value,
        "namespace": g.namespace,
        "workload": g.workload,
        "template": g.template,
        "rule": g.rule,
        "count": g.count,
        "status": g.status.value,
        "escalated": g.escalated,
        "last_seen": g.last_seen,
    }
