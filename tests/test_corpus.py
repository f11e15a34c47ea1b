"""Smoke tests of issue 12's labelled Kubernetes corpus (tests/bench/k8s_corpus): it loads, it is
labelled, the generator is deterministic, and the scorer's Go reference keeps the Go tool's rules."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.bench.k8s_corpus.generate import (
    MIN_LINES,
    PARTS,
    CorpusError,
    Line,
    generate,
    groups,
    load_part,
    write_jsonl,
)
from tests.bench.k8s_corpus.score import (
    UPSTREAM_RULES,
    go_message,
    go_rule,
    load_go_rules,
    score_lines,
    score_part,
)

HERE = Path(__file__).resolve().parent / "bench" / "k8s_corpus"


@pytest.fixture(scope="module")
def parts() -> dict[str, object]:
    return {name: load_part(name) for name in PARTS}


def test_corpus_has_enough_templates_and_families(parts: dict) -> None:
    tune, held = parts["tune"], parts["heldout"]
    assert len(tune.templates) + len(held.templates) >= 60
    assert len(tune.templates) >= 60
    assert len(tune.families) >= 10 and len(held.families) >= 10
    # the held-out part has other templates and is marked as such
    assert not {t.id for t in tune.templates} & {t.id for t in held.templates}
    assert "NEVER TUNE ON THIS" in (HERE / "heldout.yaml").read_text(encoding="utf-8")
    assert tune.seed != held.seed


def test_every_template_is_labelled(parts: dict) -> None:
    rule_names = {r.name for r in load_go_rules(UPSTREAM_RULES)} | {"default"}
    for part in parts.values():
        for t in part.templates:
            assert t.source.strip() and t.why.strip(), t.id
            assert t.priority in ("P1", "P2", "P3", "P4"), t.id
            assert set(t.go_rules) <= rule_names, (t.id, t.go_rules)


@pytest.mark.parametrize("name", sorted(PARTS))
def test_go_reference_gives_each_templates_recorded_rule(parts: dict, name: str) -> None:
    part = parts[name]
    rules = load_go_rules(UPSTREAM_RULES)
    expected = {t.id: set(t.go_rules) for t in part.templates}
    wrong = Counter(
        (x.template, got)
        for x in generate(part, lines=4000)
        if (got := go_rule(rules, x.line, x.labels)) not in expected[x.template]
    )
    assert not wrong, wrong.most_common(5)


def test_generator_is_deterministic_and_exact(parts: dict) -> None:
    part = parts["tune"]
    a = generate(part, lines=3000)
    b = generate(part, lines=3000)
    assert a == b
    assert len(a) == 3000
    assert generate(part, lines=3000, seed=part.seed + 1) != a
    per_group = Counter(x.truth for x in a)
    assert len(per_group) == len(groups(part))
    assert min(per_group.values()) >= MIN_LINES
    assert [x.ts_ns for x in a] == sorted(x.ts_ns for x in a)
    assert max(per_group.values()) > 5 * min(per_group.values())  # Zipf-like skew


def test_hard_cases_are_present(parts: dict) -> None:
    lines = generate(parts["tune"], lines=4000)
    by_template: dict[str, list[Line]] = {}
    for x in lines:
        by_template.setdefault(x.template, []).append(x)
    # one multi-line entry is one occurrence: one JSONL row each
    panics = by_template["go-panic-nil"]
    assert all("\n" in x.line and "goroutine" in x.line for x in panics)
    # canary and stable share app=web but are two workloads, hence two true groups
    pino = by_template["node-pino-econnrefused"]
    assert {x.labels["app"] for x in pino} == {"web"}
    assert {x.truth.split("/")[1] for x in pino} == {"web", "web-canary"}
    # CronJob runs belong to the CronJob; static pods to their component
    assert {x.truth.split("/")[1] for x in by_template["pg-dump-auth"]} == {"backup"}
    assert all(x.labels["pod"].startswith("backup-2") for x in by_template["pg-dump-auth"])
    assert {x.labels["pod"] for x in by_template["klog-sched-leader-lost"]} <= {
        f"kube-scheduler-node-{i}" for i in (1, 2, 3)
    }
    # events belong to the involved object's workload, not to the exporter that ships them
    ev = by_template["ev-backoff-restart"]
    assert {x.labels["app"] for x in ev} == {"event-exporter"}
    assert {x.truth.split("/")[1] for x in ev} == {"cart", "invoicer"}
    assert all(json.loads(x.line)["involvedObject"]["kind"] == "Pod" for x in ev)
    # nginx's optional referrer tail appears on some lines only
    nginx = [x.line for x in by_template["nginx-upstream-timeout"]]
    assert any(", referrer: " in s for s in nginx) and any(", referrer: " not in s for s in nginx)


def test_jsonl_has_one_row_per_entry(parts: dict, tmp_path: Path) -> None:
    lines = generate(parts["tune"], lines=500)
    out = tmp_path / "c.jsonl"
    write_jsonl(lines, out)
    rows = [json.loads(r) for r in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [x.line for x in lines]
    assert sum("\n" in r["line"] for r in rows) > 0


# --- the Go tool's choice -------------------------------------------------------------------------


def _rules(tmp_path: Path, text: str) -> list:
    p = tmp_path / "rules.yaml"
    p.write_text(text, encoding="utf-8")
    return load_go_rules(p)


@pytest.mark.parametrize(
    ("line", "labels", "expected"),
    [
        pytest.param(
            'time=x level=error msg="request done"', {}, "generic-error", id="logfmt-level-is-in-the-raw-line"
        ),
        pytest.param('{"level":"error","msg":"request done"}', {}, "generic-error", id="json-level-is-in-the-raw-line"),
        pytest.param(
            "dial tcp 10.0.0.1:80: connection refused after timeout", {}, "connection-refused", id="first-wins"
        ),
        pytest.param("Connection refused", {}, "default", id="case-sensitive-miss"),
        pytest.param("GET /x?timeout=10s: forbidden", {}, "timeout", id="incidental-timeout-before-permission"),
        pytest.param("all good", {}, "default", id="no-match"),
        pytest.param("goroutine 7 [running]:\nmain.main()", {}, "panic", id="panic-trace"),
        # the 500-byte cut of the message ends "error...", the raw line says "errors": only the message matches
        pytest.param("x" * 494 + " errors happen", {}, "generic-error", id="message-only-match-after-cut"),
    ],
)
def test_go_rule_on_upstream_rules(line: str, labels: dict[str, str], expected: str) -> None:
    assert go_rule(load_go_rules(UPSTREAM_RULES), line, labels) == expected


def test_go_rule_keeps_go_loader_and_regexp_semantics(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        """
rules:
  - name: off-but-on
    match: {pattern: "boom"}
    enabled: false
  - name: dot-stops-at-newline
    match: {pattern: "alpha.*omega"}
  - name: not-in-kube-system
    match: {pattern: "quake", namespaces: ["!kube-system"]}
  - name: prod-only
    match: {pattern: "quake", labels: {env: "~^prod"}}
  - name: keyword
    match: {pattern: "disk", keywords: ["FULL"]}
""",
    )
    assert go_rule(rules, "boom", {}) == "off-but-on"  # the Go loader turns enabled: false into true
    assert go_rule(rules, "alpha omega", {}) == "dot-stops-at-newline"
    assert go_rule(rules, "alpha\nomega", {}) == "default"
    assert go_rule(rules, "quake", {"namespace": "shop"}) == "not-in-kube-system"
    assert go_rule(rules, "quake", {"namespace": "kube-system", "env": "production"}) == "prod-only"
    assert go_rule(rules, "quake", {"namespace": "kube-system", "env": "staging"}) == "default"
    assert go_rule(rules, "disk is full", {}) == "keyword"
    assert go_rule(rules, "disk is fine", {}) == "default"


def test_go_message_is_the_go_tools_extract_message() -> None:
    assert go_message('{"level":"error","msg":"say \\"hi\\" now"}') == "say \\"
    assert go_message('{"error":"boom","message":"first"}') == "first"
    assert go_message("2026-12-01 12:00:00 ERROR: disk full") == "disk full"
    assert go_message("2026-12-01T12:00:00Z WARN  cache   miss") == "cache   miss"
    assert go_message("plain words") == "plain words"
    assert go_message("y" * 600) == "y" * 500 + "..."


# --- scoring ----------------------------------------------------------------------------------


def test_score_lines_counts_ga_priority_and_rules(parts: dict) -> None:
    lines = generate(parts["tune"], lines=600)
    perfect = [{"group": x.truth, "priority": x.priority, "rule": "r"} for x in lines]
    res = score_lines(lines, perfect, perfect, ["r"] * len(lines))
    assert (res["ga"], res["priority_agreement"], res["rule_agreement"]) == (1.0, 1.0, 1.0)
    assert (res["groups_exact"], res["priority_agreement_per_group"], res["rule_agreement_per_group"]) == (1, 1, 1)
    # merge two true groups into one predicted key: exactly their lines become wrong
    a, b = sorted({x.truth for x in lines})[:2]
    merged = [{**p, "group": a if p["group"] == b else p["group"]} for p in perfect]
    wrong_prio = [{**p, "priority": "P4" if p["priority"] == "P1" else p["priority"]} for p in perfect]
    res = score_lines(lines, merged, wrong_prio, ["r" if i % 4 else "other" for i in range(len(lines))])
    n_ab = sum(x.truth in (a, b) for x in lines)
    assert res["ga"] == pytest.approx(1 - n_ab / len(lines))
    assert res["merged_groups"][0]["truths"] == sorted([a, b])
    assert res["groups_exact"] == pytest.approx((res["true_groups"] - 2) / res["true_groups"])
    assert res["priority_agreement"] == 1.0
    assert res["rule_agreement"] == pytest.approx(sum(1 for i in range(len(lines)) if i % 4) / len(lines))
    with pytest.raises(ValueError, match="answers"):
        score_lines(lines, perfect[:-1], perfect, ["r"] * len(lines))


def test_score_part_runs_the_real_analyze_cli() -> None:
    res = score_part("tune", lines=600)
    assert res["lines"] == 600
    assert res["true_groups"] == res["groups_defined"] == len(groups(load_part("tune")))
    assert res["pred_groups"] >= 1
    for key in ("ga", "priority_agreement", "rule_agreement"):
        assert 0.0 <= res[key] <= 1.0
    assert sum(v["lines"] for v in res["per_family"].values()) == 600
    # numbers per family: GA and the SRE -> ours confusion add up to the family's lines
    for fam, v in res["per_family_grouping"].items():
        assert 0.0 <= v["ga"] <= 1.0
        assert sum(v["confusion"].values()) == res["per_family"][fam]["lines"]
    assert sum(res["priority_confusion"].values()) == 600
    assert isinstance(res["wrong_priority"], list)  # TUNE may show its templates


def test_heldout_report_holds_numbers_only() -> None:
    # never tune on held-out: its report names no template and no group, only counts them
    res = score_part("heldout", lines=400)
    text = json.dumps(res)
    for t in load_part("heldout").templates:
        assert f'"{t.id}"' not in text and t.text[:40] not in text
    for k in ("split_groups", "merged_groups", "wrong_priority", "wrong_rule"):
        assert isinstance(res[k], int)


# --- bad template files -------------------------------------------------------------------------

_GOOD_WORKLOADS = "workloads:\n  web: {namespace: shop}\n"
_GOOD = "  - {id: t1, family: f, source: s, priority: P2, why: w, go_rule: default, emit: [web], text: 'x ${ip}'}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            _GOOD_WORKLOADS + "templates:\n" + _GOOD.replace("why: w, ", ""),
            "template t1: missing field 'why'",
            id="missing-why",
        ),
        pytest.param(
            _GOOD_WORKLOADS + "templates:\n" + _GOOD.replace("P2", "P7"),
            "template t1: priority 'P7'",
            id="bad-priority",
        ),
        pytest.param(
            _GOOD_WORKLOADS + "templates:\n" + _GOOD.replace("[web]", "[api]"),
            "unknown workload 'api'",
            id="bad-workload",
        ),
        pytest.param(
            _GOOD_WORKLOADS + "templates:\n" + _GOOD.replace("${ip}", "${nope}"),
            "unknown variable ${nope}",
            id="bad-variable",
        ),
        pytest.param(_GOOD_WORKLOADS + "templates:\n" + _GOOD + _GOOD, "template t1: duplicate id", id="duplicate"),
        pytest.param(_GOOD_WORKLOADS, "needs top-level 'workloads' and 'templates'", id="no-templates"),
        pytest.param(
            "workloads:\n  web: {kind: Pod, namespace: x}\ntemplates: []\n", "workload web: kind 'Pod'", id="bad-kind"
        ),
        pytest.param("workloads: [\n", "bad.yaml: line 2, column 1: invalid YAML", id="yaml-syntax"),
    ],
)
def test_bad_template_file_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_part("custom", path=p)
    assert message in str(info.value)
    assert str(info.value).startswith("bad.yaml: ")
    assert "\n" not in str(info.value)
