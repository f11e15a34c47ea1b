"""A poll that brings many new groups (issue 17): alert-only records capped per poll, one summary line."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from sentinel.store.base import RecordQuery
from tests.engine.test_runtime import NS, build, write_config
from tests.peers.loki import LokiPeer

RULES = """
rules:
  - name: refused-alert
    match:
      pattern: "connection refused"
    priority: P2
    remediation:
      action: none
      cooldown: 10m
"""


def test_alert_only_records_are_capped_per_poll_with_one_summary(
    tmp_path: Path, loki_peer: LokiPeer, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write_config(tmp_path, loki_peer)
    (tmp_path / "rules.yaml").write_text(RULES)
    now_ns = int(time.time() * NS)
    for i in range(12):  # twelve workloads: twelve new groups
        loki_peer.add_lines(
            {"namespace": "shop", "pod": f"svc{i:02d}-7d4b9c8f6d-xk2l{i % 10}", "container": "app"},
            [(now_ns - 60 * NS, "ERROR upstream failed: connection refused")],
        )
    rt = build(cfg, loki_peer)
    rt.autoremediation.alerts_per_poll = 5
    with caplog.at_level(logging.INFO, logger="sentinel.engine"):
        result = rt.poll_once()
    assert result.ok and result.new_groups == 12
    records = rt.store.list_remediations(RecordQuery(page_size=100)).items
    alerts = [r for r in records if r.reason_code != "alerts-over-cap"]
    [summary] = [r for r in records if r.reason_code == "alerts-over-cap"]
    assert len(alerts) == 5 and all(r.action == "none" for r in alerts)
    assert summary.changes["count"] == 7 and len(summary.changes["groups"]) == 7
    assert not {r.group_id for r in alerts} & set(summary.changes["groups"])
    assert "7 more new groups this poll, past the cap of 5" in summary.reason
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("poll: ")]
    assert "5 remediation decisions (alert 5, alerts-over-cap 7)" in line
    assert rt.last_outcomes == {"alert": 5, "alerts-over-cap": 7}
