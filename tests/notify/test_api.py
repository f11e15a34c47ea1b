"""A destination that keeps failing shows in /ready (still 200), /metrics and /api/stats; its URL never does."""

from __future__ import annotations

import socket
from pathlib import Path

from sentinel.api.app import create_app
from tests.api.conftest import serve
from tests.notify.helpers import OOM, OTHER_NS, build, destination
from tests.notify.receiver import receiver

SECRET_PATH = "/services/T0/B0/never-shown-0123456789"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_destination_is_shown_but_not_fatal(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}{SECRET_PATH}"
    with receiver() as ok_rx:
        notifications = destination("dead", "slack", dead, "max_attempts: 2") + destination(
            "live", "webhook", ok_rx.url
        ).removeprefix("  destinations:\n")
        rt = build(tmp_path, notifications + "  failing_after: 2\n", OOM + OTHER_NS)
        assert rt.poll_once().ok
        assert rt.notifier.drain()
        for served in serve(create_app(rt), rt):
            ready = served.client.get("/ready")
            metrics = served.client.get("/metrics").text
            stats = served.client.get("/api/stats").json()
        rt.stop()
    assert ready.status_code == 200
    check = ready.json()["checks"]["notifications"]
    assert check.startswith("destination 'dead' failing: ConnectError")
    assert ready.json()["failing"] == {}
    assert 'kube_sentinel_notification_destination_failing{destination="dead",type="slack"} 1.0' in metrics
    assert 'kube_sentinel_notification_destination_failing{destination="live",type="webhook"} 0.0' in metrics
    assert 'kube_sentinel_notifications_total{destination="dead",outcome="failed",type="slack"} 2.0' in metrics
    assert 'kube_sentinel_notifications_total{destination="dead",outcome="retried",type="slack"} 2.0' in metrics
    assert 'kube_sentinel_notifications_total{destination="live",outcome="sent",type="webhook"} 2.0' in metrics
    by_name = {d["name"]: d for d in stats["notifications"]}
    assert by_name["dead"]["failing"] is True and by_name["dead"]["consecutive_failures"] == 2
    assert by_name["live"]["failing"] is False and by_name["live"]["sent"] == 2
    for text in (ready.text, metrics, str(stats)):
        assert "never-shown" not in text
    assert len(ok_rx.received) == 2


def test_ready_says_ok_without_destinations(tmp_path: Path) -> None:
    rt = build(tmp_path, "  destinations: []\n", OOM)
    assert rt.poll_once().ok
    for served in serve(create_app(rt), rt):
        body = served.client.get("/ready").json()
        stats = served.client.get("/api/stats").json()
    rt.stop()
    assert body["checks"]["notifications"] == "ok"
    assert stats["notifications"] == []
