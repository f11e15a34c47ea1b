"""``/api/stats``, ``/api/rules`` and the pattern tester ``/api/rules/test``."""

from __future__ import annotations

from typing import Any

import pytest

from sentinel.core.model import LogEntry
from sentinel.sources.files import read_entries
from tests.api.conftest import DEMO, Served


def test_stats_totals_and_breakdowns_match_the_groups(api: Served) -> None:
    r = api.client.get("/api/stats")
    assert r.status_code == 200
    s = r.json()
    rows = api.client.get("/api/errors", params={"page_size": 500}).json()["items"]
    assert s["totals"]["groups"] == len(rows)
    assert s["totals"]["occurrences"] == sum(x["count"] for x in rows)
    assert set(s["by_priority"]) == {"P1", "P2", "P3", "P4"}
    for p, n in s["by_priority"].items():
        assert n == sum(1 for x in rows if x["priority"] == p)
    for ns, n in s["by_namespace"].items():
        assert n == sum(1 for x in rows if x["namespace"] == ns)
    for rule, n in s["by_rule"].items():
        assert n == sum(1 for x in rows if x["rule"] == rule)
    assert s["by_status"] == {"open": len(rows)}
    assert s["last_error_at"] == max(x["last_seen"] for x in rows)


def test_stats_rate_remediations_and_poll_health(api: Served) -> None:
    s = api.client.get("/api/stats", params={"minutes": 90}).json()
    assert len(s["rate"]) == 90
    minutes = [p["minute"] for p in s["rate"]]
    assert minutes == sorted(minutes) and all(m % 60 == 0 for m in minutes)
    assert sum(p["P1"] + p["P2"] + p["P3"] + p["P4"] for p in s["rate"]) > 0
    audit = api.client.get("/api/remediations", params={"page_size": 500}).json()
    assert audit["total"] == sum(s["remediations_by_result"].values())
    # only actions that reached the cluster (or its dry run) count; the demo has no cluster
    assert s["totals"]["remediations"] == sum(1 for x in audit["items"] if x["reached_cluster"])
    assert s["last_remediation_at"] == max(x["time"] for x in audit["items"])
    poll = s["poll"]
    assert poll["ok"] is True and poll["polls"] >= 1 and poll["lines_read"] > 0 and poll["last_error"] == ""
    assert poll["last_success_at"] is not None


@pytest.mark.parametrize("minutes", [0, 1441, "x"])
def test_stats_bad_minutes_is_422(api: Served, minutes: Any) -> None:
    assert api.client.get("/api/stats", params={"minutes": minutes}).status_code == 422


def test_rules_with_match_counts(api: Served) -> None:
    r = api.client.get("/api/rules")
    assert r.status_code == 200
    body = r.json()
    hits = api.runtime.rule_hits
    names = [x["name"] for x in body["rules"]]
    assert names == [rule.name for rule in api.runtime.rules.all_rules]
    for rule in body["rules"]:
        assert rule["matches"] == hits.get(rule["name"], 0)
        assert rule["priority"] in ("P1", "P2", "P3", "P4")
    assert body["default_matches"] == hits.get("default", 0)
    assert sum(x["matches"] for x in body["rules"]) + body["default_matches"] == api.runtime.health.lines_read
    crash = next(x for x in body["rules"] if x["name"] == "crashloop-backoff")
    assert crash["action"] == "restart-pod" and crash["matches"] > 0 and "CrashLoopBackOff" in crash["pattern"]


LABELS = {"namespace": "shop", "pod": "checkout-7d9f8b6c5d-x2x4z", "container": "checkout"}


def test_pattern_match_gives_template_and_group_key(api: Served) -> None:
    entry = next(e for e in read_entries(DEMO / "logs.jsonl") if "Back-off restarting" in e.line)
    r = api.client.post(
        "/api/rules/test",
        json={"pattern": "Back-off restarting", "sample": entry.line, "priority": "P2", "labels": dict(entry.labels)},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["matched"] is True and body["priority"] == "P2" and body["rule"] is None
    assert body["classified"] == {"rule": "crashloop-backoff", "priority": "P1"}
    assert body["namespace"] == entry.labels["namespace"] and body["container"] == entry.labels["container"]
    # The group key is the id of the group the engine made for this very line.
    group = api.runtime.store.get_group(body["group_key"])
    assert group is not None and group.template == body["template"] and "<*>" in body["template"]
    assert entry.labels["pod"] in group.pods


def test_pattern_without_match(api: Served) -> None:
    body = api.client.post("/api/rules/test", json={"pattern": "^never$", "sample": "something else"}).json()
    assert body["matched"] is False and body["priority"] is None


def test_pattern_is_matched_against_the_raw_line_as_a_rule_sees_it(api: Served) -> None:
    """A rule's pattern sees the whole raw line (the Go tool's meaning): the tester answers the same."""
    line = '{"level":"error","msg":"payment declined","ts":"2024-01-01T00:00:00Z"}'
    body = api.client.post("/api/rules/test", json={"pattern": "^payment declined$", "sample": line}).json()
    assert body["message"] == "payment declined" and body["matched"] is False
    body = api.client.post("/api/rules/test", json={"pattern": '"level":"error"', "sample": line}).json()
    assert body["matched"] is True


def test_the_loaded_rules_classify_the_raw_line_as_the_pipeline_does(api: Served) -> None:
    """The tester and the engine give every sample the same rule (both see the raw line)."""
    labels = {"namespace": "shop", "pod": "cart-7d9f8b6c5d-x2x9z", "container": "cart"}
    samples = [
        'level=error msg="payment declined" order=123',
        '{"level":"error","msg":"payment declined"}',
        "E1201 12:00:00.000000       1 controller.go:114] error syncing 'shop/cart': timed out",
        "plain line without a level",
    ]
    for line in samples:
        body = api.client.post("/api/rules/test", json={"sample": line, "labels": labels}).json()
        engine = api.runtime.pipeline.explain(LogEntry(1, labels, line), learn=False)
        assert body["classified"] == {"rule": engine.rule, "priority": engine.priority}, line


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        pytest.param("a(b", "missing )", id="unclosed"),
        pytest.param("(?<=x)y", "invalid perl operator", id="lookbehind"),
        pytest.param(r"(\w+)\1", "invalid escape", id="backreference"),
    ],
)
def test_invalid_re2_is_422_with_re2s_reason(api: Served, pattern: str, reason: str) -> None:
    r = api.client.post("/api/rules/test", json={"pattern": pattern, "sample": "x"})
    assert r.status_code == 422
    body = r.json()
    assert reason in body["detail"] and body["problems"][0].startswith("pattern: ")


def test_rule_by_name(api: Served) -> None:
    body = api.client.post(
        "/api/rules/test", json={"rule": "oom-killed", "sample": "container OOMKilled", "labels": LABELS}
    ).json()
    assert (body["matched"], body["rule"], body["priority"]) == (True, "oom-killed", "P1")
    miss = api.client.post("/api/rules/test", json={"rule": "oom-killed", "sample": "all good"}).json()
    assert (miss["matched"], miss["priority"]) == (False, None)


def test_neither_pattern_nor_rule_classifies_with_the_loaded_rules(api: Served) -> None:
    body = api.client.post("/api/rules/test", json={"sample": "kernel: Out of memory: Killed process 1"}).json()
    assert body["matched"] is True and body["rule"] == "oom-killed" == body["classified"]["rule"]
    none = api.client.post("/api/rules/test", json={"sample": "hello"}).json()
    assert none["matched"] is False and none["rule"] == "default" and none["priority"] == "P4"


def test_unknown_rule_is_404(api: Served) -> None:
    r = api.client.post("/api/rules/test", json={"rule": "no-such-rule", "sample": "x"})
    assert r.status_code == 404 and "no rule" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"pattern": "a", "rule": "panic", "sample": "x"}, id="both"),
        pytest.param({"pattern": "a"}, id="no-sample"),
        pytest.param({"pattern": "a", "sample": "x", "flags": "i"}, id="unknown-field"),
        pytest.param({"pattern": "a" * 5000, "sample": "x"}, id="pattern-too-long"),
        pytest.param({"pattern": "a", "sample": "x", "priority": "P7"}, id="bad-priority"),
        pytest.param({"sample": 5}, id="sample-not-a-string"),
    ],
)
def test_bad_test_request_is_422(api: Served, body: dict[str, Any]) -> None:
    assert api.client.post("/api/rules/test", json=body).status_code == 422


def test_rule_test_needs_no_token(readonly: Served) -> None:
    assert readonly.client.post("/api/rules/test", json={"sample": "x"}).status_code == 200


def test_testing_samples_changes_nothing_in_the_engine(fresh: Served) -> None:
    """The engine's fingerprinter learns from what it sees; the tester must not teach it anything."""
    live = fresh.runtime.pipeline.fingerprinter
    before = (live.snapshot(), fresh.runtime.store.all_groups(), dict(fresh.runtime.rule_hits))
    answers = []
    for word in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot"):
        body = {"sample": f"never seen before: queue {word} stalled on shard", "labels": {"namespace": "shop"}}
        r = fresh.client.post("/api/rules/test", json=body)
        assert r.status_code == 200
        answers.append(r.json()["template"])
    assert answers[0] == "never seen before: queue alpha stalled on shard"
    assert (live.snapshot(), fresh.runtime.store.all_groups(), dict(fresh.runtime.rule_hits)) == before
    assert fresh.runtime.pipeline.fingerprinter is live
