"""The event bus never blocks the publisher: a subscriber that falls behind is dropped."""

from __future__ import annotations

from sentinel.engine.events import EventBus


def test_slow_subscriber_is_dropped_fast_one_keeps_everything() -> None:
    bus = EventBus(queue_size=5)
    slow = bus.subscribe()
    fast = bus.subscribe()
    got = []
    for i in range(20):
        bus.publish("error.new", {"i": i})
        event = fast.get(timeout=0)
        assert event is not None
        got.append(event.data["i"])
    assert got == list(range(20))
    assert slow.dropped and bus.subscribers == 1


def test_type_filter_and_recent_history() -> None:
    bus = EventBus(history=3)
    sub = bus.subscribe(frozenset({"remediation"}))
    bus.publish("error.new", {"a": 1})
    bus.publish("remediation", {"b": 2})
    event = sub.get(timeout=0)
    assert event is not None and event.type == "remediation"
    assert sub.get(timeout=0) is None
    for i in range(5):
        bus.publish("health", {"i": i})
    recent = bus.recent(limit=10)
    assert [e.data["i"] for e in recent] == [4, 3, 2]
