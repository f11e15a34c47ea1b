"""incidents: bad ``kubernetes.rollout_window`` / ``kubernetes.pod_status`` values and damaged stored state."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sentinel.config import ConfigError, load_config
from sentinel.core.model import ErrorGroup, Priority
from sentinel.engine.podstatus import STATE as POD_STATE
from sentinel.engine.podstatus import PodStatusWatcher
from sentinel.engine.rollouts import STATE as ROLLOUT_STATE
from sentinel.engine.rollouts import RolloutTracker
from sentinel.store.memory import MemoryStore


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "kubernetes:\n  rollout_window: 0s\n", "kubernetes.rollout_window: must be longer than 0s", id="zero-window"
        ),
        pytest.param(
            "kubernetes:\n  rollout_window: soon\n",
            "kubernetes.rollout_window: cannot parse duration 'soon'",
            id="bad-window",
        ),
        pytest.param(
            "kubernetes:\n  pod_status:\n    interval: 0s\n",
            "kubernetes.pod_status.interval: must be at least 1s",
            id="zero-interval",
        ),
        pytest.param(
            "kubernetes:\n  pod_status:\n    page_limit: 0\n", "kubernetes.pod_status.page_limit", id="zero-page"
        ),
        pytest.param(
            "kubernetes:\n  pod_status:\n    page_limit: 9999\n", "kubernetes.pod_status.page_limit", id="huge-page"
        ),
        pytest.param(
            "kubernetes:\n  pod_status:\n    namespaces: shop\n",
            "kubernetes.pod_status.namespaces",
            id="namespaces-not-a-list",
        ),
        pytest.param(
            "kubernetes:\n  pod_status:\n    enabled: perhaps\n", "kubernetes.pod_status.enabled", id="enabled-not-bool"
        ),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value) and expected in str(info.value)
    assert "Traceback" not in str(info.value)


def test_defaults_load(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("kubernetes:\n  pod_status:\n    namespaces: [shop, payments]\n")
    k = load_config(path, env={}).config.kubernetes
    assert (k.rollout_window, k.pod_status.enabled, k.pod_status.interval, k.pod_status.namespaces) == (
        3600.0,
        True,
        30.0,
        ["shop", "payments"],
    )


def _group() -> ErrorGroup:
    return ErrorGroup("g1", "demo", "web", "nginx", "boom", "r", Priority.P1, Priority.P1, 3, 1.0, 2.0)


def test_damaged_stored_pod_status_is_said_and_replaced(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    store.put_state(POD_STATE, {"counted": "not a mapping", "groups": {"g1": "x"}})
    with caplog.at_level(logging.WARNING):
        watcher = PodStatusWatcher(None, store=store, background=False)
    assert "stored pod_status could not be read" in caplog.text
    assert watcher.source_of(_group()) == "logs"
    watcher.commit(["uid/nginx/CrashLoopBackOff/1"], {"g1": 1})
    assert store.get_state(POD_STATE)["groups"] == {"g1": 1}  # type: ignore[index]
    assert watcher.source_of(_group()) == "both"


def test_damaged_stored_rollouts_are_said(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    store.put_state(ROLLOUT_STATE, {"groups": ["x"], "workloads": 3})
    with caplog.at_level(logging.WARNING):
        tracker = RolloutTracker(None, store=store)
    assert "deploy correlation starts afresh" in caplog.text
    assert not tracker.is_new_since_rollout(_group())
    assert tracker.correlation(_group())["reason"] == "no cluster"
