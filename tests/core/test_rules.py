"""Classification: the Go tool's rules classify real-looking lines as the Go tool would."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import load_rules, parse_rules
from sentinel.core.model import LogEntry, Priority
from sentinel.core.rules import DEFAULT_RULE
from sentinel.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = load_rules(FIXTURES / "upstream-rules.yaml").ruleset
SHIPPED = load_rules(ROOT / "config" / "rules.yaml").ruleset

# (line, rule the Go tool picks: first match in file order with Go's RE2 semantics)
UPSTREAM_TABLE = [
    ("Back-off restarting failed container api in pod api-7d4b9c-xk2lp_prod(1234)", "crashloop-backoff"),
    ("Warning BackOff pod/api-1 CrashLoopBackOff", "crashloop-backoff"),
    ("memory cgroup out of memory: Killed process 4123 (java)", "oom-killed"),
    ("container api terminated: OOMKilled", "oom-killed"),
    ("panic: runtime error: index out of range [3] with length 3", "panic"),
    ("PANIC: something", "panic"),
    ("goroutine 1 [running]:", "panic"),
    ('Failed to pull image "nginx:latesst": rpc error: code = NotFound desc = manifest unknown', "image-pull-error"),
    ("Error: ImagePullBackOff", "image-pull-error"),
    (
        'Readiness probe failed: Get "http://10.0.0.5:8080/healthz": dial tcp 10.0.0.5:8080: connect: connection refused',
        "probe-failed",
    ),
    ("Liveness probe failed: HTTP probe failed with statuscode: 500", "probe-failed"),
    ("Startup probe http-get failed", "probe-failed"),
    ("Node worker-3 status is now: NodeNotReady", "node-pressure"),
    ("Warning: node has DiskPressure", "node-pressure"),
    ("dial tcp 10.96.0.10:5432: connect: connection refused", "connection-refused"),
    ("ECONNREFUSED 127.0.0.1:6379", "connection-refused"),
    ("context deadline exceeded", "timeout"),
    ("request timed out after 30s", "timeout"),
    ("upstream request timeout", "timeout"),
    ('pods is forbidden: User "system:serviceaccount:x:y" cannot list resource "pods"', "permission-denied"),
    ("open /data/file: permission denied", "permission-denied"),
    ("ERROR: database connection error: too many connections", "database-error"),
    ("redis error: LOADING Redis is loading the dataset in memory", "database-error"),
    ("x509: certificate signed by unknown authority", "tls-error"),
    ("TLS handshake error from 10.0.0.1:5000: EOF", "tls-error"),
    ("lookup api.internal on 10.96.0.10:53: no such host", "dns-error"),
    ("DNS resolution error for host db", "dns-error"),
    ("Error: quota exceeded for resource cpu", "quota-exceeded"),
    ("The node was low on resource: memory. Pod evicted", "pod-evicted"),
    ("Pod was preempted by a higher priority pod", "pod-evicted"),
    ("An error occurred while processing the request", "generic-error"),
    ("ERROR something broke", "generic-error"),
    ("errors=0 everything fine", DEFAULT_RULE),
    ("all good", DEFAULT_RULE),
]


@pytest.mark.parametrize(
    ("line", "rule"),
    [pytest.param(line, rule, id=rule + "-" + str(i)) for i, (line, rule) in enumerate(UPSTREAM_TABLE)],
)
def test_upstream_rules_classify_like_the_go_tool(line: str, rule: str) -> None:
    assert UPSTREAM.classify(line).name == rule


def test_default_is_p4() -> None:
    r = UPSTREAM.classify("nothing to see")
    assert r.name == DEFAULT_RULE and r.priority is Priority.P4


# Lines the Go tool's rules miss or misfile; the shipped rules get them right.
IMPROVED = [
    ("Memory cgroup out of memory: Killed process 4123 (java)", "oom-killed", DEFAULT_RULE),
    (
        'pods "report-1" is forbidden: exceeded quota: batch-quota, requested: limits.memory=2Gi',
        "quota-exceeded",
        "permission-denied",
    ),
    ("Error: getaddrinfo ENOTFOUND recommendations.shop.svc.cluster.local", "dns-error", "generic-error"),
    ("FATAL:  sorry, too many clients already", "postgres-unavailable", DEFAULT_RULE),
    ("read tcp 10.0.0.1:443: connection reset by peer", "connection-refused", DEFAULT_RULE),
    ("x509: certificate has expired or is not yet valid", "certificate-expired", "tls-error"),
    # a request or process over its memory limit, not a kill: P2 (oom-killed is for killed processes)
    ("container ledger exceeded memory limit 512Mi", "out-of-memory", DEFAULT_RULE),
]


@pytest.mark.parametrize(("line", "shipped", "upstream"), [pytest.param(*row, id=row[1]) for row in IMPROVED])
def test_shipped_rules_improve_on_upstream(line: str, shipped: str, upstream: str) -> None:
    assert SHIPPED.classify(line).name == shipped
    assert UPSTREAM.classify(line).name == upstream


def ruleset(*rules: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_rules({"rules": list(rules)}, source="inline").ruleset


@pytest.mark.parametrize(
    ("labels", "namespace", "expected"),
    [
        pytest.param({"env": "production", "tier": "gold"}, "shop", "prod-gold", id="exact+regex"),
        pytest.param({"env": "production", "tier": "silver"}, "shop", "fallback", id="regex-miss"),
        pytest.param({"env": "dev", "tier": "gold"}, "shop", "fallback", id="exact-miss"),
        pytest.param({"env": "production", "tier": "gold"}, "shop-staging", "fallback", id="namespace-denied"),
        pytest.param({"env": "production", "tier": "gold", "canary": "true"}, "shop", "fallback", id="negation"),
    ],
)
def test_label_and_namespace_matchers(labels: dict[str, str], namespace: str, expected: str) -> None:
    rs = ruleset(
        {
            "name": "prod-gold",
            "match": {
                "pattern": "(?i)error",
                "labels": {"env": "production", "tier": "~^(gold|platinum)$", "canary": "!true"},
                "namespaces": ["!shop-staging"],
            },
            "priority": "P1",
        },
        {"name": "fallback", "match": {"pattern": "(?i)error"}, "priority": "P4"},
    )
    assert rs.classify("Error in handler", namespace=namespace, labels=labels).name == expected


def test_namespace_allow_list() -> None:
    rs = ruleset({"name": "staging", "match": {"pattern": "x", "namespaces": ["staging", "dev"]}, "priority": "P4"})
    assert rs.classify("x", namespace="dev").name == "staging"
    assert rs.classify("x", namespace="prod").name == DEFAULT_RULE


def test_keywords_any_case_insensitive_and_combined_with_pattern() -> None:
    rs = ruleset(
        {"name": "kw", "match": {"keywords": ["Queue Full", "backlog"]}, "priority": "P2"},
        {"name": "both", "match": {"pattern": "disk", "keywords": ["full"]}, "priority": "P3"},
    )
    assert rs.classify("the QUEUE FULL again").name == "kw"
    assert rs.classify("growing Backlog").name == "kw"
    assert rs.classify("disk is full").name == "both"
    assert rs.classify("disk is fine").name == DEFAULT_RULE


def test_first_enabled_match_wins_in_file_order() -> None:
    rs = ruleset(
        {"name": "a", "match": {"pattern": "boom"}, "priority": "P3"},
        {"name": "b", "match": {"pattern": "bo+m"}, "priority": "P1"},
    )
    assert rs.classify("boom").name == "a"


# The Go tool matched each pattern against the whole raw line. (line, the Go tool's rule)
RAW_LINE_TABLE = [
    # the level key and value are part of what generic-error sees
    ('level=error ts=2026-12-01T10:00:00Z msg="request served" status=200', "generic-error"),
    ('{"level":"error","msg":"request served","status":200}', "generic-error"),
    ('{"level":"info","msg":"request served","status":200}', DEFAULT_RULE),
    # message and raw line match differently: the raw line's choice is the Go tool's
    ('level=warn ts=1 msg="slow query" caller=pool/timeout.go:88', "timeout"),
    ('{"msg":"lookup failed","error":"dial tcp 10.0.0.7:5432: connect: connection refused"}', "connection-refused"),
    # a multi-line entry is matched whole: the frames too
    (
        "goroutine 7 [running]:\nmain.serve()\n\t/app/main.go:12 +0x1d",
        "panic",
    ),
]


@pytest.mark.parametrize(
    ("line", "rule"), [pytest.param(line, rule, id=f"{rule}-{i}") for i, (line, rule) in enumerate(RAW_LINE_TABLE)]
)
def test_upstream_rules_see_the_raw_line_as_go_did(line: str, rule: str) -> None:
    from sentinel.core.parsing import parse_message
    from sentinel.engine.pipeline import Pipeline

    message, level = parse_message(line)
    assert UPSTREAM.classify(line, message=message, level=level).name == rule
    # and the pipeline (analyze, the poller) hands the rules the raw line
    assert Pipeline(rules=UPSTREAM).explain(LogEntry(1, {"namespace": "ns", "pod": "p-0"}, line)).rule == rule


def test_levels_restrict_a_rule_and_any_ignores_the_level() -> None:
    rs = ruleset(
        {"name": "sql-error", "match": {"pattern": "(?i)sql", "levels": ["error", "fatal"]}, "priority": "P2"},
        {"name": "sql-notice", "match": {"pattern": "(?i)sql", "levels": "any"}, "priority": "P4"},
    )
    assert rs.classify("SQL state 42P01", level="error").name == "sql-error"
    assert rs.classify("SQL state 42P01", level="warning").name == "sql-notice"
    assert rs.classify("SQL state 42P01", level="notice").name == "sql-notice"  # an unknown word is "unknown"


def test_on_message_rules_see_the_parsed_message() -> None:
    rs = ruleset(
        {"name": "msg-error", "match": {"pattern": "(?i)error", "on": "message"}, "priority": "P3"},
    )
    line = '{"level":"error","msg":"request served"}'
    assert rs.classify(line, message="request served").name == DEFAULT_RULE
    assert rs.classify(line, message="error in handler").name == "msg-error"


@pytest.mark.parametrize(
    ("match", "problem"),
    [
        pytest.param({"pattern": "x", "levels": ["loud"]}, "match.levels: unknown level 'loud'", id="bad-level"),
        pytest.param({"pattern": "x", "on": "labels"}, "match.on: 'labels' is not one of line, message", id="bad-on"),
    ],
)
def test_bad_levels_and_on_are_named(match: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        ruleset({"name": "r", "match": match, "priority": "P3"})
    assert any(problem in p for p in err.value.problems), err.value.problems
