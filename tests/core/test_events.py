"""Kubernetes events through an exporter: grouped under the workload they are about, not the exporter."""

from __future__ import annotations

import json
from pathlib import Path

from sentinel.config import load_rules
from sentinel.core.model import LogEntry
from sentinel.core.parsing import parse_line
from sentinel.engine.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "config" / "rules.yaml").ruleset
EXPORTER = {"namespace": "monitoring", "pod": "event-exporter-7d4b9c8f6d-xk2lp", "container": "event-exporter"}


def event(namespace: str, kind: str, name: str, reason: str, message: str) -> str:
    return json.dumps(
        {
            "metadata": {"namespace": namespace},
            "reason": reason,
            "type": "Warning",
            "message": message,
            "involvedObject": {"kind": kind, "namespace": namespace, "name": name},
        }
    )


def test_subject_of_an_event() -> None:
    assert parse_line(event("shop", "Pod", "web-canary-7d4b9c8f6d-xk2lp", "BackOff", "Back-off"))[2] == (
        "shop",
        "web-canary",
        "web-canary-7d4b9c8f6d-xk2lp",
    )
    assert parse_line(event("shop", "ReplicaSet", "web-7d4b9c8f6d", "FailedCreate", "x"))[2] == ("shop", "web", "")
    assert parse_line(event("ops", "Job", "backup-28391160", "BackoffLimitExceeded", "x"))[2] == ("ops", "backup", "")
    assert parse_line(event("default", "Node", "worker-3", "NodeNotReady", "x"))[2] == ("", "nodes", "")
    assert parse_line('{"msg":"not an event","level":"error"}')[2] is None


def test_events_group_by_what_they_are_about() -> None:
    sched = "0/3 nodes are available: 3 Insufficient cpu."
    lines = [
        event("shop", "Pod", "web-7d4b9c8f6d-xk2lp", "FailedScheduling", sched),
        event("shop", "Pod", "web-7d4b9c8f6d-q8xz2", "FailedScheduling", sched),
        event("shop", "Pod", "web-canary-5c9d8f7b6-m4x7q", "FailedScheduling", sched),
    ]
    batch = Pipeline(rules=RULES).process([LogEntry(i + 1, EXPORTER, line) for i, line in enumerate(lines)])
    got = sorted((d.namespace, d.workload, d.container, d.count, sorted(d.pods)) for d in batch.deltas.values())
    assert got == [
        ("shop", "web", "", 2, ["web-7d4b9c8f6d-q8xz2", "web-7d4b9c8f6d-xk2lp"]),
        ("shop", "web-canary", "", 1, ["web-canary-5c9d8f7b6-m4x7q"]),
    ]
    assert {d.rule for d in batch.deltas.values()} == {"failed-scheduling"}
    explained = Pipeline(rules=RULES).explain(LogEntry(1, EXPORTER, lines[2]))
    assert (explained.namespace, explained.workload, explained.container) == ("shop", "web-canary", "")
