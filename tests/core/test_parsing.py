"""Parsing: message and level of JSON, logfmt, klog, panics, tracebacks and plain lines; workloads."""

from __future__ import annotations

import pytest

from sentinel.core.model import LogEntry
from sentinel.core.parsing import parse, parse_message, workload_from_pod, workload_of


@pytest.mark.parametrize(
    ("line", "message", "level"),
    [
        pytest.param(
            '{"level":"error","msg":"failed to connect","error":"dial tcp: refused"}',
            "failed to connect: dial tcp: refused",
            "error",
            id="json-msg-error",
        ),
        pytest.param('{"severity":"ERROR","message":"boom"}', "boom", "error", id="json-severity"),
        pytest.param('{"log":"plain inside json"}', "plain inside json", "unknown", id="json-log"),
        pytest.param('{"err":"only an err"}', "only an err", "error", id="json-err-only"),
        pytest.param(
            'level=error ts=2026-01-01T00:00:00Z msg="redis error" err="i/o timeout"',
            "redis error: i/o timeout",
            "error",
            id="logfmt",
        ),
        pytest.param('time="2026" level=warn msg="slow"', "slow", "warning", id="logfmt-warn"),
        pytest.param(
            "E0115 10:23:45.123456   12345 reflector.go:123] failed to list *v1.Pod",
            "failed to list *v1.Pod",
            "error",
            id="klog-error",
        ),
        pytest.param("F0115 10:23:45.123456       1 main.go:9] cannot start", "cannot start", "fatal", id="klog-fatal"),
        pytest.param(
            "panic: runtime error: index out of range",
            "panic: runtime error: index out of range",
            "fatal",
            id="go-panic",
        ),
        pytest.param(
            "Traceback (most recent call last):", "Traceback (most recent call last):", "error", id="python-traceback"
        ),
        pytest.param("2026-11-28T10:00:00.123Z ERROR payment failed", "payment failed", "error", id="ts-level-prefix"),
        pytest.param(
            "[ERROR] plugin/errors: 2 a.example. A: i/o timeout",
            "plugin/errors: 2 a.example. A: i/o timeout",
            "error",
            id="bracket-level",
        ),
        pytest.param(
            "2026-11-28 10:46:24.135 UTC [4802] FATAL:  sorry, too many clients already",
            "sorry, too many clients already",
            "fatal",
            id="postgres",
        ),
        pytest.param("something failed badly", "something failed badly", "error", id="plain-fail"),
        pytest.param("all quiet", "all quiet", "unknown", id="plain-unknown"),
        pytest.param("{not json", "{not json", "unknown", id="broken-json"),
    ],
)
def test_parse_message(line: str, message: str, level: str) -> None:
    assert parse_message(line) == (message, level)


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        pytest.param("api-7d4b9c8f6d-xk2lp", "api", id="deployment"),
        pytest.param("payments-api-84c6d9b7f-r7t2n", "payments-api", id="deployment-dashed"),
        pytest.param("postgres-0", "postgres", id="statefulset"),
        pytest.param("kafka-12", "kafka", id="statefulset-2-digits"),
        pytest.param("nightly-report-29012345-8xk2d", "nightly-report", id="cronjob"),
        pytest.param("node-exporter-x7k2p", "node-exporter", id="daemonset"),
        pytest.param("standalone", "standalone", id="bare-pod"),
        pytest.param("", "", id="empty"),
    ],
)
def test_workload_from_pod(pod: str, workload: str) -> None:
    assert workload_from_pod(pod) == workload


def test_workload_prefers_labels() -> None:
    assert workload_of({"app": "shop", "pod": "x-7d4b9c8f6d-xk2lp"}) == "shop"
    assert workload_of({"app.kubernetes.io/name": "db", "pod": "postgres-0"}) == "db"
    assert workload_of({"pod": "postgres-0"}) == "postgres"
    assert workload_of({"service_name": "loki-svc"}) == "loki-svc"


def test_parse_entry_uses_detected_level() -> None:
    p = parse(
        LogEntry(1, {"namespace": "ns", "pod": "web-0", "container": "c", "detected_level": "error"}, "all quiet")
    )
    assert (p.namespace, p.pod, p.container, p.workload, p.level) == ("ns", "web-0", "c", "web", "error")
